package failover

import (
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// sim runs every agent's Decide tick by tick over one shared set of route tables, applying the
// writes, so that sequences (flapping, partitions, deaths) can be checked end to end.
type sim struct {
	t             *testing.T
	now           time.Time
	tick          time.Duration
	failbackAfter time.Duration
	nodes         []*simNode
	tables        []*simTable
	cut           map[[2]string]bool // VPC path broken between two nodes, tailnet fine
	moves         []simMove
}

type simNode struct {
	id, az, eni string
	launch      time.Time
	healthy     bool // own health (an unhealthy agent still runs and decides)
	draining    bool
	since       time.Time            // when healthy last became true
	seen        map[string]string    // table -> target last observed
	lastMove    map[string]time.Time // table -> when this agent saw its target change
}

type simTable struct {
	id, home  string
	target    string // ENI; "" when missing
	missing   bool
	blackhole bool
}

type simMove struct {
	at           time.Time
	table        string
	from, to, by string // ENIs, and the writer's id
	kind         Kind
	fromWasGone  bool // the previous target was truly gone (dead, unhealthy, draining, missing, blackhole)
}

func newSim(t *testing.T, nodes []*simNode, tables []*simTable) *sim {
	s := &sim{t: t, now: t0, tick: 10 * time.Second, failbackAfter: failbackAfter, nodes: nodes, tables: tables, cut: map[[2]string]bool{}}
	for _, n := range nodes {
		n.seen, n.lastMove = map[string]string{}, map[string]time.Time{}
	}
	return s
}

// simNodeAt is a node healthy for an hour before the simulation starts.
func simNodeAt(id, az string) *simNode {
	return &simNode{id: id, az: az, eni: "eni-" + id[2:], launch: t0.Add(-24 * time.Hour), healthy: true, since: t0.Add(-time.Hour)}
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func (s *sim) node(id string) *simNode {
	for _, n := range s.nodes {
		if n.id == id {
			return n
		}
	}
	s.t.Fatalf("no node %s", id)
	return nil
}

func (s *sim) setHealthy(id string, healthy bool) {
	n := s.node(id)
	if healthy && !n.healthy {
		n.since = s.now
	}
	n.healthy = healthy
}

// restart brings a node back as a fresh agent: healthy from now, no memory, not draining.
func (s *sim) restart(id string) {
	n := s.node(id)
	n.healthy, n.draining, n.since = true, false, s.now
	n.seen, n.lastMove = map[string]string{}, map[string]time.Time{}
}

// view is what viewer v observes now. An unhealthy peer answers 503 on both paths and so
// looks dead; a healthy one across a cut VPC path answers over the tailnet only.
func (s *sim) view(v *simNode) Observation {
	o := Observation{Self: v.id, Now: s.now, FailbackAfter: s.failbackAfter}
	for _, n := range s.nodes {
		in := Instance{ID: n.id, AZ: n.az, ENI: n.eni, LaunchTime: n.launch, Draining: n.draining}
		switch {
		case n == v || (n.healthy && !s.cut[pair(v.id, n.id)]):
			in.Healthy = n.healthy
			if n.healthy {
				in.HealthySince = n.since
			}
		case n.healthy:
			in.PresumedAlive, in.Claims, in.Partitioned = true, true, true
			in.AliveWhy = "partitioned: answers healthy over the tailnet"
		}
		o.Instances = append(o.Instances, in)
	}
	for _, t := range s.tables {
		o.Tables = append(o.Tables, Table{ID: t.id, HomeAZ: t.home, TargetENI: t.target,
			Missing: t.missing, Blackhole: t.blackhole, LastMove: v.lastMove[t.id]})
	}
	return o
}

// truthGone: the table's target cannot carry traffic, whatever anybody sees.
func (s *sim) truthGone(t *simTable) bool {
	if t.missing || t.blackhole {
		return true
	}
	for _, n := range s.nodes {
		if n.eni == t.target {
			return !n.healthy || n.draining
		}
	}
	return true
}

// step runs one tick: every agent observes, all decide on the same state, then the writes
// are applied. It fails the test if two agents write the same table in one tick.
func (s *sim) step() {
	s.t.Helper()
	for _, n := range s.nodes {
		for _, t := range s.tables {
			if prev, ok := n.seen[t.id]; ok && prev != t.target {
				n.lastMove[t.id] = s.now
			}
			n.seen[t.id] = t.target
		}
	}
	type write struct {
		by *simNode
		w  Write
	}
	var writes []write
	writers := map[string]string{}
	for _, n := range s.nodes {
		d, err := Decide(s.view(n))
		if err != nil {
			s.t.Fatalf("%s: %v", n.id, err)
		}
		for _, w := range d.Writes {
			if prev := writers[w.TableID]; prev != "" {
				s.t.Fatalf("%s: %s and %s both write %s", s.now.Sub(t0), prev, n.id, w.TableID)
			}
			if !n.healthy || n.draining {
				s.t.Fatalf("%s: unhealthy or draining %s writes %+v", s.now.Sub(t0), n.id, w)
			}
			writers[w.TableID] = n.id
			writes = append(writes, write{n, w})
		}
	}
	for _, wr := range writes {
		t := s.table(wr.w.TableID)
		s.moves = append(s.moves, simMove{at: s.now, table: t.id, from: t.target, to: wr.w.TargetENI,
			by: wr.by.id, kind: wr.w.Kind, fromWasGone: s.truthGone(t)})
		t.target, t.missing, t.blackhole = wr.w.TargetENI, false, false
	}
	s.now = s.now.Add(s.tick)
}

func (s *sim) table(id string) *simTable {
	for _, t := range s.tables {
		if t.id == id {
			return t
		}
	}
	s.t.Fatalf("no table %s", id)
	return nil
}

func (s *sim) run(d time.Duration) {
	s.t.Helper()
	for end := s.now.Add(d); s.now.Before(end); {
		s.step()
	}
}

func (s *sim) targets() map[string]string {
	m := map[string]string{}
	for _, t := range s.tables {
		m[t.id] = t.target
	}
	return m
}

// checkNoFight: every move that does not replace a gone target is a fail-back at least
// FailbackAfter after the table's previous move, and no table returns to a target it left
// while that target stayed alive.
func (s *sim) checkNoFight() {
	s.t.Helper()
	last := map[string]simMove{}
	for _, m := range s.moves {
		prev, moved := last[m.table]
		if !m.fromWasGone {
			if m.kind != KindFailback {
				s.t.Errorf("%s: %s took %s from live %s (%s)", m.at.Sub(t0), m.by, m.table, m.from, m.kind)
			}
			if moved && m.at.Sub(prev.at) < s.failbackAfter {
				s.t.Errorf("%s: %s moved again %s after its previous move", m.at.Sub(t0), m.table, m.at.Sub(prev.at))
			}
		}
		last[m.table] = m
	}
}

func (s *sim) movesOf(table string) []simMove {
	var out []simMove
	for _, m := range s.moves {
		if m.table == table {
			out = append(out, m)
		}
	}
	return out
}

func TestFlappingPeerDoesNotGetTableBack(t *testing.T) {
	s := newSim(t, []*simNode{simNodeAt("i-a", "az-a"), simNodeAt("i-b", "az-b")},
		[]*simTable{{id: "rtb-a", home: "az-a", target: "eni-a"}, {id: "rtb-b", home: "az-b", target: "eni-b"}})
	s.run(time.Minute)
	// For an hour a fails for 30s every 2m30s: never healthy for FailbackAfter.
	var stable time.Time
	for range 24 {
		s.setHealthy("i-a", false)
		s.run(30 * time.Second)
		if got := s.table("rtb-a").target; got != "eni-b" {
			t.Fatalf("%s: rtb-a targets %s while i-a is down", s.now.Sub(t0), got)
		}
		s.setHealthy("i-a", true)
		stable = s.now
		s.run(2 * time.Minute)
		if got := s.table("rtb-a").target; got != "eni-b" {
			t.Fatalf("%s: flapping i-a got rtb-a back", s.now.Sub(t0))
		}
	}
	s.run(time.Hour)
	moves := s.movesOf("rtb-a")
	if len(moves) != 2 {
		t.Fatalf("rtb-a moved %d times, want take-over then one fail-back: %+v", len(moves), moves)
	}
	if m := moves[0]; m.by != "i-b" || m.kind != KindTakeover || m.at.Sub(t0) > time.Minute+s.tick {
		t.Errorf("first move %+v, want i-b taking over within a tick of i-a failing", m)
	}
	if m := moves[1]; m.by != "i-a" || m.kind != KindFailback || m.at.Sub(stable) < s.failbackAfter {
		t.Errorf("second move %+v, want i-a failing back at least %s after %s", m, s.failbackAfter, stable.Sub(t0))
	}
	if len(s.movesOf("rtb-b")) != 0 {
		t.Errorf("rtb-b moved: %+v", s.movesOf("rtb-b"))
	}
	s.checkNoFight()
}

// TestPartitionThreeInstancesOneClaimant: with the home AZ's only instance dead, the two
// survivors cannot see each other over the VPC; only one of them takes the table.
func TestPartitionThreeInstancesOneClaimant(t *testing.T) {
	s := newSim(t, []*simNode{simNodeAt("i-a", "az-a"), simNodeAt("i-b", "az-b"), simNodeAt("i-c", "az-c")},
		[]*simTable{{id: "rtb-c", home: "az-c", target: "eni-c"}})
	s.cut[pair("i-a", "i-b")] = true
	s.setHealthy("i-c", false)
	s.run(2 * time.Hour)
	if m := s.movesOf("rtb-c"); len(m) != 1 || m[0].kind != KindTakeover {
		t.Fatalf("rtb-c moves %+v, want one take-over", m)
	}
	// i-c comes back: one fail-back after FailbackAfter, still no fight.
	back := s.now
	s.setHealthy("i-c", true)
	s.run(2 * time.Hour)
	m := s.movesOf("rtb-c")
	if len(m) != 2 || m[1].by != "i-c" || m[1].at.Sub(back) < s.failbackAfter {
		t.Fatalf("rtb-c moves %+v, want i-c failing back at least %s after %s", m, s.failbackAfter, back.Sub(t0))
	}
	s.checkNoFight()
}

// TestRandomPartitionsNeverFight: VPC paths between random pairs break and heal for hours while
// every agent stays healthy: nothing is taken over, each table fails back at most once.
func TestRandomPartitionsNeverFight(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			nodes, tables := randomCluster(r)
			s := newSim(t, nodes, tables)
			s.tick = 30 * time.Second
			for range 60 {
				a, b := nodes[r.Intn(len(nodes))], nodes[r.Intn(len(nodes))]
				if a != b {
					s.cut[pair(a.id, b.id)] = !s.cut[pair(a.id, b.id)]
				}
				s.run(time.Duration(1+r.Intn(10)) * time.Minute)
			}
			s.checkNoFight()
			for _, tb := range tables {
				if m := s.movesOf(tb.id); len(m) > 1 {
					t.Errorf("%s moved %d times: %+v", tb.id, len(m), m)
				}
			}
		})
	}
}

// TestRandomPartitionsAndDeaths adds deaths, restarts and drains to random partitions: there
// is never more than one writer per table per tick (step checks it), no live target is taken,
// fail-backs keep their pace, and no table is left on a dead target while a candidate lives.
func TestRandomPartitionsAndDeaths(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			nodes, tables := randomCluster(r)
			s := newSim(t, nodes, tables)
			s.tick = 30 * time.Second
			for range 80 {
				n := nodes[r.Intn(len(nodes))]
				switch k := r.Intn(10); {
				case k < 4:
					m := nodes[r.Intn(len(nodes))]
					if m != n {
						s.cut[pair(n.id, m.id)] = !s.cut[pair(n.id, m.id)]
					}
				case k < 6:
					s.setHealthy(n.id, false)
				case k < 8:
					s.restart(n.id)
				case k < 9:
					n.draining = true
				default:
					t := tables[r.Intn(len(tables))]
					t.blackhole = true
				}
				for range 1 + r.Intn(60) {
					s.step()
					s.checkLive()
				}
			}
			s.checkNoFight()
		})
	}
}

// checkLive: after a tick, if any instance can serve, no table points at one that cannot.
func (s *sim) checkLive() {
	s.t.Helper()
	for _, n := range s.nodes {
		if n.healthy && !n.draining {
			for _, t := range s.tables {
				if s.truthGone(t) {
					s.t.Fatalf("%s: %s left on gone target %q while %s could serve", s.now.Sub(t0), t.id, t.target, n.id)
				}
			}
			return
		}
	}
}

// randomCluster: 2-5 instances over 1-3 AZs (some sharing one), tables homed in each AZ and
// in one without instances, all targeting random instances.
func randomCluster(r *rand.Rand) ([]*simNode, []*simTable) {
	azs := []string{"az-a", "az-b", "az-c"}[:1+r.Intn(3)]
	var nodes []*simNode
	for i := range 2 + r.Intn(4) {
		n := simNodeAt(fmt.Sprintf("i-%d", i), azs[r.Intn(len(azs))])
		n.launch = n.launch.Add(time.Duration(r.Intn(3)) * time.Hour)
		nodes = append(nodes, n)
	}
	var tables []*simTable
	for i, az := range append(azs, "az-x") {
		for j := range 2 {
			tables = append(tables, &simTable{id: fmt.Sprintf("rtb-%d%d", i, j), home: az, target: nodes[r.Intn(len(nodes))].eni})
		}
	}
	return nodes, tables
}
