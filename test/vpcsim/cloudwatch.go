package vpcsim

import (
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// CloudWatch's PutMetricData, as aws-sdk-go-v2's cloudwatch client (v1.75) sends it: the Smithy
// RPC v2 CBOR protocol, in AWS Query compatible mode. A POST to
// /service/GraniteServiceVersion20100801/operation/PutMetricData with "Smithy-Protocol:
// rpc-v2-cbor" and a CBOR body (gzip-compressed when large); the answer is CBOR too. An error
// is a CBOR map {"__type": <shape id>, "message": ...} with the AWS Query error code and fault
// in the X-Amzn-Query-Error header ("InvalidParameterValue;Sender"), which the client reports
// as the error code.
const (
	serviceCW      = "cloudwatch"
	cwServicePath  = "/service/GraniteServiceVersion20100801/operation/"
	cwShapePrefix  = "com.amazonaws.cloudwatch#"
	cborType       = "application/cbor"
	maxMetricData  = 1000
	maxDimensions  = 30
	maxCWBodyBytes = 1 << 20 // PutMetricData's limit for one request
	maxCWPastAge   = 14 * 24 * time.Hour
	maxCWFuture    = 2 * time.Hour
)

// MetricDatum is one data point PutMetricData accepted.
type MetricDatum struct {
	Namespace         string
	Name              string
	Dimensions        map[string]string
	Value             float64
	Unit              string    // "None" when the request gave none, as CloudWatch stores it
	Time              time.Time // the request's timestamp, else when it arrived (by Options.Now)
	StorageResolution int32     // 60 unless the request asked for 1
}

// MetricData returns every data point accepted so far, oldest request first.
func (s *Sim) MetricData() []MetricDatum {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MetricDatum, len(s.metrics))
	for i, d := range s.metrics {
		d.Dimensions = maps.Clone(d.Dimensions)
		out[i] = d
	}
	return out
}

// cwError is a CloudWatch error: its HTTP status, shape name (for __type) and AWS Query code.
func cwError(status int, shape, code, format string, a ...any) *apiError {
	return &apiError{Status: status, Code: code, Shape: shape, Message: fmt.Sprintf(format, a...)}
}

func cwInvalid(format string, a ...any) *apiError {
	return cwError(400, "InvalidParameterValueException", "InvalidParameterValue", format, a...)
}

func cwMissing(param string) *apiError {
	return cwError(400, "MissingRequiredParameterException", "MissingParameter", "The parameter %s is required.", param)
}

var cwOps = map[string]func(s *Sim, body []byte) *apiError{
	"PutMetricData": (*Sim).putMetricData,
}

func (s *Sim) serveCloudWatch(w http.ResponseWriter, r *http.Request, reqID string) {
	action, ok := strings.CutPrefix(r.URL.Path, cwServicePath)
	s.mu.Lock()
	s.requests[action]++
	s.mu.Unlock()
	fn, known := cwOps[action]
	if !ok || !known || r.Method != http.MethodPost {
		writeCBORError(w, reqID, cwError(404, "UnknownOperationException", "UnknownOperation", "%s %s is not an operation of this simulator", r.Method, r.URL.Path))
		return
	}
	if r.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" || r.Header.Get("Content-Type") != cborType {
		writeCBORError(w, reqID, cwError(400, "SerializationException", "SerializationException",
			"want Smithy-Protocol rpc-v2-cbor and Content-Type %s", cborType))
		return
	}
	body, err := readCWBody(w, r)
	if err != nil {
		writeCBORError(w, reqID, cwError(400, "SerializationException", "SerializationException", "cannot read the request: %v", err))
		return
	}
	if aerr := s.fault(r.Context(), serviceCW, action); aerr != nil {
		writeCBORError(w, reqID, aerr)
		return
	}
	if aerr := fn(s, body); aerr != nil {
		writeCBORError(w, reqID, aerr)
		return
	}
	empty, _ := cbor.Marshal(map[string]any{})
	cborHeaders(w, reqID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(empty)
}

// readCWBody reads the request body, gunzipped when the client compressed it.
func readCWBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var rd io.Reader = http.MaxBytesReader(w, r.Body, maxCWBodyBytes)
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "":
	case "gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		rd = io.LimitReader(zr, 4*maxCWBodyBytes+1)
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", enc)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		return nil, err
	}
	if len(b) > 4*maxCWBodyBytes {
		return nil, fmt.Errorf("body over %d bytes once decompressed", 4*maxCWBodyBytes)
	}
	return b, nil
}

type cwPutIn struct {
	Namespace        *string         `cbor:"Namespace"`
	MetricData       []cwDatumIn     `cbor:"MetricData"`
	EntityMetricData cbor.RawMessage `cbor:"EntityMetricData"`
}

type cwDatumIn struct {
	MetricName        *string         `cbor:"MetricName"`
	Dimensions        []cwDimensionIn `cbor:"Dimensions"`
	Timestamp         *time.Time      `cbor:"Timestamp"`
	Value             *float64        `cbor:"Value"`
	Unit              *string         `cbor:"Unit"`
	StorageResolution *int32          `cbor:"StorageResolution"`
	Values            cbor.RawMessage `cbor:"Values"`
	Counts            cbor.RawMessage `cbor:"Counts"`
	StatisticValues   cbor.RawMessage `cbor:"StatisticValues"`
}

type cwDimensionIn struct {
	Name  *string `cbor:"Name"`
	Value *string `cbor:"Value"`
}

var cborDec = func() cbor.DecMode {
	m, err := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, MaxArrayElements: 100_000}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// standardUnits are CloudWatch's units.
var standardUnits = []string{"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
	"Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
	"Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
	"Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second",
	"Count/Second", "None"}

// putMetricData validates the whole request as CloudWatch does, then stores every data point,
// or none.
func (s *Sim) putMetricData(body []byte) *apiError {
	var in cwPutIn
	if err := cborDec.Unmarshal(body, &in); err != nil {
		return cwError(400, "SerializationException", "SerializationException", "cannot parse the CBOR body: %v", err)
	}
	ns := ""
	if in.Namespace != nil {
		ns = *in.Namespace
	}
	switch {
	case ns == "":
		return cwMissing("Namespace")
	case len(ns) > 255 || strings.HasPrefix(ns, ":") || strings.ContainsFunc(ns, func(r rune) bool { return r < 0x20 || r > 0x7e }):
		return cwInvalid("The value %q for parameter Namespace is invalid.", ns)
	case strings.HasPrefix(ns, "AWS/"):
		return cwInvalid("The value %s for parameter Namespace is invalid: the AWS/ prefix is reserved for AWS.", ns)
	case len(in.EntityMetricData) > 0:
		return cwInvalid("EntityMetricData is not simulated by vpcsim.")
	case len(in.MetricData) == 0:
		return cwMissing("MetricData")
	case len(in.MetricData) > maxMetricData:
		return cwInvalid("The collection MetricData must not have a size greater than %d.", maxMetricData)
	}
	now := s.opts.Now()
	out := make([]MetricDatum, 0, len(in.MetricData))
	for i, d := range in.MetricData {
		p := fmt.Sprintf("MetricData.member.%d", i+1)
		md := MetricDatum{Namespace: ns, Dimensions: map[string]string{}, Unit: "None", Time: now, StorageResolution: 60}
		if d.MetricName == nil || *d.MetricName == "" {
			return cwMissing(p + ".MetricName")
		}
		if md.Name = *d.MetricName; len(md.Name) > 255 {
			return cwInvalid("The parameter %s.MetricName must be at most 255 characters.", p)
		}
		if len(d.Dimensions) > maxDimensions {
			return cwInvalid("The collection %s.Dimensions must not have a size greater than %d.", p, maxDimensions)
		}
		for j, dim := range d.Dimensions {
			dp := fmt.Sprintf("%s.Dimensions.member.%d", p, j+1)
			switch {
			case dim.Name == nil || *dim.Name == "":
				return cwMissing(dp + ".Name")
			case dim.Value == nil || *dim.Value == "":
				return cwMissing(dp + ".Value")
			case len(*dim.Name) > 255 || len(*dim.Value) > 1024:
				return cwInvalid("The parameter %s is too long.", dp)
			}
			if _, dup := md.Dimensions[*dim.Name]; dup {
				return cwInvalid("The collection %s.Dimensions must not have duplicate names (%s).", p, *dim.Name)
			}
			md.Dimensions[*dim.Name] = *dim.Value
		}
		if len(d.Values) > 0 || len(d.Counts) > 0 || len(d.StatisticValues) > 0 {
			return cwInvalid("%s: Values, Counts and StatisticValues are not simulated by vpcsim.", p)
		}
		if d.Value == nil {
			return cwMissing(p + ".Value")
		}
		if v := *d.Value; math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.Ldexp(1, 360) {
			return cwInvalid("The value %v for parameter %s.Value is invalid.", v, p)
		}
		md.Value = *d.Value
		if d.Unit != nil {
			if !slices.Contains(standardUnits, *d.Unit) {
				return cwInvalid("The value %s for parameter %s.Unit is invalid.", *d.Unit, p)
			}
			md.Unit = *d.Unit
		}
		if d.StorageResolution != nil {
			if r := *d.StorageResolution; r != 1 && r != 60 {
				return cwInvalid("The value %d for parameter %s.StorageResolution is invalid: use 1 or 60.", r, p)
			}
			md.StorageResolution = *d.StorageResolution
		}
		if d.Timestamp != nil {
			ts := *d.Timestamp
			if ts.Before(now.Add(-maxCWPastAge)) || ts.After(now.Add(maxCWFuture)) {
				return cwInvalid("The parameter %s.Timestamp must specify a time no more than two weeks in the past and no more than two hours in the future.", p)
			}
			md.Time = ts.Round(time.Millisecond).UTC() // sent as float seconds, kept to the millisecond
		}
		out = append(out, md)
	}
	s.mu.Lock()
	s.metrics = append(s.metrics, out...)
	s.mu.Unlock()
	return nil
}

func cborHeaders(w http.ResponseWriter, reqID string) {
	w.Header().Set("Content-Type", cborType)
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("X-Amzn-Requestid", reqID)
}

// writeCBORError answers an RPC v2 CBOR error.
func writeCBORError(w http.ResponseWriter, reqID string, e *apiError) {
	shape, code := e.Shape, e.Code
	if shape == "" {
		shape = code
	}
	fault := "Sender"
	if e.Status >= 500 {
		fault = "Receiver"
	}
	b, err := cbor.Marshal(map[string]string{"__type": cwShapePrefix + shape, "message": e.Message})
	if err != nil {
		b = nil
	}
	cborHeaders(w, reqID)
	w.Header().Set("X-Amzn-Query-Error", code+";"+fault)
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}
