package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
)

// state is the agent's view as the test sets it.
type state struct {
	hz atomic.Pointer[api.Healthz]
	st atomic.Pointer[api.Status]
}

func (s *state) source() Source {
	return SourceFuncs{
		HealthzFunc: func() api.Healthz { return *s.hz.Load() },
		StatusFunc:  func() api.Status { return *s.st.Load() },
	}
}

func newTestServer(t *testing.T, m *Metrics) (*state, *httptest.Server) {
	t.Helper()
	s := &state{}
	s.hz.Store(&api.Healthz{})
	s.st.Store(&api.Status{})
	ts := httptest.NewServer(New(Options{Source: s.source(), Metrics: m}))
	t.Cleanup(ts.Close)
	return s, ts
}

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func TestHealthz(t *testing.T) {
	s, ts := newTestServer(t, nil)
	launch := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	cases := []struct {
		name     string
		in       api.Healthz
		code     int
		healthy  bool
		draining bool
		reason   string
	}{
		{"healthy", api.Healthz{Instance: "i-a", AZ: "az-a", Healthy: true, Reasons: []string{"ok"}, LaunchTime: launch, Tables: []string{"rtb-1"}, Version: "v1.2.3"},
			200, true, false, "ok"},
		{"unhealthy", api.Healthz{Instance: "i-a", AZ: "az-a", Reasons: []string{"egress: 0 of 2 probes passed"}, Version: "v1.2.3"},
			503, false, false, "egress"},
		{"draining though otherwise healthy", api.Healthz{Instance: "i-a", AZ: "az-a", Healthy: true, Draining: true, Version: "v1.2.3"},
			503, false, true, "draining"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.hz.Store(&tc.in)
			code, hdr, body := get(t, ts.URL+api.PathHealthz)
			if code != tc.code {
				t.Fatalf("status %d, want %d; body %s", code, tc.code, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var raw map[string]any
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatalf("body is not JSON: %v: %s", err, body)
			}
			for _, k := range []string{"instance", "az", "healthy", "draining", "launch_time", "tables", "version"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("missing field %q: %s", k, body)
				}
			}
			if raw["tables"] == nil {
				t.Errorf("tables must be a list, not null: %s", body)
			}
			var got api.Healthz
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Instance != "i-a" || got.AZ != "az-a" || got.Version != "v1.2.3" || got.Healthy != tc.healthy || got.Draining != tc.draining {
				t.Errorf("got %+v", got)
			}
			if !strings.Contains(strings.Join(got.Reasons, ";"), tc.reason) {
				t.Errorf("reasons %v do not mention %q", got.Reasons, tc.reason)
			}
		})
	}
	if !(*s.hz.Load()).Healthy {
		t.Fatal("the server must not change the source's state")
	}

	resp, err := http.Post(ts.URL+api.PathHealthz, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d", resp.StatusCode)
	}
	if code, _, _ := get(t, ts.URL+"/nope"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}
}

func TestStatus(t *testing.T) {
	s, ts := newTestServer(t, nil)

	// An empty view still renders lists, not nulls.
	code, _, body := get(t, ts.URL+api.PathStatus)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, k := range []string{`"peers":[]`, `"tables":[]`, `"decisions":[]`, `"findings":[]`} {
		if !strings.Contains(string(body), k) {
			t.Errorf("empty status lacks %s: %s", k, body)
		}
	}

	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s.st.Store(&api.Status{
		Time: now,
		Self: api.Healthz{Instance: "i-a", AZ: "az-a", Healthy: true, Tables: []string{"rtb-a"}},
		Peers: []api.PeerStatus{{ID: "i-b", AZ: "az-b", ENI: "eni-b", PrivateIP: "198.18.1.10", Healthy: false,
			Since: now.Add(-time.Second), LastError: "connection refused", Via: api.ViaTailnet, TailnetReachable: true}},
		Tables: []api.TableStatus{{ID: "rtb-b", HomeAZ: "az-b", TargetInstance: "i-b", TargetENI: "eni-b", State: api.RouteActive,
			PreferredOwner: "i-b", PreferredReason: "home az", HeldSince: now.Add(-time.Hour)}},
		Decisions: []api.Decision{{Time: now, Table: "rtb-b", Kind: "take-over", Target: "i-a", Reason: "peer unhealthy", Result: "ok"}},
		Findings:  []api.Finding{{Kind: "sysctl", Detail: "ip_forward=0"}},
		Config: api.ConfigSummary{Cluster: "prod", ProbeInterval: api.Duration(200 * time.Millisecond), Rise: 3, Fall: 3,
			HeadscaleURL: "https://admin:s3cret@hs.example.test/?key=s3cret"},
	})
	code, _, body = get(t, ts.URL+api.PathStatus)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	if strings.Contains(string(body), "s3cret") {
		t.Fatalf("secret leaked into /status: %s", body)
	}
	var got api.Status
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if got.Self.Instance != "i-a" || len(got.Peers) != 1 || !got.Peers[0].TailnetReachable || got.Peers[0].Via != api.ViaTailnet {
		t.Errorf("self/peers: %+v", got)
	}
	if len(got.Tables) != 1 || got.Tables[0].PreferredReason != "home az" || !got.Tables[0].HeldSince.Equal(now.Add(-time.Hour)) {
		t.Errorf("tables: %+v", got.Tables)
	}
	if len(got.Decisions) != 1 || got.Decisions[0].Kind != "take-over" || len(got.Findings) != 1 || got.Findings[0].Detail != "ip_forward=0" {
		t.Errorf("decisions/findings: %+v %+v", got.Decisions, got.Findings)
	}
	if got.Config.HeadscaleURL != "https://hs.example.test/" || got.Config.Cluster != "prod" || got.Config.ProbeInterval != api.Duration(200*time.Millisecond) {
		t.Errorf("config: %+v", got.Config)
	}
}

func hasLine(text, line string) bool {
	for l := range strings.SplitSeq(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func TestMetrics(t *testing.T) {
	var now atomic.Pointer[time.Time]
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now.Store(&t0)
	m := NewMetrics(MetricsOptions{
		Build: BuildInfo{Version: "v1.2.3", Revision: "abc123", GoVersion: "go1.26.8"},
		Now:   func() time.Time { return *now.Load() },
	})
	_, ts := newTestServer(t, m)
	metrics := func() string {
		code, _, body := get(t, ts.URL+api.PathMetrics)
		if code != 200 {
			t.Fatalf("/metrics status %d", code)
		}
		return string(body)
	}

	text := metrics()
	for _, l := range []string{
		"headnat_seconds_since_last_route_move -1",
		"headnat_failovers_total 0",
		"headnat_cloudwatch_publish_errors_total 0",
		"headnat_healthy 0",
		`headnat_build_info{goversion="go1.26.8",revision="abc123",version="v1.2.3"} 1`,
	} {
		if !hasLine(text, l) {
			t.Errorf("initial metrics lack %q", l)
		}
	}
	if !strings.Contains(text, "go_goroutines") {
		t.Error("Go runtime metrics missing")
	}

	m.ObserveProbe("i-b", true)
	m.ObserveProbe("i-c", false)
	m.ObserveProbe("i-c", false)
	m.ObserveProbe("tcp://198.51.100.1:443", true)
	m.RouteWrite("take-over", "ok")
	m.RouteWrite("take-over", "ok")
	m.RouteWrite("fail-back", "error")
	m.Failover()
	m.SetLifecycle("draining", true)
	m.DrainStarted("operator")
	m.RouteMoved(t0.Add(-5 * time.Second))
	m.APIError("ReplaceRoute", "RequestLimitExceeded")
	m.Findings(2)
	m.SetHealthy(true)
	m.CloudWatchPublishError()

	text = metrics()
	for _, l := range []string{
		`headnat_probe_up{target="i-b"} 1`,
		`headnat_probe_up{target="i-c"} 0`,
		`headnat_probe_up{target="tcp://198.51.100.1:443"} 1`,
		`headnat_probe_failures_total{target="i-b"} 0`,
		`headnat_probe_failures_total{target="i-c"} 2`,
		`headnat_route_writes_total{kind="take-over",result="ok"} 2`,
		`headnat_route_writes_total{kind="fail-back",result="error"} 1`,
		"headnat_failovers_total 1",
		"headnat_cloudwatch_publish_errors_total 1",
		"headnat_seconds_since_last_route_move 5",
		`headnat_api_errors_total{code="RequestLimitExceeded",operation="ReplaceRoute"} 1`,
		"headnat_dataplane_findings 2",
		"headnat_healthy 1",
	} {
		if !hasLine(text, l) {
			t.Errorf("metrics lack %q", l)
		}
	}

	later := t0.Add(time.Minute)
	now.Store(&later)
	m.ObserveProbe("i-c", true)
	m.ForgetProbe("i-b")
	m.SetHealthy(false)
	text = metrics()
	for _, l := range []string{
		"headnat_seconds_since_last_route_move 65",
		`headnat_probe_up{target="i-c"} 1`,
		`headnat_probe_failures_total{target="i-c"} 2`,
		"headnat_healthy 0",
	} {
		if !hasLine(text, l) {
			t.Errorf("updated metrics lack %q", l)
		}
	}
	if strings.Contains(text, `target="i-b"`) {
		t.Error("forgotten probe target still exported")
	}

	m.SetTailnet(&api.Tailnet{Backend: "NeedsLogin", Degraded: true, Error: "login refused"})
	m.SetTailnet(&api.Tailnet{Backend: "Running", Approved: true, Primary: []string{"198.18.0.0/16"}})
	text = metrics()
	for _, l := range []string{
		"headnat_tailnet_running 1",
		"headnat_tailnet_degraded 0",
		"headnat_tailnet_routes_approved 1",
		"headnat_tailnet_primary_routes 1",
		`headnat_tailnet_backend_state{state="Running"} 1`,
	} {
		if !hasLine(text, l) {
			t.Errorf("tailnet metrics lack %q", l)
		}
	}
	if strings.Contains(text, `state="NeedsLogin"`) {
		t.Error("an old backend state is still exported")
	}

	m.SetLifecycle("in-service", false)
	m.DrainStarted("spot-interruption")
	m.SetLifecycle("draining", true)
	text = metrics()
	for _, l := range []string{
		`headnat_lifecycle_stage{stage="draining"} 1`,
		`headnat_drains_total{reason="spot-interruption"} 1`,
		"headnat_drain_blocked 1",
	} {
		if !hasLine(text, l) {
			t.Errorf("lifecycle metrics lack %q", l)
		}
	}
	if strings.Contains(text, `stage="in-service"`) {
		t.Error("an old lifecycle stage is still exported")
	}
}

func TestNilMetricsIgnoresCalls(t *testing.T) {
	var m *Metrics
	m.ObserveProbe("x", false)
	m.ForgetProbe("x")
	m.RouteWrite("k", "r")
	m.Failover()
	m.RouteMoved(time.Unix(1, 0))
	m.APIError("op", "code")
	m.Findings(1)
	m.SetHealthy(true)
	m.SetTailnet(&api.Tailnet{Backend: "Running"})
}

func TestServeShutsDownWithContext(t *testing.T) {
	s := &state{}
	s.hz.Store(&api.Healthz{Instance: "i-a", Healthy: true})
	s.st.Store(&api.Status{})
	srv := New(Options{Source: s.source()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	if code, _, _ := get(t, "http://"+ln.Addr().String()+api.PathHealthz); code != 200 {
		t.Fatalf("healthz over Serve: %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still open after shutdown")
	}
}
