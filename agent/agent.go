// Package agent wires the headnat agent together: it resolves the configuration from IMDS and
// tags, applies the data plane, turns source/dest check off, serves /healthz, /status and
// /metrics, and runs the tick loop in which agent/failover decides and agent/cloud writes.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/dataplane"
	"github.com/headnat/headnat/agent/health"
	"github.com/headnat/headnat/agent/server"
)

// Cloud is the part of agent/cloud the agent uses; *cloud.Client satisfies it.
type Cloud interface {
	ReadIdentity(ctx context.Context) (cloud.Identity, error)
	DescribeSelf(ctx context.Context, instanceID string) (cloud.Self, error)
	Discover(ctx context.Context, cluster, reason string) (cloud.Cluster, error)
	SourceDestCheckOff(ctx context.Context) error
	PointRoute(ctx context.Context, tableID, eniID, reason string, create bool) error
}

// Dataplane keeps the host a NAT router.
type Dataplane interface {
	Apply(ctx context.Context, s dataplane.Spec) (dataplane.Result, error)
	Verify(ctx context.Context, s dataplane.Spec) ([]dataplane.Finding, error)
}

// Options are what Run needs besides the configuration.
type Options struct {
	Config  config.Config
	Version string
	Logger  *slog.Logger
	Once    bool // run one tick and exit
	// RefreshEvery is how often the cluster (members, route tables) is re-read from EC2.
	RefreshEvery time.Duration
}

// Resolved is the configuration after discovery: what this instance is and manages.
type Resolved struct {
	Identity cloud.Identity
	Self     cloud.Self
	Cluster  cloud.Cluster
	Spec     dataplane.Spec
}

// Run runs the agent until ctx ends (or after one tick with Once).
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return err
	}
	metrics := server.NewMetrics(server.MetricsOptions{Build: server.BuildInfo{Version: o.Version}})
	cl, err := cloud.New(ctx, cloud.Options{
		Region:       cfg.AWS.Region,
		EC2Endpoint:  cfg.AWS.EC2Endpoint,
		ASGEndpoint:  cfg.AWS.AutoScalingEndpoint,
		IMDSEndpoint: cfg.AWS.IMDSEndpoint,
		Logger:       log,
		Observer:     cloud.ObserverFunc(metrics.APIError),
	})
	if err != nil {
		return fmt.Errorf("aws client: %w", err)
	}
	dp, err := dataplane.New(log)
	if err != nil {
		return err
	}
	res, err := Resolve(ctx, cfg, cl)
	if err != nil {
		return err
	}
	a, err := newAgent(cfg, o, res, cl, dp, metrics, log)
	if err != nil {
		return err
	}
	return a.run(ctx)
}

// Resolve fills what the configuration leaves empty from IMDS and EC2 and checks that the
// cluster makes sense. It writes nothing: bad configuration fails here, before any change.
func Resolve(ctx context.Context, cfg config.Config, cl Cloud) (Resolved, error) {
	var r Resolved
	var err error
	if r.Identity, err = cl.ReadIdentity(ctx); err != nil {
		return r, fmt.Errorf("read identity from IMDS: %w", err)
	}
	if r.Self, err = cl.DescribeSelf(ctx, r.Identity.InstanceID); err != nil {
		return r, err
	}
	name := cfg.Cluster
	if name == "" {
		name = r.Self.ClusterName
	}
	if name == "" {
		return r, fmt.Errorf("no cluster: instance %s has no %s tag and no cluster is configured", r.Identity.InstanceID, cloud.TagCluster)
	}
	if r.Cluster, err = cl.Discover(ctx, name, "start"); err != nil {
		return r, fmt.Errorf("discover cluster %q: %w", name, err)
	}
	if len(r.Cluster.Tables) == 0 {
		return r, fmt.Errorf("cluster %q: no route tables tagged %s=%s", name, cloud.TagCluster, name)
	}
	if len(cfg.RouteTables) > 0 {
		if r.Cluster.Tables, err = pickTables(r.Cluster, cfg.RouteTables); err != nil {
			return r, err
		}
	}
	if !slices.ContainsFunc(r.Cluster.Instances, func(in cloud.Instance) bool { return in.ID == r.Identity.InstanceID }) {
		r.Cluster.Instances = append(r.Cluster.Instances, r.Self.Instance)
	}
	cidrs := cfg.VPCCIDRs
	if len(cidrs) == 0 {
		cidrs = r.Identity.VPCCIDRs
	}
	r.Spec = dataplane.Spec{
		EgressInterface:       cfg.EgressInterface,
		VPCCIDRs:              cidrs,
		ExtraSourceCIDRs:      cfg.ExtraSourceCIDRs,
		ConntrackMax:          cfg.Conntrack.Max,
		TCPEstablishedTimeout: cfg.Conntrack.TCPEstablishedTimeout,
		UDPTimeout:            cfg.Conntrack.UDPTimeout,
		UDPStreamTimeout:      cfg.Conntrack.UDPStreamTimeout,
		StatePath:             cfg.StatePath,
	}.WithDefaults()
	if err := r.Spec.Validate(); err != nil {
		return r, fmt.Errorf("data plane: %w", err)
	}
	return r, nil
}

// pickTables keeps the configured tables; each must be one of the cluster's.
func pickTables(c cloud.Cluster, ids []string) ([]cloud.RouteTable, error) {
	var out []cloud.RouteTable
	for _, id := range ids {
		i := slices.IndexFunc(c.Tables, func(t cloud.RouteTable) bool { return t.ID == id })
		if i < 0 {
			var known []string
			for _, t := range c.Tables {
				known = append(known, t.ID)
			}
			return nil, fmt.Errorf("route table %s is not tagged %s=%s (tagged: %s)", id, cloud.TagCluster, c.Name, strings.Join(known, ", "))
		}
		out = append(out, c.Tables[i])
	}
	return out, nil
}

// egressProbes turns configured targets into probes; with none configured it checks TCP
// reachability of the region's EC2 and S3 endpoints over the internet.
func egressProbes(targets []string, region string) ([]health.Probe, error) {
	if len(targets) == 0 {
		if region == "" {
			return nil, errors.New("egress.targets: none configured and no region to derive defaults from")
		}
		targets = []string{"tcp://ec2." + region + ".amazonaws.com:443", "tcp://s3." + region + ".amazonaws.com:443"}
	}
	var ps []health.Probe
	for _, t := range targets {
		switch {
		case strings.HasPrefix(t, "tcp://"):
			addr := strings.TrimPrefix(t, "tcp://")
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return nil, fmt.Errorf("egress target %q: %w", t, err)
			}
			ps = append(ps, health.TCPProbe{Addr: addr})
		default:
			ps = append(ps, health.HTTPProbe{URL: t})
		}
	}
	return ps, nil
}

func summary(cfg config.Config, r Resolved) api.ConfigSummary {
	var cidrs []string
	for _, p := range r.Spec.VPCCIDRs {
		cidrs = append(cidrs, p.String())
	}
	return api.ConfigSummary{
		Cluster:       r.Cluster.Name,
		Region:        r.Identity.Region,
		VPCID:         r.Identity.VPCID,
		VPCCIDRs:      cidrs,
		ListenAddr:    cfg.Listen,
		PeerPort:      cfg.PeerPort,
		ProbeInterval: api.Duration(cfg.Probe.Interval),
		ProbeTimeout:  api.Duration(cfg.Probe.Timeout),
		Rise:          cfg.Probe.Rise,
		Fall:          cfg.Probe.Fall,
		FailbackAfter: api.Duration(cfg.FailbackAfter),
		EgressTargets: cfg.Egress.Targets,
		EgressK:       cfg.Egress.K,
		DryRun:        cfg.DryRun,
	}
}

func validIP(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return ""
}
