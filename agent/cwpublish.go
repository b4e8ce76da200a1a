package agent

import (
	"context"
	"sync"

	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/cwmetrics"
	"github.com/headnat/headnat/agent/failover"
)

// MetricPublisher sends CloudWatch data points in one request; *cloud.Client satisfies it.
type MetricPublisher interface {
	PutMetricData(ctx context.Context, namespace string, data []cloud.MetricDatum, reason string) error
}

// cwState is the CloudWatch publishing: the takeovers counted since the last publish that
// CloudWatch accepted. A failed publish leaves them counted for the next one.
type cwState struct {
	pub MetricPublisher

	mu        sync.Mutex
	failovers int
}

// countFailover counts a route write that reached EC2, if it was a failover.
func (a *Agent) countFailover(w failover.Write) {
	if a.cw == nil || !cwmetrics.IsFailover(w) {
		return
	}
	a.cw.mu.Lock()
	a.cw.failovers++
	a.cw.mu.Unlock()
}

// publishMetrics sends the CloudWatch data points for what this agent sees now, in one
// request. It runs in its own loop, never in the probe loop; the call is bounded by the
// client's write timeout.
func (a *Agent) publishMetrics(ctx context.Context) {
	now := a.clock.Now()
	self := a.self.Last()
	self.Healthy = self.Passing // a draining instance still forwards what is routed to it
	a.mu.Lock()
	obs := a.view.Observation(now, self)
	a.mu.Unlock()
	a.cw.mu.Lock()
	n := a.cw.failovers
	a.cw.mu.Unlock()

	data := cwmetrics.Data(cwmetrics.Input{Cluster: a.res.Cluster.Name, Tables: obs.Tables, Instances: obs.Instances,
		Failovers: n, Now: now})
	out := make([]cloud.MetricDatum, len(data))
	for i, d := range data {
		out[i] = cloud.MetricDatum{Name: d.Name, Value: d.Value, Unit: d.Unit, Time: d.Time}
		for _, dim := range d.Dimensions {
			out[i].Dimensions = append(out[i].Dimensions, cloud.MetricDimension{Name: dim.Name, Value: dim.Value})
		}
	}
	if err := a.cw.pub.PutMetricData(ctx, a.cfg.CloudWatch.Namespace, out, "metrics"); err != nil {
		a.metrics.CloudWatchPublishError()
		a.log.Warn("publish CloudWatch metrics; retrying next interval", "namespace", a.cfg.CloudWatch.Namespace,
			"failovers_kept", n, "err", err)
		return
	}
	a.cw.mu.Lock()
	a.cw.failovers -= n // those counted meanwhile wait for the next publish
	a.cw.mu.Unlock()
}
