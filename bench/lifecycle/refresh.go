package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/bench/internal/benchlab"
	"github.com/headnat/headnat/test/lab"
)

// launchBound bounds lab.Launch itself (namespace, IMDS mock, agent start) in the traffic bound.
const launchBound = 2 * time.Minute

// replacement is one NAT instance replaced by an instance refresh.
type replacement struct {
	Old, New, AZ string
	// InService: the new instance launched into the ASG (its launch lifecycle action started,
	// Pending:Wait) → its agent's successful CompleteLifecycleAction on the launch hook; <0 if
	// none was recorded.
	InService time.Duration
	// HandOver: terminate start → the AZ's route table written to the new NAT; <0 if none.
	HandOver time.Duration
	// Gone: terminate start → the old agent's successful CompleteLifecycleAction on the
	// terminate hook, on which EC2 terminates the instance; <0 if none (the hook timed out).
	Gone time.Duration
}

// refreshResult is one instance refresh: every NAT live at its start replaced, one at a time.
type refreshResult struct {
	N        int
	Traffic  trafficResult // traffic start → end of the cycle (lab settled, then 2s)
	Replaced []replacement
	Duration time.Duration // first launch → last old instance removed
	Extra    []lab.Move    // route writes other than the hand-overs
	Notes    []string
}

// refresh runs one instance refresh with traffic throughout. The steps are those of
// lab.RefreshSteps (Launch a replacement in the old NAT's AZ, WaitInService, Terminate the old
// one, for every NAT live at the start), made here so that each is timed where it starts.
func (c *config) refresh(ctx context.Context, l *lab.Lab, p benchlab.Progress, n int) (*refreshResult, error) {
	if err := waitSettled(ctx, l, settledBound); err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	olds := l.NATs()
	r := &refreshResult{N: n}
	bound := baseline + jitter + time.Duration(len(olds))*(launchBound+2*stepTimeout+handOverBound) + settledBound + settle + 10*time.Second
	start := time.Now()
	samples, stop := startTraffic(ctx, l, c.interval, bound)
	defer stop()
	// Jitter: the steps should not fall at a fixed phase of the agents' IMDS polls and ticks.
	if err := lab.Sleep(ctx, baseline+rand.N(jitter)); err != nil {
		return nil, err
	}

	first := time.Now()
	handOvers := map[string]string{} // table → the new NAT it was handed to
	for _, old := range olds {
		nw, err := l.Launch(ctx, old.AZ)
		if err != nil {
			return r, fmt.Errorf("launch a replacement of nat-%s: %w", old.Name, err)
		}
		if err := l.WaitInService(ctx, nw.Name, stepTimeout); err != nil {
			return r, err
		}
		rep := replacement{Old: old.Name, New: nw.Name, AZ: old.AZ, InService: -1, HandOver: -1, Gone: -1}
		if v, ok := l.LaunchAction(nw.Name); ok {
			if t, ok := hookCompleted(l.Sim.Calls(), nw.InstanceID, lab.LaunchHook, v.Started); ok {
				rep.InService = t.Sub(v.Started)
			}
		}

		term := time.Now()
		if err := l.Terminate(ctx, old.Name, stepTimeout); err != nil {
			return r, err
		}
		m, err := l.WaitMove(ctx, old.RouteTable, nw.Name, term, handOverBound)
		switch {
		case ctx.Err() != nil:
			return r, ctx.Err()
		case err != nil:
			r.Notes = append(r.Notes, fmt.Sprintf("no write of AZ %s's table to nat-%s within %s of nat-%s's terminate start", old.AZ, nw.Name, handOverBound, old.Name))
		default:
			rep.HandOver = m.Time.Sub(term)
			handOvers[old.RouteTable] = nw.Name
		}
		if t, ok := hookCompleted(l.Sim.Calls(), old.InstanceID, lab.DrainHook, term); ok {
			rep.Gone = t.Sub(term)
		} else {
			r.Notes = append(r.Notes, fmt.Sprintf("nat-%s's agent did not complete its terminate hook (it timed out)", old.Name))
		}
		r.Replaced = append(r.Replaced, rep)
		p.Say("refresh %d: nat-%s → nat-%s: InService %s after its launch; table handed over %s, instance terminated %s after the terminate start",
			n, old.Name, nw.Name, benchdoc.Ms(rep.InService), benchdoc.Ms(rep.HandOver), benchdoc.Ms(rep.Gone))
	}
	r.Duration = time.Since(first)

	if err := waitSettled(ctx, l, settledBound); err != nil {
		return r, fmt.Errorf("after: %w", err)
	}
	if err := lab.Sleep(ctx, settle); err != nil {
		return r, err
	}
	end := time.Now()
	stop()
	r.Traffic = summarize(between(samples.Since(start), start, end), azOf(l))
	seen := map[string]bool{}
	for _, m := range l.MovesSince(start) {
		if !m.Time.Before(end) {
			continue
		}
		if nw, ok := handOvers[m.Table]; ok && m.TargetAZ == nw && !seen[m.Table] && !m.Time.Before(first) {
			seen[m.Table] = true
			continue
		}
		r.Extra = append(r.Extra, m)
	}
	p.Say("refresh %d: %d NATs replaced in %s; %d of %d requests failed, longest outage %s, %d through the other AZ",
		n, len(r.Replaced), r.Duration.Round(100*time.Millisecond), r.Traffic.Failed, r.Traffic.Requests, benchdoc.Ms(r.Traffic.Longest), r.Traffic.OtherAZ)
	return r, nil
}
