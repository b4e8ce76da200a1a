package vpcsim

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	ec2Version  = "2016-11-15"
	asgVersion  = "2011-01-01"
	ec2XMLNS    = "http://ec2.amazonaws.com/doc/2016-11-15/"
	asgXMLNS    = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
	serviceEC2  = "ec2"
	serviceASG  = "autoscaling"
	maxFormSize = 1 << 20
)

// apiError is an error answer in the service's own error shape.
type apiError struct {
	Status        int
	Code, Message string
	Shape         string // the error's shape name where the protocol sends it (CloudWatch); "" is Code
}

func errf(status int, code, format string, a ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

// form is a request's parameters.
type form url.Values

func (f form) get(k string) string { return url.Values(f).Get(k) }

// list returns prefix.1, prefix.2, ... in index order (EC2's flat lists).
func (f form) list(prefix string) []string {
	type iv struct {
		i int
		v string
	}
	var items []iv
	for k, vs := range f {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok || len(vs) == 0 {
			continue
		}
		if i, err := strconv.Atoi(rest); err == nil {
			items = append(items, iv{i, vs[0]})
		}
	}
	sort.Slice(items, func(a, b int) bool { return items[a].i < items[b].i })
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.v)
	}
	return out
}

// indices returns the N of every key prefix.N.<suffix...>, sorted.
func (f form) indices(prefix string) []string {
	seen := map[int]bool{}
	for k := range f {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(n); err == nil {
			seen[i] = true
		}
	}
	var is []int
	for i := range seen {
		is = append(is, i)
	}
	slices.Sort(is)
	out := make([]string, len(is))
	for j, i := range is {
		out[j] = strconv.Itoa(i)
	}
	return out
}

func (f form) boolean(k string) (val, set bool, aerr *apiError) {
	v, ok := f[k]
	if !ok || len(v) == 0 {
		return false, false, nil
	}
	b, err := strconv.ParseBool(v[0])
	if err != nil {
		return false, false, errf(400, "InvalidParameterValue", "Value (%s) for parameter %s is invalid. Expected a boolean.", v[0], k)
	}
	return b, true, nil
}

type op struct {
	mutating bool
	fn       func(s *Sim, f form) ([]any, *apiError)
}

func opsOf(service string) map[string]op {
	if service == serviceASG {
		return asgOps
	}
	return ec2Ops
}

var asgActions = map[string]bool{}

func init() {
	for a := range asgOps {
		asgActions[a] = true
	}
}

// serviceOf picks the protocol of a request: the Version says it, else the action's name does.
func serviceOf(action, version string) string {
	switch {
	case version == asgVersion:
		return serviceASG
	case version == ec2Version:
		return serviceEC2
	case asgActions[action]:
		return serviceASG
	}
	return serviceEC2
}

// Handler serves the EC2 and AutoScaling Query APIs, SSM's GetParameter (told apart by its
// X-Amz-Target header) on any path, and CloudWatch's PutMetricData on its RPC v2 path.
func (s *Sim) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Sim) serveHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := s.requestID()
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), ssmTarget) {
		s.serveSSM(w, r, reqID)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/service/") || r.Header.Get("Smithy-Protocol") != "" {
		s.serveCloudWatch(w, r, reqID)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
	if err := r.ParseForm(); err != nil {
		writeError(w, serviceEC2, reqID, errf(400, "MalformedQueryString", "cannot parse the request: %v", err))
		return
	}
	f := form(r.Form)
	action, service := f.get("Action"), serviceOf(f.get("Action"), f.get("Version"))

	s.mu.Lock()
	s.requests[action]++
	s.mu.Unlock()

	o, ok := opsOf(service)[action]
	if !ok {
		writeError(w, service, reqID, errf(400, "InvalidAction", "The action %s is not valid for this web service.", action))
		return
	}
	if aerr := s.fault(r.Context(), service, action); aerr != nil {
		if o.mutating {
			s.record(Call{Service: service, Action: action, Params: params(f), Code: aerr.Code, Faulted: true})
		}
		writeError(w, service, reqID, aerr)
		return
	}
	parts, aerr := o.fn(s, f)
	if o.mutating {
		c := Call{Service: service, Action: action, Params: params(f)}
		if aerr != nil {
			c.Code = aerr.Code
		}
		s.record(c)
	}
	if aerr != nil {
		if aerr.Code == "InternalError" && service == serviceASG {
			aerr.Code = "InternalFailure"
		}
		writeError(w, service, reqID, aerr)
		return
	}
	if err := writeOK(w, service, action, reqID, parts); err != nil {
		s.log.Error("write response", "action", action, "err", err)
	}
}

func params(f form) map[string]string {
	out := map[string]string{}
	for k, v := range f {
		if k != "Action" && k != "Version" && len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}

func (s *Sim) record(c Call) {
	c.Time = s.opts.Now()
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	if s.opts.OnCall != nil {
		s.opts.OnCall(c)
	}
}

func (s *Sim) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uuid()
}

// uuid returns a random version-4 UUID. Callers hold s.mu.
func (s *Sim) uuid() string {
	a, b := s.rng.Uint64(), s.rng.Uint64()
	a = a&^0xf000 | 0x4000
	b = b&^(0xc<<60) | 0x8<<60
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

func writeOK(w http.ResponseWriter, service, action, reqID string, parts []any) error {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if service == serviceASG {
		fmt.Fprintf(&buf, `<%sResponse xmlns="%s"><%sResult>`, action, asgXMLNS, action)
	} else {
		fmt.Fprintf(&buf, `<%sResponse xmlns="%s"><requestId>%s</requestId>`, action, ec2XMLNS, reqID)
	}
	enc := xml.NewEncoder(&buf)
	for _, p := range parts {
		if err := enc.Encode(p); err != nil {
			return fmt.Errorf("encode %T: %w", p, err)
		}
	}
	if service == serviceASG {
		fmt.Fprintf(&buf, `</%sResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`, action, reqID, action)
	} else {
		fmt.Fprintf(&buf, `</%sResponse>`, action)
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("X-Amzn-Requestid", reqID)
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(buf.Bytes())
	return err
}

func writeError(w http.ResponseWriter, service, reqID string, e *apiError) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if service == serviceASG {
		typ := "Sender"
		if e.Status >= 500 {
			typ = "Receiver"
		}
		fmt.Fprintf(&buf, `<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
			asgXMLNS, typ, esc(e.Code), esc(e.Message), reqID)
	} else {
		fmt.Fprintf(&buf, `<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
			esc(e.Code), esc(e.Message), reqID)
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("X-Amzn-Requestid", reqID)
	w.WriteHeader(e.Status)
	_, _ = w.Write(buf.Bytes())
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Faults are injected into API requests before they touch any state.
type Faults struct {
	Latency         time.Duration // added to every matching request
	ThrottleRate    float64       // share of matching requests throttled
	ServerErrorRate float64       // share of matching requests answered 500/503
	Actions         []string      // actions affected; empty means all
	Seed            int64         // seeds the fault dice, so a run is reproducible
}

// SetFaults replaces the injected faults; the zero Faults turns them off.
func (s *Sim) SetFaults(f Faults) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	f.Actions = slices.Clone(f.Actions)
	s.faults = f
	s.frng = rand.New(rand.NewPCG(uint64(f.Seed), 0x6661756c7473))
}

func (s *Sim) fault(ctx context.Context, service, action string) *apiError {
	s.faultMu.Lock()
	f := s.faults
	if len(f.Actions) > 0 && !slices.Contains(f.Actions, action) {
		s.faultMu.Unlock()
		return nil
	}
	dice, pick := s.frng.Float64(), s.frng.IntN(2)
	s.faultMu.Unlock()

	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	switch {
	case dice < f.ThrottleRate:
		switch service {
		case serviceASG:
			return errf(400, "Throttling", "Rate exceeded")
		case serviceSSM:
			return errf(400, "ThrottlingException", "Rate exceeded")
		case serviceCW:
			return cwError(400, "ThrottlingException", "Throttling", "Rate exceeded")
		}
		return errf(503, "RequestLimitExceeded", "Request limit exceeded.")
	case dice < f.ThrottleRate+f.ServerErrorRate:
		switch {
		case service == serviceSSM:
			return errf(500, "InternalServerError", "An internal error has occurred.")
		case service == serviceCW:
			return cwError(500, "InternalServiceFault", "InternalServiceError", "An internal error has occurred.")
		case service == serviceASG && pick == 0:
			return errf(500, "InternalFailure", "An internal error has occurred.")
		case service == serviceASG:
			return errf(503, "ServiceUnavailable", "The service is unavailable. Please try again.")
		case pick == 0:
			return errf(500, "InternalError", "An internal error has occurred.")
		default:
			return errf(503, "Unavailable", "The server is overloaded and cannot handle the request.")
		}
	}
	return nil
}
