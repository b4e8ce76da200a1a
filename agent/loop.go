package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/headnat/headnat/agent/control"
	"github.com/headnat/headnat/agent/failover"
	"github.com/headnat/headnat/agent/server"
)

// Run applies the data plane, then runs the loops until ctx ends, then drains. With Once it
// runs one synchronous tick instead.
//
// The loops never wait on each other: peer probing (every probe.interval) decides and hands
// route writes to the writer, which runs them in the background (one in flight per table);
// the own-health check (every egress.interval) only reads the data plane's latest findings;
// the data plane is verified and repaired in its own loop (every verify_interval); the
// cluster is re-read from EC2 every refresh.
func (a *Agent) Run(ctx context.Context) error {
	id := a.res.Identity
	a.log.Info("starting", "instance", id.InstanceID, "az", id.AZ, "eni", id.ENI, "cluster", a.res.Cluster.Name,
		"tables", len(a.res.Cluster.Tables), "members", len(a.res.Cluster.Instances), "dry_run", a.cfg.DryRun)
	if a.opts.Once {
		if err := a.prepare(ctx); err != nil {
			return err
		}
		return a.once(ctx)
	}
	// Listen and serve first: a port in use is bad configuration, found before anything
	// changes; and a restarted agent answers "starting" at once, so that peers keep its
	// tables for the restart grace instead of timing out on a port that accepts but is mute.
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.Listen, err)
	}
	defer ln.Close()
	srv := server.New(server.Options{Source: server.SourceFuncs{HealthzFunc: a.healthz, StatusFunc: a.status}, Metrics: a.metrics, Logger: a.log})
	var wg sync.WaitGroup
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stop()
		a.writer.Wait()
		wg.Wait()
	}()
	ctl, err := control.Listen(a.cfg.ControlSocket)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	serveErr := make(chan error, 2)
	wg.Go(func() { serveErr <- srv.Serve(loopCtx, ln) })
	wg.Go(func() {
		if err := control.New(controlAgent{a: a, ctx: loopCtx}, a.log).Serve(loopCtx, ctl); err != nil {
			serveErr <- fmt.Errorf("control socket: %w", err)
		}
	})
	if err := a.prepare(ctx); err != nil {
		return err
	}
	if !a.cfg.DryRun {
		// Verified once before the first self check, so that it need not fail "not verified yet".
		a.verifyAndRepair(ctx)
		wg.Go(func() { a.every(loopCtx, a.cfg.VerifyInterval, false, a.verifyAndRepair) })
	}
	if a.tn != nil && !a.cfg.DryRun {
		// The tailnet is re-asserted and re-read every refresh, in its own loop: a login that
		// hangs on headscale never holds up NAT or failover.
		wg.Go(func() { a.every(loopCtx, a.cfg.Refresh, true, a.syncTailnet) })
	}
	// The lifecycle is read once before the first tick: a launching instance must not take
	// route tables before it knows it is launching.
	a.pollLifecycle(ctx)
	a.lifecycleStep(ctx)
	a.life.mu.Lock()
	a.life.started = true
	a.life.mu.Unlock()
	a.publicAddress(ctx)
	wg.Go(func() {
		a.every(loopCtx, a.cfg.Lifecycle.PollInterval, false, func(ctx context.Context) {
			a.pollLifecycle(ctx)
			a.lifecycleStep(ctx)
		})
	})
	wg.Go(func() { a.every(loopCtx, a.cfg.Egress.Interval, true, a.checkSelf) })
	wg.Go(func() { a.every(loopCtx, a.cfg.Refresh, true, func(ctx context.Context) { a.refresh(ctx) }) })
	if a.eip.pool != nil && !a.cfg.DryRun {
		wg.Go(func() { a.every(loopCtx, 5*a.cfg.Refresh, false, a.retryEIP) })
	}
	if a.cw != nil {
		// First after one interval, once the peers have been probed.
		wg.Go(func() { a.every(loopCtx, a.cfg.CloudWatch.Interval, false, a.publishMetrics) })
	}
	tick := a.clock.NewTicker(a.cfg.Probe.Interval)
	defer tick.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-a.life.exit:
			a.log.Info("handed over; exiting", "why", a.lifecycleWhy())
			return nil
		case err := <-serveErr:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				runErr = fmt.Errorf("http server: %w", err)
			}
			break loop
		case <-tick.C():
			a.tick(loopCtx)
		}
	}
	if runErr == nil && !a.cfg.DryRun {
		a.drainOnSignal(loopCtx)
	}
	return runErr
}

// prepare makes the host a NAT router and turns source/dest check off (not in a dry run).
func (a *Agent) prepare(ctx context.Context) error {
	if a.cfg.DryRun {
		a.log.Info("dry run: not applying the data plane, not changing source/dest check, logging route writes only")
		return nil
	}
	res, err := a.dp.Apply(ctx, a.res.Spec)
	if err != nil {
		return fmt.Errorf("apply data plane: %w", err)
	}
	a.log.Info("data plane applied", "changes", len(res.Changes), "notes", res.Notes)
	if err := a.cl.SourceDestCheckOff(ctx); err != nil {
		return fmt.Errorf("turn source/dest check off: %w", err)
	}
	a.log.Info("source/dest check off", "eni", a.res.Identity.ENI)
	return nil
}

// every runs fn every d (and at once with now) until ctx ends.
func (a *Agent) every(ctx context.Context, d time.Duration, now bool, fn func(context.Context)) {
	t := a.clock.NewTicker(d)
	defer t.Stop()
	if now {
		fn(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			fn(ctx)
		}
	}
}

// once runs a single synchronous tick: one check of everything, one decision, its writes.
func (a *Agent) once(ctx context.Context) error {
	if !a.cfg.DryRun {
		a.verifyAndRepair(ctx)
	}
	if a.tn != nil && !a.cfg.DryRun {
		a.syncTailnet(ctx)
	}
	a.checkSelf(ctx)
	a.tick(ctx)
	a.writer.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range a.decisions {
		if d.Result == "error" {
			return fmt.Errorf("route write %s: %s", d.Table, d.Error)
		}
	}
	return nil
}

func (a *Agent) checkSelf(ctx context.Context) {
	r := a.self.Check(ctx, a.clock.Now())
	a.metrics.SetHealthy(r.Healthy)
	if r.Changed {
		a.log.Info("own health changed", "healthy", r.Healthy, "reasons", r.Reasons)
	}
}

// refresh re-reads the cluster from EC2 and returns when the view has taken it.
func (a *Agent) refresh(ctx context.Context) {
	start := a.clock.Now()
	c, err := a.cl.Discover(ctx, a.res.Cluster.Name, "refresh")
	if err != nil {
		a.log.Warn("refresh cluster view; keeping the previous one", "err", err)
		return
	}
	a.mu.Lock()
	notes := a.view.Refreshed(c, start)
	a.mu.Unlock()
	a.logNotes(notes)
}

// tick probes the peers, decides, and hands the writes to the writer.
func (a *Agent) tick(ctx context.Context) {
	now := a.clock.Now()
	a.metrics.ProbeRound(now)
	a.mu.Lock()
	members := a.view.Members()
	a.mu.Unlock()
	states := a.peers.Probe(ctx, withTailnetIPs(members, a.tailnetIPs), now)
	for _, st := range states {
		ok := st.LastErr == "" && st.Answer.Healthy // this probe, before rise/fall
		a.metrics.ObserveProbe(st.Peer.ID, ok)
		if !ok && !st.Changed {
			a.log.Debug("peer probe failed", "peer", st.Peer.ID, "err", st.LastErr, "healthy", st.Healthy)
		}
		if st.Changed {
			a.log.Info("peer health changed", "peer", st.Peer.ID, "az", st.Peer.AZ, "healthy", st.Healthy, "err", st.LastErr)
		}
	}
	a.mu.Lock()
	notes := a.view.Probed(states, now)
	obs := a.view.Observation(now, a.self.Last())
	a.mu.Unlock()
	a.logNotes(notes)
	d, err := failover.Decide(obs)
	if err != nil {
		a.log.Error("decide", "err", err)
		return
	}
	a.mu.Lock()
	a.owners = d.Owners
	a.pending = map[string]failover.Write{}
	for _, p := range d.Pending {
		a.pending[p.TableID] = p
	}
	a.mu.Unlock()
	for _, w := range d.Writes {
		a.writer.Submit(ctx, w, now)
	}
}

func (a *Agent) logNotes(notes []note) {
	for _, n := range notes {
		a.log.Log(context.Background(), n.level, n.msg, n.attrs...)
	}
}
