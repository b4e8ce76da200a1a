package agent

import (
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/discovery"
	"github.com/headnat/headnat/agent/failover"
	"github.com/headnat/headnat/agent/health"
)

// clusterView is what this agent knows of its cluster, built from EC2 reads, its own route
// writes and its peer probes. Its methods are pure: the caller passes the time and logs the
// notes they return; the agent serialises calls.
type clusterView struct {
	self         string // my instance id
	selfENI      string
	selfInstance cloud.Instance
	tables       []string // configured route tables ("" all tagged)
	failback     time.Duration
	restartGrace time.Duration
	// tailnet: peers are also probed over the tailnet, which tells a partitioned peer from a
	// dead one at once; the evidence below is then only the fallback for a cut on both paths.
	tailnet bool

	cluster     cloud.Cluster
	peers       []health.PeerState
	lastMove    map[string]time.Time // table -> when its target last changed in my view
	wroteAt     map[string]time.Time // table -> when my own write pointing it at me completed
	evidence    map[string]time.Time // peer -> when it took a table while failing my probes
	agentDown   map[string]time.Time // peer -> since when its host answers but its agent does not
	partitioned map[string]bool      // peers partitioned from me (over the tailnet), for the log
}

// note is something worth a log line.
type note struct {
	level slog.Level
	msg   string
	attrs []any
}

func newClusterView(self, selfENI string, selfInstance cloud.Instance, cfg config.Config, c cloud.Cluster) *clusterView {
	return &clusterView{
		self: self, selfENI: selfENI, selfInstance: selfInstance, tables: cfg.RouteTables,
		failback: cfg.FailbackAfter, restartGrace: cfg.Probe.RestartGrace,
		cluster:  c,
		lastMove: map[string]time.Time{}, wroteAt: map[string]time.Time{},
		evidence: map[string]time.Time{}, agentDown: map[string]time.Time{}, partitioned: map[string]bool{},
	}
}

// Refreshed takes a cluster read from EC2 that started at readStart. A table this agent wrote
// after readStart keeps its local state, so that a read racing a write neither undoes it nor
// pins the move on a peer. A move made by someone else is noted; without a tailnet, a peer that
// fails my probes yet took a table is partitioned from me, not dead (evidence). A configured
// table that vanished keeps the previous view.
func (v *clusterView) Refreshed(c cloud.Cluster, readStart time.Time) []note {
	c, err := discovery.Scope(c, v.tables, v.selfInstance)
	if err != nil {
		return []note{{slog.LevelWarn, "refresh cluster view: configured table gone; keeping the previous view", []any{"err", err}}}
	}
	var notes []note
	prev := map[string]cloud.RouteTable{}
	for _, t := range v.cluster.Tables {
		prev[t.ID] = t
	}
	for i, t := range c.Tables {
		p, ok := prev[t.ID]
		if ok && v.wroteAt[t.ID].After(readStart) {
			c.Tables[i] = p
			continue
		}
		if !ok || (p.Target.ENI == t.Target.ENI && p.Target.Other == t.Target.Other && p.State == t.State) {
			continue
		}
		v.lastMove[t.ID] = readStart
		notes = append(notes, note{slog.LevelInfo, "route table moved", []any{"table", t.ID, "from", p.Target.ENI, "to", t.Target.ENI, "state", t.State}})
		// Only a route newly pointed at the peer is its doing; a route that went blackhole
		// under it says the opposite.
		took := t.State == cloud.RouteActive && t.Target.ENI != p.Target.ENI
		// And only a peer my probes cannot reach at all: one that answered (starting, or
		// unhealthy) or refused is not partitioned from me. With a tailnet, a peer that answers
		// there is partitioned by that verdict already; this evidence covers a cut on both paths,
		// where without it the two sides would take each other's tables back and forth.
		if st, ok := v.peerByENI(t.Target.ENI); ok && took && st.Decided && !st.Healthy && st.LastErr != "" && !st.HostUp && !st.TailnetHealthy {
			v.evidence[st.Peer.ID] = readStart
			notes = append(notes, note{slog.LevelWarn, "peer unreachable from here took a route table: treating it as partitioned, not dead",
				[]any{"peer", st.Peer.ID, "table", t.ID}})
		}
	}
	v.cluster = c
	return notes
}

// Wrote records that this agent pointed table at itself; at is when the write completed.
func (v *clusterView) Wrote(table string, at time.Time) {
	for i := range v.cluster.Tables {
		if t := &v.cluster.Tables[i]; t.ID == table {
			t.Target = cloud.RouteTarget{ENI: v.selfENI, InstanceID: v.self}
			t.State = cloud.RouteActive
		}
	}
	v.lastMove[table] = at
	v.wroteAt[table] = at
}

// Probed takes the latest peer probe results and tracks peers whose host answers while their
// agent does not (refused, or answering that it is still starting), and peers partitioned from
// me (one note on entering and one on leaving, not one per round).
func (v *clusterView) Probed(states []health.PeerState, now time.Time) []note {
	var notes []note
	v.peers = states
	listed := map[string]bool{}
	for _, st := range states {
		listed[st.Peer.ID] = true
		notes = append(notes, v.notePartition(st)...)
	}
	for id := range v.partitioned {
		if !listed[id] {
			delete(v.partitioned, id)
		}
	}
	for _, st := range states {
		starting := st.LastErr == "" && st.Answer.Starting
		switch _, seen := v.agentDown[st.Peer.ID]; {
		case (st.HostUp || starting) && !seen:
			v.agentDown[st.Peer.ID] = now
			notes = append(notes, note{slog.LevelInfo, "peer's host answers but its agent does not (yet); keeping its tables for the restart grace",
				[]any{"peer", st.Peer.ID, "grace", v.restartGrace, "err", st.LastErr}})
		case !st.HostUp && !starting && seen:
			delete(v.agentDown, st.Peer.ID)
		}
	}
	return notes
}

// notePartition records whether st's peer is partitioned from me, and says so when that changes.
func (v *clusterView) notePartition(st health.PeerState) []note {
	id, was, is := st.Peer.ID, v.partitioned[st.Peer.ID], st.Partitioned()
	switch {
	case is && !was:
		v.partitioned[id] = true
		return []note{{slog.LevelWarn, "peer partitioned: unreachable over the VPC, answers healthy over the tailnet; treating it as alive",
			[]any{"peer", id, "az", st.Peer.AZ, "vpc_err", st.LastErr}}}
	case was && !is:
		delete(v.partitioned, id)
		if st.Healthy || st.LastErr == "" {
			return []note{{slog.LevelInfo, "peer no longer partitioned: it answers over the VPC again", []any{"peer", id, "healthy", st.Healthy}}}
		}
		return []note{{slog.LevelWarn, "peer no longer partitioned: no healthy answer over the tailnet either",
			[]any{"peer", id, "vpc_err", st.LastErr, "tailnet_reachable", st.TailnetReachable, "answer_healthy", st.Answer.Healthy}}}
	}
	return nil
}

// Members are the peers to probe: every member but this instance.
func (v *clusterView) Members() []health.Peer {
	var peers []health.Peer
	for _, in := range v.cluster.Instances {
		if in.ID != v.self {
			peers = append(peers, health.Peer{ID: in.ID, AZ: in.AZ, ENI: in.ENI, IP: in.PrivateIP, LaunchTime: in.LaunchTime})
		}
	}
	return peers
}

// Observation is what failover.Decide sees at now, given this instance's own health.
func (v *clusterView) Observation(now time.Time, self health.SelfResult) failover.Observation {
	byID := map[string]health.PeerState{}
	for _, st := range v.peers {
		byID[st.Peer.ID] = st
	}
	obs := failover.Observation{Self: v.self, Now: now, FailbackAfter: v.failback}
	for _, in := range v.cluster.Instances {
		fi := failover.Instance{ID: in.ID, AZ: in.AZ, ENI: in.ENI, LaunchTime: in.LaunchTime}
		if in.ID == v.self {
			fi.ENI = v.selfENI
			fi.Healthy, fi.Draining = self.Healthy, self.Draining
			if fi.Healthy {
				fi.HealthySince = self.Since
			}
		} else if st, ok := byID[in.ID]; ok {
			fi.Healthy, fi.Draining = st.Healthy, st.Draining
			if fi.Healthy {
				fi.HealthySince = st.Since
			}
			l := liveness{peer: st, now: now, actedAt: v.evidence[in.ID], agentDownSince: v.agentDown[in.ID],
				actedWindow: 2 * v.failback, restartGrace: v.restartGrace}
			fi.AliveWhy, fi.Claims = l.presumedAlive()
			fi.PresumedAlive = fi.AliveWhy != ""
			fi.Partitioned = fi.PresumedAlive && st.Partitioned()
			fi.Starting = fi.PresumedAlive && st.LastErr == "" && st.Answer.Starting
		} else {
			// A member not probed yet (just discovered): unknown, not dead; it claims nothing.
			fi.PresumedAlive, fi.AliveWhy = true, "not probed yet"
		}
		obs.Instances = append(obs.Instances, fi)
	}
	for _, t := range v.cluster.Tables {
		obs.Tables = append(obs.Tables, failover.Table{
			ID:        t.ID,
			HomeAZ:    t.HomeAZ,
			TargetENI: t.Target.ENI,
			Blackhole: t.State == cloud.RouteBlackhole,
			Missing:   t.State == cloud.RouteMissing,
			LastMove:  v.lastMove[t.ID],
		})
	}
	return obs
}

// Held lists the tables whose default route targets this instance, sorted.
func (v *clusterView) Held() []string {
	var out []string
	for _, t := range v.cluster.Tables {
		if t.Target.ENI == v.selfENI && t.State == cloud.RouteActive {
			out = append(out, t.ID)
		}
	}
	sort.Strings(out)
	return out
}

// AnyPeerCanTake: some peer is healthy and not draining in my view.
func (v *clusterView) AnyPeerCanTake() bool {
	return slices.ContainsFunc(v.peers, func(st health.PeerState) bool { return st.Healthy && !st.Draining })
}

func (v *clusterView) peerByENI(eni string) (health.PeerState, bool) {
	for _, st := range v.peers {
		if eni != "" && st.Peer.ENI == eni {
			return st, true
		}
	}
	return health.PeerState{}, false
}
