package failover

import (
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// randomSnapshot: 1-6 instances over 1-4 AZs with random health, draining and partitions,
// and 1-6 tables homed anywhere (also where no instance is) with random routes.
func randomSnapshot(r *rand.Rand) ([]Instance, []Table) {
	azs := []string{"az-a", "az-b", "az-c", "az-d"}[:1+r.Intn(4)]
	var instances []Instance
	for i := range 1 + r.Intn(6) {
		in := Instance{
			ID: fmt.Sprintf("i-%d", i), AZ: azs[r.Intn(len(azs))], ENI: fmt.Sprintf("eni-%d", i),
			LaunchTime: t0.Add(-time.Duration(1+r.Intn(3)) * time.Hour), // coarse: ties happen
			Healthy:    r.Intn(10) < 7,
			Draining:   r.Intn(7) == 0,
		}
		switch {
		case in.Healthy && r.Intn(20) > 0:
			in.HealthySince = t0.Add(-time.Duration(r.Intn(600)) * time.Second)
		case !in.Healthy:
			in.PresumedAlive = r.Intn(3) == 0
			in.Claims = in.PresumedAlive && r.Intn(2) == 0
			in.Partitioned = in.Claims && r.Intn(2) == 0
		}
		instances = append(instances, in)
	}
	homes := append(slices.Clone(azs), "az-x", "")
	var tables []Table
	for i := range 1 + r.Intn(6) {
		t := Table{ID: fmt.Sprintf("rtb-%d", i), HomeAZ: homes[r.Intn(len(homes))]}
		switch k := r.Intn(10); {
		case k < 5:
			t.TargetENI = instances[r.Intn(len(instances))].ENI
		case k < 6:
			t.TargetENI = "eni-unknown"
		case k < 7:
		case k < 8:
			t.Missing = true
		default:
			t.TargetENI, t.Blackhole = instances[r.Intn(len(instances))].ENI, true
		}
		if r.Intn(2) == 0 {
			t.LastMove = t0.Add(-time.Duration(r.Intn(600)) * time.Second)
		}
		tables = append(tables, t)
	}
	return instances, tables
}

// goneOracle restates, independently of Decide, when a table's target cannot carry traffic.
func goneOracle(t Table, instances []Instance) bool {
	if t.Missing || t.Blackhole {
		return true
	}
	for _, in := range instances {
		if t.TargetENI != "" && in.ENI == t.TargetENI {
			return in.Draining || !(in.Healthy || in.PresumedAlive)
		}
	}
	return true
}

// TestPropertyOneWriterPerTable: over many random snapshots seen alike by every instance, at
// most one instance writes each table, the writer is the preferred owner, a gone target with
// an undisputed owner is always replaced, and the decision does not depend on input order.
func TestPropertyOneWriterPerTable(t *testing.T) {
	var writes, takeovers, failbacks int
	for seed := int64(1); seed <= 2000; seed++ {
		r := rand.New(rand.NewSource(seed))
		instances, tables := randomSnapshot(r)
		writers := map[string][]string{}
		for _, self := range instances {
			o := Observation{Self: self.ID, Now: t0, FailbackAfter: failbackAfter, Instances: instances, Tables: tables}
			d, err := Decide(o)
			if err != nil {
				t.Fatalf("seed %d view %s: %v", seed, self.ID, err)
			}
			if !slices.IsSortedFunc(d.Writes, func(a, b Write) int { return strings.Compare(a.TableID, b.TableID) }) {
				t.Errorf("seed %d view %s: writes not sorted: %+v", seed, self.ID, d.Writes)
			}
			for _, w := range d.Writes {
				if w.TargetENI != self.ENI {
					t.Errorf("seed %d view %s: write points at %s, not at self", seed, self.ID, w.TargetENI)
				}
				writers[w.TableID] = append(writers[w.TableID], self.ID)
				writes++
				switch w.Kind {
				case KindTakeover:
					takeovers++
				case KindFailback:
					failbacks++
				}
			}
			for _, tb := range tables {
				if got, want := d.Owners[tb.ID], PreferredOwner(tb, instances); got != want {
					t.Errorf("seed %d view %s: owner of %s %+v, PreferredOwner says %+v", seed, self.ID, tb.ID, got, want)
				}
			}
			checkOrderIndependent(t, seed, r, o, d)
		}
		for _, tb := range tables {
			owner := PreferredOwner(tb, instances)
			w := writers[tb.ID]
			if len(w) > 1 {
				t.Errorf("seed %d: %s written by %v", seed, tb.ID, w)
			}
			if len(w) == 1 && (w[0] != owner.InstanceID || owner.DefersTo != "") {
				t.Errorf("seed %d: %s written by %s, owner %+v", seed, tb.ID, w[0], owner)
			}
			mustWrite := goneOracle(tb, instances) && owner.InstanceID != "" && owner.DefersTo == ""
			if mustWrite && len(w) != 1 {
				t.Errorf("seed %d: %s has a gone target and owner %+v, but writers %v", seed, tb.ID, owner, w)
			}
		}
	}
	// The generator must exercise the interesting paths, or the checks above prove little.
	if takeovers < 500 || failbacks < 50 || writes-takeovers-failbacks < 100 {
		t.Errorf("weak generator: %d writes, %d take-overs, %d fail-backs", writes, takeovers, failbacks)
	}
}

// checkOrderIndependent replays o with its slices shuffled and wants the same decision.
func checkOrderIndependent(t *testing.T, seed int64, r *rand.Rand, o Observation, want Decision) {
	t.Helper()
	for range 2 {
		s := o
		s.Instances, s.Tables = slices.Clone(o.Instances), slices.Clone(o.Tables)
		r.Shuffle(len(s.Instances), func(i, j int) { s.Instances[i], s.Instances[j] = s.Instances[j], s.Instances[i] })
		r.Shuffle(len(s.Tables), func(i, j int) { s.Tables[i], s.Tables[j] = s.Tables[j], s.Tables[i] })
		got, err := Decide(s)
		if err != nil {
			t.Fatalf("seed %d view %s shuffled: %v", seed, o.Self, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d view %s: shuffled input decided\n%+v\nwant\n%+v", seed, o.Self, got, want)
		}
	}
}

// TestPropertyPartitionedViewsAgree: views differ as partitions make them differ: a healthy
// peer across a cut VPC path answers over the tailnet and is seen as Partitioned (presumed
// alive, claiming). Over 2000 random truths and cuts:
//   - at most one instance writes each table, and a gone target is replaced by the truth's
//     preferred owner while any instance can serve;
//   - a partition adds no write: each write is one the same instance makes with no cut;
//   - what it removes are fail-backs across the partition, and nothing else: no write moves a
//     table off a live target unless it is a fail-back from a target the writer sees over the VPC;
//   - with every table at its preferred owner, nothing moves, whatever is cut (in particular when
//     all instances are healthy and each reaches the others over some path).
func TestPropertyPartitionedViewsAgree(t *testing.T) {
	var cuts, withheld, settledRuns, allHealthy int
	for seed := int64(1); seed <= 2000; seed++ {
		r := rand.New(rand.NewSource(seed))
		truth, tables := randomSnapshot(r)
		for i := range truth {
			// The truth is who is healthy; views add the partitions.
			truth[i].PresumedAlive, truth[i].Claims, truth[i].Partitioned, truth[i].AliveWhy = false, false, false, ""
			if truth[i].Healthy && truth[i].HealthySince.IsZero() {
				truth[i].HealthySince = t0.Add(-time.Hour)
			}
		}
		cut := map[[2]string]bool{}
		for _, a := range truth {
			for _, b := range truth {
				if a.ID < b.ID && r.Intn(3) == 0 {
					cut[pair(a.ID, b.ID)] = true
					cuts++
				}
			}
		}
		views := map[string][]Instance{}
		for _, self := range truth {
			views[self.ID] = partitionedView(truth, self.ID, cut)
		}
		decide := func(self string, instances []Instance, tables []Table) Decision {
			d, err := Decide(Observation{Self: self, Now: t0, FailbackAfter: failbackAfter, Instances: instances, Tables: tables})
			if err != nil {
				t.Fatalf("seed %d view %s: %v", seed, self, err)
			}
			return d
		}
		writers := map[string][]string{}
		for _, self := range truth {
			view := views[self.ID]
			d := decide(self.ID, view, tables)
			whole := map[string]Kind{} // the same instance's writes with nothing cut
			for _, w := range decide(self.ID, truth, tables).Writes {
				whole[w.TableID] = w.Kind
			}
			for _, w := range d.Writes {
				writers[w.TableID] = append(writers[w.TableID], self.ID)
				if k, ok := whole[w.TableID]; !ok || k != w.Kind {
					t.Errorf("seed %d view %s: %s %s under the partition, not without it (cut %v)", seed, self.ID, w.Kind, w.TableID, cut)
				}
				tb := tables[slices.IndexFunc(tables, func(x Table) bool { return x.ID == w.TableID })]
				if !goneOracle(tb, truth) {
					target := view[slices.IndexFunc(view, func(in Instance) bool { return in.ENI == tb.TargetENI })]
					if w.Kind != KindFailback || !target.Healthy {
						t.Errorf("seed %d view %s: %s moves %s off live %s (seen %+v)", seed, self.ID, w.Kind, tb.ID, target.ID, target)
					}
				}
				delete(whole, w.TableID)
			}
			for id, k := range whole {
				tb := tables[slices.IndexFunc(tables, func(x Table) bool { return x.ID == id })]
				target := view[slices.IndexFunc(view, func(in Instance) bool { return in.ENI == tb.TargetENI })]
				if k != KindFailback || !target.Partitioned {
					t.Errorf("seed %d view %s: the partition withheld %s %s, not a fail-back across it (target %+v)", seed, self.ID, k, id, target)
				}
				withheld++
			}
		}
		for _, tb := range tables {
			w := writers[tb.ID]
			if len(w) > 1 {
				t.Errorf("seed %d: %s written by %v (cut %v)", seed, tb.ID, w, cut)
			}
			best := PreferredOwner(tb, truth).InstanceID
			if goneOracle(tb, truth) && best != "" && (len(w) != 1 || w[0] != best) {
				t.Errorf("seed %d: %s has a gone target; writers %v, want exactly %s (cut %v)", seed, tb.ID, w, best, cut)
			}
		}

		// Settled: every table at its preferred owner; then again with everyone healthy.
		everyone := slices.Clone(truth)
		for i := range everyone {
			everyone[i].Healthy, everyone[i].Draining = true, false
			everyone[i].HealthySince = t0.Add(-time.Hour)
		}
		for _, in := range [][]Instance{truth, everyone} {
			settled := settle(tables, in)
			settledRuns++
			healthy := !slices.ContainsFunc(in, func(x Instance) bool { return !x.Healthy || x.Draining })
			if healthy {
				allHealthy++
			}
			for _, self := range in {
				if d := decide(self.ID, partitionedView(in, self.ID, cut), settled); len(d.Writes) > 0 {
					t.Errorf("seed %d view %s: settled tables, all healthy %v, cut %v: writes %+v", seed, self.ID, healthy, cut, d.Writes)
				}
			}
		}
	}
	// The generator must cut paths and make the partition withhold fail-backs, or the checks
	// above prove little.
	if cuts < 1000 || withheld < 20 || allHealthy < 2000 {
		t.Errorf("weak generator: %d cuts, %d withheld fail-backs, %d all-healthy runs of %d", cuts, withheld, allHealthy, settledRuns)
	}
}

// partitionedView is self's view of the truth: a healthy peer across a cut VPC path is
// Partitioned (it answers healthy over the tailnet); an unhealthy one looks the same from
// anywhere.
func partitionedView(truth []Instance, self string, cut map[[2]string]bool) []Instance {
	view := slices.Clone(truth)
	for i, in := range view {
		if in.ID != self && in.Healthy && cut[pair(self, in.ID)] {
			view[i].Healthy, view[i].HealthySince = false, time.Time{}
			view[i].PresumedAlive, view[i].Claims, view[i].Partitioned = true, true, true
			view[i].AliveWhy = "partitioned: answers healthy over the tailnet"
		}
	}
	return view
}

// settle points every table with a preferred owner at it.
func settle(tables []Table, instances []Instance) []Table {
	out := slices.Clone(tables)
	for i, tb := range out {
		if o := PreferredOwner(tb, instances).InstanceID; o != "" {
			eni := instances[slices.IndexFunc(instances, func(in Instance) bool { return in.ID == o })].ENI
			out[i].TargetENI, out[i].Missing, out[i].Blackhole = eni, false, false
		}
	}
	return out
}
