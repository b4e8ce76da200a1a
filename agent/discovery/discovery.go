// Package discovery resolves the agent's configuration from IMDS and EC2 tags: which instance
// this is, which cluster it belongs to, which route tables it manages and the data plane it
// needs. It reads only; it stays free of the agent's heavy dependencies (tailscale) so that the
// CDK module can run it against what it deploys.
package discovery

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/dataplane"
)

// Cloud is what discovery reads; *cloud.Client satisfies it.
type Cloud interface {
	ReadIdentity(ctx context.Context) (cloud.Identity, error)
	DescribeSelf(ctx context.Context, instanceID string) (cloud.Self, error)
	Discover(ctx context.Context, cluster, reason string) (cloud.Cluster, error)
}

var _ Cloud = (*cloud.Client)(nil)

// Resolved is the configuration after discovery: what this instance is and manages.
type Resolved struct {
	Identity cloud.Identity
	Self     cloud.Self
	Cluster  cloud.Cluster
	Spec     dataplane.Spec
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
	c, err := cl.Discover(ctx, name, "start")
	if err != nil {
		return r, fmt.Errorf("discover cluster %q: %w", name, err)
	}
	if len(c.Tables) == 0 {
		return r, fmt.Errorf("cluster %q: no route tables tagged %s=%s", name, cloud.TagCluster, name)
	}
	if r.Cluster, err = Scope(c, cfg.RouteTables, r.Self.Instance); err != nil {
		return r, err
	}
	cidrs := cfg.VPCCIDRs
	if len(cidrs) == 0 {
		cidrs = r.Identity.VPCCIDRs
	}
	port, err := listenPort(cfg.Listen)
	if err != nil {
		return r, err
	}
	var agentSources []netip.Prefix
	if port != 0 {
		agentSources = cfg.AgentSourceCIDRs
	}
	r.Spec = dataplane.Spec{
		EgressInterface:       cfg.EgressInterface,
		VPCCIDRs:              cidrs,
		ExtraSourceCIDRs:      cfg.ExtraSourceCIDRs,
		AgentPort:             port,
		AgentSourceCIDRs:      agentSources,
		KeepJumpPosition:      cfg.KeepJumpPosition,
		ConntrackMax:          cfg.Conntrack.Max,
		TCPEstablishedTimeout: cfg.Conntrack.TCPEstablishedTimeout,
		UDPTimeout:            cfg.Conntrack.UDPTimeout,
		UDPStreamTimeout:      cfg.Conntrack.UDPStreamTimeout,
		StatePath:             cfg.StatePath,
		Tailnet:               tailnetSpec(cfg.Tailnet),
	}.WithDefaults()
	if err := r.Spec.Validate(); err != nil {
		return r, fmt.Errorf("data plane: %w", err)
	}
	return r, nil
}

// listenPort is the TCP port of a listen address (":7070" -> 7070); 0 for an ephemeral port,
// which gets no INPUT rules.
func listenPort(listen string) (int, error) {
	_, p, err := net.SplitHostPort(listen)
	if err != nil {
		return 0, fmt.Errorf("listen %q: %w", listen, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("listen %q: port must be 0-65535", listen)
	}
	return n, nil
}

// Scope narrows a discovered cluster to what this agent manages: the configured tables (each
// must be tagged) and the members, always including this instance (a fresh instance may not be
// tagged or described yet).
func Scope(c cloud.Cluster, tables []string, self cloud.Instance) (cloud.Cluster, error) {
	if len(tables) > 0 {
		var out []cloud.RouteTable
		for _, id := range tables {
			i := slices.IndexFunc(c.Tables, func(t cloud.RouteTable) bool { return t.ID == id })
			if i < 0 {
				var known []string
				for _, t := range c.Tables {
					known = append(known, t.ID)
				}
				return c, fmt.Errorf("route table %s is not tagged %s=%s (tagged: %s)", id, cloud.TagCluster, c.Name, strings.Join(known, ", "))
			}
			out = append(out, c.Tables[i])
		}
		c.Tables = out
	}
	if !slices.ContainsFunc(c.Instances, func(in cloud.Instance) bool { return in.ID == self.ID }) {
		c.Instances = append(slices.Clone(c.Instances), self)
	}
	return c, nil
}

// tailnetSpec is the data plane's part of the tailnet: nil without one.
func tailnetSpec(t config.Tailnet) *dataplane.TailnetSpec {
	if !t.Enabled() {
		return nil
	}
	return &dataplane.TailnetSpec{Interface: t.Interface, CIDR: t.CIDR, Routes: t.ExtraRoutes,
		UDPPort: t.UDPPort, AllowVPCDirect: t.AllowVPCDirect}
}
