package lab

// The agent's operator-facing modes in the lab: --once, --dry-run, the restart grace and
// `headnat status`.

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// With nat-b dead and no agent running anywhere: --once --dry-run logs the take-over it would
// do and writes nothing; --once then does exactly that one write and exits 0.
func TestOnceAndDryRun(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()
	a, b := l.MustSite("a"), l.MustSite("b")
	if err := l.StopAgent(a.Name, syscall.SIGKILL, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Kill(b.Name); err != nil {
		t.Fatal(err)
	}
	env := []string{"HEADNAT_LISTEN=:7071"}

	start := time.Now()
	code, out, err := l.RunAgent(ctx, a.Name, 60*time.Second, []string{"--once", "--dry-run"}, env...)
	if err != nil || code != 0 {
		t.Fatalf("--once --dry-run: exit %d, %v\n%s", code, err, out)
	}
	if !strings.Contains(out, "dry run: would point route") || !strings.Contains(out, b.RouteTable) {
		t.Fatalf("--dry-run did not log the take-over of %s:\n%s", b.RouteTable, out)
	}
	for _, r := range l.Requests(start) {
		if r.Mutating() {
			t.Errorf("--dry-run made a mutating call: %+v", r)
		}
	}
	if site, _ := l.Target(b.RouteTable); site != b.Name {
		t.Fatalf("private-b moved to %q during --dry-run", site)
	}

	start = time.Now()
	code, out, err = l.RunAgent(ctx, a.Name, 60*time.Second, []string{"--once"}, env...)
	if err != nil || code != 0 {
		t.Fatalf("--once: exit %d, %v\n%s", code, err, out)
	}
	if site, _ := l.Target(b.RouteTable); site != a.Name {
		t.Fatalf("private-b targets %q after --once, want a\n%s", site, out)
	}
	if ws := routeWritesSince(l, start); len(ws) != 1 || ws[0].Params["RouteTableId"] != b.RouteTable {
		t.Fatalf("--once route writes: %+v, want exactly one to %s", ws, b.RouteTable)
	}
}

// An agent that stays down while its host still answers keeps its table for
// probe.restart_grace, then loses it. (StopAgent keeps it down: the lab restarts only agents
// that exit on their own or Crash.)
func TestRestartGraceExpires(t *testing.T) {
	const grace = 3 * time.Second
	l := ownLab(t, Options{Name: "grace", FailbackAfter: testFailback, AgentEnv: []string{"HEADNAT_PROBE_RESTART_GRACE=" + grace.String()}})
	a, b := l.MustSite("a"), l.MustSite("b")
	if err := l.StopAgent(a.Name, syscall.SIGKILL, 0); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitTarget(t, l, a.RouteTable, b.Name, 30*time.Second)
	m, err := l.WaitMove(context.Background(), a.RouteTable, b.Name, killed, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := m.Time.Sub(killed); d < grace {
		t.Fatalf("private-a moved %s after the agent died, before the %s grace", d, grace)
	}
}

// `headnat status` run on a NAT instance prints every route table with the instance serving it.
func TestStatusCommand(t *testing.T) {
	l := sharedLab(t)
	a := l.MustSite("a")
	// The agent's view of a table lags the VPC by up to one refresh.
	var out, problem string
	for range 20 {
		out, problem = a.NAT.MustRun(t, l.bin, "status", "--addr", "127.0.0.1:7070"), ""
		for _, want := range []string{"cluster ", "ROUTE TABLE", "healthy"} {
			if !strings.Contains(out, want) {
				t.Fatalf("status output lacks %q:\n%s", want, out)
			}
		}
		for _, s := range l.Sites() {
			var line string
			for _, ln := range strings.Split(out, "\n") {
				if strings.HasPrefix(ln, s.RouteTable) {
					line = ln
				}
			}
			if !strings.Contains(line, s.InstanceID) || !strings.Contains(line, "active") {
				problem = fmt.Sprintf("table %s should be served by %s", s.RouteTable, s.InstanceID)
			}
		}
		if problem == "" {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s:\n%s", problem, out)
}

// SIGTERM hands the routes over before the agent exits: it reports draining, the peer takes
// its table at once, and it exits as soon as no table targets it.
func TestSIGTERMHandsRoutesOver(t *testing.T) {
	l := sharedLab(t)
	a, b := l.MustSite("a"), l.MustSite("b")
	start := time.Now()
	if err := l.StopAgent(a.Name, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	exited := time.Now()
	if l.AgentRunning(a.Name) {
		t.Fatal("agent still running after SIGTERM and its grace")
	}
	if site, _ := l.Target(a.RouteTable); site != b.Name {
		t.Fatalf("private-a targets %q after nat-a's agent drained, want b", site)
	}
	var handedOver bool
	for _, m := range l.Moves() {
		if m.Table == a.RouteTable && m.TargetAZ == b.Name && m.Time.After(start) && m.Time.Before(exited) {
			handedOver = true
		}
	}
	if !handedOver {
		t.Fatalf("private-a did not move to nat-b between SIGTERM and exit: %+v", l.Moves())
	}
	if d := exited.Sub(start); d > 15*time.Second {
		t.Fatalf("drain took %s, beyond its 15s deadline", d)
	}
}
