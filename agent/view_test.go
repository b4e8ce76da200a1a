package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/failover"
	"github.com/headnat/headnat/agent/health"
)

func viewCluster(targets map[string]string) cloud.Cluster {
	c := cloud.Cluster{Name: "test"}
	for _, id := range []string{"a", "b"} {
		c.Instances = append(c.Instances, cloud.Instance{ID: "i-" + id, AZ: "az-" + id, ENI: "eni-" + id,
			PrivateIP: netip.MustParseAddr("198.18.0.1" + map[string]string{"a": "0", "b": "1"}[id])})
	}
	for _, id := range []string{"rtb-a", "rtb-b"} {
		t := cloud.RouteTable{ID: id, HomeAZ: "az-" + id[4:], State: cloud.RouteActive}
		switch eni := targets[id]; eni {
		case "":
			t.State = cloud.RouteMissing
		case "blackhole":
			t.State, t.Target.ENI = cloud.RouteBlackhole, "eni-a"
		default:
			t.Target.ENI = eni
		}
		c.Tables = append(c.Tables, t)
	}
	return c
}

func newTestView(c cloud.Cluster) *clusterView {
	cfg := config.Default()
	cfg.FailbackAfter = 10 * time.Second
	return newClusterView("i-b", "eni-b", c.Instances[1], cfg, c)
}

var (
	peerDead    = health.PeerState{Peer: health.Peer{ID: "i-a", ENI: "eni-a"}, Decided: true, LastErr: "i/o timeout"}
	peerRefused = health.PeerState{Peer: health.Peer{ID: "i-a", ENI: "eni-a"}, Decided: true, LastErr: "connection refused", HostUp: true}
	peerHealthy = health.PeerState{Peer: health.Peer{ID: "i-a", ENI: "eni-a"}, Decided: true, Healthy: true, Answer: api.Healthz{Healthy: true}}
	// peerStarting answered 503 "starting" often enough to be decided unhealthy.
	peerStarting = health.PeerState{Peer: health.Peer{ID: "i-a", ENI: "eni-a"}, Decided: true, Answer: api.Healthz{Starting: true}}
)

// Refreshed, in steps: each step is (my write at, read started at, read answer), and the
// expected table target, last move and partition evidence afterwards.
func TestViewRefreshed(t *testing.T) {
	const s = time.Second
	cases := []struct {
		name         string
		peer         health.PeerState
		wroteAt      time.Duration // 0: no own write
		readAt       time.Duration
		read         map[string]string
		wantTarget   string
		wantMoved    bool
		wantEvidence bool
	}{
		{"nothing changed", peerHealthy, 0, 5 * s, map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-b"}, "eni-a", false, false},
		{"a healthy peer's move is noted", peerHealthy, 0, 5 * s, map[string]string{"rtb-a": "eni-b", "rtb-b": "eni-b"}, "eni-b", true, false},
		{"read older than my write keeps my write", peerDead, 6 * s, 5 * s, map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-b"}, "eni-b", true, false},
		{"read newer than my write wins", peerDead, 4 * s, 5 * s, map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-b"}, "eni-a", true, true},
		{"a dead peer seen taking a table is partitioned", peerDead, 0, 5 * s, map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-a"}, "eni-a", true, true},
		{"a refused peer taking a table is no evidence", peerRefused, 0, 5 * s, map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-a"}, "eni-a", true, false},
		{"a starting peer taking a table is no evidence", peerStarting, 0, 5 * s, map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-a"}, "eni-a", true, false},
		{"blackhole is a move, not evidence", peerDead, 0, 5 * s, map[string]string{"rtb-a": "blackhole", "rtb-b": "eni-b"}, "eni-a", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestView(viewCluster(map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-b"}))
			v.Probed([]health.PeerState{tc.peer}, t0)
			if tc.wroteAt != 0 {
				v.Wrote("rtb-a", t0.Add(tc.wroteAt))
			}
			v.Refreshed(viewCluster(tc.read), t0.Add(tc.readAt))
			var moved bool
			for _, id := range []string{"rtb-a", "rtb-b"} {
				moved = moved || !v.lastMove[id].IsZero()
			}
			target := v.cluster.Tables[0].Target.ENI
			if strings.Contains(tc.name, "taking a table") || strings.Contains(tc.name, "took a table") {
				target = v.cluster.Tables[1].Target.ENI
			}
			_, evidence := v.evidence["i-a"]
			if target != tc.wantTarget || moved != tc.wantMoved || evidence != tc.wantEvidence {
				t.Fatalf("target %s moved %v evidence %v; want %s %v %v", target, moved, evidence, tc.wantTarget, tc.wantMoved, tc.wantEvidence)
			}
		})
	}
}

// Refreshed with configured tables: a vanished table keeps the previous view; this instance is
// always a member, even before EC2 lists it.
func TestViewRefreshedScope(t *testing.T) {
	v := newTestView(viewCluster(map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-b"}))
	v.tables = []string{"rtb-a"}
	c := viewCluster(map[string]string{"rtb-a": "eni-b", "rtb-b": "eni-b"})
	c.Instances = c.Instances[:1]
	v.Refreshed(c, t0)
	if len(v.cluster.Tables) != 1 || v.cluster.Tables[0].ID != "rtb-a" || len(v.cluster.Instances) != 2 {
		t.Fatalf("scoped view %+v", v.cluster)
	}
	c.Tables = c.Tables[1:]
	notes := v.Refreshed(c, t0.Add(time.Second))
	if len(notes) != 1 || !strings.Contains(notes[0].msg, "keeping the previous view") || v.cluster.Tables[0].ID != "rtb-a" {
		t.Fatalf("vanished table: notes %+v view %+v", notes, v.cluster.Tables)
	}
}

// Probed tracks since when a peer's host answers while its agent does not.
func TestViewProbed(t *testing.T) {
	starting := peerHealthy
	starting.Healthy, starting.Answer = false, api.Healthz{Starting: true}
	cases := []struct {
		name   string
		states []health.PeerState
		want   []bool // agent down after each step
	}{
		{"refused, then back", []health.PeerState{peerRefused, peerRefused, peerHealthy}, []bool{true, true, false}},
		{"starting counts as down", []health.PeerState{starting, peerHealthy}, []bool{true, false}},
		{"dead is not agent-down", []health.PeerState{peerDead, peerDead}, []bool{false, false}},
		{"refused then dead: host gone", []health.PeerState{peerRefused, peerDead}, []bool{true, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestView(viewCluster(nil))
			var first time.Time
			for i, st := range tc.states {
				now := t0.Add(time.Duration(i) * time.Second)
				v.Probed([]health.PeerState{st}, now)
				since, down := v.agentDown["i-a"]
				if down != tc.want[i] {
					t.Fatalf("step %d: agent down %v, want %v", i, down, tc.want[i])
				}
				if down && first.IsZero() {
					first = since
				}
				if down && !since.Equal(first) {
					t.Fatalf("step %d: down since moved from %v to %v", i, first, since)
				}
			}
		})
	}
}

// Observation: what failover sees of each member.
func TestViewObservation(t *testing.T) {
	selfOK := health.SelfResult{Healthy: true, Since: t0.Add(-time.Minute)}
	cases := []struct {
		name        string
		peer        *health.PeerState // nil: not probed yet
		evidenceAgo time.Duration     // 0: none
		downAgo     time.Duration     // 0: not down
		wantAlive   bool
		wantClaims  bool
		wantWhy     string
	}{
		{"healthy", &peerHealthy, 0, 0, false, false, ""},
		{"dead", &peerDead, 0, 0, false, false, ""},
		{"not probed yet", nil, 0, 0, true, false, "not probed yet"},
		{"restarting within grace", &peerRefused, 0, 5 * time.Second, true, false, "agent restarting"},
		{"restarting past grace", &peerRefused, 0, 11 * time.Second, false, false, ""},
		{"took a table recently", &peerDead, 5 * time.Second, 0, true, true, "took a route table"},
		{"took a table long ago", &peerDead, 21 * time.Second, 0, false, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestView(viewCluster(map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-b"}))
			if tc.peer != nil {
				v.peers = []health.PeerState{*tc.peer}
			}
			if tc.evidenceAgo != 0 {
				v.evidence["i-a"] = t0.Add(-tc.evidenceAgo)
			}
			if tc.downAgo != 0 {
				v.agentDown["i-a"] = t0.Add(-tc.downAgo)
			}
			o := v.Observation(t0, selfOK)
			i := slices.IndexFunc(o.Instances, func(in failover.Instance) bool { return in.ID == "i-a" })
			a := o.Instances[i]
			if a.PresumedAlive != tc.wantAlive || a.Claims != tc.wantClaims || !strings.Contains(a.AliveWhy, tc.wantWhy) {
				t.Fatalf("i-a %+v; want alive %v claims %v why %q", a, tc.wantAlive, tc.wantClaims, tc.wantWhy)
			}
			self := o.Instances[slices.IndexFunc(o.Instances, func(in failover.Instance) bool { return in.ID == "i-b" })]
			if !self.Healthy || self.ENI != "eni-b" || !self.HealthySince.Equal(selfOK.Since) {
				t.Fatalf("self %+v", self)
			}
			if len(o.Tables) != 2 || o.Tables[0].TargetENI != "eni-a" {
				t.Fatalf("tables %+v", o.Tables)
			}
		})
	}
	v := newTestView(viewCluster(map[string]string{"rtb-a": "blackhole"}))
	o := v.Observation(t0, selfOK)
	if !o.Tables[0].Blackhole || !o.Tables[1].Missing {
		t.Fatalf("blackhole and missing routes: %+v", o.Tables)
	}
}

// Wrote points the table at me, so Held lists it at once.
func TestViewWroteAndHeld(t *testing.T) {
	v := newTestView(viewCluster(map[string]string{"rtb-a": "blackhole", "rtb-b": "eni-b"}))
	if got := v.Held(); !slices.Equal(got, []string{"rtb-b"}) {
		t.Fatalf("held %v", got)
	}
	v.Wrote("rtb-a", t0)
	if got := v.Held(); !slices.Equal(got, []string{"rtb-a", "rtb-b"}) || !v.lastMove["rtb-a"].Equal(t0) {
		t.Fatalf("after Wrote: held %v, last move %v", got, v.lastMove["rtb-a"])
	}
}

// A peer whose agent answers "starting" is presumed alive and Starting; a refused one is not
// Starting.
func TestViewObservationStarting(t *testing.T) {
	starting := peerHealthy
	starting.Healthy, starting.Answer = false, api.Healthz{Starting: true}
	for _, tc := range []struct {
		peer health.PeerState
		want bool
	}{{starting, true}, {peerRefused, false}} {
		v := newTestView(viewCluster(map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-b"}))
		v.Probed([]health.PeerState{tc.peer}, t0)
		o := v.Observation(t0.Add(time.Second), health.SelfResult{Healthy: true})
		a := o.Instances[slices.IndexFunc(o.Instances, func(in failover.Instance) bool { return in.ID == "i-a" })]
		if !a.PresumedAlive || a.Starting != tc.want || a.Claims {
			t.Errorf("peer %+v seen as %+v; want presumed alive, starting %v, not claiming", tc.peer.Answer, a, tc.want)
		}
	}
}

// peerPartitioned fails over the VPC and answers healthy over the tailnet.
var peerPartitioned = health.PeerState{Peer: health.Peer{ID: "i-a", ENI: "eni-a"}, Decided: true, LastErr: "i/o timeout",
	Via: api.ViaTailnet, TailnetProbed: true, TailnetReachable: true, TailnetHealthy: true, Answer: api.Healthz{Healthy: true}}

// A partitioned peer is presumed alive, claims, and is Partitioned for failover; the reason
// says "partitioned".
func TestViewObservationPartitioned(t *testing.T) {
	v := newTestView(viewCluster(map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-b"}))
	v.tailnet = true
	v.Probed([]health.PeerState{peerPartitioned}, t0)
	o := v.Observation(t0, health.SelfResult{Healthy: true, Since: t0.Add(-time.Minute)})
	a := o.Instances[slices.IndexFunc(o.Instances, func(in failover.Instance) bool { return in.ID == "i-a" })]
	if !a.PresumedAlive || !a.Claims || !a.Partitioned || !strings.HasPrefix(a.AliveWhy, "partitioned: ") {
		t.Fatalf("partitioned peer seen as %+v", a)
	}
	// The same peer past its tailnet verdict is dead, and not Partitioned.
	dead := peerPartitioned
	dead.TailnetHealthy, dead.TailnetReachable, dead.Via = false, false, api.ViaNone
	v.Probed([]health.PeerState{dead}, t0.Add(time.Second))
	o = v.Observation(t0.Add(time.Second), health.SelfResult{Healthy: true, Since: t0.Add(-time.Minute)})
	a = o.Instances[slices.IndexFunc(o.Instances, func(in failover.Instance) bool { return in.ID == "i-a" })]
	if a.PresumedAlive || a.Partitioned || a.Claims {
		t.Fatalf("peer silent on both paths seen as %+v", a)
	}
}

// With a tailnet, a peer that answers healthy there is partitioned by that verdict: taking a
// table is no extra evidence. Silent on both paths, taking a table is the fallback evidence.
func TestViewRefreshedEvidenceWithTailnet(t *testing.T) {
	for _, tc := range []struct {
		name     string
		peer     health.PeerState
		evidence bool
	}{
		{"silent on both paths", peerDead, true},
		{"partitioned", peerPartitioned, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestView(viewCluster(map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-b"}))
			v.tailnet = true
			v.Probed([]health.PeerState{tc.peer}, t0)
			v.Refreshed(viewCluster(map[string]string{"rtb-a": "eni-a", "rtb-b": "eni-a"}), t0.Add(time.Second))
			if _, ok := v.evidence["i-a"]; ok != tc.evidence || v.lastMove["rtb-b"].IsZero() {
				t.Fatalf("evidence %v, last move %v; want evidence %v and the move noted", v.evidence, v.lastMove, tc.evidence)
			}
		})
	}
}

// Probed says when a peer enters and leaves a partition: once each, not every round.
func TestViewPartitionNotes(t *testing.T) {
	silent := peerPartitioned
	silent.TailnetHealthy, silent.TailnetReachable, silent.Via = false, false, api.ViaNone
	cases := []struct {
		name   string
		states []health.PeerState
		want   []string // per round: "" no partition note, else a word of the note
	}{
		{"enter once, leave when the VPC answers",
			[]health.PeerState{peerHealthy, peerPartitioned, peerPartitioned, peerPartitioned, peerHealthy},
			[]string{"", "peer partitioned", "", "", "answers over the VPC again"}},
		{"leave when the tailnet is silent too",
			[]health.PeerState{peerPartitioned, peerPartitioned, silent, silent},
			[]string{"peer partitioned", "", "no healthy answer over the tailnet either", ""}},
		{"a dead peer is never partitioned", []health.PeerState{peerDead, silent, peerDead}, []string{"", "", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestView(viewCluster(nil))
			v.tailnet = true
			for i, st := range tc.states {
				var got []string
				for _, n := range v.Probed([]health.PeerState{st}, t0.Add(time.Duration(i)*time.Second)) {
					if strings.Contains(n.msg, "partitioned") {
						got = append(got, n.msg)
					}
				}
				switch w := tc.want[i]; {
				case w == "" && len(got) > 0:
					t.Fatalf("round %d: notes %q, want none", i, got)
				case w != "" && (len(got) != 1 || !strings.Contains(got[0], w)):
					t.Fatalf("round %d: notes %q, want one saying %q", i, got, w)
				}
			}
		})
	}
	v := newTestView(viewCluster(nil))
	v.Probed([]health.PeerState{peerPartitioned}, t0)
	v.Probed(nil, t0.Add(time.Second)) // the peer left the cluster
	if len(v.partitioned) != 0 {
		t.Fatalf("a peer no longer listed is still tracked as partitioned: %v", v.partitioned)
	}
}
