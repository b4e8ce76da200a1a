package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/bench/internal/benchlab"
	"github.com/headnat/headnat/test/lab"
)

// Bounds of one failure cycle.
const (
	baseline       = 1500 * time.Millisecond // healthy traffic before the kill, plus jitter
	jitter         = time.Second             // random extra wait before the kill (see failure)
	failoverBound  = 30 * time.Second        // kill → requests succeed through the survivor
	pollEvery      = 20 * time.Millisecond   // how often the waits above check
	observe        = 2 * time.Second         // traffic through the survivor before the revive
	failbackExtra  = 60 * time.Second        // revive → fail-back, on top of failback_after
	healthyBound   = 30 * time.Second        // both agents healthy, holding their tables, seeing each other
	settle         = 2 * time.Second         // healthy traffic after the fail-back
	requestTimeout = 900 * time.Millisecond  // lab.Traffic's per-request timeout (stated in the report)
)

// collector keeps every sample of a traffic loop and the last one of each host.
type collector struct {
	mu      sync.Mutex
	samples []lab.Sample
	last    map[string]lab.Sample
}

func (c *collector) add(s lab.Sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.samples = append(c.samples, s)
	c.last[s.Site] = s
}

func (c *collector) lastOf(host string) (lab.Sample, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.last[host]
	return s, ok
}

func (c *collector) all() []lab.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.samples)
}

// startTraffic runs lab.Traffic (one request per interval from each private host), bounded by
// bound in time and in count, until stop is called.
func startTraffic(ctx context.Context, l *lab.Lab, interval, bound time.Duration) (*collector, func()) {
	col := &collector{last: map[string]lab.Sample{}}
	ctx, cancel := context.WithTimeout(ctx, bound)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Traffic(ctx, interval, int(bound/interval)+1, col.add)
	}()
	var once sync.Once
	return col, func() { once.Do(func() { cancel(); <-done }) }
}

// failureResult is one unplanned failure and the fail-back after it.
type failureResult struct {
	N        int
	Site     string        // the NAT killed
	TakeOver time.Duration // kill → take-over write accepted by the simulator; <0 if none
	Failback time.Duration // revive → fail-back write accepted; <0 if none
	Hosts    []hostResult  // kill window (traffic start → revive), per host
	Back     []hostResult  // fail-back window (revive → end), per host
	Baseline int           // requests before the kill that failed or left through the other AZ
	Extra    []lab.Move    // route writes other than the take-over and the fail-back
	Note     string
	KillCmd  time.Duration // how long Kill took (link down in a new process, SIGKILL, reap)
	kill     time.Time
	move     time.Time
}

// host returns the result of the named host in rs.
func host(rs []hostResult, name string) hostResult {
	for _, r := range rs {
		if r.Host == name {
			return r
		}
	}
	return hostResult{Host: name}
}

func (c *config) failure(ctx context.Context, l *lab.Lab, p benchlab.Progress, n int, site *lab.Site) (*failureResult, error) {
	other := l.Other(site)
	f := &failureResult{N: n, Site: site.Name, TakeOver: -1, Failback: -1}
	bound := baseline + failoverBound + observe + c.failbackAfter + failbackExtra + healthyBound + settle + 10*time.Second
	start := time.Now()
	col, stop := startTraffic(ctx, l, c.interval, bound)
	defer stop()
	// The cycle is paced by events at the agents' ticks (the fail-back is written at one), so
	// without jitter every kill would fall at the same phase of the survivor's probe ticks.
	if err := lab.Sleep(ctx, baseline+rand.N(jitter)); err != nil {
		return nil, err
	}

	f.kill = time.Now()
	if err := l.Kill(site.Name); err != nil {
		return nil, fmt.Errorf("kill: %w", err)
	}
	f.KillCmd = time.Since(f.kill)
	ok, err := lab.Poll(ctx, failoverBound, pollEvery, func() bool {
		t, _ := l.Target(site.RouteTable)
		s, seen := col.lastOf(site.Name)
		return t == other.Name && seen && s.Err == nil && s.Via == other.Name && s.Time.After(f.kill)
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		f.Note = fmt.Sprintf("host-%s did not egress through nat-%s within %s of the kill", site.Name, other.Name, failoverBound)
	}
	if err := lab.Sleep(ctx, observe); err != nil {
		return nil, err
	}

	revive := time.Now()
	if err := l.Revive(site.Name); err != nil {
		return f, fmt.Errorf("revive: %w", err)
	}
	ok, err = lab.Poll(ctx, c.failbackAfter+failbackExtra, pollEvery, func() bool {
		t, _ := l.Target(site.RouteTable)
		s, seen := col.lastOf(site.Name)
		return t == site.Name && seen && s.Err == nil && s.Via == site.Name
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return f, fmt.Errorf("no fail-back to nat-%s within %s of the revive", site.Name, c.failbackAfter+failbackExtra)
	}
	if err := waitHealthy(ctx, l, healthyBound); err != nil {
		return f, err
	}
	if err := lab.Sleep(ctx, settle); err != nil {
		return nil, err
	}
	end := time.Now()
	stop()

	samples := col.all()
	for _, s := range samples {
		if s.Time.Before(f.kill.Add(-500*time.Millisecond)) && (s.Err != nil || s.Via != s.Site) {
			f.Baseline++
		}
	}
	for _, h := range l.Sites() {
		f.Hosts = append(f.Hosts, analyse(samples, h.Name, h.Name, start, revive))
		f.Back = append(f.Back, analyse(samples, h.Name, h.Name, revive, end))
	}
	for _, m := range l.MovesSince(start) {
		switch {
		case m.Time.After(end):
		case f.TakeOver < 0 && m.Table == site.RouteTable && m.TargetAZ == other.Name && m.Time.Before(revive):
			f.TakeOver, f.move = m.Time.Sub(f.kill), m.Time
		case f.Failback < 0 && m.Table == site.RouteTable && m.TargetAZ == site.Name && !m.Time.Before(revive):
			f.Failback = m.Time.Sub(revive)
		default:
			f.Extra = append(f.Extra, m)
		}
	}
	a := host(f.Hosts, site.Name)
	p.Say("failure %2d: nat-%s killed; host-%s outage %s (%d failed), take-over accepted %s after the kill; fail-back %s after the revive, %d request(s) lost then; host-%s lost %d",
		n, site.Name, site.Name, a.Outage.Round(time.Millisecond), a.Failed, f.TakeOver.Round(time.Millisecond),
		f.Failback.Round(time.Millisecond), host(f.Back, site.Name).Failed+host(f.Back, other.Name).Failed,
		other.Name, host(f.Hosts, other.Name).Failed)
	return f, nil
}

// waitHealthy waits until every agent answers 200 on /healthz holding its own table and sees
// every peer healthy.
func waitHealthy(ctx context.Context, l *lab.Lab, timeout time.Duration) error {
	var last string
	ok, err := lab.Poll(ctx, timeout, 200*time.Millisecond, func() bool {
		for _, s := range l.Sites() {
			st, err := l.AgentStatus(ctx, s.Name)
			if err != nil {
				last = fmt.Sprintf("agent %s: %v", s.Name, err)
				return false
			}
			if !st.Self.Healthy || !slices.Contains(st.Self.Tables, s.RouteTable) {
				last = fmt.Sprintf("agent %s: healthy %v, tables %v", s.Name, st.Self.Healthy, st.Self.Tables)
				return false
			}
			if !peersHealthy(st.Peers) {
				last = fmt.Sprintf("agent %s sees a peer unhealthy: %+v", s.Name, st.Peers)
				return false
			}
		}
		return true
	})
	if err == nil && !ok {
		err = fmt.Errorf("agents not back to the healthy state within %s: %s", timeout, last)
	}
	return err
}

func peersHealthy(ps []api.PeerStatus) bool {
	if len(ps) == 0 {
		return false
	}
	for _, p := range ps {
		if !p.Healthy {
			return false
		}
	}
	return true
}
