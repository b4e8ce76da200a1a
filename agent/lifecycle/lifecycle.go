// Package lifecycle decides what a NAT instance does about its own life in an Auto Scaling
// group: when its launch hook may be completed (CONTINUE once it is a working NAT, ABANDON when
// it cannot become one in time), when it drains and why (SIGTERM, a spot interruption notice, a
// rebalance recommendation, the target lifecycle state Terminated, a pending terminate lifecycle
// action, an operator), and how a drain proceeds: wait for peers to take the route tables,
// withdraw the tailnet routes, release the pool EIP, complete the terminate hook, exit.
//
// Decide is a pure function of an Observation: no I/O, no clock. The agent gathers the
// observation (IMDS, the Auto Scaling API, its own view), runs the Plan's actions, and feeds
// their outcomes back in the next observation.
package lifecycle

import (
	"fmt"
	"strings"
	"time"

	"github.com/headnat/headnat/agent/api"
)

// Group lifecycle states the decision reads (as DescribeAutoScalingInstances reports them).
const (
	StatePendingWait     = "Pending:Wait"
	StateInService       = "InService"
	StateTerminatingWait = "Terminating:Wait"
)

// Lifecycle action results.
const (
	Continue = "CONTINUE"
	Abandon  = "ABANDON"
)

// Hook is one lifecycle hook of the instance's group.
type Hook struct {
	Group, Name      string
	HeartbeatTimeout time.Duration
	GlobalTimeout    time.Duration // 0: 100 x HeartbeatTimeout, at most 48h
}

// Global is how long AWS lets the hook be held at most, heartbeats included.
func (h Hook) Global() time.Duration {
	if h.GlobalTimeout > 0 {
		return h.GlobalTimeout
	}
	return min(100*h.HeartbeatTimeout, 48*time.Hour)
}

// Trigger is one event asking the instance to drain.
type Trigger struct {
	Kind   string // api.Drain*
	Detail string
	Since  time.Time
	// Terminal: the instance goes away, so the agent exits once it has handed everything
	// over. An operator's drain or a rebalance recommendation is not terminal.
	Terminal bool
}

// String is "kind: detail".
func (t Trigger) String() string {
	if t.Detail == "" {
		return t.Kind
	}
	return t.Kind + ": " + t.Detail
}

// Readiness is what a launching instance must show before its launch hook is completed.
type Readiness struct {
	Passing        bool     // own checks pass (data plane verified, egress probes, after rise)
	Reasons        []string // why not, from the own checks
	TailnetWanted  bool     // a tailnet is configured
	TailnetJoined  bool     // logged in, running, routes advertised
	TailnetProblem string   // why not joined
}

func (r Readiness) ready() bool { return r.Passing && (!r.TailnetWanted || r.TailnetJoined) }

// missing says what a launch still waits for.
func (r Readiness) missing() string {
	var m []string
	if !r.Passing {
		why := "own checks not passing"
		if len(r.Reasons) > 0 {
			why += " (" + strings.Join(r.Reasons, "; ") + ")"
		}
		m = append(m, why)
	}
	if r.TailnetWanted && !r.TailnetJoined {
		why := "tailnet not joined"
		if r.TailnetProblem != "" {
			why += " (" + r.TailnetProblem + ")"
		}
		m = append(m, why)
	}
	return strings.Join(m, "; ")
}

// Observation is everything Decide looks at. Times are the agent's clock.
type Observation struct {
	Now time.Time

	// GroupState is the group's lifecycle state of this instance, "" when unknown or not in a
	// group. LaunchHook and TerminateHook are nil when the group has none (or no group).
	GroupState    string
	LaunchHook    *Hook
	TerminateHook *Hook

	// Launch.
	Started       time.Time     // when this agent started (the launch wait starts then)
	LaunchTimeout time.Duration // 0: the launch hook's heartbeat timeout
	Ready         Readiness
	// LaunchResult is how this agent completed the launch hook ("" not yet).
	LaunchResult string

	// Drain. Triggers are every drain trigger in force, oldest first.
	Triggers     []Trigger
	DrainStarted time.Time // when the first trigger was seen
	DrainTimeout time.Duration
	Held         []string // route tables that target this instance
	PeerCanTake  bool     // some peer is healthy and not draining
	Tailnet      bool     // a tailnet is configured
	TailnetDone  bool     // its routes are withdrawn
	EIPHeld      bool     // holds an address from the pool
	// TerminateDone: the terminate hook was completed (by this agent or before it started).
	TerminateDone bool
	// FoundDrained: this agent started after the hand-over (a restart while the instance
	// terminates): it stays up, drained, instead of exiting again and again.
	FoundDrained bool

	HeartbeatInterval time.Duration // 0: a third of the hook's heartbeat timeout
	LastHeartbeat     time.Time     // the latest heartbeat of the hook now held (zero: none yet)
}

// Action kinds.
const (
	ActHeartbeat         = "heartbeat"          // RecordLifecycleActionHeartbeat on Hook
	ActCompleteLaunch    = "complete-launch"    // CompleteLifecycleAction on Hook with Result
	ActCompleteTerminate = "complete-terminate" // CompleteLifecycleAction on Hook with Result
	ActWithdrawTailnet   = "withdraw-tailnet"
	ActReleaseEIP        = "release-eip"
)

// Action is one side effect the agent must carry out.
type Action struct {
	Kind   string
	Hook   Hook   // for heartbeats and completions
	Result string // Continue or Abandon, for completions
	Reason string
}

// Plan is what Decide returns.
type Plan struct {
	Stage string // api.Lifecycle*
	// InService: the instance may carry traffic and take route tables (not launching, not
	// draining).
	InService bool
	Draining  bool
	// Why: the drain reason (the first trigger) while draining, else what the stage waits for.
	Why     string
	Waiting string // what the instance waits for, "" when nothing
	// NoPeer: a drain cannot hand the tables over because no peer is healthy; say so loudly.
	NoPeer  bool
	Actions []Action
	Exit    bool // the agent's work is done: exit 0
}

// Decide is the lifecycle decision for one observation.
func Decide(o Observation) Plan {
	if len(o.Triggers) > 0 {
		return drain(o)
	}
	return launch(o)
}

func launch(o Observation) Plan {
	if o.LaunchResult == Abandon {
		return Plan{Stage: api.LifecycleLaunching, Why: "launch abandoned; waiting for the Auto Scaling group to terminate this instance"}
	}
	if o.GroupState != StatePendingWait || o.LaunchHook == nil || o.LaunchResult == Continue {
		return Plan{Stage: api.LifecycleInService, InService: true}
	}
	h := *o.LaunchHook
	if o.Ready.ready() {
		return Plan{Stage: api.LifecycleLaunching, Why: "ready: completing the launch hook",
			Actions: []Action{{Kind: ActCompleteLaunch, Hook: h, Result: Continue, Reason: "data plane, egress" + tailnetWord(o.Ready) + " ready"}}}
	}
	limit := o.LaunchTimeout
	if limit <= 0 {
		limit = h.HeartbeatTimeout
	}
	waited := o.Now.Sub(o.Started)
	missing := o.Ready.missing()
	if limit > 0 && waited >= limit {
		return Plan{Stage: api.LifecycleLaunching, Why: "not ready in time: abandoning the launch",
			Actions: []Action{{Kind: ActCompleteLaunch, Hook: h, Result: Abandon,
				Reason: fmt.Sprintf("not ready after %s: %s", waited.Round(time.Second), missing)}}}
	}
	p := Plan{Stage: api.LifecycleLaunching, Why: "launching: waiting until ready", Waiting: missing}
	p.Actions = heartbeat(o, h, o.Started)
	return p
}

func tailnetWord(r Readiness) string {
	if r.TailnetWanted {
		return ", tailnet"
	}
	return ""
}

func drain(o Observation) Plan {
	first := o.Triggers[0]
	p := Plan{Stage: api.LifecycleDraining, Draining: true, Why: first.String()}
	terminal := false
	for _, t := range o.Triggers {
		terminal = terminal || t.Terminal
	}
	hook := o.terminateHook()
	if len(o.Held) > 0 && !o.PeerCanTake {
		p.NoPeer = true
		if first.Kind == api.DrainSIGTERM {
			// Stopped by hand or by the system: the stop cannot be held off.
			p.Waiting = "nothing: no healthy peer to take " + strings.Join(o.Held, ", ") + "; exiting without hand-over"
			p.Exit = true
			return p
		}
		p.Waiting = "a healthy peer to take " + strings.Join(o.Held, ", ") + "; keeps serving them meanwhile"
		if hook != nil {
			p.Actions = heartbeat(o, *hook, o.DrainStarted)
		}
		return p
	}
	if o.Tailnet && !o.TailnetDone && o.PeerCanTake {
		// Tailnet routes first: headscale moves the primary to a peer at once, while this
		// instance still forwards what the old primary's clients send it.
		p.Actions = append(p.Actions, Action{Kind: ActWithdrawTailnet, Reason: "drain: " + first.String()})
	}
	if len(o.Held) > 0 && o.Now.Sub(o.DrainStarted) < o.DrainTimeout {
		p.Waiting = "peers to take " + strings.Join(o.Held, ", ")
		if hook != nil {
			p.Actions = append(p.Actions, heartbeat(o, *hook, o.DrainStarted)...)
		}
		return p
	}
	if len(o.Held) > 0 {
		p.Waiting = "nothing: drain deadline passed while " + strings.Join(o.Held, ", ") + " still target this instance"
	}
	if o.EIPHeld && len(o.Held) == 0 {
		p.Actions = append(p.Actions, Action{Kind: ActReleaseEIP, Reason: "drained: " + first.String()})
	}
	if hook != nil {
		p.Actions = append(p.Actions, Action{Kind: ActCompleteTerminate, Hook: *hook, Result: Continue, Reason: "drained: " + first.String()})
		return p
	}
	p.Stage = api.LifecycleDrained
	p.Exit = terminal && !o.FoundDrained
	return p
}

// terminateHook is the hook to complete when the drain ends: the terminate hook, while the
// group holds this instance in it.
func (o Observation) terminateHook() *Hook {
	if o.TerminateHook == nil || o.TerminateDone {
		return nil
	}
	for _, t := range o.Triggers {
		if t.Kind == api.DrainTerminateHook || t.Kind == api.DrainTargetState {
			return o.TerminateHook
		}
	}
	if o.GroupState == StateTerminatingWait {
		return o.TerminateHook
	}
	return nil
}

// heartbeat is a heartbeat of h when one is due (the wait started at since), while AWS still
// lets the hook be held.
func heartbeat(o Observation, h Hook, since time.Time) []Action {
	every := o.HeartbeatInterval
	if every <= 0 {
		every = h.HeartbeatTimeout / 3
	}
	if every <= 0 {
		return nil
	}
	last := o.LastHeartbeat
	if last.IsZero() {
		last = since
	}
	if o.Now.Sub(last) < every || o.Now.Sub(since) >= h.Global() {
		return nil
	}
	return []Action{{Kind: ActHeartbeat, Hook: h, Reason: "holding the hook"}}
}
