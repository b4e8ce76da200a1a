// Package lablifecycle holds the end-to-end tests of planned replacements in the lab: spot
// notices, the Auto Scaling launch and terminate hooks, an instance refresh, and drains with no
// peer to take over, with real agents and a client in each private subnet sending 20 requests
// per second throughout. A package of its own, so that it runs in parallel with test/lab's.
// Timeouts here are generous limits; measured figures belong in bench/.
package lablifecycle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/test/lab"
	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/vpcsim"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		netns.Sweep()
	}
	os.Exit(m.Run())
}

// rate is the client load of the issue: 20 requests per second from each private subnet.
const rate = 50 * time.Millisecond

// newLab brings up a lab for one test (lab.ForTest), with failback_after 5s.
func newLab(t *testing.T, opts ...func(*lab.Options)) *lab.Lab {
	t.Helper()
	o := lab.Options{FailbackAfter: 5 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	return lab.ForTest(t, o, lab.TestOptions{})
}

// traffic sends 20 requests per second from every private host (bounded: 10 minutes' worth)
// until the returned stop is called; stop waits for the requests in flight.
func traffic(t *testing.T, l *lab.Lab) (*lab.Samples, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	samples := &lab.Samples{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Traffic(ctx, rate, int(10*time.Minute/rate), samples.Add)
	}()
	var stopped bool
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return samples, stop
}

// noFailures fails the test when a request started at or after since failed, unless it was in
// flight when its host's route table moved: a move breaks the connections open through the old
// NAT (their conntrack state is there), which no hand-over can avoid; those are logged. Every
// other request, and so every connection opened after a move, must succeed.
func noFailures(t *testing.T, l *lab.Lab, s *lab.Samples, since time.Time, min int) {
	t.Helper()
	moves := l.MovesSince(since.Add(-time.Second))
	inFlight := func(x lab.Sample) bool {
		for _, m := range moves {
			if m.TableAZ == strings.TrimRight(x.Site, "0123456789") && !m.Time.Before(x.Time) && !m.Time.After(x.End) {
				return true
			}
		}
		return false
	}
	ss := s.Since(since)
	var failed, crossed []string
	for _, x := range ss {
		if x.Err == nil {
			continue
		}
		line := fmt.Sprintf("%s-%s host-%s: %v", x.Time.Format("15:04:05.000"), x.End.Format("15:04:05.000"), x.Site, x.Err)
		if inFlight(x) {
			crossed = append(crossed, line)
		} else {
			failed = append(failed, line)
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d requests failed:\n%s", len(failed), len(ss), strings.Join(failed, "\n"))
	}
	if len(ss) < min {
		t.Errorf("only %d requests, want at least %d", len(ss), min)
	}
	t.Logf("%d requests, %d failed; %d in flight across a route move of their table failed (allowed):%s", len(ss), len(failed), len(crossed),
		strings.Join(append([]string{""}, crossed...), "\n  "))
}

func wait(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	ok, err := lab.Poll(context.Background(), timeout, 100*time.Millisecond, cond)
	if err != nil || !ok {
		t.Fatalf("%s: not within %s (%v)", what, timeout, err)
	}
}

// A spot interruption notice: the NAT drains for the notice's reason, its table moves to the
// other AZ's NAT before the instance goes away, and no request fails.
func TestSpotNoticeHandsOverBeforeTermination(t *testing.T) {
	l := newLab(t)
	a, b := l.MustSite("a"), l.MustSite("b")
	samples, stop := traffic(t, l)
	time.Sleep(2 * time.Second)
	start := time.Now()
	at, err := l.SpotNotice("a", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var reason string
	wait(t, "nat-a reports draining", 20*time.Second, func() bool {
		hz, _, err := l.Healthz(context.Background(), "a")
		reason = hz.DrainReason
		return err == nil && hz.Draining
	})
	if !strings.HasPrefix(reason, api.DrainSpot) {
		t.Fatalf("drain reason %q, want %s", reason, api.DrainSpot)
	}
	move, err := l.WaitMove(context.Background(), a.RouteTable, "b", start, 25*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !move.Time.Before(at) {
		t.Fatalf("table a moved at %s, not before the interruption at %s", move.Time.Format(time.TimeOnly), at.Format(time.TimeOnly))
	}
	if err := l.WaitTerminated(context.Background(), "a", time.Until(at)+30*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	stop()
	noFailures(t, l, samples, start, 300)
	for _, tb := range []string{a.RouteTable, b.RouteTable} {
		if site, st := l.Target(tb); site != "b" || st != vpcsim.RouteActive {
			t.Errorf("table %s -> %q (%s) after the spot interruption, want nat-b", tb, site, st)
		}
	}
}

// An instance refresh of both AZs, one NAT at a time (launch, wait InService, terminate through
// the terminate hook): no request fails, and both tables end on the new instances of their AZs.
func TestInstanceRefreshLosesNothing(t *testing.T) {
	l := newLab(t)
	old := l.NATs()
	samples, stop := traffic(t, l)
	time.Sleep(2 * time.Second)
	start := time.Now()
	news, err := l.Refresh(context.Background(), 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(news) != len(old) {
		t.Fatalf("refresh replaced %d NATs, want %d", len(news), len(old))
	}
	for _, s := range news {
		wait(t, "table "+s.RouteTable+" on nat-"+s.Name, 30*time.Second, func() bool {
			site, st := l.Target(s.RouteTable)
			return site == s.Name && st == vpcsim.RouteActive
		})
	}
	time.Sleep(2 * time.Second)
	stop()
	noFailures(t, l, samples, start, 400)
	for _, o := range old {
		if l.Live(o.Name) {
			t.Errorf("old nat-%s still live after the refresh", o.Name)
		}
	}
	for _, s := range news {
		v, ok := l.LaunchAction(s.Name)
		if !ok || v.Result != vpcsim.ResultContinue || v.TimedOut {
			t.Errorf("nat-%s's launch action %+v: want CONTINUE by its agent", s.Name, v)
		}
	}
}

// The launch hook is completed with CONTINUE by the agent once it is a working NAT; a NAT whose
// egress is broken from the start abandons its launch and never has a route pointed at it.
func TestLaunchHook(t *testing.T) {
	l := newLab(t)
	start := time.Now()
	ok, err := l.Launch(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitInService(context.Background(), ok.Name, time.Minute); err != nil {
		t.Fatal(err)
	}
	v, _ := l.LaunchAction(ok.Name)
	if v.Result != vpcsim.ResultContinue || v.TimedOut {
		t.Fatalf("launch action %+v: want CONTINUE by the agent", v)
	}
	wait(t, "nat-"+ok.Name+" healthy and in service", 30*time.Second, func() bool {
		hz, code, err := l.Healthz(context.Background(), ok.Name)
		return err == nil && code == 200 && hz.Lifecycle == api.LifecycleInService
	})

	broken, err := l.LaunchWith(context.Background(), "a", lab.LaunchOptions{BreakEgress: true,
		AgentEnv: []string{"HEADNAT_LIFECYCLE_LAUNCH_TIMEOUT=8s"}})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, "nat-"+broken.Name+" says it is launching", 30*time.Second, func() bool {
		hz, code, err := l.Healthz(context.Background(), broken.Name)
		return err == nil && code != 200 && hz.Lifecycle == api.LifecycleLaunching
	})
	err = l.WaitInService(context.Background(), broken.Name, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "ABANDON") || strings.Contains(err.Error(), "timed out") {
		t.Fatalf("launch with broken egress: %v, want ABANDON by the agent", err)
	}
	wait(t, "nat-"+broken.Name+"'s log says why it abandoned", 15*time.Second, func() bool {
		log, _ := os.ReadFile(l.AgentLog(broken.Name))
		return strings.Contains(string(log), "not ready after") && strings.Contains(string(log), "egress")
	})
	for _, m := range l.MovesSince(start) {
		if m.TargetAZ == broken.Name || m.TargetAZ == ok.Name {
			t.Errorf("route moved to a launched NAT: %+v", m)
		}
	}
}

// A drain with no healthy peer keeps serving: nat-b is dead, nat-a serves both tables and is
// told to terminate. It holds the terminate hook with heartbeats and keeps both tables (no
// request fails); once nat-b is back, it hands over and completes the hook.
func TestDrainWithoutPeerKeepsServing(t *testing.T) {
	l := newLab(t, func(o *lab.Options) {
		o.AgentEnv = append(o.AgentEnv, "HEADNAT_LIFECYCLE_HEARTBEAT_INTERVAL=2s")
	})
	a, b := l.MustSite("a"), l.MustSite("b")
	if err := l.Kill("b"); err != nil {
		t.Fatal(err)
	}
	wait(t, "table b on nat-a", 30*time.Second, func() bool { s, st := l.Target(b.RouteTable); return s == "a" && st == vpcsim.RouteActive })
	samples, stop := traffic(t, l)
	time.Sleep(time.Second)
	start := time.Now()
	terminated := make(chan error, 1)
	go func() { terminated <- l.Terminate(context.Background(), "a", 2*time.Minute) }()
	wait(t, "nat-a reports the blocked drain", 30*time.Second, func() bool {
		hz, _, err := l.Healthz(context.Background(), "a")
		return err == nil && hz.Draining && strings.HasPrefix(hz.DrainReason, api.DrainTargetState)
	})
	time.Sleep(8 * time.Second)
	for _, tb := range []string{a.RouteTable, b.RouteTable} {
		if s, st := l.Target(tb); s != "a" || st != vpcsim.RouteActive {
			t.Fatalf("table %s -> %q (%s): a drain with no peer gave it away", tb, s, st)
		}
	}
	if log, _ := os.ReadFile(l.AgentLog("a")); !strings.Contains(string(log), "DRAIN BLOCKED") {
		t.Error("nat-a's log does not say the drain is blocked")
	}
	if got := l.LifecycleState("a"); got != vpcsim.LifecycleTerminatingWait {
		t.Fatalf("nat-a is %s, want held in Terminating:Wait", got)
	}
	heartbeats := 0
	for _, c := range l.Sim.Calls() {
		if c.Action == "RecordLifecycleActionHeartbeat" && c.Code == "" {
			heartbeats++
		}
	}
	if heartbeats < 2 {
		t.Errorf("%d heartbeats of the terminate hook, want at least 2", heartbeats)
	}
	if err := l.Revive("b"); err != nil {
		t.Fatal(err)
	}
	if err := <-terminated; err != nil {
		t.Fatalf("terminate after nat-b came back: %v", err)
	}
	time.Sleep(2 * time.Second)
	stop()
	noFailures(t, l, samples, start, 400)
	for _, tb := range []string{a.RouteTable, b.RouteTable} {
		if s, st := l.Target(tb); s != "b" || st != vpcsim.RouteActive {
			t.Errorf("table %s -> %q (%s), want nat-b after the hand-over", tb, s, st)
		}
	}
}

// An operator's drain (`headnat drain` over the control socket) moves the table away and keeps
// the NAT up; `headnat undrain` puts it back, and its table returns after failback_after. No
// request fails.
func TestOperatorDrainAndUndrain(t *testing.T) {
	l := newLab(t)
	a := l.MustSite("a")
	samples, stop := traffic(t, l)
	time.Sleep(time.Second)
	start := time.Now()
	out, err := l.Drain(context.Background(), "a", "--reason", "kernel upgrade")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "drained") {
		t.Fatalf("headnat drain said:\n%s", out)
	}
	if s, _ := l.Target(a.RouteTable); s != "b" {
		t.Fatalf("after the drain table a -> %q, want nat-b", s)
	}
	bin, err := lab.FindBinDir("")
	if err != nil {
		t.Fatal(err)
	}
	status := l.MustSite("b").NAT.MustRun(t, filepath.Join(bin, "headnat"), "status", "--addr", "127.0.0.1:7070")
	if !strings.Contains(status, "(operator: kernel upgrade)") {
		t.Errorf("nat-b's headnat status does not show nat-a drained and why:\n%s", status)
	}
	if pid := l.AgentPid("a"); pid == 0 {
		t.Fatal("nat-a's agent exited after an operator's drain")
	}
	if _, err := l.Undrain(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	wait(t, "table a back on nat-a", 30*time.Second, func() bool { s, st := l.Target(a.RouteTable); return s == "a" && st == vpcsim.RouteActive })
	time.Sleep(time.Second)
	stop()
	noFailures(t, l, samples, start, 100)
}
