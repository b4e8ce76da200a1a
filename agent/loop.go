package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/failover"
	"github.com/headnat/headnat/agent/health"
	"github.com/headnat/headnat/agent/server"
)

const (
	defaultRefreshEvery = 2 * time.Second
	// verifyEvery spaces data-plane checks: one runs about a dozen iptables processes.
	verifyEvery  = 5 * time.Second
	maxDecisions = 50
	drainTimeout = 15 * time.Second
)

type agent struct {
	cfg     config.Config
	opts    Options
	res     Resolved
	cl      Cloud
	dp      Dataplane
	metrics *server.Metrics
	log     *slog.Logger
	self    *health.Self
	peers   *health.PeerTracker
	refresh time.Duration

	mu         sync.Mutex
	cluster    cloud.Cluster
	lastMove   map[string]time.Time
	evidence   map[string]time.Time // peer -> when it was seen taking a table while down in my view
	agentDown  map[string]time.Time // peer -> since when its host answers but its agent does not
	wroteAt    map[string]time.Time // table -> when this agent last pointed it at itself
	peerStates []health.PeerState
	owners     map[string]failover.Owner
	decisions  []api.Decision

	lastVerify   time.Time // only the self-check goroutine touches these two
	lastFindings []string
}

func newAgent(cfg config.Config, o Options, r Resolved, cl Cloud, dp Dataplane, m *server.Metrics, log *slog.Logger) (*agent, error) {
	peerCfg := health.Config{Interval: cfg.Probe.Interval, Timeout: cfg.Probe.Timeout, Rise: cfg.Probe.Rise, Fall: cfg.Probe.Fall}
	selfCfg := health.DefaultSelfConfig()
	selfCfg.Rise, selfCfg.Fall = cfg.Probe.Rise, cfg.Probe.Fall
	if o.Once {
		// One tick has one observation: decide on it.
		peerCfg.Rise, peerCfg.Fall, selfCfg.Rise, selfCfg.Fall = 1, 1, 1, 1
	}
	probes, err := egressProbes(cfg.Egress.Targets, r.Identity.Region)
	if err != nil {
		return nil, err
	}
	k := cfg.Egress.K
	if k > len(probes) {
		k = len(probes)
	}
	a := &agent{
		cfg: cfg, opts: o, res: r, cl: cl, dp: dp, metrics: m, log: log,
		refresh:   o.RefreshEvery,
		cluster:   r.Cluster,
		lastMove:  map[string]time.Time{},
		evidence:  map[string]time.Time{},
		agentDown: map[string]time.Time{},
		wroteAt:   map[string]time.Time{},
	}
	if a.refresh <= 0 {
		a.refresh = defaultRefreshEvery
	}
	var verifier health.Verifier
	if !cfg.DryRun {
		verifier = health.VerifierFunc(a.verifyAndRepair)
	}
	if a.self, err = health.NewSelf(selfCfg, &health.KofN{K: k, Probes: probes}, verifier); err != nil {
		return nil, fmt.Errorf("self check: %w", err)
	}
	if a.peers, err = health.NewPeerTracker(peerCfg, health.HTTPPath{Port: cfg.PeerPort}, nil); err != nil {
		return nil, fmt.Errorf("peer probes: %w", err)
	}
	return a, nil
}

func (a *agent) run(ctx context.Context) error {
	id := a.res.Identity
	a.log.Info("starting", "instance", id.InstanceID, "az", id.AZ, "eni", id.ENI, "cluster", a.res.Cluster.Name,
		"tables", len(a.res.Cluster.Tables), "members", len(a.res.Cluster.Instances), "dry_run", a.cfg.DryRun)
	// Listen first: a port in use is bad configuration, found before anything changes.
	var ln net.Listener
	if !a.opts.Once {
		var err error
		if ln, err = net.Listen("tcp", a.cfg.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", a.cfg.Listen, err)
		}
		defer ln.Close()
	}
	if a.cfg.DryRun {
		a.log.Info("dry run: not applying the data plane, not changing source/dest check, logging route writes only")
	} else {
		res, err := a.dp.Apply(ctx, a.res.Spec)
		if err != nil {
			return fmt.Errorf("apply data plane: %w", err)
		}
		a.log.Info("data plane applied", "changes", len(res.Changes), "notes", res.Notes)
		if err := a.cl.SourceDestCheckOff(ctx); err != nil {
			return fmt.Errorf("turn source/dest check off: %w", err)
		}
		a.log.Info("source/dest check off", "eni", id.ENI)
	}
	if a.opts.Once {
		return a.once(ctx)
	}
	srv := server.New(server.Options{Source: server.SourceFuncs{HealthzFunc: a.healthz, StatusFunc: a.status}, Metrics: a.metrics, Logger: a.log})
	var wg sync.WaitGroup
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- srv.Serve(loopCtx, ln) })
	wg.Go(func() { a.selfLoop(loopCtx) })
	wg.Go(func() { a.refreshLoop(loopCtx) })
	tick := time.NewTicker(a.cfg.Probe.Interval)
	defer tick.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-serveErr:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				runErr = fmt.Errorf("http server: %w", err)
			}
			break loop
		case <-tick.C:
			a.tick(loopCtx, time.Now())
		}
	}
	if runErr == nil && !a.cfg.DryRun {
		a.drain(loopCtx)
	}
	stop()
	wg.Wait()
	return runErr
}

// once runs a single synchronous tick: one check of everything, one decision, its writes.
func (a *agent) once(ctx context.Context) error {
	now := time.Now()
	a.self.Check(ctx, now)
	a.tick(ctx, now)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range a.decisions {
		if d.Result == "error" {
			return fmt.Errorf("route write %s: %s", d.Table, d.Error)
		}
	}
	return nil
}

// drain hands the routes over before exit: /healthz reports draining, peers take the tables,
// and the agent waits until none targets it or the deadline passes.
func (a *agent) drain(ctx context.Context) {
	if len(a.heldTables()) == 0 {
		return
	}
	a.mu.Lock()
	anyPeer := slices.ContainsFunc(a.peerStates, func(st health.PeerState) bool { return st.Healthy && !st.Draining })
	a.mu.Unlock()
	if !anyPeer {
		a.log.Warn("exiting without hand-over: no healthy peer to take the route tables", "tables", a.heldTables())
		return
	}
	a.self.SetDraining(true)
	a.log.Info("draining: waiting for peers to take the route tables", "tables", a.heldTables(), "timeout", drainTimeout)
	ctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	refresh := time.NewTicker(a.cfg.Probe.Interval * 2)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			a.log.Warn("drain deadline passed; exiting while still holding tables", "tables", a.heldTables())
			return
		case <-refresh.C:
			a.refreshOnce(ctx, time.Now())
			if len(a.heldTables()) == 0 {
				a.log.Info("drained: no route table targets this instance")
				return
			}
		}
	}
}

func (a *agent) selfLoop(ctx context.Context) {
	interval := health.DefaultSelfConfig().Interval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r := a.self.Check(ctx, time.Now())
		a.metrics.SetHealthy(r.Healthy)
		a.metrics.Findings(len(r.Findings))
		if r.Changed {
			a.log.Info("own health changed", "healthy", r.Healthy, "reasons", r.Reasons)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// verifyAndRepair reports data-plane deviations and re-applies the spec to repair them; a
// deviation that survives the repair keeps failing checks until rise/fall marks us unhealthy.
func (a *agent) verifyAndRepair(ctx context.Context) ([]string, error) {
	if now := time.Now(); now.Sub(a.lastVerify) < verifyEvery {
		return a.lastFindings, nil
	} else {
		a.lastVerify = now
	}
	fs, err := a.dp.Verify(ctx, a.res.Spec)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range fs {
		out = append(out, f.String())
	}
	a.lastFindings = out
	if len(out) > 0 {
		a.log.Warn("data plane deviates; re-applying", "findings", out)
		if _, err := a.dp.Apply(ctx, a.res.Spec); err != nil {
			a.log.Error("re-apply data plane", "err", err)
		} else {
			a.lastVerify = time.Time{} // check the repair on the next self check
		}
	}
	return out, nil
}

func (a *agent) refreshLoop(ctx context.Context) {
	t := time.NewTicker(a.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.refreshOnce(ctx, time.Now())
		}
	}
}

// refreshOnce re-reads the cluster from EC2 and notes route moves it did not make itself.
// now is when the read started: a table this agent wrote after that keeps its local state,
// so that a read racing a write does not undo it (or pin a move on a dead peer).
func (a *agent) refreshOnce(ctx context.Context, now time.Time) {
	c, err := a.cl.Discover(ctx, a.res.Cluster.Name, "refresh")
	if err != nil {
		a.log.Warn("refresh cluster view; keeping the previous one", "err", err)
		return
	}
	if len(a.cfg.RouteTables) > 0 {
		if c.Tables, err = pickTables(c, a.cfg.RouteTables); err != nil {
			a.log.Warn("refresh cluster view: configured table gone; keeping the previous view", "err", err)
			return
		}
	}
	if !slices.ContainsFunc(c.Instances, func(in cloud.Instance) bool { return in.ID == a.res.Identity.InstanceID }) {
		c.Instances = append(c.Instances, a.res.Self.Instance)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	prev := map[string]cloud.RouteTable{}
	for _, t := range a.cluster.Tables {
		prev[t.ID] = t
	}
	for i, t := range c.Tables {
		p, ok := prev[t.ID]
		if ok && a.wroteAt[t.ID].After(now) {
			c.Tables[i] = p
			continue
		}
		if !ok || (p.Target.ENI == t.Target.ENI && p.Target.Other == t.Target.Other && p.State == t.State) {
			continue
		}
		a.lastMove[t.ID] = now
		a.log.Info("route table moved", "table", t.ID, "from", p.Target.ENI, "to", t.Target.ENI, "state", t.State)
		if st, ok := a.peerByENI(t.Target.ENI); ok && st.Decided && !st.Healthy {
			// It fails my probes yet takes tables: partitioned from me, not dead.
			a.evidence[st.Peer.ID] = now
			a.log.Warn("peer unreachable from here took a route table: treating it as partitioned, not dead",
				"peer", st.Peer.ID, "table", t.ID)
		}
	}
	a.cluster = c
}

func (a *agent) peerByENI(eni string) (health.PeerState, bool) {
	for _, st := range a.peerStates {
		if eni != "" && st.Peer.ENI == eni {
			return st, true
		}
	}
	return health.PeerState{}, false
}

// tick probes the peers, decides and writes.
func (a *agent) tick(ctx context.Context, now time.Time) {
	a.mu.Lock()
	members := slices.Clone(a.cluster.Instances)
	a.mu.Unlock()
	var peers []health.Peer
	for _, in := range members {
		if in.ID == a.res.Identity.InstanceID {
			continue
		}
		peers = append(peers, health.Peer{ID: in.ID, AZ: in.AZ, ENI: in.ENI, IP: in.PrivateIP, LaunchTime: in.LaunchTime})
	}
	states := a.peers.Probe(ctx, peers, now)
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
	a.peerStates = states
	a.trackAgentDown(states, now)
	obs := a.observation(now)
	a.mu.Unlock()
	d, err := failover.Decide(obs)
	if err != nil {
		a.log.Error("decide", "err", err)
		return
	}
	a.mu.Lock()
	a.owners = d.Owners
	a.mu.Unlock()
	for _, w := range d.Writes {
		a.write(ctx, w, now)
	}
}

// trackAgentDown notes peers whose host answers while their agent does not (refused, or
// answering that it is still starting). Caller holds a.mu.
func (a *agent) trackAgentDown(states []health.PeerState, now time.Time) {
	for _, st := range states {
		starting := st.LastErr == "" && st.Answer.Starting
		switch _, seen := a.agentDown[st.Peer.ID]; {
		case (st.HostUp || starting) && !seen:
			a.agentDown[st.Peer.ID] = now
			a.log.Info("peer's host answers but its agent does not (yet); keeping its tables for the restart grace",
				"peer", st.Peer.ID, "grace", a.cfg.Probe.RestartGrace, "err", st.LastErr)
		case !st.HostUp && !starting && seen:
			delete(a.agentDown, st.Peer.ID)
		}
	}
}

// observation is what failover.Decide sees. Caller holds a.mu.
func (a *agent) observation(now time.Time) failover.Observation {
	selfRes := a.self.Last()
	byID := map[string]health.PeerState{}
	for _, st := range a.peerStates {
		byID[st.Peer.ID] = st
	}
	window := 2 * a.cfg.FailbackAfter
	obs := failover.Observation{Self: a.res.Identity.InstanceID, Now: now, FailbackAfter: a.cfg.FailbackAfter}
	for _, in := range a.cluster.Instances {
		fi := failover.Instance{ID: in.ID, AZ: in.AZ, ENI: in.ENI, LaunchTime: in.LaunchTime}
		if in.ID == obs.Self {
			fi.ENI = a.res.Identity.ENI
			fi.Healthy, fi.Draining = selfRes.Healthy, selfRes.Draining
			if fi.Healthy {
				fi.HealthySince = selfRes.Since
			}
		} else if st, ok := byID[in.ID]; ok {
			fi.Healthy, fi.Draining = st.Healthy, st.Draining
			if fi.Healthy {
				fi.HealthySince = st.Since
			}
			l := liveness{peer: st, now: now, actedAt: a.evidence[in.ID], agentDownSince: a.agentDown[in.ID],
				actedWindow: window, restartGrace: a.cfg.Probe.RestartGrace}
			fi.TailnetReachable = l.aliveNotHealthy() != ""
		} else {
			// A member not probed yet (just discovered): unknown, not dead.
			fi.TailnetReachable = true
		}
		obs.Instances = append(obs.Instances, fi)
	}
	for _, t := range a.cluster.Tables {
		obs.Tables = append(obs.Tables, failover.Table{
			ID:        t.ID,
			HomeAZ:    t.HomeAZ,
			TargetENI: t.Target.ENI,
			Blackhole: t.State == cloud.RouteBlackhole,
			Missing:   t.State == cloud.RouteMissing,
			LastMove:  a.lastMove[t.ID],
		})
	}
	return obs
}

func (a *agent) write(ctx context.Context, w failover.Write, now time.Time) {
	d := api.Decision{Time: now, Table: w.TableID, Kind: string(w.Kind), Target: a.res.Identity.InstanceID, TargetENI: w.TargetENI, Reason: w.Reason}
	log := a.log.With("table", w.TableID, "kind", w.Kind, "action", w.Action, "target", w.TargetENI, "reason", w.Reason)
	switch {
	case a.cfg.DryRun:
		d.Result = "dry-run"
		log.Info("dry run: would point route")
	default:
		start := time.Now()
		err := a.cl.PointRoute(ctx, w.TableID, w.TargetENI, w.Reason, w.Action == failover.ActionCreate)
		if err != nil {
			d.Result, d.Error = "error", err.Error()
			log.Error("point route", "err", err)
			a.metrics.RouteWrite(string(w.Kind), "error")
			break
		}
		d.Result = "ok"
		log.Info("pointed route at this instance", "took", time.Since(start).Round(time.Millisecond))
		a.metrics.RouteWrite(string(w.Kind), "ok")
		a.metrics.RouteMoved(time.Now())
		if w.Kind == failover.KindTakeover {
			a.metrics.Failover()
		}
		a.mu.Lock()
		for i := range a.cluster.Tables {
			if t := &a.cluster.Tables[i]; t.ID == w.TableID {
				t.Target = cloud.RouteTarget{ENI: w.TargetENI, InstanceID: a.res.Identity.InstanceID}
				t.State = cloud.RouteActive
			}
		}
		a.lastMove[w.TableID] = now
		a.wroteAt[w.TableID] = time.Now()
		a.mu.Unlock()
	}
	a.mu.Lock()
	a.decisions = append(a.decisions, d)
	if len(a.decisions) > maxDecisions {
		a.decisions = a.decisions[len(a.decisions)-maxDecisions:]
	}
	a.mu.Unlock()
}

func (a *agent) heldTables() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, t := range a.cluster.Tables {
		if t.Target.ENI == a.res.Identity.ENI && t.State == cloud.RouteActive {
			out = append(out, t.ID)
		}
	}
	sort.Strings(out)
	return out
}

func (a *agent) healthz() api.Healthz {
	r := a.self.Last()
	return api.Healthz{
		Instance:   a.res.Identity.InstanceID,
		AZ:         a.res.Identity.AZ,
		Healthy:    r.Healthy,
		Reasons:    r.Reasons,
		Draining:   r.Draining,
		Starting:   !r.Decided && !r.Draining,
		LaunchTime: a.res.Self.LaunchTime,
		Tables:     a.heldTables(),
		Version:    a.opts.Version,
	}
}

func (a *agent) status() api.Status {
	hz := a.healthz()
	r := a.self.Last()
	a.mu.Lock()
	defer a.mu.Unlock()
	st := api.Status{Time: time.Now(), Self: hz, Config: summary(a.cfg, a.res), Decisions: slices.Clone(a.decisions)}
	for _, p := range a.peerStates {
		ps := p.Status()
		ps.PrivateIP = validIP(p.Peer.IP)
		st.Peers = append(st.Peers, ps)
	}
	for _, t := range a.cluster.Tables {
		ts := api.TableStatus{ID: t.ID, HomeAZ: t.HomeAZ, TargetInstance: t.Target.InstanceID, TargetENI: t.Target.ENI,
			State: string(t.State), HeldSince: a.lastMove[t.ID]}
		if ts.TargetInstance == "" {
			for _, in := range a.cluster.Instances {
				if in.ENI == t.Target.ENI && in.ENI != "" {
					ts.TargetInstance = in.ID
				}
			}
		}
		if o, ok := a.owners[t.ID]; ok {
			ts.PreferredOwner, ts.PreferredReason = o.InstanceID, o.Reason
		}
		st.Tables = append(st.Tables, ts)
	}
	for _, f := range r.Findings {
		st.Findings = append(st.Findings, api.Finding{Kind: "dataplane", Detail: f})
	}
	return st
}
