package lab

// End-to-end tests: real agents (`headnat agent`), the AWS SDK against the simulator, real
// kernel routing. Timeouts here are generous limits; measured figures belong in bench/.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/test/vpcsim"
)

// An instance that dies (its link goes down, its agent with it): the other AZ's agent takes
// its table, and both private subnets reach the internet through the survivor.
func TestInstanceDeathFailsOver(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()
	a, b := l.MustSite("a"), l.MustSite("b")
	// The lab starts the instances with source/dest check on, as EC2 does; the agents turn it off.
	for _, s := range l.Sites() {
		if l.Sim.SourceDestCheck(s.ENI) {
			t.Fatalf("source/dest check of nat-%s still on", s.Name)
		}
	}

	if err := l.Kill(a.Name); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, l, a.RouteTable, b.Name, 30*time.Second)
	for _, host := range l.Sites() {
		if err := l.WaitEgress(ctx, host, b, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// EC2 still sees the instance running: only its data path died.
	if in, _ := l.Sim.Instance(a.InstanceID); in.State != vpcsim.StateRunning {
		t.Fatalf("killed instance is %q in EC2, want running", in.State)
	}
	if err := l.WaitHealthz(ctx, b.Name, 10*time.Second, func(hz api.Healthz, code int) bool {
		return code == 200 && slices.Contains(hz.Tables, a.RouteTable) && slices.Contains(hz.Tables, b.RouteTable)
	}); err != nil {
		t.Fatal(err)
	}
	var takeover bool
	for _, m := range l.Moves() {
		if m.Table == a.RouteTable && m.TargetAZ == b.Name {
			takeover = true
		}
	}
	if !takeover {
		t.Fatalf("no route move of private-a to nat-b in the simulator's log: %+v", l.Moves())
	}
}

// A NAT whose egress is broken reports itself unhealthy (503) and loses its table; its
// subnet egresses through the other AZ.
func TestBrokenEgressHandsTableOver(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()
	a, b := l.MustSite("a"), l.MustSite("b")

	if err := l.BreakEgress(a.Name); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitHealthz(ctx, a.Name, 30*time.Second, func(hz api.Healthz, code int) bool {
		return code == 503 && !hz.Healthy
	}); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, l, a.RouteTable, b.Name, 30*time.Second)
	if err := l.WaitEgress(ctx, a, b, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Nothing moves back while a's egress stays broken.
	time.Sleep(testFailback + 2*time.Second)
	if site, _ := l.Target(a.RouteTable); site != b.Name {
		t.Fatalf("private-a moved back to nat-%s while nat-a's egress is broken", site)
	}
	hz, code, err := l.Healthz(ctx, a.Name)
	if err != nil || code != 503 || slices.Contains(hz.Tables, a.RouteTable) {
		t.Fatalf("nat-a /healthz: %d %+v %v; want 503 and no table", code, hz, err)
	}
}

// An agent SIGKILLed: the kernel keeps forwarding while it is dead, and the restarted agent
// adopts its routes (no route write) without duplicating a single iptables rule.
//
// With the default settings the peer does not take the table while the agent restarts: nat-a's
// kernel still refuses connections to the health port, so its host is up, and the restart
// takes less than probe.restart_grace. StopAgent keeps the agent down for the 3s (the lab
// would restart it after 1s); StartAgent restarts it.
func TestAgentSIGKILLKeepsForwardingAndAdopts(t *testing.T) {
	l := ownLab(t, Options{Name: "sigkill", FailbackAfter: testFailback})
	ctx := context.Background()
	a := l.MustSite("a")

	before := headnatRules(t, a)
	if len(before) == 0 {
		t.Fatal("no headnat iptables rules in nat-a before the kill")
	}
	t.Logf("headnat rules in nat-a:\n%s", strings.Join(before, "\n"))
	start := time.Now()

	// Traffic from both hosts, every 100ms, bounded in count and time.
	var mu sync.Mutex
	var samples []Sample
	tctx, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = l.Traffic(tctx, 100*time.Millisecond, 300, func(s Sample) {
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
		})
	}()

	time.Sleep(time.Second)
	if err := l.StopAgent(a.Name, syscall.SIGKILL, 0); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	time.Sleep(3 * time.Second)
	dead := time.Now()
	if l.AgentRunning(a.Name) {
		t.Fatal("agent still running after SIGKILL")
	}
	if err := l.StartAgent(a.Name); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitHealthz(ctx, a.Name, 30*time.Second, func(hz api.Healthz, code int) bool {
		return code == 200 && slices.Contains(hz.Tables, a.RouteTable)
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // a few ticks of the restarted agent
	stop()
	wg.Wait()

	var during, failed int
	for _, s := range samples {
		if s.Time.Before(killed) || s.Time.After(dead) {
			continue
		}
		during++
		if s.Err != nil || s.Via != s.Site {
			failed++
			t.Errorf("while nat-a's agent was dead: host-%s got %q via %q, err %v", s.Site, s.Seen, s.Via, s.Err)
		}
	}
	if during < 20 {
		t.Fatalf("only %d requests while the agent was dead", during)
	}
	if ws := routeWritesSince(l, start); len(ws) != 0 {
		t.Fatalf("route writes after the kill (want none, routes adopted): %+v", ws)
	}
	after := headnatRules(t, a)
	seen := map[string]int{}
	for _, r := range after {
		seen[r]++
	}
	for r, n := range seen {
		if n > 1 {
			t.Errorf("rule %d times after restart: %s", n, r)
		}
	}
	if !slices.Equal(sortedCopy(before), sortedCopy(after)) {
		t.Errorf("headnat rules changed across the restart:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// Recovery: a revived instance takes its table back after failback_after, not before.
func TestFailbackAfterFailbackAfter(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()
	a, b := l.MustSite("a"), l.MustSite("b")

	if err := l.Kill(a.Name); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, l, a.RouteTable, b.Name, 30*time.Second)
	time.Sleep(time.Second)

	revived := time.Now()
	if err := l.Revive(a.Name); err != nil {
		t.Fatal(err)
	}
	var healthy time.Time
	if err := l.WaitHealthz(ctx, a.Name, 30*time.Second, func(_ api.Healthz, code int) bool { return code == 200 }); err != nil {
		t.Fatal(err)
	}
	healthy = time.Now()
	waitTarget(t, l, a.RouteTable, a.Name, testFailback+45*time.Second)

	back, err := l.WaitMove(ctx, a.RouteTable, a.Name, revived, 5*time.Second)
	if err != nil {
		t.Fatalf("no fail-back move in the simulator's log: %v", err)
	}
	for _, m := range l.MovesSince(revived) {
		if m.Table == a.RouteTable && m.TargetAZ != a.Name {
			t.Fatalf("private-a moved to nat-%s after the revive", m.TargetAZ)
		}
	}
	// The agent counts failback_after from its own first healthy check, which is after the
	// revive and at most one poll before we saw /healthz answer 200.
	if d := back.Time.Sub(revived); d < testFailback {
		t.Fatalf("fail-back %s after the revive, before failback_after=%s", d, testFailback)
	}
	if d := back.Time.Sub(healthy); d < testFailback-500*time.Millisecond {
		t.Fatalf("fail-back %s after nat-a turned healthy, before failback_after=%s", d, testFailback)
	}
	t.Logf("nat-a healthy %s after the revive; fail-back %s after the revive", healthy.Sub(revived).Round(time.Millisecond), back.Time.Sub(revived).Round(time.Millisecond))
	if err := l.WaitEgress(ctx, a, a, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// A partition between the NATs (each healthy, each with egress): over 3x failback_after no
// table moves more than once per failback_after (no fight), and both subnets keep reaching the
// internet.
func TestPartitionNoFight(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()

	start := time.Now()
	if err := l.Partition(); err != nil {
		t.Fatal(err)
	}
	window := 3 * testFailback
	deadline := start.Add(window)
	var failures int
	for time.Now().Before(deadline) {
		for _, s := range l.Sites() {
			if _, err := l.Echo(ctx, s, time.Second); err != nil {
				failures++
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	moves := l.MovesSince(start)
	byTable := map[string][]Move{}
	for _, m := range moves {
		byTable[m.Table] = append(byTable[m.Table], m)
	}
	// The worst case under a full partition is one move of a table per failback_after.
	for table, ms := range byTable {
		for i := 1; i < len(ms); i++ {
			if gap := ms[i].Time.Sub(ms[i-1].Time); gap < testFailback*9/10 {
				t.Errorf("table %s moved twice within %s (failback_after %s): %+v", table, gap, testFailback, ms)
			}
		}
		if max := int(window/testFailback) + 1; len(ms) > max {
			t.Errorf("table %s moved %d times in %s under partition, want at most %d", table, len(ms), window, max)
		}
	}
	t.Logf("%d route moves in %s under partition; %d failed requests", len(moves), window, failures)
	for _, m := range moves {
		t.Logf("  +%s %s private-%s -> nat-%s", m.Time.Sub(start).Round(time.Millisecond), m.Action, m.TableAZ, m.TargetAZ)
	}
	for _, s := range l.Sites() {
		if _, err := l.Echo(ctx, s, 2*time.Second); err != nil {
			t.Errorf("host-%s has no egress under partition: %v", s.Name, err)
		}
	}
}

// EC2 answering 30% of requests with throttling or 5xx: the failover still completes.
func TestFailoverUnderAPIFaults(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()
	a, b := l.MustSite("a"), l.MustSite("b")

	l.Sim.SetFaults(vpcsim.Faults{ThrottleRate: 0.15, ServerErrorRate: 0.15, Seed: 7})
	t.Cleanup(func() { l.Sim.SetFaults(vpcsim.Faults{}) })
	start := time.Now()
	if err := l.Kill(a.Name); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, l, a.RouteTable, b.Name, 60*time.Second)
	if err := l.WaitEgress(ctx, a, b, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var faultedWrites int
	for _, c := range l.Sim.Calls() {
		if c.Faulted && !c.Time.Before(start) {
			faultedWrites++
		}
	}
	reqs := l.Requests(start)
	var failed int
	for _, r := range reqs {
		if r.Status >= 400 {
			failed++
		}
	}
	t.Logf("%d API requests since the kill, %d answered with an error, %d of them mutating calls", len(reqs), failed, faultedWrites)
	if failed == 0 {
		t.Fatal("no request was faulted: the injection did not happen")
	}
}

// Bad configuration: the agent exits non-zero with one clear error and changes nothing (no
// mutating API call, the namespace's iptables untouched).
func TestBadConfigChangesNothing(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()
	b := l.MustSite("b")

	badFile := filepath.Join(t.TempDir(), "headnat.yaml")
	if err := os.WriteFile(badFile, []byte("failback_after: 10s\nprobe:\n  intreval: 1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  []string
		want string // the error must name this
	}{
		{"unknown route table", nil, []string{"HEADNAT_ROUTE_TABLES=rtb-0123456789abcdef0"}, "rtb-0123456789abcdef0"},
		{"invalid CIDR", nil, []string{"HEADNAT_VPC_CIDRS=198.18.0.0/33"}, "198.18.0.0/33"},
		{"unknown setting", nil, []string{"HEADNAT_FAILBACK_AFTR=10s"}, "HEADNAT_FAILBACK_AFTR"},
		{"unknown key in the config file", []string{"--config", badFile}, nil, "intreval"},
		{"no tagged route tables", nil, []string{"HEADNAT_CLUSTER=nosuch"}, "headnat:cluster=nosuch"},
		// The running agent holds :7070 (a later duplicate in the environment wins).
		{"listen port in use", nil, []string{"HEADNAT_LISTEN=:7070"}, "address already in use"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			save := b.NAT.MustRun(t, "iptables-save")
			start := time.Now()
			// Another port, so it cannot collide with the running agent even if it got that far.
			env := append([]string{"HEADNAT_LISTEN=:7071"}, tc.env...)
			code, out, err := l.RunAgent(ctx, b.Name, 30*time.Second, tc.args, env...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if code == 0 {
				t.Fatalf("agent exited 0 with bad config:\n%s", out)
			}
			var errLines []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.HasPrefix(line, "headnat agent: ") {
					errLines = append(errLines, line)
				}
				if strings.Contains(line, "panic") || strings.Contains(line, "goroutine ") {
					t.Fatalf("agent panicked:\n%s", out)
				}
			}
			if len(errLines) != 1 || !strings.Contains(errLines[0], tc.want) {
				t.Fatalf("want exactly one error line naming %q, got:\n%s", tc.want, out)
			}
			for _, r := range l.Requests(start) {
				if r.Site == b.Name && r.Mutating() {
					t.Errorf("mutating call from nat-b while the bad agent ran: %+v", r)
				}
			}
			if now := b.NAT.MustRun(t, "iptables-save"); stripSaveComments(now) != stripSaveComments(save) {
				t.Errorf("iptables changed:\nbefore:\n%s\nafter:\n%s", save, now)
			}
		})
	}
}

// stripSaveComments drops iptables-save's timestamp lines.
func stripSaveComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
