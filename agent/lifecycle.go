package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/lifecycle"
)

// LifecycleCloud is what the instance lifecycle needs from AWS; *cloud.Client satisfies it.
type LifecycleCloud interface {
	SpotInterruption(ctx context.Context) (*cloud.SpotNotice, error)
	RebalanceRecommendation(ctx context.Context) (time.Time, bool, error)
	TargetLifecycleState(ctx context.Context) (string, error)
	GroupInstance(ctx context.Context, instanceID, reason string) (cloud.GroupMembership, error)
	LifecycleHooks(ctx context.Context, group, reason string) ([]cloud.LifecycleHook, error)
	CompleteLifecycleAction(ctx context.Context, a cloud.LifecycleAction, result, reason string) error
	RecordLifecycleActionHeartbeat(ctx context.Context, a cloud.LifecycleAction, reason string) error
}

// life is the agent's lifecycle state: what it observed and what it did. Guarded by mu.
type life struct {
	mu sync.Mutex
	lc LifecycleCloud // nil: only SIGTERM and operator drains

	group          string
	hooksKnown     bool
	launch, term   *lifecycle.Hook
	groupState     string
	lastGroupPoll  time.Time
	triggers       []lifecycle.Trigger
	drainStarted   time.Time
	launchResult   string
	terminateDone  bool
	lastHeartbeat  time.Time
	foundDrained   bool
	started        bool // the first step, before the loops, is done
	tailnetDone    bool
	plan           lifecycle.Plan
	loggedWaiting  string
	exit           chan struct{} // closed when a plan says exit
	exitOnce       sync.Once
	startedAt      time.Time
	imdsErrLogged  bool
	groupErrLogged bool
}

func newLife(lc LifecycleCloud, group string, now time.Time) *life {
	// Launching until the first step has read the group: a new instance is not in service yet.
	return &life{lc: lc, group: group, startedAt: now, exit: make(chan struct{}),
		plan: lifecycle.Plan{Stage: api.LifecycleLaunching, Why: "starting"}}
}

// addTrigger records a drain trigger once per kind; it reports whether it is new.
func (l *life) addTrigger(t lifecycle.Trigger) bool {
	for _, have := range l.triggers {
		if have.Kind == t.Kind {
			return false
		}
	}
	if len(l.triggers) == 0 {
		l.drainStarted = t.Since
	}
	l.triggers = append(l.triggers, t)
	return true
}

// trigger starts (or joins) a drain; a new trigger takes a lifecycle step at once.
func (a *Agent) trigger(ctx context.Context, t lifecycle.Trigger) {
	a.life.mu.Lock()
	added := a.life.addTrigger(t)
	a.life.mu.Unlock()
	if !added {
		return
	}
	a.log.Warn("drain requested", "by", t.Kind, "detail", t.Detail)
	a.metrics.DrainStarted(t.Kind)
	a.lifecycleStep(ctx)
}

// ErrNotDraining and ErrNotOperatorDrain: an undrain that cannot be done.
var (
	ErrNotDraining      = errors.New("not draining")
	ErrNotOperatorDrain = errors.New("the drain was not started by an operator")
)

// OperatorDrain starts a drain on an operator's request (headnat drain). It reports whether
// the instance was already draining, and why.
func (a *Agent) OperatorDrain(ctx context.Context, note string) (already bool, why string) {
	a.life.mu.Lock()
	already = len(a.life.triggers) > 0
	if already {
		why = a.life.triggers[0].String()
	}
	a.life.mu.Unlock()
	a.trigger(ctx, lifecycle.Trigger{Kind: api.DrainOperator, Detail: note, Since: a.clock.Now()})
	return already, why
}

// OperatorUndrain ends an operator's drain. A drain for a termination, a spot notice or a
// rebalance recommendation cannot be undone.
func (a *Agent) OperatorUndrain(ctx context.Context) error {
	a.life.mu.Lock()
	l := a.life
	if len(l.triggers) == 0 {
		l.mu.Unlock()
		return ErrNotDraining
	}
	var others []string
	for _, t := range l.triggers {
		if t.Kind != api.DrainOperator {
			others = append(others, t.String())
		}
	}
	if len(others) > 0 {
		l.mu.Unlock()
		return fmt.Errorf("%w: draining for %s", ErrNotOperatorDrain, strings.Join(others, ", "))
	}
	l.triggers, l.drainStarted, l.tailnetDone = nil, time.Time{}, false
	l.mu.Unlock()
	a.tnMu.Lock()
	a.tnWithdrawn = false
	a.tnMu.Unlock()
	a.log.Info("undrained by an operator: back in service")
	a.lifecycleStep(ctx)
	return nil
}

// resolveHooks finds the group's launch and terminate hooks (configured names first, else the
// only hook of each transition). Called until it succeeds.
func (a *Agent) resolveHooks(ctx context.Context) {
	l := a.life
	if l.hooksKnown || l.group == "" || l.lc == nil {
		return
	}
	hooks, err := l.lc.LifecycleHooks(ctx, l.group, "lifecycle hooks")
	if err != nil {
		a.log.Warn("lifecycle hooks: cannot read them yet; retrying", "group", l.group, "err", err)
		return
	}
	pick := func(transition, name, key string) (*lifecycle.Hook, string) {
		var found []cloud.LifecycleHook
		for _, h := range hooks {
			if h.Transition == transition && (name == "" || h.Name == name) {
				found = append(found, h)
			}
		}
		switch {
		case len(found) == 1:
			h := found[0]
			return &lifecycle.Hook{Group: l.group, Name: h.Name, HeartbeatTimeout: h.HeartbeatTimeout, GlobalTimeout: h.GlobalTimeout}, ""
		case len(found) == 0 && name != "":
			return nil, fmt.Sprintf("%s: no %s hook named %q in group %s", key, transition, name, l.group)
		case len(found) > 1:
			var names []string
			for _, h := range found {
				names = append(names, h.Name)
			}
			return nil, fmt.Sprintf("%s: group %s has several %s hooks (%s): set %s", key, l.group, transition, strings.Join(names, ", "), key)
		}
		return nil, ""
	}
	var problems []string
	launch, p := pick(cloud.TransitionLaunching, a.cfg.Lifecycle.LaunchHook, "lifecycle.launch_hook")
	if p != "" {
		problems = append(problems, p)
	}
	term, p := pick(cloud.TransitionTerminating, a.cfg.Lifecycle.TerminateHook, "lifecycle.terminate_hook")
	if p != "" {
		problems = append(problems, p)
	}
	l.mu.Lock()
	l.launch, l.term, l.hooksKnown = launch, term, true
	l.mu.Unlock()
	if len(problems) > 0 {
		a.log.Error("lifecycle hooks: not completing them; the group's default result applies", "problem", strings.Join(problems, "; "))
	}
	a.log.Info("lifecycle hooks", "group", l.group, "launch", hookName(launch), "terminate", hookName(term))
}

func hookName(h *lifecycle.Hook) string {
	if h == nil {
		return "none"
	}
	return h.Name
}

// pollLifecycle reads the drain triggers from IMDS, and the group's view of this instance
// every lifecycle.group_poll_interval.
func (a *Agent) pollLifecycle(ctx context.Context) {
	l := a.life
	if l.lc == nil {
		return
	}
	now := a.clock.Now()
	var errs []error
	spot, err := l.lc.SpotInterruption(ctx)
	errs = append(errs, err)
	rebalance, hasRebalance, err := l.lc.RebalanceRecommendation(ctx)
	errs = append(errs, err)
	target, err := l.lc.TargetLifecycleState(ctx)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		if !l.imdsErrLogged {
			a.log.Warn("lifecycle: IMDS poll failed; keeping what was seen", "err", err)
		}
		l.imdsErrLogged = true
	} else {
		l.imdsErrLogged = false
	}
	if spot != nil {
		a.trigger(ctx, lifecycle.Trigger{Kind: api.DrainSpot, Since: now, Terminal: true,
			Detail: fmt.Sprintf("%s at %s", spot.Action, spot.Time.UTC().Format(time.RFC3339))})
	}
	if hasRebalance && a.cfg.Lifecycle.DrainOnRebalance {
		a.trigger(ctx, lifecycle.Trigger{Kind: api.DrainRebalance, Since: now,
			Detail: "noticed " + rebalance.UTC().Format(time.RFC3339)})
	}
	if target == "Terminated" {
		a.trigger(ctx, lifecycle.Trigger{Kind: api.DrainTargetState, Detail: target, Since: now, Terminal: true})
	}
	a.pollGroup(ctx)
}

// pollGroup reads the instance's group lifecycle state when due.
func (a *Agent) pollGroup(ctx context.Context) {
	l := a.life
	if l.lc == nil || l.group == "" {
		return
	}
	now := a.clock.Now()
	l.mu.Lock()
	due := l.lastGroupPoll.IsZero() || now.Sub(l.lastGroupPoll) >= a.cfg.Lifecycle.GroupPollInterval
	if due {
		l.lastGroupPoll = now
	}
	l.mu.Unlock()
	if !due {
		return
	}
	a.resolveHooks(ctx)
	m, err := l.lc.GroupInstance(ctx, a.res.Identity.InstanceID, "lifecycle state")
	if err != nil {
		if !l.groupErrLogged {
			a.log.Warn("lifecycle: cannot read the group's lifecycle state; keeping the last one", "err", err)
		}
		l.groupErrLogged = true
		return
	}
	l.groupErrLogged = false
	l.mu.Lock()
	changed := l.groupState != m.LifecycleState
	l.groupState = m.LifecycleState
	l.mu.Unlock()
	if changed {
		a.log.Info("lifecycle state", "group", m.Group, "state", m.LifecycleState)
	}
	if m.LifecycleState == lifecycle.StateTerminatingWait {
		a.trigger(ctx, lifecycle.Trigger{Kind: api.DrainTerminateHook, Detail: m.LifecycleState, Since: now, Terminal: true})
	}
}

// observe builds the lifecycle observation.
func (a *Agent) observe() lifecycle.Observation {
	now := a.clock.Now()
	self := a.self.Last()
	a.mu.Lock()
	held, peer := a.view.Held(), a.view.AnyPeerCanTake()
	a.mu.Unlock()
	l := a.life
	l.mu.Lock()
	defer l.mu.Unlock()
	o := lifecycle.Observation{
		Now: now, GroupState: l.groupState, LaunchHook: l.launch, TerminateHook: l.term,
		Started: l.startedAt, LaunchTimeout: a.cfg.Lifecycle.LaunchTimeout, LaunchResult: l.launchResult,
		Triggers: slices.Clone(l.triggers), DrainStarted: l.drainStarted, DrainTimeout: a.cfg.DrainTimeout,
		Held: held, PeerCanTake: peer, Tailnet: a.tn != nil && !a.cfg.DryRun, TailnetDone: l.tailnetDone,
		TerminateDone: l.terminateDone, FoundDrained: l.foundDrained,
		HeartbeatInterval: a.cfg.Lifecycle.HeartbeatInterval, LastHeartbeat: l.lastHeartbeat,
		EIPHeld: a.eipHeld(),
	}
	o.Ready = lifecycle.Readiness{Passing: self.Passing}
	for _, r := range self.Reasons {
		if r != l.plan.Why && r != "draining" {
			o.Ready.Reasons = append(o.Ready.Reasons, r)
		}
	}
	if a.tn != nil && !a.cfg.DryRun {
		a.tnMu.Lock()
		st := a.tnState
		a.tnMu.Unlock()
		o.Ready.TailnetWanted = true
		o.Ready.TailnetJoined = st.Backend == "Running" && !st.Degraded && len(st.Advertised) > 0
		o.Ready.TailnetProblem = st.Backend
		if st.Error != "" {
			o.Ready.TailnetProblem += ": " + st.Error
		}
	}
	return o
}

// lifecycleStep decides on the current observation and carries the plan out. Steps are
// serialised: a step's actions finish before the next one decides.
func (a *Agent) lifecycleStep(ctx context.Context) lifecycle.Plan {
	a.lifeStep.Lock()
	defer a.lifeStep.Unlock()
	o := a.observe()
	p := lifecycle.Decide(o)
	a.applyPlan(p)
	for _, act := range p.Actions {
		a.act(ctx, act)
	}
	if len(p.Actions) > 0 {
		// Completions change the stage: decide again so that status and health follow at once.
		p = lifecycle.Decide(a.observe())
		a.applyPlan(p)
	}
	if p.Exit {
		a.life.mu.Lock()
		first := !a.life.started
		a.life.foundDrained = a.life.foundDrained || first
		a.life.mu.Unlock()
		if first {
			// Drained before this agent did anything: it restarted after the hand-over, and
			// stays up until the instance goes, rather than exiting again and again.
			a.log.Info("restarted after the hand-over: staying up, drained, until the instance goes", "why", p.Why)
			return p
		}
		a.life.exitOnce.Do(func() { close(a.life.exit) })
	}
	return p
}

// applyPlan shows the plan on /healthz and logs what it waits for.
func (a *Agent) applyPlan(p lifecycle.Plan) {
	l := a.life
	l.mu.Lock()
	prev := l.plan
	l.plan = p
	// Logged when what it waits for changes, not each time the details (probe errors) do.
	key, _, _ := strings.Cut(p.Waiting, "(")
	logWait := key != l.loggedWaiting
	l.loggedWaiting = key
	l.mu.Unlock()
	a.self.SetDraining(p.Draining)
	a.metrics.SetLifecycle(p.Stage, p.NoPeer)
	hold := ""
	if !p.InService && !p.Draining {
		hold = p.Why
	}
	a.self.SetHold(hold)
	if prev.Stage != p.Stage {
		a.log.Info("lifecycle stage", "from", prev.Stage, "to", p.Stage, "why", p.Why)
	}
	if logWait && p.Waiting != "" {
		if p.NoPeer {
			a.log.Error("DRAIN BLOCKED: no healthy peer can take the route tables; this instance keeps serving them", "waiting for", p.Waiting, "why", p.Why)
		} else {
			a.log.Info("lifecycle: waiting", "for", p.Waiting, "stage", p.Stage)
		}
	}
}

// act carries out one lifecycle action and records its outcome.
func (a *Agent) act(ctx context.Context, act lifecycle.Action) {
	l := a.life
	action := func(h lifecycle.Hook) cloud.LifecycleAction {
		return cloud.LifecycleAction{Group: h.Group, Hook: h.Name, InstanceID: a.res.Identity.InstanceID}
	}
	switch act.Kind {
	case lifecycle.ActHeartbeat:
		err := l.lc.RecordLifecycleActionHeartbeat(ctx, action(act.Hook), act.Reason)
		l.mu.Lock()
		l.lastHeartbeat = a.clock.Now()
		l.mu.Unlock()
		if err != nil {
			a.log.Warn("lifecycle heartbeat failed", "hook", act.Hook.Name, "err", err)
		}
	case lifecycle.ActCompleteLaunch, lifecycle.ActCompleteTerminate:
		if act.Result == lifecycle.Abandon {
			// Said first: the instance may be gone as soon as the call lands.
			a.log.Error("abandoning the launch", "hook", act.Hook.Name, "reason", act.Reason)
		}
		err := l.lc.CompleteLifecycleAction(ctx, action(act.Hook), act.Result, act.Reason)
		gone := cloud.NoActiveLifecycleAction(err)
		if err != nil && !gone {
			a.log.Error("complete lifecycle action failed; retrying", "hook", act.Hook.Name, "result", act.Result, "err", err)
			return
		}
		l.mu.Lock()
		if act.Kind == lifecycle.ActCompleteLaunch {
			l.launchResult = act.Result
		} else {
			l.terminateDone = true
		}
		l.lastHeartbeat = time.Time{}
		l.mu.Unlock()
		level := a.log.Info
		if act.Result == lifecycle.Abandon {
			level = a.log.Error
		}
		level("lifecycle action completed", "hook", act.Hook.Name, "result", act.Result, "reason", act.Reason, "already_gone", gone)
	case lifecycle.ActWithdrawTailnet:
		a.withdrawTailnet(ctx)
		l.mu.Lock()
		l.tailnetDone = true
		l.mu.Unlock()
	case lifecycle.ActReleaseEIP:
		a.releaseEIP(ctx)
	}
}

// lifecycleStatus is the lifecycle part of /healthz.
func (a *Agent) lifecycleStatus() (stage, drainReason string) {
	l := a.life
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.plan.Draining {
		drainReason = l.plan.Why
	}
	return l.plan.Stage, drainReason
}
