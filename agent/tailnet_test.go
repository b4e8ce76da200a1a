package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/health"
)

// partition cuts a from peer over the VPC; peer still answers healthy over the tailnet.
func (w *world) partition(a *agentOf, peer string) {
	a.peers.Fail(w.nats[peer].id, errTimeout)
	a.tailnet.Answer(w.nats[peer].id, w.healthyAnswer(peer))
}

// tableStatus is a's /status entry for table short name.
func (w *world) tableStatus(a *agentOf, table string) api.TableStatus {
	for _, ts := range a.status().Tables {
		if ts.ID == w.tables[table] {
			return ts
		}
	}
	w.t.Fatalf("no table %s in /status", table)
	return api.TableStatus{}
}

// Both NATs cut from each other over the VPC, both healthy over the tailnet: for five minutes
// of fake time (10 x failback_after) nothing moves, each keeps its home table, each logs the
// partition once, and /status says "partitioned".
func TestPartitionOverTailnetMovesNothing(t *testing.T) {
	w := newWorld(t, "a", "b")
	ctx := context.Background()
	a, b := w.newTailnetAgent("a", nil), w.newTailnetAgent("b", nil)
	w.partition(a, "b")
	w.partition(b, "a")
	a.rise(ctx)
	b.rise(ctx)
	w.runAll(ctx, 5*time.Minute, a, b)
	if n := w.writes(); n != 0 {
		t.Fatalf("%d route writes under a partition the tailnet corroborates, want 0", n)
	}
	for _, tb := range []string{"a", "b"} {
		if got, _ := w.target(tb); got != tb {
			t.Errorf("table %s targets %q, want %s", tb, got, tb)
		}
	}
	for _, ag := range []*agentOf{a, b} {
		if n := strings.Count(ag.logs.String(), "peer partitioned"); n != 1 {
			t.Errorf("agent %s logged the partition %d times, want once", ag.res.Identity.InstanceID, n)
		}
	}
	st := b.status()
	if p := st.Peers[0]; !strings.HasPrefix(p.PresumedAlive, "partitioned") || p.Via != api.ViaTailnet || !p.TailnetReachable || p.Healthy {
		t.Errorf("b's /status peer entry %+v, want a partitioned peer reached over the tailnet", p)
	}
	if r := w.tableStatus(b, "a").PreferredReason; !strings.Contains(r, "partitioned") {
		t.Errorf("b's reason for table a %q does not say a is partitioned", r)
	}
}

// The home instance comes back while its table sits on the other NAT, and the VPC path between
// them is cut: it does not fail the table back across the partition (its /status says what it
// waits for), and does once the VPC path is back.
func TestPartitionedHomeInstanceFailsBackAfterHeal(t *testing.T) {
	w := newWorld(t, "a", "b")
	if err := w.sim.SetRoute(w.tables["a"], "0.0.0.0/0", w.nats["b"].eni); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, b := w.newTailnetAgent("a", nil), w.newTailnetAgent("b", nil)
	w.partition(a, "b")
	w.partition(b, "a")
	a.rise(ctx)
	b.rise(ctx)
	w.runAll(ctx, 3*time.Minute, a, b)
	if n := w.writes(); n != 0 {
		t.Fatalf("%d route writes across the partition, want 0", n)
	}
	if p := w.tableStatus(a, "a").Pending; !strings.Contains(p, "no fail-back across a partition") {
		t.Errorf("a's pending fail-back %q does not say it waits for the partition", p)
	}
	a.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
	b.peers.Answer(w.nats["a"].id, w.healthyAnswer("a"))
	w.runAll(ctx, time.Minute, a, b)
	if got, _ := w.target("a"); got != "a" || w.writes() != 1 {
		t.Fatalf("after the heal table a targets %q after %d writes, want a after one fail-back", got, w.writes())
	}
	if d := a.status().Decisions; len(d) != 1 || d[0].Kind != "failback" {
		t.Errorf("a's decisions %+v, want one fail-back", d)
	}
}

// A partitioned peer whose tailnet path flaps (answers lost, its address missing for a round)
// keeps its table: the tailnet verdict has rise/fall too. Once it fails on both paths, its table
// is taken within the detection bound, fall x interval + timeout, as without a tailnet.
func TestTailnetFlapThenDeadOnBothPaths(t *testing.T) {
	w := newWorld(t, "a", "b")
	ctx := context.Background()
	b := w.newTailnetAgent("b", nil)
	w.partition(b, "a")
	b.rise(ctx)
	w.runAll(ctx, time.Minute, b)
	ida := w.nats["a"].id
	for i := range 300 { // a minute of rounds: lost, no address, answered, ...
		switch i % 3 {
		case 0:
			b.tailnet.Fail(ida, errTimeout)
		case 1:
			b.tailnetIPs.setOff(true)
		case 2:
			b.tailnetIPs.setOff(false)
			b.tailnet.Answer(ida, w.healthyAnswer("a"))
		}
		w.runAll(ctx, b.cfg.Probe.Interval, b)
	}
	if n := w.writes(); n != 0 {
		t.Fatalf("%d route writes while the tailnet path flapped, want 0", n)
	}
	if n := strings.Count(b.logs.String(), "partitioned"); n != 1 {
		t.Errorf("the partition logged %d times through the flapping, want once", n)
	}
	b.tailnet.Fail(ida, errTimeout)
	start, bound := w.clock.Now(), b.cfg.Probe.Health().DetectionBound()
	for w.clock.Now().Sub(start) <= bound {
		if got, _ := w.target("a"); got == "b" {
			break
		}
		w.runAll(ctx, b.cfg.Probe.Interval, b)
	}
	if got, _ := w.target("a"); got != "b" {
		t.Fatalf("table a targets %q %s after a went silent on both paths, want b within %s", got, w.clock.Now().Sub(start), bound)
	}
	if d := b.status().Decisions; len(d) != 1 || d[0].Kind != "takeover" || strings.Contains(d[0].Reason, "partitioned") {
		t.Errorf("decisions %+v, want one take-over of a dead target", d)
	}
	if !strings.Contains(b.logs.String(), "no longer partitioned: no healthy answer over the tailnet either") {
		t.Error("the end of the partition was not logged")
	}
}

// With a tailnet, "took a table while failing my probes" is no evidence: a peer silent on both
// paths is dead even if a table moved to it (compare TestPartitionEvidence, without a tailnet).
// Cut on both paths, a peer seen taking a table is partitioned, not dead (the fallback
// evidence): it keeps the table for 2 x failback_after instead of the two sides taking each
// other's tables back and forth.
func TestCutOnBothPathsFallsBackToEvidence(t *testing.T) {
	w := newWorld(t, "a", "b")
	ctx := context.Background()
	b := w.newTailnetAgent("b", nil)
	b.peers.Fail(w.nats["a"].id, errTimeout)
	b.tailnet.Fail(w.nats["a"].id, errTimeout)
	b.rise(ctx)
	w.ticks(ctx, b, b.cfg.Probe.Fall)
	if got, _ := w.target("a"); got != "b" {
		t.Fatalf("table a targets %q, want b", got)
	}
	if err := w.sim.SetRoute(w.tables["a"], "0.0.0.0/0", w.nats["a"].eni); err != nil {
		t.Fatal(err)
	}
	b.refresh(ctx)
	writes := w.writes()
	w.ticks(ctx, b, int(2*b.cfg.FailbackAfter/b.cfg.Probe.Interval)-5)
	if got, _ := w.target("a"); got != "a" || w.writes() != writes {
		t.Fatalf("within 2 x failback_after table a targets %q after %d writes, want a and none (fallback evidence)", got, w.writes()-writes)
	}
	if r := w.tableStatus(b, "a").PreferredReason; !strings.Contains(r, "took a route table while failing my probes") {
		t.Errorf("preferred-owner reason %q does not say why a is presumed alive", r)
	}
	w.ticks(ctx, b, 10)
	if got, _ := w.target("a"); got != "b" {
		t.Fatalf("after the evidence window table a targets %q, want b", got)
	}
}

func TestNewNeedsTailnetIPsWithTailnet(t *testing.T) {
	w := newWorld(t, "a", "b")
	_, err := New(context.Background(), w.newAgent("a", nil, Options{}).cfg, Deps{
		Cloud: FixedIdentity{}, Dataplane: &FakeDataplane{}, TailnetPeers: &health.FakePath{},
	}, Options{})
	if err == nil || !strings.Contains(err.Error(), "TailnetIPs") {
		t.Fatalf("error %v, want one naming Deps.TailnetIPs", err)
	}
}
