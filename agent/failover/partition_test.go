package failover

import (
	"slices"
	"testing"
	"time"
)

// TestPartitionWithTailnet: VPC paths cut while the tailnet carries every answer. Each case
// decides from every instance's view of one truth (sim.view: a healthy peer across a cut is
// Partitioned; an unhealthy one answers 503 on both paths), first for one tick, then ticking
// for hours, the cut healing at heal if set.
//
// The rule under test: a partitioned peer keeps its tables (no take-over) and gets no
// fail-back across the partition either; the fail-back waits for the heal, then follows the
// usual timers. A peer unhealthy or silent on both paths loses its tables at once.
func TestPartitionWithTailnet(t *testing.T) {
	a, b, c := "i-a", "i-b", "i-c"
	// rtb-c homed in az-c: with i-c gone, rendezvous picks i-a over i-b (cWonByA) or the reverse.
	cWonByA := tableWon("rtb-c", "az-c", a, b).ID
	cWonByB := tableWon("rtb-c", "az-c", b, a).ID
	cases := []struct {
		name   string
		nodes  []string // ids; az-<last letter>
		setup  func(s *sim)
		tables []*simTable
		cut    [][2]string
		heal   time.Duration       // 0: the cut lasts the whole run
		first  map[string][]string // viewer -> tables it writes in the first tick
		moves  map[string][]string // table -> writers over the run, in order
		after  time.Duration       // no move before this
	}{
		{
			name:  "VPC partition, tailnet up: each keeps its home table",
			nodes: []string{a, b},
			tables: []*simTable{{id: "rtb-a", home: "az-a", target: "eni-a"}, {id: "rtb-b", home: "az-b", target: "eni-b"},
				{id: "rtb-x", home: "az-x", target: "eni-a"}, {id: "rtb-y", home: "az-x", target: "eni-b"}},
			cut: [][2]string{pair(a, b)},
		},
		{
			name:   "crossed tables stay put across the partition, fail back once each after the heal",
			nodes:  []string{a, b},
			tables: []*simTable{{id: "rtb-a", home: "az-a", target: "eni-b"}, {id: "rtb-b", home: "az-b", target: "eni-a"}},
			cut:    [][2]string{pair(a, b)},
			heal:   time.Hour,
			moves:  map[string][]string{"rtb-a": {a}, "rtb-b": {b}},
			after:  time.Hour,
		},
		{
			// i-a was dead, i-b took rtb-a; i-a is back but cut from i-b over the VPC.
			name:   "home instance back, partitioned from the holder: no fail-back until the heal",
			nodes:  []string{a, b},
			setup:  func(s *sim) { s.node(a).since = s.now },
			tables: []*simTable{{id: "rtb-a", home: "az-a", target: "eni-b"}, {id: "rtb-b", home: "az-b", target: "eni-b"}},
			cut:    [][2]string{pair(a, b)},
			heal:   time.Hour,
			moves:  map[string][]string{"rtb-a": {a}},
			after:  time.Hour,
		},
		{
			name:   "home instance back, partition heals at once: fail-back after its own FailbackAfter",
			nodes:  []string{a, b},
			setup:  func(s *sim) { s.node(a).since = s.now },
			tables: []*simTable{{id: "rtb-a", home: "az-a", target: "eni-b"}, {id: "rtb-b", home: "az-b", target: "eni-b"}},
			cut:    [][2]string{pair(a, b)},
			heal:   time.Minute,
			moves:  map[string][]string{"rtb-a": {a}},
			after:  failbackAfter,
		},
		{
			name:   "peer dead on both paths: its tables are taken at once",
			nodes:  []string{a, b},
			setup:  func(s *sim) { s.setHealthy(a, false) },
			tables: []*simTable{{id: "rtb-a", home: "az-a", target: "eni-a"}, {id: "rtb-b", home: "az-b", target: "eni-b"}},
			cut:    [][2]string{pair(a, b)},
			first:  map[string][]string{b: {"rtb-a"}},
			moves:  map[string][]string{"rtb-a": {b}},
		},
		{
			// i-a runs and decides, but its own health (and so its answer over the tailnet) says
			// unhealthy: it writes nothing, and i-b takes its tables.
			name:  "partition and one side's egress broken: its tables move to the healthy side at once",
			nodes: []string{a, b},
			setup: func(s *sim) { s.setHealthy(a, false) },
			tables: []*simTable{{id: "rtb-a", home: "az-a", target: "eni-a"}, {id: "rtb-b", home: "az-b", target: "eni-b"},
				{id: "rtb-x", home: "az-x", target: "eni-a"}},
			cut:   [][2]string{pair(a, b)},
			first: map[string][]string{b: {"rtb-a", "rtb-x"}},
			moves: map[string][]string{"rtb-a": {b}, "rtb-x": {b}},
		},
		{
			name:   "missing and blackhole routes: one claimant each, the home instance",
			nodes:  []string{a, b},
			tables: []*simTable{{id: "rtb-a", home: "az-a", missing: true}, {id: "rtb-b", home: "az-b", target: "eni-a", blackhole: true}},
			cut:    [][2]string{pair(a, b)},
			first:  map[string][]string{a: {"rtb-a"}, b: {"rtb-b"}},
			moves:  map[string][]string{"rtb-a": {a}, "rtb-b": {b}},
		},
		{
			name:  "three NATs, one partitioned from one other only: nothing moves",
			nodes: []string{a, b, c},
			tables: []*simTable{{id: "rtb-a", home: "az-a", target: "eni-a"}, {id: "rtb-b", home: "az-b", target: "eni-b"},
				{id: "rtb-c", home: "az-c", target: "eni-c"}, {id: "rtb-x", home: "az-x", target: "eni-a"}, {id: "rtb-y", home: "az-x", target: "eni-b"}},
			cut: [][2]string{pair(a, b)},
		},
		{
			name:  "three NATs, one pair cut, the third dead: one claimant for each of its tables",
			nodes: []string{a, b, c},
			setup: func(s *sim) { s.setHealthy(c, false) },
			tables: []*simTable{{id: "rtb-a", home: "az-a", target: "eni-a"}, {id: "rtb-b", home: "az-b", target: "eni-b"},
				{id: cWonByA, home: "az-c", target: "eni-c"}, {id: cWonByB, home: "az-c", target: "eni-c"}},
			cut:   [][2]string{pair(a, b)},
			first: map[string][]string{a: {cWonByA}, b: {cWonByB}},
			moves: map[string][]string{cWonByA: {a}, cWonByB: {b}},
		},
		{
			// i-c sees both over the VPC and is no owner of rtb-a; i-a waits for the heal.
			name:   "three NATs, home instance cut from the holder of its table: the third does not move it either",
			nodes:  []string{a, b, c},
			tables: []*simTable{{id: "rtb-a", home: "az-a", target: "eni-b"}, {id: "rtb-b", home: "az-b", target: "eni-b"}, {id: "rtb-c", home: "az-c", target: "eni-c"}},
			cut:    [][2]string{pair(a, b)},
			heal:   time.Hour,
			moves:  map[string][]string{"rtb-a": {a}},
			after:  time.Hour,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var nodes []*simNode
			for _, id := range tc.nodes {
				nodes = append(nodes, simNodeAt(id, "az-"+id[len(id)-1:]))
			}
			s := newSim(t, nodes, tc.tables)
			if tc.setup != nil {
				tc.setup(s)
			}
			for _, p := range tc.cut {
				s.cut[p] = true
			}
			for _, n := range s.nodes {
				d, err := Decide(s.view(n))
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, w := range d.Writes {
					got = append(got, w.TableID)
				}
				if !slices.Equal(got, tc.first[n.id]) {
					t.Errorf("view %s: first tick writes %v, want %v", n.id, got, tc.first[n.id])
				}
			}
			if tc.heal > 0 {
				s.run(tc.heal)
				clear(s.cut)
			}
			s.run(4 * time.Hour)
			for _, tb := range tc.tables {
				var by []string
				for _, m := range s.movesOf(tb.id) {
					by = append(by, m.by)
					if m.at.Sub(t0) < tc.after {
						t.Errorf("%s moved at %s, before %s", tb.id, m.at.Sub(t0), tc.after)
					}
				}
				if !slices.Equal(by, tc.moves[tb.id]) {
					t.Errorf("%s written by %v, want %v", tb.id, by, tc.moves[tb.id])
				}
			}
			s.checkNoFight()
		})
	}
}
