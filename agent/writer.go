package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/failover"
)

// writer runs route writes in the background so that a slow or throttled EC2 never stalls
// peer probing: at most one write per table is in flight, and while one is, only the latest
// decision for that table is kept. Every write points the table at this instance, so a kept
// decision runs only if the write in flight failed.
type writer struct {
	do func(ctx context.Context, w failover.Write, decided time.Time) bool

	mu   sync.Mutex
	busy map[string]bool
	next map[string]queued
	wg   sync.WaitGroup
}

type queued struct {
	w       failover.Write
	decided time.Time
}

func newWriter(do func(ctx context.Context, w failover.Write, decided time.Time) bool) *writer {
	return &writer{do: do, busy: map[string]bool{}, next: map[string]queued{}}
}

// Submit starts w, or keeps it as the table's next write if one is in flight.
func (wr *writer) Submit(ctx context.Context, w failover.Write, decided time.Time) {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	if wr.busy[w.TableID] {
		wr.next[w.TableID] = queued{w, decided}
		return
	}
	wr.busy[w.TableID] = true
	wr.wg.Go(func() { wr.run(ctx, queued{w, decided}) })
}

func (wr *writer) run(ctx context.Context, q queued) {
	for {
		ok := wr.do(ctx, q.w, q.decided)
		wr.mu.Lock()
		next, more := wr.next[q.w.TableID]
		delete(wr.next, q.w.TableID)
		if ok || !more {
			delete(wr.busy, q.w.TableID)
			wr.mu.Unlock()
			return
		}
		wr.mu.Unlock()
		q = next
	}
}

// InFlight reports whether a write for table is running.
func (wr *writer) InFlight(table string) bool {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return wr.busy[table]
}

// Wait returns when no write is running.
func (wr *writer) Wait() { wr.wg.Wait() }

// doWrite points one table at this instance (or logs it in a dry run) and records the
// decision; it reports whether the table is settled for now: its route targets this instance,
// or the decision proved stale and the view was re-read.
func (a *Agent) doWrite(ctx context.Context, w failover.Write, decided time.Time) bool {
	d := api.Decision{Time: decided, Table: w.TableID, Kind: string(w.Kind), Target: a.res.Identity.InstanceID, TargetENI: w.TargetENI, Reason: w.Reason}
	log := a.log.With("table", w.TableID, "kind", w.Kind, "action", w.Action, "target", w.TargetENI, "reason", w.Reason)
	ok := false
	if a.cfg.DryRun {
		d.Result = "dry-run"
		log.Info("dry run: would point route")
	} else {
		start := a.clock.Now()
		err := a.cl.PointRoute(ctx, w.TableID, w.TargetENI, w.Reason, w.Action == failover.ActionCreate)
		done := a.clock.Now()
		switch {
		case errors.Is(err, cloud.ErrRouteExists):
			// Decided on a view older than someone else's route: re-read, decide again.
			d.Result, d.Error = "stale", err.Error()
			log.Warn("route appeared since the last read; re-reading the cluster", "err", err)
			a.metrics.RouteWrite(string(w.Kind), "stale")
			a.refresh(ctx)
			ok = true // nothing queued for this table may run on the stale view
		case err != nil:
			d.Result, d.Error = "error", err.Error()
			log.Error("point route", "err", err)
			a.metrics.RouteWrite(string(w.Kind), "error")
		default:
			ok = true
			d.Result = "ok"
			log.Info("pointed route at this instance", "took", done.Sub(start).Round(time.Millisecond))
			a.metrics.RouteWrite(string(w.Kind), "ok")
			a.metrics.RouteMoved(done)
			if w.Kind == failover.KindTakeover {
				a.metrics.Failover()
			}
			a.countFailover(w)
			a.mu.Lock()
			a.view.Wrote(w.TableID, done)
			a.mu.Unlock()
		}
	}
	a.mu.Lock()
	a.decisions = append(a.decisions, d)
	if len(a.decisions) > maxDecisions {
		a.decisions = a.decisions[len(a.decisions)-maxDecisions:]
	}
	a.mu.Unlock()
	return ok
}

const maxDecisions = 50
