package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/bench/internal/benchlab"
	"github.com/headnat/headnat/test/lab"
)

// spotResult is one spot interruption and the relaunch after it.
type spotResult struct {
	N                   int
	NAT, AZ, To         string // the NAT interrupted, its AZ, the NAT its table moved to
	Relaunched          string // the NAT launched in its place
	Delay               time.Duration
	NoticeCall          time.Duration // the SpotNotice call: the NAT's IMDS mock restarted to serve the notice
	Moved               time.Duration // SpotNotice call start → the table written to the other AZ's NAT; <0 if none
	Margin              time.Duration // that write → the interruption time; only when Moved ≥ 0
	InService           time.Duration // relaunched NAT: launch action started → launch hook completed; <0 if none
	Home                time.Duration // relaunched NAT InService → the table written back to it; <0 if none
	Interrupt, Failback trafficResult // traffic start → relaunch; relaunch → end of the cycle
	Extra               []lab.Move    // route writes other than the move and the fail-back
	Notes               []string
}

// traffic is the whole cycle's traffic.
func (s spotResult) traffic() trafficResult { return s.Interrupt.add(s.Failback) }

// spot serves a spot interruption notice on the AZ's NAT, waits for the interruption, launches
// a NAT in the AZ again and waits until the AZ's table is back on it, with traffic throughout.
func (c *config) spot(ctx context.Context, l *lab.Lab, p benchlab.Progress, n int, az string) (*spotResult, error) {
	if err := waitSettled(ctx, l, settledBound); err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	var site, other *lab.Site
	for _, s := range l.Sites() {
		if s.AZ == az {
			site = s
		} else if other == nil {
			other = s
		}
	}
	if site == nil || other == nil || !l.Live(site.Name) || !l.Live(other.Name) {
		return nil, fmt.Errorf("no live NAT in AZ %s and one in another AZ (have %v)", az, l.NATNames())
	}
	r := &spotResult{N: n, NAT: site.Name, AZ: az, To: other.Name, Delay: c.spotDelay, Moved: -1, InService: -1, Home: -1}
	failbackBound := c.failbackAfter + time.Minute
	bound := baseline + jitter + c.spotDelay + handOverBound + launchBound + stepTimeout + failbackBound + settledBound + settle + 10*time.Second
	start := time.Now()
	samples, stop := startTraffic(ctx, l, c.interval, bound)
	defer stop()
	if err := lab.Sleep(ctx, baseline+rand.N(jitter)); err != nil {
		return nil, err
	}

	call := time.Now()
	at, err := l.SpotNotice(site.Name, c.spotDelay)
	if err != nil {
		return r, err
	}
	r.NoticeCall = time.Since(call)
	m, err := l.WaitMove(ctx, site.RouteTable, other.Name, call, time.Until(at)+handOverBound)
	switch {
	case ctx.Err() != nil:
		return r, ctx.Err()
	case err != nil:
		r.Notes = append(r.Notes, fmt.Sprintf("no write of AZ %s's table to nat-%s within %s of the notice", az, other.Name, time.Until(at)+handOverBound))
	default:
		r.Moved, r.Margin = m.Time.Sub(call), at.Sub(m.Time)
	}
	if err := l.WaitTerminated(ctx, site.Name, time.Until(at)+handOverBound); err != nil {
		return r, err
	}

	relaunch := time.Now()
	nw, err := l.Launch(ctx, az)
	if err != nil {
		return r, fmt.Errorf("relaunch in AZ %s: %w", az, err)
	}
	r.Relaunched = nw.Name
	if err := l.WaitInService(ctx, nw.Name, stepTimeout); err != nil {
		return r, err
	}
	inService := time.Now()
	if v, ok := l.LaunchAction(nw.Name); ok {
		if t, ok := hookCompleted(l.Sim.Calls(), nw.InstanceID, lab.LaunchHook, v.Started); ok {
			r.InService, inService = t.Sub(v.Started), t
		}
	}
	back, err := l.WaitMove(ctx, site.RouteTable, nw.Name, relaunch, failbackBound)
	if err != nil {
		return r, fmt.Errorf("AZ %s's table not back on nat-%s: %w", az, nw.Name, err)
	}
	r.Home = back.Time.Sub(inService)
	// The host's own requests leave through the relaunched NAT again.
	ok, err := lab.Poll(ctx, handOverBound, pollEvery, func() bool {
		s, seen := lastOf(samples, site.Name)
		return seen && s.Err == nil && s.Via == nw.Name && s.Time.After(back.Time)
	})
	if err != nil {
		return r, err
	}
	if !ok {
		return r, fmt.Errorf("host-%s does not egress through nat-%s within %s of the fail-back", az, nw.Name, handOverBound)
	}
	if err := waitSettled(ctx, l, settledBound); err != nil {
		return r, fmt.Errorf("after: %w", err)
	}
	if err := lab.Sleep(ctx, settle); err != nil {
		return r, err
	}
	end := time.Now()
	stop()

	ss := samples.Since(start)
	r.Interrupt = summarize(between(ss, start, relaunch), azOf(l))
	r.Failback = summarize(between(ss, relaunch, end), azOf(l))
	if len(ss) == 0 {
		return r, errors.New("no requests recorded")
	}
	for _, x := range l.MovesSince(start) {
		if x.Time.Before(end) && x != m && x != back {
			r.Extra = append(r.Extra, x)
		}
	}
	t := r.traffic()
	p.Say("spot %d: nat-%s noticed (interruption in %s): table on nat-%s %s after the notice, %s before the interruption; nat-%s InService %s after its launch, table back %s after that; %d of %d requests failed, longest outage %s",
		n, site.Name, c.spotDelay, other.Name, benchdoc.Ms(r.Moved), msMargin(r), nw.Name, benchdoc.Ms(r.InService), benchdoc.Ms(r.Home), t.Failed, t.Requests, benchdoc.Ms(t.Longest))
	return r, nil
}

// msMargin is a spot's margin for the progress line.
func msMargin(r *spotResult) string {
	if r.Moved < 0 {
		return "none"
	}
	return benchdoc.Ms(r.Margin)
}
