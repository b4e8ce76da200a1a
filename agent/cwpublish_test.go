package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/test/vpcsim"
)

func withCloudWatch(c *config.Config) { c.CloudWatch.Namespace = api.DefaultMetricNamespace }

// published is the data points CloudWatch accepted from index from on, as "Name=value" in order.
func (w *world) published(from int) []string {
	var out []string
	for _, d := range w.sim.MetricData()[from:] {
		if d.Namespace != api.DefaultMetricNamespace || d.Unit != "Count" || d.Dimensions[api.MetricDimensionCluster] != "test" ||
			len(d.Dimensions) != 1 || !d.Time.Equal(w.clock.Now()) {
			w.t.Errorf("data point %+v: want namespace %s, unit Count, only the dimension %s=test, the publish time",
				d, api.DefaultMetricNamespace, api.MetricDimensionCluster)
		}
		out = append(out, fmt.Sprintf("%s=%g", d.Name, d.Value))
	}
	return out
}

// GIVEN agent b publishing to CloudWatch WHEN NAT a dies and b takes its table THEN the next
// publish says one failover and no unserved table, in one request; a publish that fails keeps
// the failover for the next one, and a published failover is not sent again.
func TestCloudWatchFailover(t *testing.T) {
	w := newWorld(t, "a", "b")
	ctx := context.Background()
	b := w.newAgent("b", withCloudWatch, Options{})
	b.peers.Fail(w.nats["a"].id, errTimeout)
	b.rise(ctx)
	w.ticks(ctx, b, b.cfg.Probe.Fall+2)
	if got, _ := w.target("a"); got != "b" {
		t.Fatalf("table a targets %q, want b after a died", got)
	}

	w.sim.SetFaults(vpcsim.Faults{ThrottleRate: 1, Actions: []string{"PutMetricData"}})
	b.publishMetrics(ctx)
	w.sim.SetFaults(vpcsim.Faults{})
	if n := len(w.sim.MetricData()); n != 0 {
		t.Fatalf("%d data points from a throttled publish", n)
	}
	if !strings.Contains(b.logs.String(), "level=WARN msg=\"publish CloudWatch metrics; retrying next interval\"") ||
		!strings.Contains(b.logs.String(), "failovers_kept=1") {
		t.Errorf("the failed publish is not logged at Warn with the failover it keeps:\n%s", grepLines(b.logs.String(), "CloudWatch"))
	}
	if got := grepLines(scrapeMetrics(t, b), "headnat_cloudwatch_publish_errors_total 1"); got == "" {
		t.Error("/metrics does not count the failed publish")
	}

	reqs := w.sim.RequestCount("PutMetricData")
	w.clock.Advance(b.cfg.CloudWatch.Interval)
	b.publishMetrics(ctx)
	want := []string{api.MetricUnservedRouteTables + "=0", api.MetricFailovers + "=1"}
	if got := w.published(0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	if n := w.sim.RequestCount("PutMetricData") - reqs; n != 1 {
		t.Errorf("%d requests for one publish, want 1", n)
	}

	w.clock.Advance(b.cfg.CloudWatch.Interval)
	b.publishMetrics(ctx)
	if got := w.published(2); fmt.Sprint(got) != fmt.Sprint([]string{api.MetricUnservedRouteTables + "=0"}) {
		t.Errorf("next publish %v, want the gauge only: the failover was published already", got)
	}
}

// GIVEN NAT a draining WHEN b takes its table THEN that planned hand-over is no failover.
func TestCloudWatchHandoverIsNoFailover(t *testing.T) {
	w := newWorld(t, "a", "b")
	ctx := context.Background()
	b := w.newAgent("b", withCloudWatch, Options{})
	hz := w.healthyAnswer("a")
	hz.Healthy, hz.Draining = false, true
	b.peers.Answer(w.nats["a"].id, hz)
	b.rise(ctx)
	w.ticks(ctx, b, b.cfg.Probe.Fall+2)
	if got, _ := w.target("a"); got != "b" {
		t.Fatalf("table a targets %q, want b after a drained", got)
	}
	b.publishMetrics(ctx)
	if got := w.published(0); fmt.Sprint(got) != fmt.Sprint([]string{api.MetricUnservedRouteTables + "=0"}) {
		t.Errorf("published %v, want no failover for a hand-over", got)
	}
}

// GIVEN table a blackholed (NAT a stopped) and no healthy instance at all (b's own egress
// fails) WHEN b publishes THEN both tables are unserved.
func TestCloudWatchUnservedWithoutHealthyNAT(t *testing.T) {
	w := newWorld(t, "a", "b")
	ctx := context.Background()
	b := w.newAgent("b", withCloudWatch, Options{})
	b.peers.Fail(w.nats["a"].id, errTimeout)
	b.egress.Set(errTimeout)
	if err := w.sim.SetInstanceState(w.nats["a"].id, vpcsim.StateStopped); err != nil {
		t.Fatal(err)
	}
	if _, state := w.target("a"); state != vpcsim.RouteBlackhole {
		t.Fatalf("table a is %q, want blackhole", state)
	}
	b.rise(ctx) // its checks fail: it never rises
	b.refresh(ctx)
	w.ticks(ctx, b, b.cfg.Probe.Fall+2)
	b.publishMetrics(ctx)
	want := []string{api.MetricUnservedRouteTables + "=2"}
	if got := w.published(0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("published %v, want %v", got, want)
	}

	// b's egress is back: it takes the blackholed table, and publishes no unserved table.
	b.egress.Set(nil)
	for range b.cfg.Probe.Rise {
		w.clock.Advance(b.cfg.Egress.Interval)
		b.checkSelf(ctx)
	}
	w.ticks(ctx, b, 2)
	w.clock.Advance(time.Minute)
	b.publishMetrics(ctx)
	want = []string{api.MetricUnservedRouteTables + "=0", api.MetricFailovers + "=1"}
	if got := w.published(1); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after b recovered: published %v, want %v", got, want)
	}
}

// Without cloudwatch.namespace nothing is published; with it, Deps.CloudWatch is required.
func TestCloudWatchOffAndDeps(t *testing.T) {
	w := newWorld(t, "a", "b")
	b := w.newAgent("b", nil, Options{})
	if b.cw != nil {
		t.Fatal("CloudWatch publishing on without cloudwatch.namespace")
	}
	_, err := w.buildWith("b", withCloudWatch, Options{}, false, func(d *Deps) { d.CloudWatch = nil })
	if err == nil || !strings.Contains(err.Error(), "cloudwatch.namespace needs Deps.CloudWatch") {
		t.Errorf("without a publisher: %v", err)
	}
}

// GIVEN a running agent whose PutMetricData hangs for seconds WHEN it publishes THEN peer
// probing goes on meanwhile, and the publish lands once CloudWatch answers.
func TestCloudWatchPublishDoesNotBlockProbing(t *testing.T) {
	w := newWorld(t, "a", "b")
	a := w.newAgent("a", func(c *config.Config) {
		withCloudWatch(c)
		c.CloudWatch.Interval = config.MinCloudWatchInterval
	}, Options{})
	a.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
	w.sim.SetFaults(vpcsim.Faults{Latency: 2 * time.Second, Actions: []string{"PutMetricData"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAgent(ctx, a)
	if !w.drive(a, 10*time.Second, func() bool { return w.sim.RequestCount("PutMetricData") > 0 }) {
		t.Fatal("no PutMetricData within 10s")
	}
	rounds := func() int {
		var n int
		for l := range strings.Lines(scrapeMetrics(t, a)) {
			if v, ok := strings.CutPrefix(l, "headnat_peer_probe_rounds_total "); ok {
				fmt.Sscan(v, &n)
			}
		}
		return n
	}
	before := rounds()
	w.drive(a, 500*time.Millisecond, func() bool { return false })
	if len(w.sim.MetricData()) != 0 {
		t.Fatal("the publish landed before its injected latency")
	}
	if after := rounds(); after < before+20 {
		t.Errorf("%d probe rounds while a publish hung, want many", after-before)
	}
	if !w.drive(a, 10*time.Second, func() bool { return len(w.sim.MetricData()) > 0 }) {
		t.Fatal("the slow publish never landed")
	}
	cancel()
	if err := w.waitRun(a, done); err != nil {
		t.Fatal(err)
	}
}
