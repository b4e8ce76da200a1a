package agent

import "context"

// drain hands the routes over before exit: /healthz reports draining, peers take the tables,
// and the agent waits until none targets it or drain_timeout passes.
func (a *Agent) drain(ctx context.Context) {
	a.mu.Lock()
	held, anyPeer := a.view.Held(), a.view.AnyPeerCanTake()
	a.mu.Unlock()
	if !anyPeer {
		if len(held) > 0 || a.tn != nil {
			a.log.Warn("exiting without hand-over: no healthy peer to take the route tables or the tailnet routes", "tables", held)
		}
		return
	}
	// Tailnet routes first: headscale moves the primary to a peer at once, while this
	// instance still forwards what the old primary's clients send it.
	a.withdrawTailnet(ctx)
	if len(held) == 0 {
		return
	}
	a.self.SetDraining(true)
	a.log.Info("draining: waiting for peers to take the route tables", "tables", held, "timeout", a.cfg.DrainTimeout)
	start := a.clock.Now()
	t := a.clock.NewTicker(2 * a.cfg.Probe.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		a.refresh(ctx)
		a.mu.Lock()
		held = a.view.Held()
		a.mu.Unlock()
		if len(held) == 0 {
			a.log.Info("drained: no route table targets this instance")
			return
		}
		if a.clock.Now().Sub(start) >= a.cfg.DrainTimeout {
			a.log.Warn("drain deadline passed; exiting while still holding tables", "tables", held)
			return
		}
	}
}
