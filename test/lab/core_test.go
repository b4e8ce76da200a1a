package lab

// The agent's core loops under stress, read from its /metrics: peer probing keeps its
// cadence while EC2 is slow and route writes are in flight, and a long partition leaks no
// half-open sockets, goroutines, descriptors or memory.

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/headnat/headnat/test/vpcsim"
)

const (
	// coreProbeInterval is set explicitly (it is also the agents' default) so the cadence the
	// tests expect does not drift with the default.
	coreProbeInterval = 200 * time.Millisecond
	probeRounds       = "headnat_peer_probe_rounds_total"
	probeGaps         = "headnat_peer_probe_round_gap_seconds"
	// maxProbeGap: no probe round may start longer than this after the previous one. A route
	// write under the injected latency lasts longer, so a probe loop that waits for one fails.
	maxProbeGap = 1.0 // seconds; a bucket bound of the gap histogram
	// minRoundShare of the rounds the interval allows must have started.
	minRoundShare = 0.7
)

// probeReading is one reading of an agent's probe-round metrics.
type probeReading struct {
	sent, got time.Time // the scrape was sent, answered
	rounds    float64
	gaps      float64 // observed gaps
	gapsOK    float64 // observed gaps <= maxProbeGap
}

func readProbes(t *testing.T, l *Lab, site string) probeReading {
	t.Helper()
	sent := time.Now()
	m, err := l.AgentMetrics(context.Background(), site)
	if err != nil {
		t.Fatalf("agent %s /metrics: %v", site, err)
	}
	r := probeReading{sent: sent, got: time.Now()}
	if r.rounds, err = m.Value(probeRounds); err == nil {
		if r.gaps, err = m.Value(probeGaps + "_count"); err == nil {
			r.gapsOK, err = m.Bucket(probeGaps, maxProbeGap)
		}
	}
	if err != nil {
		t.Fatalf("agent %s: %v", site, err)
	}
	return r
}

// checkCadence fails unless, between two readings, the agent started at least minRoundShare
// of the rounds its interval allows and no round started more than maxProbeGap after the one
// before.
func checkCadence(t *testing.T, site, during string, from, to probeReading) {
	t.Helper()
	window := to.sent.Sub(from.got)
	rounds := to.rounds - from.rounds
	want := math.Floor(minRoundShare * float64(window) / float64(coreProbeInterval))
	if rounds < want {
		t.Errorf("nat-%s %s: %.0f probe rounds in %s, want at least %.0f (%.0f%% of one per %s)",
			site, during, rounds, window.Round(time.Millisecond), want, 100*minRoundShare, coreProbeInterval)
	}
	if gaps, ok := to.gaps-from.gaps, to.gapsOK-from.gapsOK; ok != gaps {
		t.Errorf("nat-%s %s: %.0f of %.0f gaps between probe rounds were longer than %gs",
			site, during, gaps-ok, gaps, maxProbeGap)
	}
	t.Logf("nat-%s %s: %.0f probe rounds in %s (%.0f gaps, %.0f over %gs)",
		site, during, rounds, window.Round(time.Millisecond), to.gaps-from.gaps, (to.gaps-from.gaps)-(to.gapsOK-from.gapsOK), maxProbeGap)
}

// With 2s of latency on every EC2 call (longer than the agent's own per-attempt timeout, so
// no call even completes for it): (a) both agents keep probing every interval while their
// cluster refreshes hang; (b) when nat-a dies while holding both tables, nat-b writes both at
// once rather than one after the other, takes them within a bounded time, and keeps probing
// while the writes are in flight.
func TestProbingIgnoresSlowEC2(t *testing.T) {
	const (
		latency  = 2 * time.Second
		window   = 10 * time.Second
		takeover = 8 * time.Second // detection (~1s) and a slow write, generously
		// Both tables are decided in the same round, so their writes start together; one
		// after the other they would be a whole (timed-out) write apart, 2s or more.
		together = 500 * time.Millisecond
	)
	// A failback_after of an hour keeps table b where the test puts it.
	l := ownLab(t, Options{Name: "slowec2", FailbackAfter: time.Hour,
		AgentEnv: []string{"HEADNAT_PROBE_INTERVAL=" + coreProbeInterval.String()}})
	ctx := context.Background()
	a, b := l.MustSite("a"), l.MustSite("b")

	// Table b on nat-a, as after an earlier failover: both tables now depend on nat-a. Both
	// agents must see it before EC2 turns slow (their refreshes will not complete after).
	if err := l.Sim.SetRoute(b.RouteTable, "0.0.0.0/0", a.ENI); err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Sites() {
		if err := waitFor(30*time.Second, func() bool {
			st, err := l.AgentStatus(ctx, s.Name)
			if err != nil {
				return false
			}
			for _, tb := range st.Tables {
				if tb.ID == b.RouteTable {
					return tb.TargetENI == a.ENI
				}
			}
			return false
		}); err != nil {
			t.Fatalf("nat-%s does not see private-b on nat-a: %v", s.Name, err)
		}
	}
	if site, _ := l.Target(b.RouteTable); site != a.Name {
		t.Fatalf("private-b targets %q, want a (nat-b failed back?)", site)
	}

	l.Sim.SetFaults(vpcsim.Faults{Latency: latency})
	t.Cleanup(func() { l.Sim.SetFaults(vpcsim.Faults{}) })

	// (a) Probing keeps its interval while every EC2 call hangs.
	slow := time.Now()
	before := map[string]probeReading{}
	for _, s := range l.Sites() {
		before[s.Name] = readProbes(t, l, s.Name)
	}
	if err := Sleep(ctx, window); err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Sites() {
		checkCadence(t, s.Name, "with EC2 slow", before[s.Name], readProbes(t, l, s.Name))
	}
	// The window proves something only if the agents were waiting on EC2 during it.
	for _, s := range l.Sites() {
		n := 0
		for _, r := range l.Requests(slow) {
			if r.Site == s.Name && !r.Mutating() {
				n++
			}
		}
		if n == 0 {
			t.Fatalf("nat-%s made no EC2 describe call during the slow window", s.Name)
		}
	}

	// (b) nat-a dies holding both tables: nat-b must write both, with EC2 still slow.
	killed := time.Now()
	start := readProbes(t, l, b.Name)
	if err := l.Kill(a.Name); err != nil {
		t.Fatal(err)
	}
	// Read nat-b's probe rounds throughout the take-over (bounded in count and time).
	var samples []probeReading
	for deadline := killed.Add(takeover); time.Now().Before(deadline) && len(samples) < 200; {
		samples = append(samples, readProbes(t, l, b.Name))
		if err := Sleep(ctx, coreProbeInterval); err != nil {
			t.Fatal(err)
		}
	}
	end := readProbes(t, l, b.Name)

	// Both tables were taken within the bound.
	moved := map[string]time.Time{}
	for _, m := range l.MovesSince(killed) {
		if m.TargetAZ == b.Name && moved[m.Table].IsZero() {
			moved[m.Table] = m.Time
		}
	}
	for _, s := range l.Sites() {
		if moved[s.RouteTable].IsZero() {
			t.Fatalf("private-%s not moved to nat-b within %s of nat-a's death: moves %+v", s.Name, takeover, l.MovesSince(killed))
		}
		t.Logf("private-%s moved to nat-b %s after nat-a died", s.Name, moved[s.RouteTable].Sub(killed).Round(time.Millisecond))
		if d := moved[s.RouteTable].Sub(killed); d > takeover {
			t.Errorf("private-%s moved to nat-b %s after nat-a died, want within %s", s.Name, d, takeover)
		}
	}

	// Both writes started together. The simulator logs a write when it ends, and under the
	// latency every attempt ends when the agent's attempt timeout gives up on it, the same
	// time after its start: the gap between the first logged write of each table is the gap
	// between their starts.
	first := map[string]time.Time{}
	for _, c := range l.Sim.Calls() {
		if c.Time.After(killed) && c.Action == "ReplaceRoute" && first[c.Params["RouteTableId"]].IsZero() {
			first[c.Params["RouteTableId"]] = c.Time
		}
	}
	ta, tb := first[a.RouteTable], first[b.RouteTable]
	if ta.IsZero() || tb.IsZero() {
		t.Fatalf("want a ReplaceRoute of both tables after nat-a died, first writes: %v", first)
	}
	apart := ta.Sub(tb).Abs()
	t.Logf("first writes of private-a and private-b ended %s apart", apart.Round(time.Millisecond))
	if apart > together {
		t.Errorf("the writes of private-a and private-b started %s apart, want within %s: they ran one after the other",
			apart.Round(time.Millisecond), together)
	}

	// nat-b kept probing while a write was in flight. The first write request started at
	// writeStart and no write ended before the first logged one (writeEnd): a write was in
	// flight in between.
	var writeStart, writeEnd time.Time
	for _, r := range l.Requests(killed) { // in the order they ended
		if r.Site == b.Name && r.Action == "ReplaceRoute" && (writeStart.IsZero() || r.Time.Before(writeStart)) {
			writeStart = r.Time
		}
	}
	writeEnd = ta
	if tb.Before(writeEnd) {
		writeEnd = tb
	}
	if writeStart.IsZero() || !writeEnd.After(writeStart) {
		t.Fatalf("no ReplaceRoute request from nat-b before the first write ended (%s)", writeEnd)
	}
	var in []probeReading
	for _, smp := range samples {
		if !smp.sent.Before(writeStart) && !smp.got.After(writeEnd) {
			in = append(in, smp)
		}
	}
	t.Logf("first write in flight for %s, %d readings of nat-b inside", writeEnd.Sub(writeStart).Round(time.Millisecond), len(in))
	if len(in) < 2 {
		t.Fatalf("fewer than two readings of nat-b while its first write was in flight (%s to %s)", writeStart, writeEnd)
	}
	if d := in[len(in)-1].sent.Sub(in[0].got); d >= 2*coreProbeInterval {
		checkCadence(t, b.Name, "while its first route write was in flight", in[0], in[len(in)-1])
	} else if in[len(in)-1].rounds <= in[0].rounds {
		t.Errorf("nat-b started no probe round while its first route write was in flight")
	}
	checkCadence(t, b.Name, "during the take-over", start, end)

	waitTarget(t, l, a.RouteTable, b.Name, 10*time.Second)
	waitTarget(t, l, b.RouteTable, b.Name, 10*time.Second)
}

// procFigures are what an agent holds: from its /metrics, and the half-open connections to
// its peer in its namespace.
type procFigures struct {
	goroutines, fds, rss float64
	synSent              int
	probeFailures        float64
}

func (f procFigures) String() string {
	return fmt.Sprintf("goroutines %.0f, open fds %.0f, rss %.1f MB, SYN-SENT to peer %d",
		f.goroutines, f.fds, f.rss/(1<<20), f.synSent)
}

func readFigures(t *testing.T, l *Lab, s *Site) procFigures {
	t.Helper()
	peer := l.Other(s)
	m, err := l.AgentMetrics(context.Background(), s.Name)
	if err != nil {
		t.Fatalf("agent %s /metrics: %v", s.Name, err)
	}
	var f procFigures
	for name, p := range map[string]*float64{
		"go_goroutines":                 &f.goroutines,
		"process_open_fds":              &f.fds,
		"process_resident_memory_bytes": &f.rss,
	} {
		if *p, err = m.Value(name); err != nil {
			t.Fatalf("agent %s: %v", s.Name, err)
		}
	}
	// Absent until the first failure.
	f.probeFailures = m[fmt.Sprintf("headnat_probe_failures_total{target=%q}", peer.InstanceID)]
	if f.synSent, err = l.SynSent(s.Name, peer.NATIP, AgentPort); err != nil {
		t.Fatalf("nat-%s: %v", s.Name, err)
	}
	return f
}

// A 3-minute partition between the NAT instances: every peer probe's SYN is dropped, five a
// second. Each probe's dial must end with its timeout: an unbounded dial lingers for the
// kernel's whole SYN retry time (about two minutes), holding a socket in SYN-SENT, a
// descriptor and goroutines, so that hundreds pile up.
func TestPartitionDoesNotLeak(t *testing.T) {
	const (
		partition    = 3 * time.Minute
		every        = 30 * time.Second
		maxSynSent   = 10
		moreRoutines = 30
		moreFDs      = 30
		moreRSS      = 15 << 20
	)
	l := ownLab(t, Options{Name: "leak", AgentEnv: []string{"HEADNAT_PROBE_INTERVAL=" + coreProbeInterval.String()}})
	ctx := context.Background()

	// Idle figures, once the agents have settled: the highest of a few readings.
	if err := Sleep(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	idle := map[string]procFigures{}
	for i := 0; i < 3; i++ {
		for _, s := range l.Sites() {
			f, was := readFigures(t, l, s), idle[s.Name]
			was.goroutines, was.fds, was.rss = max(was.goroutines, f.goroutines), max(was.fds, f.fds), max(was.rss, f.rss)
			was.synSent = max(was.synSent, f.synSent)
			idle[s.Name] = was
		}
		if err := Sleep(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range l.Sites() {
		t.Logf("nat-%s idle: %s", s.Name, idle[s.Name])
	}

	if err := l.Partition(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Heal() })
	parted := time.Now()
	start := map[string]procFigures{}
	for _, s := range l.Sites() {
		start[s.Name] = readFigures(t, l, s)
	}
	var last map[string]procFigures
	for i := 1; i <= int(partition/every); i++ {
		if err := Sleep(ctx, time.Until(parted.Add(time.Duration(i)*every))); err != nil {
			t.Fatal(err)
		}
		last = map[string]procFigures{}
		for _, s := range l.Sites() {
			f, base := readFigures(t, l, s), idle[s.Name]
			last[s.Name] = f
			at := time.Since(parted).Round(time.Second)
			t.Logf("nat-%s after %s of partition: %s", s.Name, at, f)
			if f.synSent > maxSynSent {
				t.Errorf("nat-%s after %s: %d sockets in SYN-SENT to its peer, want at most %d", s.Name, at, f.synSent, maxSynSent)
			}
			if f.goroutines > base.goroutines+moreRoutines {
				t.Errorf("nat-%s after %s: %.0f goroutines, idle %.0f: more than %d more", s.Name, at, f.goroutines, base.goroutines, moreRoutines)
			}
			if f.fds > base.fds+moreFDs {
				t.Errorf("nat-%s after %s: %.0f open fds, idle %.0f: more than %d more", s.Name, at, f.fds, base.fds, moreFDs)
			}
			if f.rss > base.rss+moreRSS {
				t.Errorf("nat-%s after %s: rss %.1f MB, idle %.1f MB: more than %d MB more", s.Name, at, f.rss/(1<<20), base.rss/(1<<20), moreRSS>>20)
			}
		}
	}
	// The figures mean something only if the agents kept probing their unreachable peer.
	for _, s := range l.Sites() {
		failed := last[s.Name].probeFailures - start[s.Name].probeFailures
		t.Logf("nat-%s: %.0f failed probes of its peer during the partition", s.Name, failed)
		if want := 0.5 * float64(partition) / float64(coreProbeInterval); failed < want {
			t.Errorf("nat-%s: %.0f failed probes of its peer during the %s partition, want at least %.0f", s.Name, failed, partition, want)
		}
	}
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
}
