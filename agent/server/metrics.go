package server

import (
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// BuildInfo labels headnat_build_info.
type BuildInfo struct {
	Version   string
	Revision  string
	GoVersion string
}

// MetricsOptions configures NewMetrics.
type MetricsOptions struct {
	Build BuildInfo
	Now   func() time.Time // clock for headnat_seconds_since_last_route_move; nil: time.Now
}

// Metrics is the agent's Prometheus instrumentation, on its own registry (never the global one).
// The agent calls its methods; a nil *Metrics ignores every call.
type Metrics struct {
	reg             *prometheus.Registry
	now             func() time.Time
	probeUp         *prometheus.GaugeVec
	probeFailures   *prometheus.CounterVec
	routeWrites     *prometheus.CounterVec
	failovers       prometheus.Counter
	apiErrors       *prometheus.CounterVec
	findings        prometheus.Gauge
	healthy         prometheus.Gauge
	probeRounds     prometheus.Counter
	probeGaps       prometheus.Histogram
	tailnetUp       prometheus.Gauge
	tailnetDegraded prometheus.Gauge
	tailnetApproved prometheus.Gauge
	tailnetPrimary  prometheus.Gauge
	tailnetBackend  *prometheus.GaugeVec
	stage           *prometheus.GaugeVec
	drains          *prometheus.CounterVec
	drainBlocked    prometheus.Gauge
	cwErrors        prometheus.Counter
	lastMove        atomic.Int64 // unix nanoseconds; 0: never
	lastRound       atomic.Int64 // unix nanoseconds of the latest peer probe round; 0: none yet
}

// NewMetrics registers every headnat metric, plus the Go runtime and process collectors.
func NewMetrics(opts MetricsOptions) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), now: opts.Now}
	if m.now == nil {
		m.now = time.Now
	}
	m.probeUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "headnat_probe_up",
		Help: "Result of the latest probe of a target or peer (1 passed, 0 failed).",
	}, []string{"target"})
	m.probeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "headnat_probe_failures_total",
		Help: "Failed probes by target or peer.",
	}, []string{"target"})
	m.routeWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "headnat_route_writes_total",
		Help: "Route writes by reason kind and result.",
	}, []string{"kind", "result"})
	m.failovers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "headnat_failovers_total",
		Help: "Route tables this agent took over from an unhealthy, draining or missing target.",
	})
	m.apiErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "headnat_api_errors_total",
		Help: "Cloud API errors by operation and error code.",
	}, []string{"operation", "code"})
	m.findings = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "headnat_dataplane_findings",
		Help: "Data-plane problems found by the latest verification.",
	})
	m.healthy = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "headnat_healthy",
		Help: "Whether this agent reports itself healthy (1) or not (0).",
	})
	m.probeRounds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "headnat_peer_probe_rounds_total",
		Help: "Peer probe rounds started (one per probe interval when nothing stalls them).",
	})
	m.probeGaps = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "headnat_peer_probe_round_gap_seconds",
		Help:    "Time between the starts of consecutive peer probe rounds.",
		Buckets: []float64{0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2, 5},
	})
	m.tailnetUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "headnat_tailnet_running",
		Help: "Whether tailscaled is logged in and running (1) or not (0).",
	})
	m.tailnetDegraded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "headnat_tailnet_degraded",
		Help: "Whether the tailnet is configured but not working as a subnet router (1) or fine (0).",
	})
	m.tailnetApproved = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "headnat_tailnet_routes_approved",
		Help: "Whether headscale approved every route this instance advertises (1) or not (0).",
	})
	m.tailnetPrimary = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "headnat_tailnet_primary_routes",
		Help: "Advertised routes this instance is the tailnet's primary router for.",
	})
	m.tailnetBackend = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "headnat_tailnet_backend_state",
		Help: "tailscaled's backend state (1 for the current state).",
	}, []string{"state"})
	m.stage = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "headnat_lifecycle_stage",
		Help: "The instance's lifecycle stage: launching, in-service, draining or drained (1 for the current one).",
	}, []string{"stage"})
	m.drains = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "headnat_drains_total",
		Help: "Drains started, by what started them (sigterm, spot-interruption, operator, ...).",
	}, []string{"reason"})
	m.drainBlocked = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "headnat_drain_blocked",
		Help: "1 while a drain cannot hand the route tables over because no peer is healthy.",
	})
	m.cwErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "headnat_cloudwatch_publish_errors_total",
		Help: "CloudWatch publishes (one PutMetricData each) that failed; the next one carries their failovers.",
	})
	sinceMove := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "headnat_seconds_since_last_route_move",
		Help: "Seconds since this agent last moved a route; -1 if it never did.",
	}, m.secondsSinceMove)
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "headnat_build_info",
		Help: "Build information of the running agent (always 1).",
		ConstLabels: prometheus.Labels{
			"version":   opts.Build.Version,
			"revision":  opts.Build.Revision,
			"goversion": opts.Build.GoVersion,
		},
	})
	build.Set(1)
	m.reg.MustRegister(m.probeUp, m.probeFailures, m.routeWrites, m.failovers, m.apiErrors,
		m.findings, m.healthy, m.probeRounds, m.probeGaps, sinceMove, build,
		m.tailnetUp, m.tailnetDegraded, m.tailnetApproved, m.tailnetPrimary, m.tailnetBackend,
		m.stage, m.drains, m.drainBlocked, m.cwErrors,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) secondsSinceMove() float64 {
	ns := m.lastMove.Load()
	if ns == 0 {
		return -1
	}
	return math.Max(0, m.now().Sub(time.Unix(0, ns)).Seconds())
}

// Registry is the metrics' own registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveProbe records one probe result for target (an egress target or a peer instance ID).
func (m *Metrics) ObserveProbe(target string, ok bool) {
	if m == nil {
		return
	}
	failures := m.probeFailures.WithLabelValues(target)
	if ok {
		m.probeUp.WithLabelValues(target).Set(1)
		return
	}
	m.probeUp.WithLabelValues(target).Set(0)
	failures.Inc()
}

// ForgetProbe drops a target's series (a peer that left the cluster).
func (m *Metrics) ForgetProbe(target string) {
	if m == nil {
		return
	}
	m.probeUp.DeleteLabelValues(target)
	m.probeFailures.DeleteLabelValues(target)
}

// RouteWrite counts one route write by reason kind (take-over, fail-back, drain...) and
// result (ok, error, dry-run...).
func (m *Metrics) RouteWrite(kind, result string) {
	if m == nil {
		return
	}
	m.routeWrites.WithLabelValues(kind, result).Inc()
}

// Failover counts one table taken over.
func (m *Metrics) Failover() {
	if m == nil {
		return
	}
	m.failovers.Inc()
}

// ProbeRound records that a peer probe round started at t.
func (m *Metrics) ProbeRound(t time.Time) {
	if m == nil {
		return
	}
	m.probeRounds.Inc()
	if prev := m.lastRound.Swap(t.UnixNano()); prev != 0 && t.UnixNano() > prev {
		m.probeGaps.Observe(time.Duration(t.UnixNano() - prev).Seconds())
	}
}

// RouteMoved records when a route was last moved.
func (m *Metrics) RouteMoved(t time.Time) {
	if m == nil {
		return
	}
	m.lastMove.Store(t.UnixNano())
}

// APIError counts one cloud API error by operation (e.g. ReplaceRoute) and error code.
func (m *Metrics) APIError(op, code string) {
	if m == nil {
		return
	}
	m.apiErrors.WithLabelValues(op, code).Inc()
}

// Findings sets the number of data-plane findings of the latest verification.
func (m *Metrics) Findings(n int) {
	if m == nil {
		return
	}
	m.findings.Set(float64(n))
}

// SetHealthy sets whether the agent reports itself healthy.
func (m *Metrics) SetHealthy(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.healthy.Set(1)
	} else {
		m.healthy.Set(0)
	}
}

// SetTailnet records the tailnet state (t is never nil when a tailnet is configured).
func (m *Metrics) SetTailnet(t *api.Tailnet) {
	if m == nil || t == nil {
		return
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	m.tailnetUp.Set(b(t.Backend == "Running"))
	m.tailnetDegraded.Set(b(t.Degraded))
	m.tailnetApproved.Set(b(t.Approved))
	m.tailnetPrimary.Set(float64(len(t.Primary)))
	m.tailnetBackend.Reset()
	m.tailnetBackend.WithLabelValues(t.Backend).Set(1)
}

// SetLifecycle records the lifecycle stage and whether a drain is blocked for want of a peer.
func (m *Metrics) SetLifecycle(stage string, blocked bool) {
	if m == nil {
		return
	}
	m.stage.Reset()
	m.stage.WithLabelValues(stage).Set(1)
	if blocked {
		m.drainBlocked.Set(1)
	} else {
		m.drainBlocked.Set(0)
	}
}

// DrainStarted counts a drain by the kind of its first trigger.
func (m *Metrics) DrainStarted(reason string) {
	if m == nil {
		return
	}
	m.drains.WithLabelValues(reason).Inc()
}

// CloudWatchPublishError counts one failed CloudWatch publish.
func (m *Metrics) CloudWatchPublishError() {
	if m == nil {
		return
	}
	m.cwErrors.Inc()
}
