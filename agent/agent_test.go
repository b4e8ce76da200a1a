package agent

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/dataplane"
)

var errTimeout = errors.New("i/o timeout")

// The three-instance case: table a's home-AZ instance a1 is restarting (its host refuses the
// agent port), its current target c is dead. a2, also in the home AZ, takes it within a few
// probe rounds, not after the restart grace, and its reason does not invent a partition.
func TestRestartingPeerDoesNotBlockTakeover(t *testing.T) {
	w := newWorld(t, "a1", "a2", "c")
	if err := w.sim.SetRoute(w.tables["a"], "0.0.0.0/0", w.nats["c"].eni); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a2 := w.newAgent("a2", func(c *config.Config) { c.Probe.RestartGrace = time.Minute }, Options{})
	a2.peers.Fail(w.nats["a1"].id, syscall.ECONNREFUSED)
	a2.peers.Fail(w.nats["c"].id, errTimeout)
	a2.rise(ctx)
	w.ticks(ctx, a2, a2.cfg.Probe.Fall+2)
	if got, _ := w.target("a"); got != "a2" {
		t.Fatalf("table a targets %q after %d rounds, want a2 (restart grace %s must not block it)", got, a2.cfg.Probe.Fall+2, a2.cfg.Probe.RestartGrace)
	}
	st := a2.status()
	var reasons []string
	for _, d := range st.Decisions {
		if d.Table == w.tables["a"] {
			reasons = append(reasons, d.Reason)
		}
	}
	for _, ts := range st.Tables {
		if ts.ID == w.tables["a"] {
			reasons = append(reasons, ts.PreferredReason)
		}
	}
	if len(reasons) != 2 {
		t.Fatalf("decisions %+v, want one write for table a", st.Decisions)
	}
	for _, r := range reasons {
		if strings.Contains(r, "partitioned") || strings.Contains(r, "tailnet") {
			t.Errorf("reason %q claims a partition; a1 is restarting", r)
		}
	}
}

// A restarting peer keeps its own table for the restart grace (its kernel still forwards),
// and loses it once the grace has passed.
func TestRestartGraceKeepsTablesThenExpires(t *testing.T) {
	w := newWorld(t, "a", "b")
	ctx := context.Background()
	b := w.newAgent("b", func(c *config.Config) { c.Probe.RestartGrace = 5 * time.Second }, Options{})
	b.peers.Fail(w.nats["a"].id, syscall.ECONNREFUSED)
	b.rise(ctx)
	w.ticks(ctx, b, 20) // 4s of probe rounds
	if got, _ := w.target("a"); got != "a" {
		t.Fatalf("table a moved to %q within the restart grace", got)
	}
	st := b.status()
	if why := st.Tables[0].PreferredReason; why == "" {
		t.Fatal("no preferred-owner reason")
	}
	if p := st.Peers[0]; !strings.HasPrefix(p.PresumedAlive, "agent restarting") {
		t.Errorf("/status peer %+v does not say why a keeps its table", p)
	}
	w.ticks(ctx, b, 10) // past 5s
	if got, _ := w.target("a"); got != "b" {
		t.Fatalf("table a targets %q after the restart grace, want b", got)
	}
}

// A cluster read that started before this agent's own write and answers after it must not undo
// the write, nor be taken as the (dead) peer having taken the table back.
func TestRefreshRacingWriteKeepsTheWrite(t *testing.T) {
	w := newWorld(t, "a", "b")
	ctx := context.Background()
	b := w.newAgent("b", nil, Options{})
	b.peers.Fail(w.nats["a"].id, errTimeout)
	b.rise(ctx)
	held, release := w.gate.arm("DescribeRouteTables", "")
	defer release()
	refreshed := make(chan struct{})
	go func() { b.refresh(ctx); close(refreshed) }()
	<-held // the read has its answer: table a still targets a
	w.gate.arm("", "")
	w.ticks(ctx, b, b.cfg.Probe.Fall)
	if got, _ := w.target("a"); got != "b" {
		t.Fatalf("table a targets %q, want b", got)
	}
	release()
	<-refreshed
	b.mu.Lock()
	held2, evidence := b.view.Held(), len(b.view.evidence)
	b.mu.Unlock()
	if len(held2) != 2 || evidence != 0 {
		t.Fatalf("after the stale read: held %v (want both tables), partition evidence %d (want 0)", held2, evidence)
	}
	writes := w.gate.count("ReplaceRoute")
	w.ticks(ctx, b, 5)
	if n := w.gate.count("ReplaceRoute"); n != writes {
		t.Fatalf("%d more route writes after the stale read, want none", n-writes)
	}
}

// A peer that fails my probes yet takes a table is partitioned from me, not dead: I leave its
// tables alone for twice failback_after, and take them again once that evidence is stale.
func TestPartitionEvidence(t *testing.T) {
	w := newWorld(t, "a", "b")
	ctx := context.Background()
	b := w.newAgent("b", nil, Options{})
	b.peers.Fail(w.nats["a"].id, errTimeout)
	b.rise(ctx)
	w.ticks(ctx, b, b.cfg.Probe.Fall)
	if got, _ := w.target("a"); got != "b" {
		t.Fatalf("table a targets %q, want b (a is dead in b's view)", got)
	}
	// a, across the partition, fails back to itself.
	if err := w.sim.SetRoute(w.tables["a"], "0.0.0.0/0", w.nats["a"].eni); err != nil {
		t.Fatal(err)
	}
	b.refresh(ctx)
	writes := w.gate.count("ReplaceRoute")
	window := 2 * b.cfg.FailbackAfter
	rounds := int(window/b.cfg.Probe.Interval) - 5
	w.ticks(ctx, b, rounds)
	if got, _ := w.target("a"); got != "a" || w.gate.count("ReplaceRoute") != writes {
		t.Fatalf("within the evidence window table a targets %q after %d writes, want a and no write", got, w.gate.count("ReplaceRoute")-writes)
	}
	if r := b.status().Tables[0].PreferredReason; !strings.Contains(r, "took a route table while failing my probes") {
		t.Errorf("preferred-owner reason %q does not say why a is presumed alive", r)
	}
	w.ticks(ctx, b, 10)
	if got, _ := w.target("a"); got != "b" {
		t.Fatalf("after the evidence window table a targets %q, want b", got)
	}
}

// A route write stalled in EC2 does not stall probing: the round returns with the write in
// flight, no second write for that table starts meanwhile, and another table's write is not
// queued behind it.
func TestSlowWriteDoesNotBlockProbing(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	ctx := context.Background()
	if err := w.sim.SetRoute(w.tables["b"], "0.0.0.0/0", w.nats["a"].eni); err != nil {
		t.Fatal(err)
	}
	c := w.newAgent("c", nil, Options{})
	c.peers.Fail(w.nats["a"].id, errTimeout)
	c.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
	c.rise(ctx)
	// Both tables target a, now dead. b is healthy and home of table b; c is the rendezvous
	// choice for table a only if it outranks b: make b unhealthy in c's view to make c own both.
	c.peers.Fail(w.nats["b"].id, errTimeout)
	held, release := w.gate.arm("ReplaceRoute", w.tables["a"])
	defer release()
	for range c.cfg.Probe.Fall {
		w.clock.Advance(c.cfg.Probe.Interval)
		c.tick(ctx)
	}
	<-held
	if !c.writer.InFlight(w.tables["a"]) {
		t.Fatal("the write for table a is not in flight")
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.writer.InFlight(w.tables["b"]) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got, _ := w.target("b"); got != "c" || c.writer.InFlight(w.tables["b"]) {
		t.Fatalf("table b targets %q while a's write is stalled, want c", got)
	}
	start := time.Now()
	for range 5 {
		w.clock.Advance(c.cfg.Probe.Interval)
		c.tick(ctx)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("5 probe rounds took %s with a write stalled", took)
	}
	if n := w.gate.count("ReplaceRoute"); n != 2 {
		t.Fatalf("%d ReplaceRoute requests, want 2 (one per table; no second write while one is in flight)", n)
	}
	release()
	c.writer.Wait()
	w.ticks(ctx, c, 3)
	if n := w.gate.count("ReplaceRoute"); n != 2 {
		t.Fatalf("%d ReplaceRoute requests after the stalled write finished, want 2", n)
	}
}

// The own-health check only reads the verifier's findings; the verify loop repairs what it
// can, and what survives the repair makes this instance unhealthy.
func TestVerifyRepairsAndSelfCheckOnlyReads(t *testing.T) {
	w := newWorld(t, "a", "b")
	ctx := context.Background()
	a := w.newAgent("a", nil, Options{})
	a.checkSelf(ctx)
	if r := a.self.Last(); r.Healthy || !strings.Contains(strings.Join(r.Reasons, ";"), "not verified yet") {
		t.Fatalf("before the first verification: %+v", r)
	}
	a.rise(ctx)
	if !a.healthz().Healthy {
		t.Fatalf("not healthy after rise: %+v", a.healthz())
	}
	a.dp.Deviate(false, dataplane.Finding{Kind: dataplane.KindSysctl, Key: "net.ipv4.ip_forward", Want: "1", Got: "0"})
	_, verifies := a.dp.Counts()
	for range 5 {
		a.checkSelf(ctx)
	}
	if _, v := a.dp.Counts(); v != verifies {
		t.Fatalf("self checks ran the verifier %d times", v-verifies)
	}
	applies, _ := a.dp.Counts()
	a.verifyAndRepair(ctx)
	if ap, _ := a.dp.Counts(); ap != applies+1 {
		t.Fatalf("a deviation was re-applied %d times, want once", ap-applies)
	}
	a.checkSelf(ctx)
	if !a.healthz().Healthy {
		t.Fatalf("unhealthy after a successful repair: %+v", a.healthz())
	}
	a.dp.Deviate(true, dataplane.Finding{Kind: dataplane.KindSysctl, Key: "net.ipv4.ip_forward", Want: "1", Got: "0"})
	a.verifyAndRepair(ctx)
	for range a.cfg.Probe.Fall {
		a.checkSelf(ctx)
	}
	hz, st := a.healthz(), a.status()
	if hz.Healthy || len(st.Findings) != 1 || !strings.Contains(st.Findings[0].Detail, "ip_forward") {
		t.Fatalf("a deviation that survives the repair: healthz %+v, findings %+v", hz, st.Findings)
	}
}

// runAgent runs a.Run in the background; the returned channel yields its error.
func runAgent(ctx context.Context, a *agentOf) <-chan error {
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return done
}

// drive advances the fake clock in probe intervals until cond holds or the real-time bound passes.
func (w *world) drive(a *agentOf, bound time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		w.clock.Advance(a.cfg.Probe.Interval)
		time.Sleep(2 * time.Millisecond)
	}
	return cond()
}

// waitRun drives the clock until Run returns, and returns its error.
func (w *world) waitRun(a *agentOf, done <-chan error) error {
	var err error
	if !w.drive(a, 10*time.Second, func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	}) {
		return errors.New("Run did not return")
	}
	return err
}

// settled: the agent is healthy, holds held tables, and sees a peer that can take them or not.
func (a *agentOf) settled(held int, peerCanTake bool) bool {
	healthy := a.healthz().Healthy
	a.mu.Lock()
	defer a.mu.Unlock()
	return healthy && len(a.view.Held()) == held && a.view.AnyPeerCanTake() == peerCanTake
}

// On shutdown the agent reports draining, waits for a peer to take its tables, then returns.
func TestDrainWaitsForHandOver(t *testing.T) {
	w := newWorld(t, "a", "b")
	a := w.newAgent("a", nil, Options{})
	a.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAgent(ctx, a)
	if !w.drive(a, 10*time.Second, func() bool { return a.settled(1, true) }) {
		t.Fatalf("agent a not healthy with a healthy peer: %+v", a.healthz())
	}
	cancel()
	if !w.drive(a, 10*time.Second, func() bool { return a.healthz().Draining }) {
		t.Fatal("agent a never reported draining")
	}
	start := w.clock.Now()
	for range 5 {
		w.clock.Advance(a.cfg.Probe.Interval)
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while still holding table a", err)
	default:
	}
	if err := w.sim.SetRoute(w.tables["a"], "0.0.0.0/0", w.nats["b"].eni); err != nil {
		t.Fatal(err)
	}
	if err := w.waitRun(a, done); err != nil {
		t.Fatal(err)
	}
	if waited := w.clock.Now().Sub(start); waited >= a.cfg.DrainTimeout {
		t.Fatalf("drain took %s of fake time, the whole deadline", waited)
	}
}

// With nobody taking the tables the drain gives up at drain_timeout; with no healthy peer at
// all a stop does not wait: it exits at once, still holding its tables.
func TestDrainDeadlineAndNoPeer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		peer      bool
		wantDrain bool
	}{{"nobody takes the tables", true, true}, {"no healthy peer", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, "a", "b")
			a := w.newAgent("a", func(c *config.Config) { c.DrainTimeout = 3 * time.Second }, Options{})
			if tc.peer {
				a.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := runAgent(ctx, a)
			held := 1 // table a; with b dead a takes table b too
			if !tc.peer {
				held = 2
			}
			if !w.drive(a, 10*time.Second, func() bool { return a.settled(held, tc.peer) }) {
				t.Fatalf("agent a not settled: %+v", a.healthz())
			}
			cancel()
			start := w.clock.Now()
			if err := w.waitRun(a, done); err != nil {
				t.Fatal(err)
			}
			waited := w.clock.Now().Sub(start)
			if tc.wantDrain && (waited < a.cfg.DrainTimeout || !a.healthz().Draining) {
				t.Fatalf("returned after %s of fake time (draining %v), want the %s deadline", waited, a.healthz().Draining, a.cfg.DrainTimeout)
			}
			if !tc.wantDrain && (waited >= a.cfg.DrainTimeout || len(a.healthz().Tables) != 2) {
				t.Fatalf("with no healthy peer: returned after %s holding %v, want at once holding both tables", waited, a.healthz().Tables)
			}
		})
	}
}

// --once: one check, one decision, its writes, then exit; a failed write is the error.
func TestOnce(t *testing.T) {
	w := newWorld(t, "a", "b")
	b := w.newAgent("b", nil, Options{Once: true})
	b.peers.Fail(w.nats["a"].id, errTimeout)
	if err := b.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.target("a"); got != "b" {
		t.Fatalf("table a targets %q after --once, want b", got)
	}
	if ap, _ := b.dp.Counts(); ap < 1 {
		t.Fatal("--once did not apply the data plane")
	}
	if w.sim.SourceDestCheck(w.nats["b"].eni) {
		t.Fatal("--once left source/dest check on")
	}
}

// --dry-run changes nothing: no data plane, no source/dest check, no route write.
func TestDryRunWritesNothing(t *testing.T) {
	w := newWorld(t, "a", "b")
	b := w.newAgent("b", func(c *config.Config) { c.DryRun = true }, Options{Once: true})
	b.peers.Fail(w.nats["a"].id, errTimeout)
	if err := b.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.target("a"); got != "a" {
		t.Fatalf("table a targets %q after a dry run", got)
	}
	if ap, v := b.dp.Counts(); ap+v != 0 {
		t.Fatalf("dry run touched the data plane: %d applies, %d verifies", ap, v)
	}
	st := b.status()
	if len(st.Decisions) != 1 || st.Decisions[0].Result != "dry-run" {
		t.Fatalf("decisions %+v, want one dry-run", st.Decisions)
	}
}

// Bad configuration fails in New, before any change.
func TestNewRejectsBadConfig(t *testing.T) {
	w := newWorld(t, "a", "b")
	for _, tc := range []struct {
		name string
		mod  func(*config.Config)
		want string
	}{
		{"untagged table", func(c *config.Config) { c.RouteTables = []string{"rtb-0123456789abcdef0"} }, "not tagged"},
		{"unknown cluster", func(c *config.Config) { c.Cluster = "nosuch" }, "headnat:cluster=nosuch"},
		{"bad schedule", func(c *config.Config) { c.Probe.Timeout = time.Second }, "probe.timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newAgentErr(w, "a", tc.mod)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if n := w.gate.count("ModifyNetworkInterfaceAttribute") + w.gate.count("ReplaceRoute") + w.gate.count("CreateRoute"); n != 0 {
				t.Fatalf("%d writes after bad configuration", n)
			}
		})
	}
}

// The data plane admits the agent's listen port only from the VPC, extra sources, loopback
// and agent_source_cidrs; an ephemeral listen port gets no INPUT rules.
func TestResolveAgentPort(t *testing.T) {
	w := newWorld(t, "a", "b")
	for _, tc := range []struct {
		listen string
		port   int
	}{{":7070", 7070}, {"127.0.0.1:0", 0}, {"198.18.0.10:17070", 17070}} {
		a := w.newAgent("a", func(c *config.Config) {
			c.Listen = tc.listen
			c.AgentSourceCIDRs = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
		}, Options{})
		sp := a.res.Spec
		if sp.AgentPort != tc.port || (tc.port != 0) != (len(sp.AgentSourceCIDRs) == 1) {
			t.Errorf("listen %s: agent port %d, sources %v; want port %d", tc.listen, sp.AgentPort, sp.AgentSourceCIDRs, tc.port)
		}
	}
	if _, err := newAgentErr(w, "a", func(c *config.Config) { c.Listen = "nope" }); err == nil {
		t.Error("listen without a port accepted")
	}
}

// A claim decided on a stale view ("no default route") meets a route a peer made meanwhile:
// the agent does not replace it, re-reads, and leaves the table with its (restarting) owner.
func TestStaleClaimDoesNotReplace(t *testing.T) {
	w := newWorld(t, "a", "b")
	ctx := context.Background()
	b := w.newAgent("b", func(c *config.Config) { c.Probe.RestartGrace = time.Minute }, Options{})
	b.mu.Lock()
	for i := range b.view.cluster.Tables {
		if tb := &b.view.cluster.Tables[i]; tb.ID == w.tables["a"] {
			tb.State, tb.Target = cloud.RouteMissing, cloud.RouteTarget{}
		}
	}
	b.mu.Unlock()
	b.peers.Fail(w.nats["a"].id, syscall.ECONNREFUSED)
	b.rise(ctx)
	w.ticks(ctx, b, b.cfg.Probe.Fall+3)
	if got, _ := w.target("a"); got != "a" {
		t.Fatalf("table a targets %q, want a: a stale claim replaced a live route", got)
	}
	if n := w.gate.count("ReplaceRoute"); n != 0 {
		t.Fatalf("%d ReplaceRoute calls, want none", n)
	}
	st := b.status()
	if len(st.Decisions) != 1 || st.Decisions[0].Result != "stale" {
		t.Fatalf("decisions %+v, want one stale claim", st.Decisions)
	}
	b.mu.Lock()
	held := b.view.Held()
	b.mu.Unlock()
	if len(held) != 1 {
		t.Fatalf("after the re-read b holds %v, want only its own table", held)
	}
}
