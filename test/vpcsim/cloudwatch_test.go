package vpcsim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"github.com/fxamacker/cbor/v2"
)

// cwClient is the real CloudWatch client against the Sim; maxAttempts 0 keeps the SDK's default.
// It compresses requests from 10 KiB on, as config.LoadDefaultConfig sets it up.
func cwClient(url string, maxAttempts int) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(aws.Config{
		Region:                      "us-east-1",
		Credentials:                 credentials.NewStaticCredentialsProvider("AKIDVPCSIMTEST", "not-a-secret", ""),
		BaseEndpoint:                aws.String(url),
		RetryMaxAttempts:            maxAttempts,
		RequestMinCompressSizeBytes: 10240,
	})
}

func datum(name string, v float64, dims ...string) cwtypes.MetricDatum {
	d := cwtypes.MetricDatum{MetricName: aws.String(name), Value: aws.Float64(v)}
	for i := 0; i+1 < len(dims); i += 2 {
		d.Dimensions = append(d.Dimensions, cwtypes.Dimension{Name: aws.String(dims[i]), Value: aws.String(dims[i+1])})
	}
	return d
}

func TestCloudWatchPutMetricData(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	f := newFixture(t, Options{Now: func() time.Time { return now }})
	var encodings []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encodings = append(encodings, r.Header.Get("Content-Encoding"))
		f.sim.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := cwClient(srv.URL, 0)

	at := now.Add(-30 * time.Second).Add(250 * time.Millisecond)
	d1 := datum("UnservedRouteTables", 2, "Cluster", "lab")
	d1.Unit, d1.Timestamp = cwtypes.StandardUnitCount, aws.Time(at)
	d2 := datum("Failovers", 1.5, "Cluster", "lab", "AZ", "us-east-1a")
	d2.StorageResolution = aws.Int32(1)
	_, err := c.PutMetricData(ctx(t), &cloudwatch.PutMetricDataInput{Namespace: aws.String("headnat"), MetricData: []cwtypes.MetricDatum{d1, d2}})
	mustOK(t, err)
	got := f.sim.MetricData()
	want := []MetricDatum{
		{Namespace: "headnat", Name: "UnservedRouteTables", Dimensions: map[string]string{"Cluster": "lab"}, Value: 2, Unit: "Count", Time: at, StorageResolution: 60},
		{Namespace: "headnat", Name: "Failovers", Dimensions: map[string]string{"Cluster": "lab", "AZ": "us-east-1a"}, Value: 1.5, Unit: "None", Time: now, StorageResolution: 1},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("recorded\n%+v\nwant\n%+v", got, want)
	}
	if n := f.sim.RequestCount("PutMetricData"); n != 1 {
		t.Errorf("PutMetricData requests: %d, want 1", n)
	}

	// A large request is gzip-compressed by the SDK; 1000 data points is the limit.
	many := make([]cwtypes.MetricDatum, maxMetricData)
	for i := range many {
		many[i] = datum(fmt.Sprintf("m%04d", i), float64(i), "Cluster", "lab")
	}
	_, err = c.PutMetricData(ctx(t), &cloudwatch.PutMetricDataInput{Namespace: aws.String("headnat"), MetricData: many})
	mustOK(t, err)
	if got := f.sim.MetricData(); len(got) != 2+maxMetricData || got[len(got)-1].Name != "m0999" || got[len(got)-1].Value != 999 {
		t.Fatalf("after 1000 more: %d data points, last %+v", len(got), got[len(got)-1])
	}
	if fmt.Sprint(encodings) != "[ gzip]" {
		t.Errorf("Content-Encoding of the two requests: %q, want the large one gzipped", encodings)
	}

	// One endpoint serves EC2 and CloudWatch alike.
	if _, err := f.ec2.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{}); err != nil {
		t.Fatalf("EC2 on the same endpoint: %v", err)
	}
}

// GIVEN requests CloudWatch refuses WHEN sent by the SDK THEN each fails with CloudWatch's
// error code and a message, and nothing of it is recorded.
func TestCloudWatchRejectsBadData(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	f := newFixture(t, Options{Now: func() time.Time { return now }})
	c := cwClient(f.url, 1)
	ok := datum("UnservedRouteTables", 0, "Cluster", "lab")
	with := func(mod func(*cwtypes.MetricDatum)) []cwtypes.MetricDatum {
		d := ok
		mod(&d)
		return []cwtypes.MetricDatum{ok, d}
	}
	for _, tc := range []struct {
		name, ns string
		data     []cwtypes.MetricDatum
		code     string
		msg      string
	}{
		{"reserved namespace", "AWS/NATGateway", []cwtypes.MetricDatum{ok}, "InvalidParameterValue", "AWS/ prefix is reserved"},
		{"namespace starting with a colon", ":x", []cwtypes.MetricDatum{ok}, "InvalidParameterValue", "Namespace"},
		{"no data", "headnat", nil, "MissingParameter", "MetricData is required"},
		{"too many data points", "headnat", make([]cwtypes.MetricDatum, maxMetricData+1), "InvalidParameterValue", "greater than 1000"},
		{"empty name", "headnat", with(func(d *cwtypes.MetricDatum) { d.MetricName = aws.String("") }), "MissingParameter", "MetricData.member.2.MetricName"},
		{"no value", "headnat", with(func(d *cwtypes.MetricDatum) { d.Value = nil }), "MissingParameter", "MetricData.member.2.Value"},
		{"NaN", "headnat", with(func(d *cwtypes.MetricDatum) { d.Value = aws.Float64(math.NaN()) }), "InvalidParameterValue", "Value"},
		{"too large", "headnat", with(func(d *cwtypes.MetricDatum) { d.Value = aws.Float64(math.Ldexp(1, 361)) }), "InvalidParameterValue", "Value"},
		{"unknown unit", "headnat", with(func(d *cwtypes.MetricDatum) { d.Unit = "Parsecs" }), "InvalidParameterValue", "Unit"},
		{"empty dimension value", "headnat", with(func(d *cwtypes.MetricDatum) {
			d.Dimensions = []cwtypes.Dimension{{Name: aws.String("Cluster"), Value: aws.String("")}}
		}), "MissingParameter", "Dimensions.member.1.Value"},
		{"old timestamp", "headnat", with(func(d *cwtypes.MetricDatum) { d.Timestamp = aws.Time(now.Add(-15 * 24 * time.Hour)) }), "InvalidParameterValue", "two weeks"},
		{"future timestamp", "headnat", with(func(d *cwtypes.MetricDatum) { d.Timestamp = aws.Time(now.Add(3 * time.Hour)) }), "InvalidParameterValue", "two hours"},
		{"storage resolution", "headnat", with(func(d *cwtypes.MetricDatum) { d.StorageResolution = aws.Int32(30) }), "InvalidParameterValue", "StorageResolution"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.data {
				if tc.data[i].MetricName == nil && tc.name == "too many data points" {
					tc.data[i] = ok
				}
			}
			_, err := c.PutMetricData(ctx(t), &cloudwatch.PutMetricDataInput{Namespace: aws.String(tc.ns), MetricData: tc.data})
			wantCode(t, err, tc.code)
			var ae smithy.APIError
			if errors.As(err, &ae); !strings.Contains(ae.ErrorMessage(), tc.msg) || ae.ErrorFault() != smithy.FaultClient {
				t.Errorf("message %q (fault %v), want one containing %q from the client's side", ae.ErrorMessage(), ae.ErrorFault(), tc.msg)
			}
		})
	}
	var invalid *cwtypes.InvalidParameterValueException
	_, err := c.PutMetricData(ctx(t), &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/EC2"), MetricData: []cwtypes.MetricDatum{ok}})
	if !errors.As(err, &invalid) {
		t.Errorf("reserved namespace: %T %v, want the SDK's *types.InvalidParameterValueException", err, err)
	}
	if n := len(f.sim.MetricData()); n != 0 {
		t.Errorf("%d data points recorded from refused requests", n)
	}
}

func TestCloudWatchFaultsAndBadRequests(t *testing.T) {
	f := newFixture(t, Options{})
	c := cwClient(f.url, 1)
	in := &cloudwatch.PutMetricDataInput{Namespace: aws.String("headnat"), MetricData: []cwtypes.MetricDatum{datum("Failovers", 1)}}

	f.sim.SetFaults(Faults{ThrottleRate: 1, Actions: []string{"PutMetricData"}})
	_, err := c.PutMetricData(ctx(t), in)
	wantCode(t, err, "Throttling")
	f.sim.SetFaults(Faults{ServerErrorRate: 1, Actions: []string{"PutMetricData"}})
	_, err = c.PutMetricData(ctx(t), in)
	wantCode(t, err, "InternalServiceError")
	var ae smithy.APIError
	if errors.As(err, &ae); ae.ErrorFault() != smithy.FaultServer {
		t.Errorf("server error fault %v, want server", ae.ErrorFault())
	}
	if n := len(f.sim.MetricData()); n != 0 {
		t.Fatalf("%d data points recorded from faulted requests", n)
	}
	// The SDK's own retries get through throttling.
	f.sim.SetFaults(Faults{ThrottleRate: 0.5, Seed: 3, Actions: []string{"PutMetricData"}})
	for range 5 {
		if _, err := cwClient(f.url, 10).PutMetricData(ctx(t), in); err != nil {
			t.Fatalf("with half the calls throttled and retries: %v", err)
		}
	}
	f.sim.SetFaults(Faults{})
	if n := len(f.sim.MetricData()); n != 5 {
		t.Errorf("%d data points after 5 retried calls, want 5", n)
	}

	// What the SDK would never send: the answers are CBOR errors with the query code.
	good, err := cbor.Marshal(map[string]any{"Namespace": "headnat", "MetricData": []any{map[string]any{"MetricName": "x", "Value": 1.0}}})
	mustOK(t, err)
	for _, tt := range []struct {
		path, ctype string
		body        []byte
		status      int
		typ, code   string
	}{
		{"/service/GraniteServiceVersion20100801/operation/PutMetricData", "application/cbor", []byte{0xbf, 0x69}, 400, "SerializationException", "SerializationException"},
		{"/service/GraniteServiceVersion20100801/operation/PutMetricData", "application/json", good, 400, "SerializationException", "SerializationException"},
		{"/service/GraniteServiceVersion20100801/operation/DeleteAlarms", "application/cbor", good, 404, "UnknownOperationException", "UnknownOperation"},
		{"/service/GraniteServiceVersion20100801/operation/PutMetricData", "application/cbor", good, 200, "", ""},
	} {
		req, err := http.NewRequest(http.MethodPost, f.url+tt.path, bytes.NewReader(tt.body))
		mustOK(t, err)
		req.Header.Set("Smithy-Protocol", "rpc-v2-cbor")
		req.Header.Set("Content-Type", tt.ctype)
		resp, err := http.DefaultClient.Do(req)
		mustOK(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var m map[string]string
		if err := cbor.Unmarshal(b, &m); err != nil || resp.StatusCode != tt.status || m["__type"] != strings.TrimSuffix(cwShapePrefix+tt.typ, cwShapePrefix) ||
			resp.Header.Get("Content-Type") != "application/cbor" || !strings.HasPrefix(resp.Header.Get("X-Amzn-Query-Error"), tt.code) {
			t.Errorf("%s %s: %d %v %q (%v)", tt.path, tt.ctype, resp.StatusCode, m, resp.Header.Get("X-Amzn-Query-Error"), err)
		}
	}
}
