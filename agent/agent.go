// Package agent wires the headnat agent together: it resolves the configuration from IMDS and
// tags, applies the data plane, turns source/dest check off, serves /healthz, /status and
// /metrics, and runs the loops in which agent/health observes, agent/failover decides and
// agent/cloud writes. Decisions live in those packages; this one only schedules and wires.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/dataplane"
	"github.com/headnat/headnat/agent/discovery"
	"github.com/headnat/headnat/agent/eip"
	"github.com/headnat/headnat/agent/failover"
	"github.com/headnat/headnat/agent/health"
	"github.com/headnat/headnat/agent/server"
	"github.com/headnat/headnat/agent/tailnet"
)

// Cloud is the part of agent/cloud the agent uses; *cloud.Client satisfies it.
type Cloud interface {
	discovery.Cloud // ReadIdentity, DescribeSelf, Discover
	SourceDestCheckOff(ctx context.Context) error
	PublicIPv4(ctx context.Context) (string, error)
	PointRoute(ctx context.Context, tableID, eniID, reason string, create bool) error
}

// Dataplane keeps the host a NAT router; *dataplane.Dataplane satisfies it.
type Dataplane interface {
	Apply(ctx context.Context, s dataplane.Spec) (dataplane.Result, error)
	Verify(ctx context.Context, s dataplane.Spec) ([]dataplane.Finding, error)
}

// Deps are the agent's side effects, built by the caller (cmd/headnat, or a test).
type Deps struct {
	Cloud     Cloud
	Dataplane Dataplane
	Metrics   *server.Metrics // nil: a fresh registry
	Log       *slog.Logger    // nil: discard
	Clock     Clock           // nil: the real clock
	// Peers asks peers for /healthz; nil: HTTP over the VPC to the peer port, each dial and
	// request bounded by the probe timeout.
	Peers health.PeerPath
	// Egress are the own-egress probes; nil: built from the configured egress targets.
	Egress []health.Probe

	// The tailnet as the second health path (nil: no tailnet).
	//
	// TailnetPeers asks a peer for /healthz over the tailnet, each round, concurrently with the
	// VPC path (health.HTTPPath{Port: cfg.PeerPort, Tailnet: true, Client: ...} fits). With it,
	// a peer that fails over the VPC but answers healthy over the tailnet is partitioned, not
	// dead: it keeps its tables and decides for itself; a peer that fails both paths is dead
	// within fall x interval + timeout, as without a tailnet. The old partition evidence ("took a
	// route table while failing my probes") is then not used; without TailnetPeers it is.
	TailnetPeers health.PeerPath
	// TailnetIPs returns the peers' tailnet addresses by instance id; required with
	// TailnetPeers. It is called once per probe round, on the probe loop, so it must return at
	// once (serve a cached map; the map is only read). It may return nil or a partial map while
	// the tailnet is down: a peer without an address is not asked over the tailnet that round,
	// which counts as a failed tailnet probe (so a short gap does not end a partition; fall
	// rounds without an address do).
	TailnetIPs func() map[string]netip.Addr

	// Tailnet keeps tailscaled logged in as a subnet router (nil: no tailnet). With it,
	// TailnetAuthKey is required; TailnetPeers defaults to HTTP to the peer port over the
	// tailnet and TailnetIPs to the peers tailscaled lists.
	Tailnet Tailnet
	// TailnetAuthKey reads the pre-auth key; called only when tailscaled needs a login.
	TailnetAuthKey func(context.Context) (string, error)

	// Lifecycle reads spot notices, rebalance recommendations and the target lifecycle state
	// from IMDS and the Auto Scaling group's view of this instance, and completes and
	// heartbeats its lifecycle hooks (nil: only SIGTERM and operator drains).
	Lifecycle LifecycleCloud

	// EIPPool is the cluster's Elastic IP pool; required with eip.pool.
	EIPPool eip.Pool

	// CloudWatch publishes the agent's CloudWatch metrics; required with cloudwatch.namespace.
	CloudWatch MetricPublisher
}

// Options are the run modes.
type Options struct {
	Version string
	Once    bool // run one tick and exit
}

// Agent is one headnat agent. Build it with New, run it with Run.
type Agent struct {
	cfg     config.Config
	opts    Options
	res     discovery.Resolved
	cl      Cloud
	dp      Dataplane
	metrics *server.Metrics
	log     *slog.Logger
	clock   Clock
	self    *health.Self
	peers   *health.PeerTracker
	writer  *writer
	checks  *dataplaneChecks

	tailnetIPs func() map[string]netip.Addr // Deps.TailnetIPs; nil: no tailnet

	tn          Tailnet // nil: no tailnet
	tnDesired   tailnet.Desired
	tnMu        sync.Mutex
	tnState     tailnet.State
	tnWithdrawn bool
	tnCancel    context.CancelFunc // cancels the sync in progress
	// tnSync is held by a sync from its look at tnWithdrawn to the end of its Set; a withdraw
	// cancels that Set and waits for it: a sync that saw "not withdrawn" cannot advertise the
	// routes again after the withdraw.
	tnSync sync.Mutex

	eip      eipState
	cw       *cwState // nil: no CloudWatch metrics
	life     *life
	lifeStep sync.Mutex // serialises lifecycle steps

	mu        sync.Mutex // guards view, owners, pending, decisions
	view      *clusterView
	owners    map[string]failover.Owner
	pending   map[string]failover.Write // table -> fail-back this agent waits to make
	decisions []api.Decision
}

// New resolves the configuration (IMDS, tags, EC2) and builds the agent. It changes nothing:
// bad configuration fails here, before any write.
func New(ctx context.Context, cfg config.Config, d Deps, o Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Cloud == nil || d.Dataplane == nil {
		return nil, fmt.Errorf("agent: Deps.Cloud and Deps.Dataplane are required")
	}
	if d.TailnetPeers != nil && d.TailnetIPs == nil {
		return nil, fmt.Errorf("agent: Deps.TailnetIPs is required with Deps.TailnetPeers")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = server.NewMetrics(server.MetricsOptions{Build: server.BuildInfo{Version: o.Version}})
	}
	if d.Clock == nil {
		d.Clock = realClock{}
	}
	res, err := discovery.Resolve(ctx, cfg, d.Cloud)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg, opts: o, res: res, cl: d.Cloud, dp: d.Dataplane, metrics: d.Metrics, log: d.Log, clock: d.Clock,
		view: newClusterView(res.Identity.InstanceID, res.Identity.ENI, res.Self.Instance, cfg, res.Cluster),
	}
	peerCfg, selfCfg := cfg.Probe.Health(), cfg.SelfHealth()
	if o.Once {
		// One tick has one observation: decide on it.
		peerCfg.Rise, peerCfg.Fall, selfCfg.Rise, selfCfg.Fall = 1, 1, 1, 1
	}
	probes := d.Egress
	if probes == nil {
		if probes, err = egressProbes(cfg, res.Identity.Region); err != nil {
			return nil, err
		}
	}
	k := min(cfg.Egress.K, len(probes))
	a.checks = &dataplaneChecks{}
	var verifier health.Verifier
	if !cfg.DryRun {
		verifier = a.checks
	}
	if a.self, err = health.NewSelf(selfCfg, &health.KofN{K: k, Probes: probes}, verifier); err != nil {
		return nil, fmt.Errorf("self check: %w", err)
	}
	if d.Tailnet != nil {
		if d.TailnetAuthKey == nil {
			return nil, fmt.Errorf("agent: Deps.TailnetAuthKey is required with Deps.Tailnet")
		}
		a.tn = d.Tailnet
		a.tnDesired = tailnet.Desired{
			ControlURL: cfg.Tailnet.LoginServer,
			Hostname:   tailnet.Hostname(res.Identity.AZ, res.Identity.InstanceID),
			Tags:       cfg.Tailnet.Tags,
			Routes:     append(slices.Clone(res.Spec.VPCCIDRs), cfg.Tailnet.ExtraRoutes...),
			SSH:        cfg.Tailnet.SSH,
			AuthKey:    d.TailnetAuthKey,
		}
		if d.TailnetPeers == nil {
			d.TailnetPeers = health.HTTPPath{Port: cfg.PeerPort, Tailnet: true, Client: health.NewClient(cfg.Probe.Timeout)}
		}
		if d.TailnetIPs == nil {
			d.TailnetIPs = a.tailnetPeerIPs
		}
	}
	path := d.Peers
	if path == nil {
		path = health.HTTPPath{Port: cfg.PeerPort, Client: health.NewClient(cfg.Probe.Timeout)}
	}
	if a.peers, err = health.NewPeerTracker(peerCfg, path, d.TailnetPeers); err != nil {
		return nil, fmt.Errorf("peer probes: %w", err)
	}
	if d.TailnetPeers != nil {
		a.tailnetIPs, a.view.tailnet = d.TailnetIPs, true
	}
	a.writer = newWriter(a.doWrite)
	group := cfg.Lifecycle.Group
	if group == "" {
		group = res.Self.ASGName
	}
	a.life = newLife(d.Lifecycle, group, a.clock.Now())
	if cfg.EIP.Pool {
		if d.EIPPool == nil {
			return nil, fmt.Errorf("agent: eip.pool needs Deps.EIPPool")
		}
		a.eip.pool = d.EIPPool
	}
	if cfg.CloudWatch.Namespace != "" {
		if d.CloudWatch == nil {
			return nil, fmt.Errorf("agent: cloudwatch.namespace needs Deps.CloudWatch")
		}
		a.cw = &cwState{pub: d.CloudWatch}
	}
	return a, nil
}
