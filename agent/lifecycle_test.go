package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/test/vpcsim"
)

const (
	testGroup      = "nat-asg"
	testLaunchHook = "nat-launch"
	testDrainHook  = "nat-drain"
)

// lifecycleWorld is a world whose NATs are members of one Auto Scaling group with a launch and
// a terminate hook.
func lifecycleWorld(t *testing.T, names ...string) *world {
	w := newWorld(t, names...)
	var ids []string
	for _, n := range names {
		ids = append(ids, w.nats[n].id)
	}
	w.sim.AddAutoScalingGroup(vpcsim.GroupSpec{Name: testGroup, Instances: ids, Hooks: []vpcsim.HookSpec{
		{Name: testLaunchHook, Transition: vpcsim.TransitionLaunching, HeartbeatTimeout: 2 * time.Minute, DefaultResult: vpcsim.ResultAbandon},
		{Name: testDrainHook, Transition: vpcsim.TransitionTerminating, HeartbeatTimeout: time.Minute, DefaultResult: vpcsim.ResultContinue},
	}})
	return w
}

// lifecycleAgent builds name's agent with its lifecycle: IMDS answers from the returned
// FixedIMDS, the Auto Scaling calls against vpcsim.
func (w *world) lifecycleAgent(name string, mod func(*config.Config)) (*agentOf, *FixedIMDS) {
	w.t.Helper()
	imds := &FixedIMDS{}
	a, err := w.buildWith(name, mod, Options{}, false, func(d *Deps) {
		imds.Client = d.Cloud.(FixedIdentity).Client
		d.Lifecycle = imds
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return a, imds
}

func (w *world) action(token string) vpcsim.LifecycleActionView {
	w.t.Helper()
	v, ok := w.sim.LifecycleAction(token)
	if !ok {
		w.t.Fatalf("no lifecycle action %s", token)
	}
	return v
}

// launching is NAT a in Pending:Wait under the launch hook, its egress failing, with NAT b
// terminated (so a would be preferred for both tables); it returns a's agent, not yet running,
// and the launch action's token.
func launching(t *testing.T, mod func(*config.Config)) (*world, *agentOf, string) {
	t.Helper()
	w := lifecycleWorld(t, "a", "b")
	if err := w.sim.SetInstanceState(w.nats["b"].id, vpcsim.StateTerminated); err != nil {
		t.Fatal(err)
	}
	token, err := w.sim.StartLifecycleAction(testGroup, w.nats["a"].id, testLaunchHook)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := w.lifecycleAgent("a", mod)
	a.egress.Set(errors.New("connection refused"))
	return w, a, token
}

// runSettled runs NAT a's agent beside a healthy NAT b until a is healthy and holds its own
// table; the agent stops when the test ends, or on cancel.
func (w *world) runSettled(t *testing.T, a *agentOf) (context.Context, context.CancelFunc, <-chan error) {
	t.Helper()
	a.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := runAgent(ctx, a)
	if !w.drive(a, 10*time.Second, func() bool { return a.settled(1, true) }) {
		t.Fatalf("agent a not settled: %+v", a.healthz())
	}
	return ctx, cancel, done
}

// A launching instance holds its launch hook (with heartbeats) while its egress fails, takes
// no route table even where it would be preferred, and completes the hook with CONTINUE once
// it is a working NAT; only then does it claim its table.
func TestLaunchHookCompletedOnceReady(t *testing.T) {
	w, a, token := launching(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAgent(ctx, a)
	// Beyond a third of the hook's 2m heartbeat timeout: at least one heartbeat.
	w.drive(a, 10*time.Second, func() bool { return w.action(token).Heartbeats > 0 })
	if hz := a.healthz(); hz.Healthy || hz.Lifecycle != api.LifecycleLaunching || !strings.Contains(strings.Join(hz.Reasons, ";"), "launching") {
		t.Fatalf("healthz while launching with failing egress: %+v", hz)
	}
	if w.action(token).Heartbeats == 0 || w.action(token).Completed {
		t.Fatalf("launch action %+v: want heartbeats and not completed", w.action(token))
	}
	if n := w.writes(); n != 0 {
		t.Fatalf("%d route writes while launching", n)
	}
	a.egress.Set(nil)
	if !w.drive(a, 10*time.Second, func() bool { return w.action(token).Completed }) {
		t.Fatalf("launch hook not completed after egress recovered: %+v", a.healthz())
	}
	if v := w.action(token); v.Result != vpcsim.ResultContinue {
		t.Fatalf("launch completed with %s, want CONTINUE", v.Result)
	}
	if st := w.sim.GroupInstanceState(testGroup, w.nats["a"].id); st != vpcsim.LifecycleInService {
		t.Fatalf("group state %s, want InService", st)
	}
	if !w.drive(a, 10*time.Second, func() bool { n, st := w.target("b"); return n == "a" && st == vpcsim.RouteActive }) {
		t.Fatalf("in service, a did not take table b of its dead peer: %+v", a.healthz())
	}
	if hz := a.healthz(); !hz.Healthy || hz.Lifecycle != api.LifecycleInService {
		t.Fatalf("healthz in service: %+v", hz)
	}
	cancel()
	_ = w.waitRun(a, done)
}

// An instance that cannot become a NAT within lifecycle.launch_timeout abandons its launch,
// says why, and never claims a route table.
func TestLaunchAbandonedWhenEgressBroken(t *testing.T) {
	w, a, token := launching(t, func(c *config.Config) { c.Lifecycle.LaunchTimeout = 20 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAgent(ctx, a)
	if !w.drive(a, 10*time.Second, func() bool { return w.action(token).Completed }) {
		t.Fatalf("launch not completed within the launch timeout: %+v", a.healthz())
	}
	v := w.action(token)
	if v.Result != vpcsim.ResultAbandon || v.TimedOut {
		t.Fatalf("launch action %+v: want ABANDON by the agent", v)
	}
	logged := func() bool { return strings.Contains(a.logs.String(), "not ready after") }
	if !w.drive(a, 5*time.Second, logged) || !strings.Contains(a.logs.String(), "egress: 0 of 1") {
		t.Fatalf("no reason for the abandon in the log:\n%s", a.logs.String())
	}
	if n := w.writes(); n != 0 {
		t.Fatalf("%d route writes by an abandoned instance", n)
	}
	cancel()
	_ = w.waitRun(a, done)
}

// The terminate hook: the instance drains (reason on /healthz), waits until its table has
// moved, completes the hook with CONTINUE and Run returns nil (exit 0).
func TestTerminateHookDrainsThenCompletes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trigger func(w *world, imds *FixedIMDS) string // returns the terminate action's token ("" none)
		reason  string
	}{
		{"target lifecycle state", func(w *world, imds *FixedIMDS) string {
			token, err := w.sim.StartLifecycleAction(testGroup, w.nats["a"].id, testDrainHook)
			if err != nil {
				w.t.Fatal(err)
			}
			imds.Set(nil, time.Time{}, "Terminated")
			return token
		}, api.DrainTargetState},
		{"pending terminate action only", func(w *world, imds *FixedIMDS) string {
			token, err := w.sim.StartLifecycleAction(testGroup, w.nats["a"].id, testDrainHook)
			if err != nil {
				w.t.Fatal(err)
			}
			return token
		}, api.DrainTerminateHook},
		{"spot notice", func(w *world, imds *FixedIMDS) string {
			imds.Set(&cloud.SpotNotice{Action: "terminate", Time: w.clock.Now().Add(2 * time.Minute)}, time.Time{}, "")
			return ""
		}, api.DrainSpot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := lifecycleWorld(t, "a", "b")
			a, imds := w.lifecycleAgent("a", nil)
			_, _, done := w.runSettled(t, a)
			token := tc.trigger(w, imds)
			if !w.drive(a, 20*time.Second, func() bool { return a.healthz().Draining }) {
				t.Fatalf("not draining: %+v", a.healthz())
			}
			if hz := a.healthz(); !strings.HasPrefix(hz.DrainReason, tc.reason) || hz.Lifecycle != api.LifecycleDraining {
				t.Fatalf("healthz %+v: want drain reason %s", hz, tc.reason)
			}
			for range 5 {
				w.clock.Advance(a.cfg.Probe.Interval)
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case err := <-done:
				t.Fatalf("Run returned (%v) while table a still targets it", err)
			default:
			}
			if token != "" && w.action(token).Completed {
				t.Fatal("terminate hook completed while table a still targets the instance")
			}
			// Peer b takes table a.
			if err := w.sim.SetRoute(w.tables["a"], "0.0.0.0/0", w.nats["b"].eni); err != nil {
				t.Fatal(err)
			}
			if err := w.waitRun(a, done); err != nil {
				t.Fatalf("Run: %v, want nil after the hand-over", err)
			}
			if token != "" {
				if v := w.action(token); !v.Completed || v.Result != vpcsim.ResultContinue || v.TimedOut {
					t.Fatalf("terminate action %+v: want CONTINUE by the agent", v)
				}
			}
		})
	}
}

// With no healthy peer a terminate-hook drain gives nothing away: the instance keeps its
// tables, holds the hook with heartbeats, and says so loudly; once a peer is healthy the
// hand-over proceeds.
func TestTerminateWithoutPeerKeepsServing(t *testing.T) {
	w := lifecycleWorld(t, "a", "b")
	a, imds := w.lifecycleAgent("a", nil)
	a.peers.Fail(w.nats["b"].id, errTimeout)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAgent(ctx, a)
	if !w.drive(a, 10*time.Second, func() bool { return a.settled(2, false) }) {
		t.Fatalf("agent a not settled: %+v", a.healthz())
	}
	token, err := w.sim.StartLifecycleAction(testGroup, w.nats["a"].id, testDrainHook)
	if err != nil {
		t.Fatal(err)
	}
	imds.Set(nil, time.Time{}, "Terminated")
	// Past two heartbeat intervals (a third of 1m each).
	start := w.clock.Now()
	w.drive(a, 10*time.Second, func() bool { return w.clock.Now().Sub(start) > 50*time.Second })
	if v := w.action(token); v.Completed || v.Heartbeats < 2 {
		t.Fatalf("terminate action %+v: want held with heartbeats", v)
	}
	for _, tb := range []string{"a", "b"} {
		if n, st := w.target(tb); n != "a" || st != vpcsim.RouteActive {
			t.Fatalf("table %s points at %q (%s): the draining instance gave it away with no peer", tb, n, st)
		}
	}
	if !strings.Contains(a.logs.String(), "DRAIN BLOCKED") {
		t.Fatalf("no loud log line:\n%s", a.logs.String())
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while serving with no peer", err)
	default:
	}
	// b comes back healthy and takes the tables.
	a.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
	if !w.drive(a, 10*time.Second, func() bool { return a.healthz().Draining }) {
		t.Fatal("not draining")
	}
	for _, tb := range []string{"a", "b"} {
		if err := w.sim.SetRoute(w.tables[tb], "0.0.0.0/0", w.nats["b"].eni); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.waitRun(a, done); err != nil {
		t.Fatal(err)
	}
	if v := w.action(token); !v.Completed || v.Result != vpcsim.ResultContinue {
		t.Fatalf("terminate action %+v after the hand-over", v)
	}
}

// An operator's drain keeps the agent running, drained; undrain puts it back in service. A
// spot drain cannot be undone.
func TestOperatorDrainAndUndrain(t *testing.T) {
	w := lifecycleWorld(t, "a", "b")
	a, imds := w.lifecycleAgent("a", nil)
	ctx, cancel, done := w.runSettled(t, a)
	if err := a.OperatorUndrain(ctx); !errors.Is(err, ErrNotDraining) {
		t.Fatalf("undrain while in service: %v", err)
	}
	if already, _ := a.OperatorDrain(ctx, "kernel upgrade"); already {
		t.Fatal("first drain reported as already draining")
	}
	if hz := a.healthz(); !hz.Draining || hz.DrainReason != "operator: kernel upgrade" {
		t.Fatalf("healthz %+v", hz)
	}
	if err := w.sim.SetRoute(w.tables["a"], "0.0.0.0/0", w.nats["b"].eni); err != nil {
		t.Fatal(err)
	}
	if !w.drive(a, 10*time.Second, func() bool { return a.healthz().Lifecycle == api.LifecycleDrained }) {
		t.Fatalf("not drained: %+v", a.healthz())
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) after an operator's drain", err)
	default:
	}
	if err := a.OperatorUndrain(ctx); err != nil {
		t.Fatal(err)
	}
	if !w.drive(a, 10*time.Second, func() bool { hz := a.healthz(); return hz.Healthy && !hz.Draining }) {
		t.Fatalf("not back in service: %+v", a.healthz())
	}
	imds.Set(&cloud.SpotNotice{Action: "terminate", Time: w.clock.Now().Add(2 * time.Minute)}, time.Time{}, "")
	if !w.drive(a, 10*time.Second, func() bool { return a.healthz().Draining }) {
		t.Fatal("spot notice did not start a drain")
	}
	if err := a.OperatorUndrain(ctx); !errors.Is(err, ErrNotOperatorDrain) || !strings.Contains(err.Error(), "spot-interruption") {
		t.Fatalf("undrain of a spot drain: %v", err)
	}
	cancel()
	_ = w.waitRun(a, done)
}

// With eip.pool the instance takes a free pool address before it serves, shows it on /healthz,
// and releases it once its tables have moved in a terminate drain.
func TestEIPPoolClaimedAndReleased(t *testing.T) {
	w := lifecycleWorld(t, "a", "b")
	taken := w.sim.AddAddress("203.0.113.50")
	if _, err := w.sim.AssociateAddress(taken, w.nats["b"].eni); err != nil {
		t.Fatal(err)
	}
	free := w.sim.AddAddress("203.0.113.51")
	other := w.sim.AddAddress("203.0.113.52") // not in the pool: untagged
	for _, id := range []string{taken, free} {
		if err := w.sim.Tag(id, map[string]string{cloud.TagCluster: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	imds := &FixedIMDS{}
	a, err := w.buildWith("a", func(c *config.Config) { c.EIP.Pool = true }, Options{}, false, func(d *Deps) {
		imds.Client = d.Cloud.(FixedIdentity).Client
		d.Lifecycle, d.EIPPool = imds, imds.Client
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _, done := w.runSettled(t, a)
	hz := a.healthz()
	if hz.EIP == nil || hz.EIP.AllocationID != free || hz.PublicIP != "203.0.113.51" {
		t.Fatalf("healthz EIP %+v public %q, want %s (203.0.113.51)", hz.EIP, hz.PublicIP, free)
	}
	if v, _ := w.sim.Address(free); v.ENI != w.nats["a"].eni {
		t.Fatalf("pool address %+v not on a's ENI", v)
	}
	if v, _ := w.sim.Address(other); v.AssociationID != "" {
		t.Fatalf("an address outside the pool was associated: %+v", v)
	}
	token, err := w.sim.StartLifecycleAction(testGroup, w.nats["a"].id, testDrainHook)
	if err != nil {
		t.Fatal(err)
	}
	if !w.drive(a, 10*time.Second, func() bool { return a.healthz().Draining }) {
		t.Fatal("not draining")
	}
	if v, _ := w.sim.Address(free); v.AssociationID == "" {
		t.Fatal("pool address released while table a still targets the instance")
	}
	if err := w.sim.SetRoute(w.tables["a"], "0.0.0.0/0", w.nats["b"].eni); err != nil {
		t.Fatal(err)
	}
	if err := w.waitRun(a, done); err != nil {
		t.Fatal(err)
	}
	if v, _ := w.sim.Address(free); v.AssociationID != "" {
		t.Fatalf("pool address still associated after the drain: %+v", v)
	}
	if v := w.action(token); !v.Completed || v.Result != vpcsim.ResultContinue {
		t.Fatalf("terminate action %+v", v)
	}
}

// An agent restarted after its instance handed everything over (systemd restarts it after its
// exit 0) finds the spot notice, holds nothing, and stays up drained instead of exiting again.
func TestRestartAfterHandOverStaysUp(t *testing.T) {
	w := lifecycleWorld(t, "a", "b")
	if err := w.sim.SetRoute(w.tables["a"], "0.0.0.0/0", w.nats["b"].eni); err != nil {
		t.Fatal(err)
	}
	a, imds := w.lifecycleAgent("a", nil)
	imds.Set(&cloud.SpotNotice{Action: "terminate", Time: w.clock.Now().Add(time.Minute)}, time.Time{}, "")
	a.peers.Answer(w.nats["b"].id, w.healthyAnswer("b"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAgent(ctx, a)
	if !w.drive(a, 10*time.Second, func() bool { return a.healthz().Lifecycle == api.LifecycleDrained }) {
		t.Fatalf("not drained: %+v", a.healthz())
	}
	for range 20 {
		w.clock.Advance(a.cfg.Probe.Interval)
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v): a restarted, drained agent exited again", err)
	default:
	}
	if hz := a.healthz(); !hz.Draining || !strings.HasPrefix(hz.DrainReason, api.DrainSpot) {
		t.Fatalf("healthz %+v", hz)
	}
	cancel()
	_ = w.waitRun(a, done)
}
