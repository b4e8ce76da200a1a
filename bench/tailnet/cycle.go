package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/bench/internal/benchlab"
	"github.com/headnat/headnat/test/lab"
	"github.com/headnat/headnat/test/tailnetlab"
)

// headscale's own defaults, for the baseline lab.
const (
	defaultBatchChangeDelay      = tailnetlab.HeadscaleDefaultBatchChangeDelay
	defaultNodeStoreBatchTimeout = tailnetlab.HeadscaleDefaultNodeStoreBatchTimeout
)

// Bounds of one cycle.
const (
	baseline     = time.Second       // healthy admin traffic before the fault, plus jitter
	jitter       = time.Second       // random extra wait before the fault, so it falls at any phase of headscale's prober
	recoverBound = 30 * time.Second  // fault → the admin's requests succeed through the other NAT
	observe      = time.Second       // traffic through the other NAT after the recovery
	wholeBound   = 90 * time.Second  // restore → the lab whole again
	settle       = 4 * time.Second   // quiet after the lab is whole: two HA probe cycles, so no session is "fresh"
	drainGrace   = 30 * time.Second  // SIGTERM → SIGKILL if the agent has not exited
	labUpBound   = 3 * time.Minute   // lab.Up
	trafficBound = 150 * time.Second // one cycle's admin traffic at most
)

// labRun is one lab and the cycles run in it.
type labRun struct {
	Name                        string
	BatchDelay, StoreTimeout    time.Duration // headscale's tuning in this lab
	ProbeInterval, ProbeTimeout time.Duration // headscale's HA prober
	Agent                       api.ConfigSummary
	UpTook                      time.Duration
	Unplanned, Planned          []cycle
	Dir                         string
}

// cycle is one unplanned death or planned drain of the primary router.
type cycle struct {
	N        int
	Planned  bool
	From, To string // the primary router before, and the NAT the admin's requests went through after
	// Recovery: fault (kill or SIGTERM) → start of the first successful admin request through
	// To; <0 if none within recoverBound.
	Recovery time.Duration
	// Gap: the longest run of failed admin requests, from the start of its first to the start
	// of the first successful request after it (0 when none failed).
	Gap              time.Duration
	Requests, Failed int // from 1s before the fault to the end of the observation
	Exit             time.Duration
	Withdrawn        bool // planned: /healthz said withdrawn before the agent exited
	Fault            time.Duration
	Note             string
}

// runLab brings up a lab with the given headscale tuning (0: the lab's defaults) and runs the
// cycles in it, unplanned first.
func (c *config) runLab(ctx context.Context, p benchlab.Progress, name string, batchDelay, storeTimeout time.Duration, unplanned, planned int) (*labRun, error) {
	dir, err := os.MkdirTemp("", benchName+"-"+name+"-")
	if err != nil {
		return nil, err
	}
	run := &labRun{Name: name, Dir: dir}
	keep := c.keepLogs
	defer func() {
		if keep {
			fmt.Fprintf(os.Stderr, "lab directory (agent, tailscaled, headscale logs) kept: %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	logf, err := os.Create(dir + "/lab.log")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p.Say("%s lab: building it with its tailnet (failback_after=%s) ...", name, c.failbackAfter)
	uctx, cancel := context.WithTimeout(ctx, labUpBound)
	start := time.Now()
	l, err := lab.Up(uctx, lab.Options{
		Name: benchName + "-" + name, StateDir: dir, BinDir: c.bin, FailbackAfter: c.failbackAfter, Tailnet: true,
		HeadscaleBatchChangeDelay: batchDelay, HeadscaleNodeStoreBatchTimeout: storeTimeout,
		Logger: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	cancel()
	if err != nil {
		keep = true
		return run, fmt.Errorf("%s lab up: %w", name, err)
	}
	defer func() {
		p.Say("%s lab: tearing it down ...", name)
		l.Close()
	}()
	run.UpTook = time.Since(start)
	hs := l.Headscale().Options()
	run.BatchDelay, run.StoreTimeout, run.ProbeInterval, run.ProbeTimeout = hs.BatchChangeDelay, hs.NodeStoreBatchTimeout, hs.ProbeInterval, hs.ProbeTimeout
	st, err := l.AgentStatus(ctx, "a")
	if err != nil {
		keep = true
		return run, fmt.Errorf("agent a /status: %w", err)
	}
	run.Agent = st.Config
	p.Say("%s lab up in %s; headscale batch_change_delay %s, node_store_batch_timeout %s, HA probe every %s (timeout %s)",
		name, run.UpTook.Round(100*time.Millisecond), run.BatchDelay, run.StoreTimeout, run.ProbeInterval, run.ProbeTimeout)
	if err := whole(ctx, l, wholeBound); err != nil {
		keep = true
		return run, err
	}
	for i := range unplanned {
		cy, err := c.cycle(ctx, l, i+1, false)
		run.Unplanned = append(run.Unplanned, cy)
		if err != nil {
			keep = true
			return run, fmt.Errorf("%s lab, unplanned %d: %w", name, i+1, err)
		}
		p.Say("%s unplanned %2d: nat-%s killed; admin through nat-%s %s after the kill (longest gap %s, %d of %d requests failed)",
			name, cy.N, cy.From, cy.To, benchdoc.Ms(cy.Recovery), benchdoc.Ms(cy.Gap), cy.Failed, cy.Requests)
	}
	for i := range planned {
		cy, err := c.cycle(ctx, l, i+1, true)
		run.Planned = append(run.Planned, cy)
		if err != nil {
			keep = true
			return run, fmt.Errorf("%s lab, planned %d: %w", name, i+1, err)
		}
		p.Say("%s planned %2d: nat-%s drained (agent exited %s after SIGTERM, withdrawn first: %v); longest gap %s, %d of %d requests failed; admin through nat-%s %s after SIGTERM",
			name, cy.N, cy.From, benchdoc.Ms(cy.Exit), cy.Withdrawn, benchdoc.Ms(cy.Gap), cy.Failed, cy.Requests, cy.To, benchdoc.Ms(cy.Recovery))
	}
	return run, nil
}

// cycle takes the primary router away (kill, or drain if planned), measures what the admin
// sees, restores the NAT and waits until the lab is whole again.
func (c *config) cycle(ctx context.Context, l *lab.Lab, n int, planned bool) (cycle, error) {
	cy := cycle{N: n, Planned: planned, Recovery: -1}
	primary, err := l.PrimaryRouter(ctx)
	if err != nil {
		return cy, err
	}
	from := l.MustSite(primary)
	to := l.Other(from)
	cy.From, cy.To = from.Name, to.Name
	url := l.Sites()[n%len(l.Sites())].ServiceURL()

	col := &lab.Samples{}
	tctx, stopTraffic := context.WithTimeout(ctx, trafficBound)
	defer stopTraffic()
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = l.AdminTraffic(tctx, url, c.interval, c.timeout, int(trafficBound/c.interval)+1, col.Add)
	})
	defer wg.Wait()
	if err := lab.Sleep(ctx, baseline+rand.N(jitter)); err != nil {
		return cy, err
	}

	fault := time.Now()
	if planned {
		var withdrawnAt time.Time
		wctx, stopWatch := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for i := 0; i < 3000 && wctx.Err() == nil; i++ {
				if hz, _, err := l.Healthz(wctx, from.Name); err == nil && hz.Tailnet != nil && hz.Tailnet.Withdrawn {
					withdrawnAt = time.Now()
					return
				}
				_ = lab.Sleep(wctx, 20*time.Millisecond)
			}
		}()
		err := l.StopAgent(from.Name, syscall.SIGTERM, drainGrace)
		cy.Exit = time.Since(fault)
		stopWatch()
		<-watched
		cy.Withdrawn = !withdrawnAt.IsZero()
		if err != nil {
			return cy, err
		}
	} else {
		if err := l.Kill(from.Name); err != nil {
			return cy, err
		}
	}
	cy.Fault = time.Since(fault)

	ok, err := lab.Poll(ctx, recoverBound, 20*time.Millisecond, func() bool { return col.FirstVia(to.Name, fault) >= 0 })
	if err != nil {
		return cy, err
	}
	if !ok {
		cy.Note = fmt.Sprintf("no admin request through nat-%s within %s", to.Name, recoverBound)
	}
	if err := lab.Sleep(ctx, observe); err != nil {
		return cy, err
	}
	stopTraffic()
	wg.Wait()
	cy.Recovery = col.FirstVia(to.Name, fault)
	o := lab.OutageOf(col.Since(fault.Add(-time.Second)))
	cy.Requests, cy.Failed, cy.Gap = o.Requests, o.Failed, o.Longest
	if !o.Recovered {
		cy.Note += "; the admin's last request failed"
	}

	if planned {
		err = l.StartAgent(from.Name)
	} else {
		err = l.Revive(from.Name)
	}
	if err != nil {
		return cy, err
	}
	if err := whole(ctx, l, wholeBound); err != nil {
		return cy, err
	}
	if now, err := l.PrimaryRouter(ctx); err != nil || now != to.Name {
		cy.Note += fmt.Sprintf("; after the restore the primary router is %q (%v), not nat-%s", now, err, to.Name)
	}
	return cy, lab.Sleep(ctx, settle)
}

// whole waits until the lab is whole: the tailnet (every NAT online with its route approved,
// one primary, the admin reaching every private host), every agent healthy holding its own
// table and seeing its peer healthy, its tailnet approved, not degraded, not withdrawn.
func whole(ctx context.Context, l *lab.Lab, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if err := l.WaitTailnet(ctx, timeout); err != nil {
		return err
	}
	var last string
	ok, err := lab.Poll(ctx, time.Until(deadline), 200*time.Millisecond, func() bool {
		for _, s := range l.NATs() {
			st, err := l.AgentStatus(ctx, s.Name)
			switch {
			case err != nil:
				last = fmt.Sprintf("agent %s: %v", s.Name, err)
				return false
			case !st.Self.Healthy || !slices.Contains(st.Self.Tables, s.RouteTable):
				last = fmt.Sprintf("agent %s: healthy %v, tables %v", s.Name, st.Self.Healthy, st.Self.Tables)
				return false
			case len(st.Peers) == 0 || slices.ContainsFunc(st.Peers, func(p api.PeerStatus) bool { return !p.Healthy }):
				last = fmt.Sprintf("agent %s: peers %+v", s.Name, st.Peers)
				return false
			case st.Self.Tailnet == nil || !st.Self.Tailnet.Approved || st.Self.Tailnet.Degraded || st.Self.Tailnet.Withdrawn:
				last = fmt.Sprintf("agent %s: tailnet %+v", s.Name, st.Self.Tailnet)
				return false
			}
		}
		return true
	})
	if err == nil && !ok {
		err = fmt.Errorf("lab not whole again within %s: %s", timeout, last)
	}
	return err
}
