package agent

import (
	"context"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/lifecycle"
)

// drainOnSignal hands the routes over before the process exits on SIGTERM: /healthz reports
// draining, peers take the tables, and the lifecycle steps run until the plan says exit (at
// the latest drain_timeout after the start, or at once when no peer can take the tables).
func (a *Agent) drainOnSignal(ctx context.Context) {
	start := a.clock.Now()
	a.trigger(ctx, lifecycle.Trigger{Kind: api.DrainSIGTERM, Detail: "stopping", Since: start, Terminal: true})
	if a.exiting() {
		return
	}
	t := a.clock.NewTicker(2 * a.cfg.Probe.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		a.refresh(ctx)
		a.lifecycleStep(ctx)
		if a.exiting() {
			return
		}
		if a.clock.Now().Sub(start) >= a.cfg.DrainTimeout+stopMargin {
			a.log.Warn("drain did not finish; exiting", "why", a.lifecycleWhy())
			return
		}
	}
}

// stopMargin is how long a stop waits beyond drain_timeout for the last lifecycle actions.
const stopMargin = 5 * time.Second

func (a *Agent) exiting() bool {
	select {
	case <-a.life.exit:
		return true
	default:
		return false
	}
}

func (a *Agent) lifecycleWhy() string {
	a.life.mu.Lock()
	defer a.life.mu.Unlock()
	p := a.life.plan
	if p.Waiting != "" {
		return p.Why + "; " + p.Waiting
	}
	return p.Why
}
