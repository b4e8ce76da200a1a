package lifecycle

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
)

var (
	t0        = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	launchH   = &Hook{Group: "g", Name: "launch", HeartbeatTimeout: 5 * time.Minute}
	terminate = &Hook{Group: "g", Name: "drain", HeartbeatTimeout: 3 * time.Minute}
	ready     = Readiness{Passing: true}
)

func kinds(p Plan) []string {
	var out []string
	for _, a := range p.Actions {
		k := a.Kind
		if a.Result != "" {
			k += ":" + a.Result
		}
		out = append(out, k)
	}
	return out
}

func TestLaunch(t *testing.T) {
	base := Observation{Now: t0.Add(10 * time.Second), Started: t0, GroupState: StatePendingWait, LaunchHook: launchH, TerminateHook: terminate}
	for _, tc := range []struct {
		name      string
		edit      func(*Observation)
		stage     string
		inService bool
		actions   []string
		want      string // in Why or Waiting or the first action's reason
	}{
		{"not in a group: in service", func(o *Observation) { o.GroupState, o.LaunchHook = "", nil }, api.LifecycleInService, true, nil, ""},
		{"no launch hook: in service", func(o *Observation) { o.LaunchHook = nil }, api.LifecycleInService, true, nil, ""},
		{"already in service (restart)", func(o *Observation) { o.GroupState = StateInService }, api.LifecycleInService, true, nil, ""},
		{"ready: continue", func(o *Observation) { o.Ready = ready }, api.LifecycleLaunching, false, []string{"complete-launch:CONTINUE"}, "egress ready"},
		{"continued: in service before the group says so", func(o *Observation) { o.Ready, o.LaunchResult = ready, Continue }, api.LifecycleInService, true, nil, ""},
		{"egress failing: waits", func(o *Observation) { o.Ready = Readiness{Reasons: []string{"egress: 0 of 1 passed"}} },
			api.LifecycleLaunching, false, nil, "egress: 0 of 1 passed"},
		{"tailnet not joined: waits", func(o *Observation) {
			o.Ready = Readiness{Passing: true, TailnetWanted: true, TailnetProblem: "NeedsLogin"}
		}, api.LifecycleLaunching, false, nil, "tailnet not joined (NeedsLogin)"},
		{"tailnet joined: continue", func(o *Observation) { o.Ready = Readiness{Passing: true, TailnetWanted: true, TailnetJoined: true} },
			api.LifecycleLaunching, false, []string{"complete-launch:CONTINUE"}, "tailnet ready"},
		{"heartbeat due while waiting", func(o *Observation) { o.Now = t0.Add(100 * time.Second) }, api.LifecycleLaunching, false, []string{"heartbeat"}, ""},
		{"heartbeat not due again", func(o *Observation) { o.Now, o.LastHeartbeat = t0.Add(150*time.Second), t0.Add(100*time.Second) },
			api.LifecycleLaunching, false, nil, ""},
		{"hook timeout: abandon", func(o *Observation) { o.Now = t0.Add(5 * time.Minute) }, api.LifecycleLaunching, false,
			[]string{"complete-launch:ABANDON"}, "not ready after 5m0s: own checks not passing"},
		{"configured timeout: abandon", func(o *Observation) { o.LaunchTimeout, o.Now = 30*time.Second, t0.Add(31*time.Second) },
			api.LifecycleLaunching, false, []string{"complete-launch:ABANDON"}, "not ready after 31s"},
		{"abandoned: never in service", func(o *Observation) { o.LaunchResult, o.Ready = Abandon, ready }, api.LifecycleLaunching, false, nil, "abandoned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.edit(&o)
			p := Decide(o)
			if p.Stage != tc.stage || p.InService != tc.inService || p.Draining {
				t.Errorf("stage %q in service %v draining %v, want %q %v false", p.Stage, p.InService, p.Draining, tc.stage, tc.inService)
			}
			if got := kinds(p); !slices.Equal(got, tc.actions) {
				t.Errorf("actions %v, want %v", got, tc.actions)
			}
			text := p.Why + " | " + p.Waiting
			if len(p.Actions) > 0 {
				text += " | " + p.Actions[0].Reason
			}
			if !strings.Contains(text, tc.want) {
				t.Errorf("%q does not say %q", text, tc.want)
			}
		})
	}
}

func TestDrain(t *testing.T) {
	spot := Trigger{Kind: api.DrainSpot, Detail: "terminate at 12:02:00Z", Since: t0, Terminal: true}
	target := Trigger{Kind: api.DrainTargetState, Detail: "Terminated", Since: t0, Terminal: true}
	op := Trigger{Kind: api.DrainOperator, Detail: "maintenance", Since: t0}
	sigterm := Trigger{Kind: api.DrainSIGTERM, Since: t0, Terminal: true}
	base := Observation{Now: t0.Add(time.Second), Started: t0.Add(-time.Hour), GroupState: StateInService,
		TerminateHook: terminate, DrainStarted: t0, DrainTimeout: 15 * time.Second, PeerCanTake: true}
	for _, tc := range []struct {
		name    string
		edit    func(*Observation)
		stage   string
		actions []string
		exit    bool
		noPeer  bool
		want    string
	}{
		{"spot: waits for peers", func(o *Observation) { o.Triggers, o.Held = []Trigger{spot}, []string{"rtb-a"} },
			api.LifecycleDraining, nil, false, false, "peers to take rtb-a"},
		{"spot: tailnet withdrawn first", func(o *Observation) { o.Triggers, o.Held, o.Tailnet = []Trigger{spot}, []string{"rtb-a"}, true },
			api.LifecycleDraining, []string{"withdraw-tailnet"}, false, false, "peers to take rtb-a"},
		{"spot: handed over, no hook pending: exit", func(o *Observation) { o.Triggers = []Trigger{spot} },
			api.LifecycleDrained, nil, true, false, "spot-interruption: terminate at"},
		{"spot: restarted after the hand-over: stays", func(o *Observation) { o.Triggers, o.FoundDrained = []Trigger{spot}, true },
			api.LifecycleDrained, nil, false, false, ""},
		{"target Terminated: complete the hook", func(o *Observation) { o.Triggers, o.GroupState = []Trigger{target}, StateTerminatingWait },
			api.LifecycleDraining, []string{"complete-terminate:CONTINUE"}, false, false, ""},
		{"hook completed: exit", func(o *Observation) { o.Triggers, o.TerminateDone = []Trigger{target}, true },
			api.LifecycleDrained, nil, true, false, ""},
		{"pool EIP released before the hook", func(o *Observation) { o.Triggers, o.EIPHeld = []Trigger{target}, true },
			api.LifecycleDraining, []string{"release-eip", "complete-terminate:CONTINUE"}, false, false, ""},
		{"EIP kept while tables remain", func(o *Observation) {
			o.Triggers, o.EIPHeld, o.Held = []Trigger{target}, true, []string{"rtb-a"}
		}, api.LifecycleDraining, nil, false, false, "peers to take"},
		{"deadline: completes holding tables, keeps the EIP", func(o *Observation) {
			o.Triggers, o.EIPHeld, o.Held, o.Now = []Trigger{target}, true, []string{"rtb-a"}, t0.Add(16*time.Second)
		}, api.LifecycleDraining, []string{"complete-terminate:CONTINUE"}, false, false, "deadline passed"},
		{"no peer: keeps serving, holds the hook", func(o *Observation) {
			o.Triggers, o.Held, o.PeerCanTake, o.Now, o.Tailnet = []Trigger{target}, []string{"rtb-a"}, false, t0.Add(61*time.Second), true
		}, api.LifecycleDraining, []string{"heartbeat"}, false, true, "keeps serving"},
		{"no peer: no heartbeat past the global timeout", func(o *Observation) {
			o.Triggers, o.Held, o.PeerCanTake, o.Now = []Trigger{target}, []string{"rtb-a"}, false, t0.Add(301*time.Minute)
		}, api.LifecycleDraining, nil, false, true, "keeps serving"},
		{"no peer, SIGTERM: exits without hand-over", func(o *Observation) {
			o.Triggers, o.Held, o.PeerCanTake = []Trigger{sigterm}, []string{"rtb-a"}, false
		}, api.LifecycleDraining, nil, true, true, "without hand-over"},
		{"operator: drained, stays up", func(o *Observation) { o.Triggers = []Trigger{op} },
			api.LifecycleDrained, nil, false, false, "operator: maintenance"},
		{"operator then spot: exits once drained", func(o *Observation) { o.Triggers = []Trigger{op, spot} },
			api.LifecycleDrained, nil, true, false, "operator: maintenance"},
		{"group says Terminating:Wait: hook completed", func(o *Observation) {
			o.Triggers, o.GroupState = []Trigger{{Kind: api.DrainTerminateHook, Terminal: true}}, StateTerminatingWait
		}, api.LifecycleDraining, []string{"complete-terminate:CONTINUE"}, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.edit(&o)
			p := Decide(o)
			if p.Stage != tc.stage || !p.Draining || p.InService {
				t.Errorf("stage %q draining %v in service %v, want %q true false", p.Stage, p.Draining, p.InService, tc.stage)
			}
			if got := kinds(p); !slices.Equal(got, tc.actions) {
				t.Errorf("actions %v, want %v", got, tc.actions)
			}
			if p.Exit != tc.exit || p.NoPeer != tc.noPeer {
				t.Errorf("exit %v no peer %v, want %v %v", p.Exit, p.NoPeer, tc.exit, tc.noPeer)
			}
			if text := p.Why + " | " + p.Waiting; !strings.Contains(text, tc.want) {
				t.Errorf("%q does not say %q", text, tc.want)
			}
		})
	}
}

// A drain moves forward observation by observation as the agent carries out the actions:
// nothing is done twice, and it ends in an exit.
func TestDrainSequence(t *testing.T) {
	o := Observation{Now: t0, Started: t0.Add(-time.Hour), GroupState: StateTerminatingWait, TerminateHook: terminate,
		Triggers: []Trigger{{Kind: api.DrainTargetState, Terminal: true}}, DrainStarted: t0, DrainTimeout: 15 * time.Second,
		Held: []string{"rtb-a", "rtb-b"}, PeerCanTake: true, Tailnet: true, EIPHeld: true}
	var done []string
	for step := 0; step < 20; step++ {
		p := Decide(o)
		for _, a := range p.Actions {
			done = append(done, a.Kind)
			switch a.Kind {
			case ActWithdrawTailnet:
				o.TailnetDone = true
			case ActReleaseEIP:
				o.EIPHeld = false
			case ActCompleteTerminate:
				o.TerminateDone, o.GroupState = true, ""
			}
		}
		if p.Exit {
			want := []string{ActWithdrawTailnet, ActReleaseEIP, ActCompleteTerminate}
			if !slices.Equal(done, want) {
				t.Fatalf("actions %v, want %v", done, want)
			}
			return
		}
		o.Now = o.Now.Add(time.Second)
		if step == 2 {
			o.Held = nil // the peers took the tables
		}
	}
	t.Fatalf("no exit after 20 steps; actions %v", done)
}
