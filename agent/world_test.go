package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/health"
	"github.com/headnat/headnat/agent/server"
	"github.com/headnat/headnat/test/vpcsim"
)

// world is a simulated VPC (vpcsim over httptest, reached by the real SDK client) with NAT
// instances in two AZs, one private route table per AZ, and agents built in-process with a
// fake clock, fake peer answers and a fake data plane.
type world struct {
	t      *testing.T
	sim    *vpcsim.Sim
	srv    *httptest.Server
	clock  *FakeClock
	gate   *gate
	nats   map[string]nat    // by short name: "a", "a2", "b", ...
	tables map[string]string // short name ("a", "b") -> route table id
}

type nat struct {
	id, eni, az string
}

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// newWorld builds the VPC with one NAT instance per name; a name's first letter is its AZ
// ("a2" lives in us-east-1a). Launch order follows the names' order. Table "a" and "b" start
// pointing at NAT "a" and "b".
func newWorld(t *testing.T, names ...string) *world {
	t.Helper()
	w := &world{t: t, clock: NewFakeClock(t0), nats: map[string]nat{}, tables: map[string]string{}, gate: &gate{}}
	w.sim = vpcsim.New(vpcsim.Options{Seed: 7, Now: w.clock.Now})
	vpc := w.sim.AddVPC("198.18.0.0/16", nil)
	tag := map[string]string{cloud.TagCluster: "test"}
	subnets := map[string]string{}
	for i, az := range []string{"a", "b", "c"} {
		subnets[az] = w.sim.AddSubnet(vpc, "us-east-1"+az, "198.18."+strconv.Itoa(i)+".0/24", nil)
		prv := w.sim.AddSubnet(vpc, "us-east-1"+az, "198.18."+strconv.Itoa(10+i)+".0/24", nil)
		if az != "c" {
			rtb := w.sim.AddRouteTable(vpc, tag)
			w.sim.Associate(rtb, prv)
			w.tables[az] = rtb
		}
	}
	for i, n := range names {
		az := n[:1]
		id, eni := w.sim.AddInstance(vpcsim.InstanceSpec{SubnetID: subnets[az], Tags: tag,
			LaunchTime: t0.Add(-time.Hour + time.Duration(i)*time.Minute)})
		w.nats[n] = nat{id: id, eni: eni, az: "us-east-1" + az}
	}
	for az, rtb := range w.tables {
		if n, ok := w.nats[az]; ok {
			if err := w.sim.SetRoute(rtb, "0.0.0.0/0", n.eni); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.srv = httptest.NewServer(w.gate.wrap(w.sim.Handler()))
	t.Cleanup(w.srv.Close)
	return w
}

// agentOf is one agent under test and its fakes.
type agentOf struct {
	*Agent
	peers      *health.FakePath
	egress     *health.FakeProbe
	dp         *FakeDataplane
	logs       *syncBuffer
	tailnet    *health.FakePath // nil: no tailnet
	tailnetIPs *fakeTailnetIPs
}

// newAgent builds the agent of NAT name. mod adjusts its configuration.
func (w *world) newAgent(name string, mod func(*config.Config), o Options) *agentOf {
	w.t.Helper()
	a, err := w.build(name, mod, o, false)
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

// newTailnetAgent builds the agent of NAT name with the tailnet as its second health path:
// fake answers there too, and a tailnet address for every other NAT.
func (w *world) newTailnetAgent(name string, mod func(*config.Config)) *agentOf {
	w.t.Helper()
	a, err := w.build(name, mod, Options{}, true)
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

func newAgentErr(w *world, name string, mod func(*config.Config)) (*agentOf, error) {
	return w.build(name, mod, Options{}, false)
}

func (w *world) build(name string, mod func(*config.Config), o Options, tailnet bool) (*agentOf, error) {
	return w.buildWith(name, mod, o, tailnet, nil)
}

// buildWith builds like build, then lets deps adjust the agent's dependencies.
func (w *world) buildWith(name string, mod func(*config.Config), o Options, tailnet bool, extra func(*Deps)) (*agentOf, error) {
	t := w.t
	n := w.nats[name]
	view, ok := w.sim.Instance(n.id)
	if !ok {
		return nil, fmt.Errorf("no instance %s", name)
	}
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.FailbackAfter = 30 * time.Second
	cfg.Egress.Targets = []string{"tcp://203.0.113.1:80"}
	cfg.ControlSocket = filepath.Join(t.TempDir(), "control.sock")
	if mod != nil {
		mod(&cfg)
	}
	cl, err := cloud.New(context.Background(), cloud.Options{
		Region: "us-east-1", EC2Endpoint: w.srv.URL, ASGEndpoint: w.srv.URL, CloudWatchEndpoint: w.srv.URL, IMDSEndpoint: "http://127.0.0.1:9",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test", ""), MaxBackoff: 10 * time.Millisecond,
		ConfirmInterval: time.Millisecond,
		// Long enough that a gated answer is not retried: the gate decides when it arrives.
		Timeouts: cloud.Timeouts{Mutate: 20 * time.Second, Describe: 20 * time.Second, Attempt: 20 * time.Second},
	})
	if err != nil {
		return nil, err
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent %s log:\n%s", name, logs.String())
		}
	})
	ao := &agentOf{peers: &health.FakePath{}, egress: &health.FakeProbe{}, dp: &FakeDataplane{}, logs: logs}
	id := cloud.Identity{InstanceID: n.id, Region: "us-east-1", AZ: n.az, ENI: n.eni, PrivateIP: view.PrivateIP,
		SubnetID: view.SubnetID, VPCID: view.VPCID, LaunchTime: view.LaunchTime,
		VPCCIDRs: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}}
	deps := Deps{
		Cloud: FixedIdentity{Client: cl, ID: id}, Dataplane: ao.dp, Clock: w.clock,
		Metrics: server.NewMetrics(server.MetricsOptions{Now: w.clock.Now}),
		Log:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Peers:   ao.peers, Egress: []health.Probe{ao.egress},
		CloudWatch: cl,
	}
	if tailnet {
		ao.tailnet, ao.tailnetIPs = &health.FakePath{}, &fakeTailnetIPs{m: map[string]netip.Addr{}}
		for i, other := range slices.Sorted(maps.Keys(w.nats)) {
			if other != name {
				ao.tailnetIPs.m[w.nats[other].id] = netip.AddrFrom4([4]byte{198, 19, 0, byte(1 + i)})
			}
		}
		deps.TailnetPeers, deps.TailnetIPs = ao.tailnet, ao.tailnetIPs.get
	}
	if extra != nil {
		extra(&deps)
	}
	a, err := New(context.Background(), cfg, deps, o)
	if err != nil {
		return nil, err
	}
	ao.Agent = a
	return ao, nil
}

// fakeTailnetIPs serves the tailnet addresses an agent knows; off: none (the tailnet is down).
type fakeTailnetIPs struct {
	mu  sync.Mutex
	m   map[string]netip.Addr
	off bool
}

func (f *fakeTailnetIPs) get() map[string]netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.off {
		return nil
	}
	return maps.Clone(f.m)
}

func (f *fakeTailnetIPs) setOff(off bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.off = off
}

// runAll runs agents side by side for d of fake time: each a probe round every probe interval
// and a refresh every refresh interval, waiting for the writes they start.
func (w *world) runAll(ctx context.Context, d time.Duration, agents ...*agentOf) {
	iv := agents[0].cfg.Probe.Interval
	for elapsed := time.Duration(0); elapsed < d; elapsed += iv {
		w.clock.Advance(iv)
		for _, a := range agents {
			if elapsed%a.cfg.Refresh == 0 {
				a.refresh(ctx)
			}
			a.tick(ctx)
			a.writer.Wait()
		}
	}
}

// writes is how many route writes reached EC2.
func (w *world) writes() int { return w.gate.count("ReplaceRoute") + w.gate.count("CreateRoute") }

// healthyAnswer is what a healthy peer's /healthz says.
func (w *world) healthyAnswer(name string) api.Healthz {
	return api.Healthz{Instance: w.nats[name].id, AZ: w.nats[name].az, Healthy: true}
}

// target is the NAT short name a table's default route points at ("" none or unknown) and its state.
func (w *world) target(table string) (string, string) {
	r, ok := w.sim.Route(w.tables[table])
	if !ok {
		return "", ""
	}
	for n, x := range w.nats {
		if x.eni == r.NetworkInterfaceID {
			return n, r.State
		}
	}
	return "", r.State
}

// rise makes the agent healthy: one verification, then rise self checks.
func (a *agentOf) rise(ctx context.Context) {
	a.verifyAndRepair(ctx)
	for range a.cfg.Probe.Rise {
		a.checkSelf(ctx)
	}
}

// ticks runs n probe rounds, the clock moving one probe interval before each, and waits for
// the writes they started.
func (w *world) ticks(ctx context.Context, a *agentOf, n int) {
	for range n {
		w.clock.Advance(a.cfg.Probe.Interval)
		a.tick(ctx)
		a.writer.Wait()
	}
}

// gate holds EC2 answers of one action (optionally for one route table) until released. An
// armed gate answers from the state at request time, so the answer is stale when released.
type gate struct {
	mu       sync.Mutex
	action   string
	table    string
	release  chan struct{}
	held     chan struct{} // one send per held request
	requests map[string]int
}

func (g *gate) arm(action, table string) (held <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.action, g.table = action, table
	rel, h := make(chan struct{}), make(chan struct{}, 16)
	g.release, g.held = rel, h
	var once sync.Once
	return h, func() { once.Do(func() { close(rel) }) }
}

func (g *gate) count(action string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests[action]
}

func (g *gate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		r.Body = io.NopCloser(bytes.NewReader(body))
		g.mu.Lock()
		if g.requests == nil {
			g.requests = map[string]int{}
		}
		g.requests[form.Get("Action")]++
		hold := g.action != "" && form.Get("Action") == g.action && (g.table == "" || form.Get("RouteTableId") == g.table)
		release, held := g.release, g.held
		g.mu.Unlock()
		if !hold {
			h.ServeHTTP(rw, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		held <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		for k, v := range rec.Header() {
			rw.Header()[k] = v
		}
		rw.WriteHeader(rec.Code)
		_, _ = rw.Write(rec.Body.Bytes())
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
