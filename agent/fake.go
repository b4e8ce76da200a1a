package agent

import (
	"context"
	"sync"
	"time"

	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/dataplane"
)

// FakeClock is a Clock that moves only when told to. Its tickers fire (dropping ticks like
// time.Ticker) when Advance passes their next tick.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

// NewFakeClock returns a clock at t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *FakeClock) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("non-positive interval for NewTicker")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{c: c, ch: make(chan time.Time, 1), every: d, next: c.now.Add(d)}
	c.tickers = append(c.tickers, t)
	return t
}

// Advance moves the clock by d and fires every ticker that came due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.tickers {
		if t.stopped || t.next.After(c.now) {
			continue
		}
		for !t.next.After(c.now) {
			t.next = t.next.Add(t.every)
		}
		select {
		case t.ch <- c.now:
		default:
		}
	}
}

type fakeTicker struct {
	c       *FakeClock
	ch      chan time.Time
	every   time.Duration
	next    time.Time
	stopped bool
}

func (t *fakeTicker) C() <-chan time.Time { return t.ch }

func (t *fakeTicker) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.stopped = true
}

// FakeDataplane records applies and answers Verify with the findings it is given.
type FakeDataplane struct {
	mu       sync.Mutex
	applies  int
	verifies int
	findings []dataplane.Finding // returned by Verify until the next Apply
	sticky   bool                // findings survive Apply
}

// Deviate makes Verify report fs; sticky findings survive a re-apply.
func (f *FakeDataplane) Deviate(sticky bool, fs ...dataplane.Finding) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.findings, f.sticky = fs, sticky
}

func (f *FakeDataplane) Apply(context.Context, dataplane.Spec) (dataplane.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies++
	if !f.sticky {
		f.findings = nil
	}
	return dataplane.Result{}, nil
}

func (f *FakeDataplane) Verify(context.Context, dataplane.Spec) ([]dataplane.Finding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verifies++
	return append([]dataplane.Finding(nil), f.findings...), nil
}

// Counts returns how often Apply and Verify ran.
func (f *FakeDataplane) Counts() (applies, verifies int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applies, f.verifies
}

// FixedIdentity is a Cloud whose identity is given rather than read from IMDS; every EC2 call
// goes to Client (the real client, against vpcsim in tests).
type FixedIdentity struct {
	Client *cloud.Client
	ID     cloud.Identity
}

func (f FixedIdentity) ReadIdentity(context.Context) (cloud.Identity, error) { return f.ID, nil }

func (f FixedIdentity) DescribeSelf(ctx context.Context, id string) (cloud.Self, error) {
	return f.Client.DescribeSelf(ctx, id)
}

func (f FixedIdentity) Discover(ctx context.Context, cluster, reason string) (cloud.Cluster, error) {
	return f.Client.Discover(ctx, cluster, reason)
}

func (f FixedIdentity) SourceDestCheckOff(ctx context.Context) error {
	return f.Client.DisableSourceDestCheck(ctx, f.ID.ENI)
}

func (f FixedIdentity) PublicIPv4(context.Context) (string, error) { return "", nil }

func (f FixedIdentity) PointRoute(ctx context.Context, tableID, eniID, reason string, create bool) error {
	return f.Client.PointRoute(ctx, tableID, eniID, reason, create)
}

// FixedIMDS is a LifecycleCloud whose IMDS answers (spot notice, rebalance recommendation,
// target lifecycle state) are set by the test; every Auto Scaling call goes to Client (the
// real client, against vpcsim in tests).
type FixedIMDS struct {
	Client *cloud.Client

	mu        sync.Mutex
	spot      *cloud.SpotNotice
	rebalance time.Time
	target    string
}

// Set replaces the IMDS answers; a nil spot, zero rebalance or empty target is "none".
func (f *FixedIMDS) Set(spot *cloud.SpotNotice, rebalance time.Time, target string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spot, f.rebalance, f.target = spot, rebalance, target
}

func (f *FixedIMDS) SpotInterruption(context.Context) (*cloud.SpotNotice, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spot, nil
}

func (f *FixedIMDS) RebalanceRecommendation(context.Context) (time.Time, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rebalance, !f.rebalance.IsZero(), nil
}

func (f *FixedIMDS) TargetLifecycleState(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.target, nil
}

func (f *FixedIMDS) GroupInstance(ctx context.Context, id, reason string) (cloud.GroupMembership, error) {
	return f.Client.GroupInstance(ctx, id, reason)
}

func (f *FixedIMDS) LifecycleHooks(ctx context.Context, group, reason string) ([]cloud.LifecycleHook, error) {
	return f.Client.LifecycleHooks(ctx, group, reason)
}

func (f *FixedIMDS) CompleteLifecycleAction(ctx context.Context, a cloud.LifecycleAction, result, reason string) error {
	return f.Client.CompleteLifecycleAction(ctx, a, result, reason)
}

func (f *FixedIMDS) RecordLifecycleActionHeartbeat(ctx context.Context, a cloud.LifecycleAction, reason string) error {
	return f.Client.RecordLifecycleActionHeartbeat(ctx, a, reason)
}
