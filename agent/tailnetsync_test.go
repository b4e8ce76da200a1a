package agent

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/tailnet"
)

const testAuthKey = "hskey-auth-0123456789abcdef-secret"

var vpcCIDR = netip.MustParsePrefix("198.18.0.0/16")

// newRouterAgent builds NAT name's agent with a real tailnet.Router over a fake tailscaled that
// accepts testAuthKey and approves the VPC CIDR.
func (w *world) newRouterAgent(name string, mods ...func(*config.Config)) (*agentOf, *tailnet.FakeLocalClient) {
	w.t.Helper()
	lc := tailnet.NewFakeLocalClient()
	lc.ValidKeys[testAuthKey] = []string{"tag:nat"}
	lc.Approve = []netip.Prefix{vpcCIDR}
	var a *agentOf
	a, err := w.buildWith(name, func(c *config.Config) {
		c.Tailnet.LoginServer = "http://127.0.0.1:18080"
		c.Tailnet.AuthKeyFile = "/unused"
		for _, m := range mods {
			m(c)
		}
	}, Options{}, false, func(d *Deps) {
		r := tailnet.New(lc, d.Log)
		r.LoginWait, r.LoginRetry = 300*time.Millisecond, 100*time.Millisecond
		d.Tailnet = r
		d.TailnetAuthKey = func(context.Context) (string, error) { return testAuthKey, nil }
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return a, lc
}

func (a *agentOf) tailnetUp() bool {
	tn := a.healthz().Tailnet
	return tn != nil && tn.Backend == "Running" && tn.Approved && len(tn.Primary) == 1
}

// The agent logs tailscaled in as a subnet router for the VPC, named after its AZ and
// instance, re-asserts drifted prefs, and reports it on /healthz, /status and /metrics; the
// key appears in none of them, nor in the log.
func TestTailnetJoinsAndReports(t *testing.T) {
	w := newWorld(t, "a", "b")
	a, lc := w.newRouterAgent("a")
	a.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAgent(ctx, a)
	if !w.drive(a, 10*time.Second, func() bool { return a.tailnetUp() && a.healthz().Healthy }) {
		t.Fatalf("tailnet not up: %+v", a.healthz().Tailnet)
	}
	lc.Do(func(f *tailnet.FakeLocalClient) {
		want := "nat-" + w.nats["a"].az + "-" + w.nats["a"].id
		// The tags come from the pre-auth key, as headscale gives them.
		if f.Prefs.Hostname != want || !slices.Equal(f.Prefs.AdvertiseRoutes, []netip.Prefix{vpcCIDR}) || f.Prefs.CorpDNS ||
			!slices.Equal(f.Tags, []string{"tag:nat"}) || !f.Prefs.RunSSH {
			t.Errorf("prefs: hostname %q routes %v node tags %v accept-dns %v ssh %v; want %q [%s] [tag:nat] false true",
				f.Prefs.Hostname, f.Prefs.AdvertiseRoutes, f.Tags, f.Prefs.CorpDNS, f.Prefs.RunSSH, want, vpcCIDR)
		}
		// An operator (or a stray `tailscale set`) changes the routes, turns DNS on and SSH off.
		f.Prefs.AdvertiseRoutes = nil
		f.Prefs.CorpDNS = true
		f.Prefs.RunSSH = false
	})
	if !w.drive(a, 10*time.Second, func() bool {
		var ok bool
		lc.Do(func(f *tailnet.FakeLocalClient) {
			ok = slices.Equal(f.Prefs.AdvertiseRoutes, []netip.Prefix{vpcCIDR}) && !f.Prefs.CorpDNS && f.Prefs.RunSSH
		})
		return ok && a.healthz().Tailnet.SSH
	}) {
		t.Fatal("drifted prefs not re-asserted")
	}
	st, _ := json.Marshal(a.status())
	metrics := scrapeMetrics(t, a)
	for what, s := range map[string]string{"status": string(st), "log": a.logs.String(), "metrics": metrics} {
		if strings.Contains(s, testAuthKey) {
			t.Errorf("the auth key appears in the %s", what)
		}
	}
	if !strings.Contains(metrics, "headnat_tailnet_routes_approved 1") || !strings.Contains(metrics, "headnat_tailnet_primary_routes 1") {
		t.Errorf("tailnet metrics missing:\n%s", grepLines(metrics, "headnat_tailnet"))
	}
	if c := a.status().Config; !c.TailnetEnabled || c.HeadscaleURL != "http://127.0.0.1:18080" {
		t.Errorf("config summary %+v", c)
	}
	cancel()
	if err := w.waitRun(a, done); err != nil {
		t.Fatal(err)
	}
}

// tailnet.ssh: false turns tailscaled's SSH server off, and keeps it off.
func TestTailnetSSHOff(t *testing.T) {
	w := newWorld(t, "a", "b")
	a, lc := w.newRouterAgent("a", func(c *config.Config) { c.Tailnet.SSH = false })
	lc.Prefs.RunSSH = true // left on by hand before the agent started
	a.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAgent(ctx, a)
	sshOff := func() bool {
		var on bool
		lc.Do(func(f *tailnet.FakeLocalClient) { on = f.Prefs.RunSSH })
		tn := a.healthz().Tailnet
		return a.tailnetUp() && !on && tn != nil && !tn.SSH && !tn.Degraded
	}
	if !w.drive(a, 10*time.Second, sshOff) {
		t.Fatalf("SSH not turned off: %+v", a.healthz().Tailnet)
	}
	lc.Do(func(f *tailnet.FakeLocalClient) { f.Prefs.RunSSH = true })
	if !w.drive(a, 10*time.Second, sshOff) {
		t.Fatalf("SSH turned on by hand not turned off again: %+v", a.healthz().Tailnet)
	}
	cancel()
	if err := w.waitRun(a, done); err != nil {
		t.Fatal(err)
	}
}

// headscale down from the start: NAT and failover work as without a tailnet, the agent stays
// healthy, the tailnet is reported degraded, and the log says so once, not every refresh.
func TestTailnetDownLeavesNATAlone(t *testing.T) {
	w := newWorld(t, "a", "b")
	a, lc := w.newRouterAgent("a")
	lc.ControlDown = true
	a.peers.Fail(w.nats["b"].id, errTimeout)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAgent(ctx, a)
	if !w.drive(a, 10*time.Second, func() bool {
		got, _ := w.target("b")
		tn := a.healthz().Tailnet
		return got == "a" && a.healthz().Healthy && tn != nil && tn.Degraded
	}) {
		got, _ := w.target("b")
		t.Fatalf("table b targets %q, healthz %+v, tailnet %+v", got, a.healthz(), a.healthz().Tailnet)
	}
	for range 50 { // 10 s of fake time: five refreshes
		w.clock.Advance(a.cfg.Probe.Interval)
		time.Sleep(2 * time.Millisecond)
	}
	if n := strings.Count(a.logs.String(), "tailnet: degraded"); n != 1 {
		t.Errorf("%d \"tailnet: degraded\" log lines, want 1:\n%s", n, grepLines(a.logs.String(), "tailnet"))
	}
	lc.Do(func(f *tailnet.FakeLocalClient) { f.ControlDown = false })
	if !w.drive(a, 10*time.Second, a.tailnetUp) {
		t.Fatalf("tailnet did not recover: %+v", a.healthz().Tailnet)
	}
	cancel()
	if err := w.waitRun(a, done); err != nil {
		t.Fatal(err)
	}
}

// On shutdown with a healthy peer the agent withdraws its tailnet routes before its tables
// are handed over, so headscale moves the primary while this instance still forwards.
func TestDrainWithdrawsTailnetRoutesFirst(t *testing.T) {
	w := newWorld(t, "a", "b")
	a, lc := w.newRouterAgent("a")
	a.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAgent(ctx, a)
	if !w.drive(a, 10*time.Second, func() bool { return a.tailnetUp() && a.settled(1, true) }) {
		t.Fatalf("not settled: %+v %+v", a.healthz(), a.healthz().Tailnet)
	}
	cancel()
	if !w.drive(a, 10*time.Second, func() bool { return a.healthz().Draining }) {
		t.Fatal("never draining")
	}
	var routes []netip.Prefix
	lc.Do(func(f *tailnet.FakeLocalClient) { routes = f.Prefs.AdvertiseRoutes })
	if got, _ := w.target("a"); len(routes) != 0 || got != "a" || !a.healthz().Tailnet.Withdrawn {
		t.Fatalf("while draining and still holding table a (target %q): advertised %v, withdrawn %v; want none", got, routes, a.healthz().Tailnet.Withdrawn)
	}
	// Nothing re-advertises them while the drain waits.
	for range 20 {
		w.clock.Advance(a.cfg.Probe.Interval)
		time.Sleep(2 * time.Millisecond)
	}
	lc.Do(func(f *tailnet.FakeLocalClient) { routes = f.Prefs.AdvertiseRoutes })
	if len(routes) != 0 {
		t.Fatalf("routes re-advertised during the drain: %v", routes)
	}
	if err := w.sim.SetRoute(w.tables["a"], "0.0.0.0/0", w.nats["b"].eni); err != nil {
		t.Fatal(err)
	}
	if err := w.waitRun(a, done); err != nil {
		t.Fatal(err)
	}
}

// scrapeMetrics is the agent's /metrics text.
func scrapeMetrics(t *testing.T, a *agentOf) string {
	t.Helper()
	rec := httptest.NewRecorder()
	a.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// A drain does not wait for a tailnet login that hangs on an unreachable headscale: the login
// is cut short, the routes are withdrawn, and the tables are handed over at once.
func TestDrainCutsAHangingLoginShort(t *testing.T) {
	w := newWorld(t, "a", "b")
	lc := tailnet.NewFakeLocalClient()
	lc.ValidKeys[testAuthKey] = []string{"tag:nat"}
	lc.ControlDown = true
	a, err := w.buildWith("a", func(c *config.Config) {
		c.Tailnet.LoginServer = "http://127.0.0.1:18080"
		c.Tailnet.AuthKeyFile = "/unused"
	}, Options{}, false, func(d *Deps) {
		r := tailnet.New(lc, d.Log) // the default login wait: 30 s, longer than the test may take
		d.Tailnet = r
		d.TailnetAuthKey = func(context.Context) (string, error) { return testAuthKey, nil }
	})
	if err != nil {
		t.Fatal(err)
	}
	a.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAgent(ctx, a)
	if !w.drive(a, 10*time.Second, func() bool { return a.settled(1, true) }) {
		t.Fatalf("not settled: %+v", a.healthz())
	}
	time.Sleep(200 * time.Millisecond) // the first sync is now waiting for its login
	start := time.Now()
	cancel()
	if !w.drive(a, 5*time.Second, func() bool { return a.healthz().Draining }) {
		t.Fatal("the drain did not start while a tailnet login hung")
	}
	if err := w.sim.SetRoute(w.tables["a"], "0.0.0.0/0", w.nats["b"].eni); err != nil {
		t.Fatal(err)
	}
	if err := w.waitRun(a, done); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the drain took %s of real time: it waited for the hanging login", took)
	}
	var routes []netip.Prefix
	lc.Do(func(f *tailnet.FakeLocalClient) { routes = f.Prefs.AdvertiseRoutes })
	if len(routes) != 0 {
		t.Fatalf("routes still advertised after the drain: %v", routes)
	}
}
