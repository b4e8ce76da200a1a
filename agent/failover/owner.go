package failover

import (
	"fmt"

	"github.com/headnat/headnat/agent/rendezvous"
)

// PreferredOwner is the best-ranked healthy, non-draining instance for t, and why. When a
// presumed-alive peer that claims ranks above it, DefersTo names that peer and nobody on this
// side writes.
// The result does not depend on the order of instances.
func PreferredOwner(t Table, instances []Instance) Owner {
	var o Owner
	best, ok := top(t, instances, Instance.candidate)
	if ok {
		o = Owner{InstanceID: best.ID, Reason: rankReason(t, best, instances)}
	} else {
		o.Reason = "no healthy, non-draining instance"
	}
	// Healthy instances claim too, so the best claimant is either best or ranks above it.
	claims := func(in Instance) bool {
		return in.claimant() || (t.Missing && in.PresumedAlive && in.Starting && !in.Draining)
	}
	if c, ok := top(t, instances, claims); ok && c.ID != o.InstanceID {
		o.DefersTo = c.ID
		o.Reason += fmt.Sprintf("; %s ranks higher and claims the table from its side (%s)", c.ID, liveness(c))
	}
	return o
}

// candidate: may be preferred.
func (in Instance) candidate() bool { return in.Healthy && !in.Draining }

// alive: carries traffic as far as the viewer can tell (healthy, or presumed alive).
func (in Instance) alive() bool { return !in.Draining && (in.Healthy || in.PresumedAlive) }

// partitioned: serving, but seen over the tailnet only.
func (in Instance) partitioned() bool { return !in.Healthy && in.PresumedAlive && in.Partitioned }

// claimant: decides for itself and claims what it is preferred for.
func (in Instance) claimant() bool {
	return !in.Draining && (in.Healthy || (in.PresumedAlive && in.Claims))
}

func inHome(t Table, in Instance) bool { return t.HomeAZ != "" && in.AZ == t.HomeAZ }

// top is the best-ranked instance among those that pass keep.
func top(t Table, instances []Instance, keep func(Instance) bool) (Instance, bool) {
	var best Instance
	found := false
	for _, in := range instances {
		if keep(in) && (!found || outranks(t, in, best)) {
			best, found = in, true
		}
	}
	return best, found
}

// outranks: a is preferred over b for t. A total order on distinct ids: home AZ first, there
// oldest launch then id; elsewhere highest rendezvous weight then id.
func outranks(t Table, a, b Instance) bool {
	if ah, bh := inHome(t, a), inHome(t, b); ah != bh {
		return ah
	} else if ah {
		if !a.LaunchTime.Equal(b.LaunchTime) {
			return a.LaunchTime.Before(b.LaunchTime)
		}
		return a.ID < b.ID
	}
	if wa, wb := rendezvous.Weight(t.ID, a.ID), rendezvous.Weight(t.ID, b.ID); wa != wb {
		return wa > wb
	}
	return a.ID < b.ID
}

func rankReason(t Table, best Instance, instances []Instance) string {
	if inHome(t, best) {
		n := count(instances, func(in Instance) bool { return in.candidate() && inHome(t, in) })
		if n > 1 {
			return fmt.Sprintf("healthy in home AZ %s, oldest of %d there", t.HomeAZ, n)
		}
		return fmt.Sprintf("healthy in home AZ %s", t.HomeAZ)
	}
	n := count(instances, Instance.candidate)
	where := "table has no home AZ"
	if t.HomeAZ != "" {
		where = fmt.Sprintf("no healthy, non-draining instance in home AZ %s", t.HomeAZ)
	}
	return fmt.Sprintf("%s; healthy in %s with the highest rendezvous weight of %d healthy instances", where, best.AZ, n)
}

func count(instances []Instance, keep func(Instance) bool) int {
	n := 0
	for _, in := range instances {
		if keep(in) {
			n++
		}
	}
	return n
}
