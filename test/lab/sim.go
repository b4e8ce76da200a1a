package lab

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/headnat/headnat/test/vpcsim"
)

// ASGName is the lab's Auto Scaling group.
const ASGName = "headnat-lab"

// DrainHook is the lab ASG's termination lifecycle hook (EC2_INSTANCE_TERMINATING, default
// result CONTINUE, heartbeat timeout 5 minutes).
const DrainHook = "headnat-drain"

// LaunchHook is the lab ASG's launch lifecycle hook (EC2_INSTANCE_LAUNCHING, default result
// ABANDON, heartbeat timeout Options.LaunchHookTimeout): NATs added by Launch wait in
// Pending:Wait until their agent completes it. The NATs seeded by Up are InService at once.
const LaunchHook = "headnat-launch"

// DefaultLaunchHookTimeout is the launch hook's heartbeat timeout unless Options say otherwise.
const DefaultLaunchHookTimeout = 5 * time.Minute

// expireEvery is how often the lab applies the lifecycle actions' timeouts.
const expireEvery = 200 * time.Millisecond

// apiPageSize is the simulator's page size for Describe calls that give no MaxResults: small,
// so that the agents' NextToken loops run in every lab.
const apiPageSize = 2

// startSim seeds the simulator with the lab's VPC, wires it to the router's kernel and serves
// its API on APIAddr:APIPort inside the router namespace, like a VPC endpoint.
func (l *Lab) startSim() error {
	sink := &lateSink{}
	sim := vpcsim.New(vpcsim.Options{
		Region:    Region,
		AccountID: AccountID,
		Sink:      sink,
		Logger:    l.log.With("component", "vpcsim"),
		OnCall:    l.onCall,
		PageSize:  apiPageSize,
		Staleness: l.opts.APIStaleness,
	})
	vpc := sim.AddVPC(VPCCIDR, map[string]string{"Name": "headnat-lab"})
	launch := time.Now().Add(-time.Duration(len(l.Sites())+1) * time.Minute).UTC().Truncate(time.Second)
	var ids []string
	for i, s := range l.Sites() {
		s.VPCID = vpc
		s.PublicSubnet = sim.AddSubnet(vpc, s.Zone, s.PublicCIDR, map[string]string{"Name": "public-" + s.Name})
		s.PrivateSubnet = sim.AddSubnet(vpc, s.Zone, s.PrivateCIDR, map[string]string{"Name": "private-" + s.Name})
		s.RouteTable = sim.AddRouteTable(vpc, map[string]string{ClusterTag: Cluster, "Name": "private-" + s.Name})
		sim.Associate(s.RouteTable, s.PrivateSubnet)
		// Older first: site a's instance launched first.
		s.LaunchTime = launch.Add(time.Duration(i) * time.Minute)
		if err := s.addInstance(sim); err != nil {
			return err
		}
		ids = append(ids, s.InstanceID)
	}
	more, err := l.seedMoreNATs(sim, launch)
	if err != nil {
		return err
	}
	ids = append(ids, more...)
	sim.AddAutoScalingGroup(vpcsim.GroupSpec{
		Name:      ASGName,
		MinSize:   int32(len(ids)),
		MaxSize:   int32(len(ids)) + 1,
		Instances: ids,
		Hooks: []vpcsim.HookSpec{{
			Name:             LaunchHook,
			Transition:       vpcsim.TransitionLaunching,
			HeartbeatTimeout: l.opts.LaunchHookTimeout,
			DefaultResult:    vpcsim.ResultAbandon,
		}, {
			Name:             DrainHook,
			Transition:       vpcsim.TransitionTerminating,
			HeartbeatTimeout: 5 * time.Minute,
			DefaultResult:    vpcsim.ResultContinue,
		}},
		Tags: map[string]string{ClusterTag: Cluster},
	})
	if err := l.connectKernel(sink); err != nil {
		return err
	}
	if err := sim.Sync(); err != nil {
		return err
	}
	l.Sim, l.sink = sim, sink
	for _, s := range l.NATs() {
		l.eipAlloc[s.EIP] = s.AllocationID
	}
	go l.expireActions()
	ln, err := ListenIn(l.Router.Name, net.JoinHostPort(APIAddr, "4566"))
	if err != nil {
		return err
	}
	l.serve(ln, l.recordRequests(sim.Handler()))
	return nil
}

// expireActions applies the lifecycle actions' heartbeat and global timeouts until the lab
// closes, as AutoScaling does on its own.
func (l *Lab) expireActions() {
	t := time.NewTicker(expireEvery)
	defer t.Stop()
	for {
		select {
		case <-l.closing:
			return
		case <-t.C:
		}
		if n, err := l.Sim.ExpireLifecycleActions(); err != nil {
			l.log.Warn("expire lifecycle actions", "err", err)
		} else if n > 0 {
			l.log.Info("lifecycle actions timed out", "count", n)
		}
		l.reap()
	}
}

// reap removes, as TerminateNow does, every live NAT whose instance the simulator has
// terminated (a launch abandoned or timed out, a terminate action completed): on AWS the
// machine would be gone.
func (l *Lab) reap() {
	for _, s := range l.NATs() {
		in, ok := l.Sim.Instance(s.InstanceID)
		if !ok || in.State != vpcsim.StateTerminated {
			continue
		}
		l.mu.Lock()
		busy := l.reaping[s.Name]
		l.reaping[s.Name] = true
		l.mu.Unlock()
		if busy {
			continue
		}
		go func() {
			l.log.Info("instance terminated in the simulator: removing it", "nat", s.Name)
			if err := l.TerminateNow(s.Name); err != nil {
				l.log.Warn("remove a terminated instance", "nat", s.Name, "err", err)
			}
		}()
	}
}

// onCall records every accepted write of a default route.
func (l *Lab) onCall(c vpcsim.Call) {
	if c.Code != "" || (c.Action != "ReplaceRoute" && c.Action != "CreateRoute") {
		return
	}
	if c.Params["DestinationCidrBlock"] != "0.0.0.0/0" {
		return
	}
	m := Move{Time: c.Time, Table: c.Params["RouteTableId"], Action: c.Action, ENI: c.Params["NetworkInterfaceId"]}
	if s := l.siteByTable(m.Table); s != nil {
		m.TableAZ = s.Name
	}
	if s := l.siteByENI(m.ENI); s != nil {
		m.TargetAZ = s.Name
	} else if s := l.siteByInstance(c.Params["InstanceId"]); s != nil {
		m.TargetAZ = s.Name
	}
	l.mu.Lock()
	l.moves = append(l.moves, m)
	l.mu.Unlock()
	l.log.Info("route moved", "table", m.Table, "home", m.TableAZ, "to", m.TargetAZ, "action", m.Action)
}

// Moves returns the accepted default-route writes so far, oldest first.
func (l *Lab) Moves() []Move {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Move(nil), l.moves...)
}

// MovesSince returns the accepted default-route writes at or after t.
func (l *Lab) MovesSince(t time.Time) []Move {
	var out []Move
	for _, m := range l.Moves() {
		if !m.Time.Before(t) {
			out = append(out, m)
		}
	}
	return out
}

// APIRequest is one request to the simulated API, with who sent it.
type APIRequest struct {
	Time   time.Time `json:"time"`
	From   string    `json:"from"` // the sender's address
	Site   string    `json:"site"` // the site whose NAT sent it, "" if another
	Action string    `json:"action"`
	Status int       `json:"status"` // HTTP status of the answer
}

// Mutating reports whether an action changes state (anything but Describe*, Get*, List*).
func (r APIRequest) Mutating() bool {
	for _, p := range []string{"Describe", "Get", "List"} {
		if strings.HasPrefix(r.Action, p) {
			return false
		}
	}
	return true
}

// recordRequests wraps the API handler to log every request's action and sender.
func (l *Lab) recordRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		action := r.URL.Query().Get("Action")
		if vals, err := url.ParseQuery(string(body)); err == nil && vals.Get("Action") != "" {
			action = vals.Get("Action")
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		req := APIRequest{Time: time.Now(), From: host, Action: action}
		for _, s := range l.NATs() {
			if s.NATIP == host {
				req.Site = s.Name
			}
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		req.Status = sw.status
		l.mu.Lock()
		l.requests = append(l.requests, req)
		if len(l.requests) > 100000 {
			l.requests = l.requests[len(l.requests)-50000:]
		}
		l.mu.Unlock()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Requests returns the API requests sent at or after t, oldest first.
func (l *Lab) Requests(since time.Time) []APIRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []APIRequest
	for _, r := range l.requests {
		if !r.Time.Before(since) {
			out = append(out, r)
		}
	}
	return out
}

// Target returns the site a table's default route points at ("" if none or not a lab NAT)
// and the route's state ("active", "blackhole", or "missing").
func (l *Lab) Target(table string) (site, state string) {
	r, ok := l.Sim.Route(table)
	if !ok {
		return "", "missing"
	}
	if s := l.siteByENI(r.NetworkInterfaceID); s != nil {
		site = s.Name
	}
	return site, r.State
}
