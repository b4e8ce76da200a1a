package agent

import (
	"slices"

	"github.com/headnat/headnat/agent/api"
)

// healthz is what /healthz answers, and what peers decide on.
func (a *Agent) healthz() api.Healthz {
	r := a.self.Last()
	a.mu.Lock()
	held := a.view.Held()
	a.mu.Unlock()
	stage, why := a.lifecycleStatus()
	public, pool := a.eipStatus()
	return api.Healthz{
		PublicIP:    public,
		EIP:         pool,
		Lifecycle:   stage,
		DrainReason: why,
		Instance:    a.res.Identity.InstanceID,
		AZ:          a.res.Identity.AZ,
		Healthy:     r.Healthy,
		Reasons:     r.Reasons,
		Draining:    r.Draining,
		Starting:    !r.Decided && !r.Draining,
		LaunchTime:  a.res.Self.LaunchTime,
		Tables:      held,
		Version:     a.opts.Version,
		Tailnet:     a.tailnetStatus(),
	}
}

// status is the whole view as /status serves it.
func (a *Agent) status() api.Status {
	hz := a.healthz()
	self := a.self.Last()
	findings := self.Findings
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	st := api.Status{Time: now, Self: hz, Config: summary(a.cfg, a.res), Decisions: slices.Clone(a.decisions)}
	alive := map[string]string{}
	for _, in := range a.view.Observation(now, self).Instances {
		alive[in.ID] = in.AliveWhy
	}
	for _, p := range a.view.peers {
		ps := p.Status()
		ps.PrivateIP = validIP(p.Peer.IP)
		ps.PresumedAlive = alive[p.Peer.ID]
		st.Peers = append(st.Peers, ps)
	}
	c := a.view.cluster
	for _, t := range c.Tables {
		ts := api.TableStatus{ID: t.ID, HomeAZ: t.HomeAZ, TargetInstance: t.Target.InstanceID, TargetENI: t.Target.ENI,
			State: string(t.State), HeldSince: a.view.lastMove[t.ID]}
		if ts.TargetInstance == "" {
			for _, in := range c.Instances {
				if in.ENI == t.Target.ENI && in.ENI != "" {
					ts.TargetInstance = in.ID
				}
			}
		}
		if o, ok := a.owners[t.ID]; ok {
			ts.PreferredOwner, ts.PreferredReason = o.InstanceID, o.Reason
		}
		if p, ok := a.pending[t.ID]; ok {
			ts.Pending = p.Reason
		}
		st.Tables = append(st.Tables, ts)
	}
	if !a.cfg.DryRun {
		for _, f := range findings {
			st.Findings = append(st.Findings, api.Finding{Kind: "dataplane", Detail: f})
		}
	}
	return st
}
