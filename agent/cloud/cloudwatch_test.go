package cloud

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/test/vpcsim"
)

func TestPutMetricData(t *testing.T) {
	w := newWorld(t)
	obs := &recorder{}
	c, log := w.client(t, obs)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Millisecond)
	dims := []MetricDimension{{"Cluster", "test"}}
	data := []MetricDatum{
		{Name: "UnservedRouteTables", Dimensions: dims, Value: 1, Unit: "Count", Time: at},
		{Name: "Failovers", Dimensions: dims, Value: 2, Unit: "Count", Time: at},
	}
	if err := c.PutMetricData(ctx, "headnat", data, "metrics"); err != nil {
		t.Fatal(err)
	}
	got := w.sim.MetricData()
	if len(got) != 2 || got[0].Name != "UnservedRouteTables" || got[0].Value != 1 || got[1].Name != "Failovers" || got[1].Value != 2 {
		t.Fatalf("published %+v", got)
	}
	for _, d := range got {
		if d.Namespace != "headnat" || d.Unit != "Count" || d.Dimensions["Cluster"] != "test" || len(d.Dimensions) != 1 || !d.Time.Equal(at) {
			t.Errorf("data point %+v", d)
		}
	}
	if w.sim.RequestCount("PutMetricData") != 1 {
		t.Errorf("%d requests, want one for both data points", w.sim.RequestCount("PutMetricData"))
	}
	if l := log.String(); !strings.Contains(l, "op=PutMetricData reason=metrics") || !strings.Contains(l, "namespace=headnat data_points=2") {
		t.Errorf("the call is not logged with its reason and size:\n%s", l)
	}

	// Refused by CloudWatch: the error names the namespace and keeps the code.
	err := c.PutMetricData(ctx, "AWS/NATGateway", data, "metrics")
	if err == nil || ErrorCode(err) != "InvalidParameterValue" || !strings.Contains(err.Error(), `namespace "AWS/NATGateway"`) {
		t.Errorf("reserved namespace: %v (code %s)", err, ErrorCode(err))
	}
	// Throttling is retried; when it does not end, the call fails with the code.
	w.sim.SetFaults(vpcsim.Faults{ThrottleRate: 0.5, Seed: 5, Actions: []string{"PutMetricData"}})
	for range 5 {
		if err := c.PutMetricData(ctx, "headnat", data, "retry"); err != nil {
			t.Fatalf("with half the calls throttled: %v", err)
		}
	}
	w.sim.SetFaults(vpcsim.Faults{ThrottleRate: 1, Actions: []string{"PutMetricData"}})
	if err := c.PutMetricData(ctx, "headnat", data, "retry"); ErrorCode(err) != "Throttling" {
		t.Errorf("always throttled: %v", err)
	}
	w.sim.SetFaults(vpcsim.Faults{})
	if got := obs.counts(); got["PutMetricData/InvalidParameterValue"] != 1 || got["PutMetricData/Throttling"] < DefaultMaxAttempts {
		t.Errorf("observed: %v", got)
	}

	if err := c.PutMetricData(ctx, "", data, "x"); err == nil || !strings.Contains(err.Error(), "no namespace") {
		t.Errorf("no namespace: %v", err)
	}
	if err := NewWithClients(nil, nil, nil, nil, Options{}).PutMetricData(ctx, "headnat", data, "x"); !errors.Is(err, errNoClient) {
		t.Errorf("without a CloudWatch client: %v", err)
	}
}
