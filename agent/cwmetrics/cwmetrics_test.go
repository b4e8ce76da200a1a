package cwmetrics

import (
	"reflect"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/failover"
)

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func inst(id string, healthy bool) failover.Instance {
	return failover.Instance{ID: "i-" + id, ENI: "eni-" + id, Healthy: healthy}
}

func to(id, eni string) failover.Table { return failover.Table{ID: "rtb-" + id, TargetENI: eni} }

func TestUnserved(t *testing.T) {
	a, b := inst("a", true), inst("b", true)
	for _, tc := range []struct {
		name      string
		instances []failover.Instance
		tables    []failover.Table
		want      int
	}{
		{"all served", []failover.Instance{a, b}, []failover.Table{to("a", "eni-a"), to("b", "eni-b")}, 0},
		{"both on one healthy instance", []failover.Instance{a, b}, []failover.Table{to("a", "eni-a"), to("b", "eni-a")}, 0},
		{"target unhealthy in my view", []failover.Instance{a, inst("b", false)}, []failover.Table{to("a", "eni-a"), to("b", "eni-b")}, 1},
		{"self not passing", []failover.Instance{inst("a", false), b}, []failover.Table{to("a", "eni-a"), to("b", "eni-b")}, 1},
		{"draining but passing still serves", []failover.Instance{{ID: "i-a", ENI: "eni-a", Healthy: true, Draining: true}}, []failover.Table{to("a", "eni-a")}, 0},
		{"presumed alive is not healthy", []failover.Instance{a, {ID: "i-b", ENI: "eni-b", PresumedAlive: true, Partitioned: true}}, []failover.Table{to("b", "eni-b")}, 1},
		{"blackhole", []failover.Instance{a}, []failover.Table{{ID: "rtb-a", TargetENI: "eni-a", Blackhole: true}}, 1},
		{"missing", []failover.Instance{a}, []failover.Table{{ID: "rtb-a", Missing: true}}, 1},
		{"targets no ENI", []failover.Instance{a}, []failover.Table{to("a", "")}, 1},
		{"unknown ENI", []failover.Instance{a}, []failover.Table{to("a", "eni-gone")}, 1},
		{"no instance at all", nil, []failover.Table{to("a", "eni-a"), to("b", "eni-b")}, 2},
		{"no tables", []failover.Instance{a}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unserved(tc.tables, tc.instances); got != tc.want {
				t.Errorf("Unserved = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestIsFailover(t *testing.T) {
	for _, tc := range []struct {
		w    failover.Write
		want bool
	}{
		{failover.Write{Kind: failover.KindTakeover, Reason: "target i-a unhealthy"}, true},
		{failover.Write{Kind: failover.KindTakeover, Reason: "route is blackhole"}, true},
		{failover.Write{Kind: failover.KindTakeover, Reason: "target i-a draining", Handover: true}, false},
		{failover.Write{Kind: failover.KindFailback}, false},
		{failover.Write{Kind: failover.KindClaim, Action: failover.ActionCreate}, false},
	} {
		if got := IsFailover(tc.w); got != tc.want {
			t.Errorf("IsFailover(%+v) = %v, want %v", tc.w, got, tc.want)
		}
	}
}

func TestData(t *testing.T) {
	dims := []Dimension{{api.MetricDimensionCluster, "prod"}}
	unserved := func(v float64) Datum {
		return Datum{Name: api.MetricUnservedRouteTables, Dimensions: dims, Value: v, Unit: "Count", Time: t0}
	}
	in := Input{Cluster: "prod", Now: t0,
		Instances: []failover.Instance{inst("a", true), inst("b", false)},
		Tables:    []failover.Table{to("a", "eni-a"), to("b", "eni-b")}}
	for _, tc := range []struct {
		name      string
		failovers int
		want      []Datum
	}{
		{"no failover: one metric only", 0, []Datum{unserved(1)}},
		{"failovers: both in one request", 3, []Datum{unserved(1),
			{Name: api.MetricFailovers, Dimensions: dims, Value: 3, Unit: "Count", Time: t0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := in
			in.Failovers = tc.failovers
			if got := Data(in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Data =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}
