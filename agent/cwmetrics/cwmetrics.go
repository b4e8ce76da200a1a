// Package cwmetrics computes the CloudWatch data points the agent publishes (see agent/api):
// how many of the cluster's route tables no instance serves, and how many tables this agent
// took over from a failed or vanished target. Pure: the caller passes what it observed and
// the time, and publishes the result; no I/O, no clock.
package cwmetrics

import (
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/failover"
)

// UnitCount is the CloudWatch unit of both metrics.
const UnitCount = "Count"

// Dimension is one CloudWatch dimension.
type Dimension struct {
	Name, Value string
}

// Datum is one CloudWatch data point.
type Datum struct {
	Name       string
	Dimensions []Dimension
	Value      float64
	Unit       string
	Time       time.Time
}

// Input is what one agent observed when it publishes.
type Input struct {
	Cluster string
	// Tables are the cluster's managed route tables with their current default route.
	Tables []failover.Table
	// Instances are the cluster's members as this agent sees them, itself included; Healthy
	// is the viewer's verdict (for itself: its own checks pass, draining or not).
	Instances []failover.Instance
	// Failovers is how many tables this agent took over from a target that was not handing
	// them over (IsFailover) since its last successful publish.
	Failovers int
	Now       time.Time
}

// IsFailover reports whether a route write this agent made counts in MetricFailovers: a
// takeover from a target that failed, vanished or went blackhole. A planned hand-over (the
// target was draining), a fail-back and the claim of a table with no route at all (a cluster
// starting) do not count.
func IsFailover(w failover.Write) bool {
	return w.Kind == failover.KindTakeover && !w.Handover
}

// Unserved counts the tables whose default route is missing, blackhole, or points at
// something other than an instance the viewer sees healthy.
func Unserved(tables []failover.Table, instances []failover.Instance) int {
	healthy := map[string]bool{}
	for _, in := range instances {
		if in.ENI != "" && in.Healthy {
			healthy[in.ENI] = true
		}
	}
	n := 0
	for _, t := range tables {
		if t.Missing || t.Blackhole || t.TargetENI == "" || !healthy[t.TargetENI] {
			n++
		}
	}
	return n
}

// Data are the data points of one publish, all in one request: UnservedRouteTables always,
// Failovers only when not zero (a custom metric is billed for each hour it is published in).
func Data(in Input) []Datum {
	dims := []Dimension{{Name: api.MetricDimensionCluster, Value: in.Cluster}}
	out := []Datum{{Name: api.MetricUnservedRouteTables, Dimensions: dims,
		Value: float64(Unserved(in.Tables, in.Instances)), Unit: UnitCount, Time: in.Now}}
	if in.Failovers > 0 {
		out = append(out, Datum{Name: api.MetricFailovers, Dimensions: dims,
			Value: float64(in.Failovers), Unit: UnitCount, Time: in.Now})
	}
	return out
}
