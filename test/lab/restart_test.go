package lab

// The lab runs the agents as the AMI's systemd unit does: a crashed agent is restarted after
// RestartSec, a killed instance stays down until revived.

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
)

// A crashed agent (SIGKILL, host untouched) is restarted by the lab after RestartSec, adopts its
// routes, and no route table moves at all: peers wait restart_grace for it.
func TestCrashRestartsAgentNoRouteMove(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()
	a := l.MustSite("a")
	before, err := l.Agent(a.Name)
	if err != nil || before.State != ProcRunning {
		t.Fatalf("agent a before the crash: %+v, %v", before, err)
	}
	start := time.Now()
	pid, err := l.Crash(a.Name)
	if err != nil {
		t.Fatal(err)
	}
	if pid != before.Pid {
		t.Fatalf("Crash killed pid %d, the agent was %d", pid, before.Pid)
	}
	var after AgentProc
	if err := waitFor(20*time.Second, func() bool {
		after, _ = l.Agent(a.Name)
		return after.Pid != 0 && after.Pid != pid
	}); err != nil {
		t.Fatalf("agent a not restarted after the crash: %+v: %v", after, err)
	}
	if after.Restarts != before.Restarts+1 {
		t.Fatalf("restarts %d after the crash, want %d", after.Restarts, before.Restarts+1)
	}
	if d := after.Started.Sub(start); d < l.opts.RestartDelay {
		t.Fatalf("agent restarted %s after the crash, before RestartSec=%s", d, l.opts.RestartDelay)
	}
	if err := l.WaitHealthz(ctx, a.Name, 30*time.Second, func(hz api.Healthz, code int) bool {
		return code == 200 && slices.Contains(hz.Tables, a.RouteTable)
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // a few ticks of the restarted agent and of its peer
	if ws := routeWritesSince(l, start); len(ws) != 0 {
		var why []string
		for _, d := range l.Decisions() {
			if !d.Time.Before(start) {
				why = append(why, d.Kind+" "+d.Table+": "+d.Reason)
			}
		}
		t.Fatalf("route writes after the crash (want none: restarted within restart_grace, routes adopted): %+v\nbecause: %q", ws, why)
	}
	for _, s := range l.Sites() {
		if site, _ := l.Target(s.RouteTable); site != s.Name {
			t.Errorf("private-%s targets nat-%s after the crash, want nat-%s", s.AZ, site, s.Name)
		}
	}
}

// A killed instance (link down, agent stopped) is not restarted until revived; killing it again
// changes nothing; crashing its absent agent is an error.
func TestKillStaysDownUntilRevive(t *testing.T) {
	l := sharedLab(t)
	a := l.MustSite("a")
	if err := l.Kill(a.Name); err != nil {
		t.Fatal(err)
	}
	killed, err := l.NATState(a.Name)
	if err != nil {
		t.Fatal(err)
	}
	if killed.LinkUp || killed.Agent.State != ProcStopped || killed.Agent.Pid != 0 {
		t.Fatalf("after kill: %+v, want link down and agent stopped", killed)
	}
	time.Sleep(3 * l.opts.RestartDelay)
	if st, _ := l.NATState(a.Name); st.Agent.State != ProcStopped || st.LinkUp {
		t.Fatalf("%s after kill: %+v; a killed instance must stay down", 3*l.opts.RestartDelay, st)
	}
	if err := l.Kill(a.Name); err != nil {
		t.Fatalf("kill twice: %v", err)
	}
	if again, _ := l.NATState(a.Name); again != killed {
		t.Fatalf("second kill changed the state: %+v, was %+v", again, killed)
	}
	if _, err := l.Crash(a.Name); err == nil || !strings.Contains(err.Error(), "no running agent") {
		t.Fatalf("crash of a killed instance: %v, want an error", err)
	}
	if err := l.Revive(a.Name); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.NATState(a.Name); !st.Up() {
		t.Fatalf("after revive: %+v, want link up and agent running", st)
	}
}

// Revive undoes break-egress and leaves a running agent alone; reviving a healthy instance
// changes nothing.
func TestReviveUndoesBreakEgress(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()
	b := l.MustSite("b")
	healthy, err := l.NATState(b.Name)
	if err != nil || !healthy.Up() {
		t.Fatalf("nat-b at start: %+v, %v", healthy, err)
	}
	if err := l.Revive(b.Name); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.NATState(b.Name); st != healthy {
		t.Fatalf("revive of a healthy instance changed it: %+v, was %+v", st, healthy)
	}
	if err := l.BreakEgress(b.Name); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.NATState(b.Name); !st.EgressBroken {
		t.Fatalf("after break-egress: %+v", st)
	}
	if err := l.WaitHealthz(ctx, b.Name, 30*time.Second, func(_ api.Healthz, code int) bool { return code == 503 }); err != nil {
		t.Fatal(err)
	}
	if err := l.Revive(b.Name); err != nil {
		t.Fatal(err)
	}
	st, _ := l.NATState(b.Name)
	if st.EgressBroken || !st.Up() || st.Agent.Pid != healthy.Agent.Pid {
		t.Fatalf("after revive: %+v; want egress restored and the same agent (pid %d)", st, healthy.Agent.Pid)
	}
	if faults, _ := l.Faults(); len(faults) != 0 {
		t.Fatalf("faults left after revive: %v", faults)
	}
	if err := l.WaitHealthz(ctx, b.Name, 30*time.Second, func(_ api.Healthz, code int) bool { return code == 200 }); err != nil {
		t.Fatal(err)
	}
}
