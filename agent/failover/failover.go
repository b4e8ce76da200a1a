// Package failover decides, for each managed route table, which NAT instance its default route
// should point at. Decide is a pure function of what one agent observed: no I/O, no clock, no
// goroutines. Every agent runs the same rule over its own view; an agent only ever points
// routes at itself.
//
// The rule, per table:
//
//   - An instance is alive when it is not draining and is either healthy in the viewer's view
//     or presumed alive (PresumedAlive): not healthy here, but not known dead either
//     (partitioned, rising, its agent restarting, not probed yet). AliveWhy says which.
//   - Instances are ranked: those in the table's home AZ first (oldest launch, then id), then
//     the others by rendezvous hash of (table id, instance id), highest weight first.
//   - The preferred owner (PreferredOwner) is the best-ranked healthy, non-draining instance.
//     A presumed-alive peer that ranks above it and Claims (it answered healthy on some path,
//     so it decides from its own side) sees itself as preferred; the viewer defers to it
//     (Owner.DefersTo) and writes nothing, so both sides of a partition agree on one claimant.
//     A peer that cannot claim (its agent is restarting, or it never answered) is not deferred
//     to: its own tables stay with it, but the others do not wait for it.
//   - The owner takes the table at once when the current target is gone: no route (create),
//     a blackhole, a target that is no ENI or an ENI of no known instance, a draining instance,
//     or an instance that is neither healthy nor presumed alive. A presumed-alive target is not
//     gone.
//   - When the target is alive, the owner moves the table only to fail back into the home AZ,
//     and only after being healthy for FailbackAfter and after the table has stayed put for
//     FailbackAfter. Alive targets outside the home AZ are never moved between each other.
//   - No fail-back across a partition: a target that is Partitioned from the owner (it answers
//     healthy over the tailnet, not over the VPC) keeps the table until the owner sees it over
//     the VPC again; then the usual timers apply (they have kept running).
//
// Hence a partition corroborated over the tailnet causes no move: gone targets are still
// replaced, each by one claimant, and fail-backs across it wait for the heal. Without the
// tailnet (a peer presumed alive from other evidence, not Partitioned) the only moves under a
// partition are fail-backs into the home AZ, at most one per FailbackAfter.
//
// Claims should only be set for a peer whose latest answer on some path says it is healthy (or
// that was just seen taking a table): a peer that answers "unhealthy" is not serving.
package failover

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Instance is one cluster member as the viewer sees it.
type Instance struct {
	ID           string
	AZ           string
	ENI          string // primary ENI id (routes point here)
	LaunchTime   time.Time
	Healthy      bool      // in the viewer's view, after rise/fall hysteresis (self: own health)
	HealthySince time.Time // when Healthy last became true in the viewer's view (zero if not healthy)
	Draining     bool
	// PresumedAlive: not healthy in the viewer's view, yet not known dead (partitioned, rising,
	// agent restarting, not probed yet): its tables are not taken from it. Only meaningful when
	// Healthy is false. AliveWhy says why, for reasons.
	PresumedAlive bool
	AliveWhy      string
	// Partitioned: presumed alive because it answers healthy over the tailnet while the VPC
	// path to it fails (it Claims too). The viewer neither takes nor fails back its tables.
	Partitioned bool
	// Claims: a presumed-alive peer that decides for itself and claims the tables it is
	// preferred for (it answered healthy on some path). Only such a peer is deferred to.
	Claims bool
	// Starting: a presumed-alive peer whose agent answered that it is starting. It is deferred
	// to only for a table with no default route at all, so that a cluster starting cold does
	// not claim another AZ's table only to fail it back later.
	Starting bool
}

// Table is one managed route table and its default (0.0.0.0/0) route.
type Table struct {
	ID        string
	HomeAZ    string
	TargetENI string    // current 0.0.0.0/0 target ENI ("" if the route is absent or targets something that is not an ENI)
	Blackhole bool      // route state is blackhole
	Missing   bool      // no 0.0.0.0/0 route at all
	LastMove  time.Time // when the viewer last saw this table's target change (zero if unknown)
}

// Observation is everything one agent knows at one tick.
type Observation struct {
	Self          string // my instance id; Instances must contain it
	Now           time.Time
	FailbackAfter time.Duration
	Instances     []Instance // every cluster member the viewer knows, self included
	Tables        []Table
}

// Action is the EC2 call a Write needs.
type Action string

const (
	ActionReplace Action = "replace"
	ActionCreate  Action = "create"
)

// Kind says why a Write happens.
type Kind string

const (
	KindTakeover Kind = "takeover" // the current target is gone
	KindFailback Kind = "failback" // back into the home AZ from a live target elsewhere
	KindClaim    Kind = "claim"    // the table has no default route
)

// Write is one route change: point TableID's default route at my own ENI.
type Write struct {
	TableID   string
	Action    Action
	TargetENI string // always my own ENI
	Kind      Kind
	Reason    string
	// Handover: a takeover from a draining target, a planned hand-over rather than a failure.
	Handover bool
}

// Owner is the preferred owner of a table and why.
type Owner struct {
	InstanceID string // "" when no healthy candidate
	Reason     string
	// DefersTo is a presumed-alive peer that ranks above InstanceID and claims the table from
	// its side, so InstanceID writes nothing. "" when there is none.
	DefersTo string
}

// Decision is the outcome of one tick for one agent.
type Decision struct {
	Writes []Write          // only writes pointing at Self, sorted by TableID
	Owners map[string]Owner // tableID -> preferred owner and why (for /status)
	// Pending are fail-backs Self would make once its timers allow or a partition heals, sorted
	// by TableID; their Reason says what they wait for. Informational only: nothing to do for them.
	Pending []Write
}

// Decide returns the route writes Self should make. It fails only on an invalid observation.
func Decide(o Observation) (Decision, error) {
	self, err := validate(o)
	if err != nil {
		return Decision{}, err
	}
	byENI := make(map[string]Instance, len(o.Instances))
	for _, in := range o.Instances {
		if in.ENI != "" {
			byENI[in.ENI] = in
		}
	}
	d := Decision{Owners: make(map[string]Owner, len(o.Tables))}
	for _, t := range o.Tables {
		owner := PreferredOwner(t, o.Instances)
		d.Owners[t.ID] = owner
		// The owner is healthy and not draining, so an unhealthy or draining self never writes.
		if owner.InstanceID != self.ID || owner.DefersTo != "" {
			continue
		}
		target, known := byENI[t.TargetENI]
		w, pending, ok := decideTable(o, self, t, target, known, owner)
		switch {
		case !ok:
		case pending:
			d.Pending = append(d.Pending, w)
		default:
			d.Writes = append(d.Writes, w)
		}
	}
	byTable := func(a, b Write) int { return strings.Compare(a.TableID, b.TableID) }
	slices.SortFunc(d.Writes, byTable)
	slices.SortFunc(d.Pending, byTable)
	return d, nil
}

// decideTable is the write for a table Self owns, if any; pending when only timers hold it back.
func decideTable(o Observation, self Instance, t Table, target Instance, known bool, owner Owner) (w Write, pending, ok bool) {
	w = Write{TableID: t.ID, Action: ActionReplace, TargetENI: self.ENI, Kind: KindTakeover}
	ownerWhy := fmt.Sprintf("preferred owner %s: %s", self.ID, owner.Reason)
	if why := gone(t, target, known); why != "" {
		if t.Missing {
			w.Action, w.Kind = ActionCreate, KindClaim
		}
		w.Handover = known && target.Draining && !t.Blackhole && !t.Missing
		w.Reason = why + "; " + ownerWhy
		return w, false, true
	}
	// Only a move into the home AZ; this also leaves a table that already targets me alone.
	if !inHome(t, self) || inHome(t, target) {
		return Write{}, false, false
	}
	w.Kind = KindFailback
	why := fmt.Sprintf("target %s %s in %s, outside home AZ %s", describe(target), liveness(target), target.AZ, t.HomeAZ)
	if target.partitioned() {
		w.Reason = fmt.Sprintf("%s; waiting: no fail-back across a partition, until the VPC path to %s is back", why, target.ID)
		return w, true, true
	}
	if wait := failbackWait(o, self, t); wait != "" {
		w.Reason = why + "; waiting: " + wait
		return w, true, true
	}
	w.Reason = fmt.Sprintf("%s; healthy for %s and table still for at least %s; %s",
		why, o.Now.Sub(self.HealthySince).Round(time.Second), o.FailbackAfter, ownerWhy)
	return w, false, true
}

// gone says why the table's current target cannot carry traffic, or "" if it is alive.
func gone(t Table, target Instance, known bool) string {
	switch {
	case t.Missing:
		return "no default route"
	case t.Blackhole && t.TargetENI != "":
		return fmt.Sprintf("route to ENI %s is blackhole", t.TargetENI)
	case t.Blackhole:
		return "route is blackhole"
	case t.TargetENI == "":
		return "default route targets no ENI"
	case !known:
		return fmt.Sprintf("target ENI %s belongs to no known instance", t.TargetENI)
	case target.Draining:
		return fmt.Sprintf("target %s draining", describe(target))
	case !target.alive():
		return fmt.Sprintf("target %s unhealthy", describe(target))
	}
	return ""
}

// failbackWait says what a fail-back still waits for, or "" if it may happen now.
func failbackWait(o Observation, self Instance, t Table) string {
	if self.HealthySince.IsZero() {
		return "own healthy-since unknown"
	}
	if up := o.Now.Sub(self.HealthySince); up < o.FailbackAfter {
		return fmt.Sprintf("healthy for %s of %s", up.Round(time.Second), o.FailbackAfter)
	}
	if t.LastMove.IsZero() {
		return ""
	}
	if still := o.Now.Sub(t.LastMove); still < o.FailbackAfter {
		return fmt.Sprintf("table moved %s ago, less than %s", still.Round(time.Second), o.FailbackAfter)
	}
	return ""
}

func describe(in Instance) string { return fmt.Sprintf("%s (ENI %s)", in.ID, in.ENI) }

func liveness(in Instance) string {
	switch {
	case in.Healthy:
		return "healthy"
	case in.AliveWhy != "":
		return "presumed alive (" + in.AliveWhy + ")"
	}
	return "presumed alive"
}

// validate checks the observation and returns Self.
func validate(o Observation) (Instance, error) {
	if o.Self == "" {
		return Instance{}, fmt.Errorf("invalid observation: empty self id")
	}
	if o.FailbackAfter < 0 {
		return Instance{}, fmt.Errorf("invalid observation: negative failback-after %s", o.FailbackAfter)
	}
	var self Instance
	var found bool
	ids := make(map[string]bool, len(o.Instances))
	enis := make(map[string]string, len(o.Instances))
	for _, in := range o.Instances {
		switch {
		case in.ID == "":
			return Instance{}, fmt.Errorf("invalid observation: instance with empty id")
		case ids[in.ID]:
			return Instance{}, fmt.Errorf("invalid observation: duplicate instance id %q", in.ID)
		case in.ENI != "" && enis[in.ENI] != "":
			return Instance{}, fmt.Errorf("invalid observation: ENI %q on both %q and %q", in.ENI, enis[in.ENI], in.ID)
		}
		ids[in.ID] = true
		if in.ENI != "" {
			enis[in.ENI] = in.ID
		}
		if in.ID == o.Self {
			self, found = in, true
		}
	}
	if !found {
		return Instance{}, fmt.Errorf("invalid observation: self %q not among the instances", o.Self)
	}
	if self.ENI == "" {
		return Instance{}, fmt.Errorf("invalid observation: self %q has no ENI", o.Self)
	}
	tables := make(map[string]bool, len(o.Tables))
	for _, t := range o.Tables {
		if t.ID == "" {
			return Instance{}, fmt.Errorf("invalid observation: table with empty id")
		}
		if tables[t.ID] {
			return Instance{}, fmt.Errorf("invalid observation: duplicate table id %q", t.ID)
		}
		tables[t.ID] = true
	}
	return self, nil
}
