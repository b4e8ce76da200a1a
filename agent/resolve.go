package agent

import (
	"net/netip"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/discovery"
	"github.com/headnat/headnat/agent/health"
)

// egressProbes turns the configured (or default) egress targets into probes, each HTTP one
// with a client whose dials are bounded by the egress timeout.
func egressProbes(cfg config.Config, region string) ([]health.Probe, error) {
	targets, err := cfg.EgressTargets(region)
	if err != nil {
		return nil, err
	}
	client := health.NewClient(cfg.Egress.Timeout)
	var ps []health.Probe
	for _, t := range targets {
		if t.TCP {
			ps = append(ps, health.TCPProbe{Addr: t.Addr})
		} else {
			ps = append(ps, health.HTTPProbe{URL: t.URL, Client: client})
		}
	}
	return ps, nil
}

func summary(cfg config.Config, r discovery.Resolved) api.ConfigSummary {
	var cidrs []string
	for _, p := range r.Spec.VPCCIDRs {
		cidrs = append(cidrs, p.String())
	}
	return api.ConfigSummary{
		Cluster:        r.Cluster.Name,
		Region:         r.Identity.Region,
		VPCID:          r.Identity.VPCID,
		VPCCIDRs:       cidrs,
		ListenAddr:     cfg.Listen,
		PeerPort:       cfg.PeerPort,
		ProbeInterval:  api.Duration(cfg.Probe.Interval),
		ProbeTimeout:   api.Duration(cfg.Probe.Timeout),
		Rise:           cfg.Probe.Rise,
		Fall:           cfg.Probe.Fall,
		FailbackAfter:  api.Duration(cfg.FailbackAfter),
		EgressTargets:  cfg.Egress.Targets,
		EgressK:        cfg.Egress.K,
		DryRun:         cfg.DryRun,
		TailnetEnabled: cfg.Tailnet.Enabled(),
		HeadscaleURL:   api.SafeURL(cfg.Tailnet.LoginServer),
	}
}

func validIP(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return ""
}
