package agent

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/tailnet"
)

// Tailnet keeps tailscaled logged in as a subnet router; *tailnet.Router satisfies it.
type Tailnet interface {
	Set(ctx context.Context, d tailnet.Desired) (tailnet.State, error)
	Withdraw(ctx context.Context) error
}

// tailnetSetTimeout bounds one Set; a login (tailscale up) takes a few seconds.
const tailnetSetTimeout = 20 * time.Second

// syncTailnet asserts the tailnet prefs and records the state. Failures are the router's to
// log (once per transition); NAT and failover never wait on the tailnet.
func (a *Agent) syncTailnet(ctx context.Context) {
	a.tnSync.Lock()
	defer a.tnSync.Unlock()
	ctx, cancel := context.WithTimeout(ctx, tailnetSetTimeout)
	defer cancel()
	a.tnMu.Lock()
	withdrawn := a.tnWithdrawn
	a.tnCancel = cancel
	a.tnMu.Unlock()
	if withdrawn {
		return
	}
	st, _ := a.tn.Set(ctx, a.tnDesired)
	a.tnMu.Lock()
	a.tnState, a.tnCancel = st, nil
	a.tnMu.Unlock()
	a.metrics.SetTailnet(a.tailnetStatus())
}

// withdrawTailnet stops advertising the routes, so that headscale makes another router
// primary while this one still forwards. Later syncs leave the routes withdrawn.
func (a *Agent) withdrawTailnet(ctx context.Context) {
	if a.tn == nil || a.cfg.DryRun {
		return
	}
	// A sync in progress (a login hanging on headscale, say) is cut short rather than waited
	// for, so that it cannot advertise the routes after this; later ones see the flag.
	a.tnMu.Lock()
	a.tnWithdrawn = true
	if a.tnCancel != nil {
		a.tnCancel()
	}
	a.tnMu.Unlock()
	a.tnSync.Lock()
	a.tnSync.Unlock() // only waited for the cancelled sync to return
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.tn.Withdraw(ctx); err != nil {
		a.log.Warn("draining: could not withdraw the tailnet routes; headscale moves them when this node goes offline", "err", err)
		return
	}
	a.log.Info("draining: tailnet routes withdrawn", "routes", a.tnDesired.Routes)
}

// tailnetPeerIPs are the peers' tailnet addresses by instance id, for the second health path.
func (a *Agent) tailnetPeerIPs() map[string]netip.Addr {
	a.tnMu.Lock()
	defer a.tnMu.Unlock()
	return a.tnState.Peers
}

// tailnetStatus is the tailnet state as /healthz shows it; nil without a tailnet.
func (a *Agent) tailnetStatus() *api.Tailnet {
	if a.tn == nil {
		return nil
	}
	a.tnMu.Lock()
	st, withdrawn := a.tnState, a.tnWithdrawn
	a.tnMu.Unlock()
	out := &api.Tailnet{Backend: st.Backend, IP: validIP(st.IP), Hostname: st.Hostname, Approved: st.Approved,
		Degraded: st.Degraded, Error: st.Error, Withdrawn: withdrawn, SSH: st.SSH}
	if out.Backend == "" {
		out.Backend = "unknown"
		if a.cfg.DryRun {
			out.Backend = "not managed (dry run)"
		}
	}
	for _, p := range st.Advertised {
		out.Advertised = append(out.Advertised, p.String())
	}
	for _, p := range st.Primary {
		out.Primary = append(out.Primary, p.String())
	}
	slices.Sort(out.Advertised)
	slices.Sort(out.Primary)
	return out
}
