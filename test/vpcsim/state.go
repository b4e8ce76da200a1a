package vpcsim

import (
	"maps"
	"net/netip"
	"slices"
	"sort"
	"time"
)

type tags map[string]string

type vpc struct {
	id        string
	cidr      netip.Prefix
	tags      tags
	mainTable string
	seq       int
}

type subnet struct {
	id, vpcID, az string
	cidr          netip.Prefix
	tags          tags
	seq           int
}

type route struct {
	dest     netip.Prefix
	gateway  string // "local" for the VPC route, or an internet gateway
	eni      string
	instance string // the instance the ENI was attached to when the route was written
	origin   string
}

type association struct {
	id, subnetID string
	main         bool
}

type routeTable struct {
	id, vpcID string
	routes    []route
	assocs    []association
	tags      tags
	seq       int
}

type instance struct {
	id, az, subnetID, vpcID string
	eni                     string // primary ENI, kept (deleted) after termination
	state                   string
	launch                  time.Time
	itype                   string
	reservation             string
	tags                    tags
	seq                     int
}

type eni struct {
	id, subnetID, vpcID, az string
	ip                      netip.Addr
	instance, attachID      string
	sdc                     bool
	deleted                 bool
	mac                     string
	tags                    tags
	seq                     int
}

type address struct {
	alloc   string
	public  netip.Addr
	assoc   string
	eni     string
	private netip.Addr
	tags    tags
	seq     int
}

type member struct {
	instance, lifecycle string
}

type hook struct {
	name, transition, defaultResult string
	timeout                         time.Duration
}

type group struct {
	name              string
	min, max, desired int32
	grace             int32
	members           []member
	hooks             []hook
	tags              tags
	created           time.Time
	seq               int
}

type lifecycleAction struct {
	token, group, hook, instance, transition string
	started, deadline                        time.Time
	global                                   time.Time // started + the global timeout
	heartbeats                               int
	done, timedOut                           bool
	result                                   string
}

// state is everything the Sim models. Mutations work on a clone, which replaces the state only
// once the Sink has accepted the change.
type state struct {
	vpcs      map[string]*vpc
	subnets   map[string]*subnet
	tables    map[string]*routeTable
	instances map[string]*instance
	enis      map[string]*eni
	addrs     map[string]*address
	groups    map[string]*group
	actions   map[string]*lifecycleAction
}

func newState() *state {
	return &state{
		vpcs: map[string]*vpc{}, subnets: map[string]*subnet{}, tables: map[string]*routeTable{},
		instances: map[string]*instance{}, enis: map[string]*eni{}, addrs: map[string]*address{},
		groups: map[string]*group{}, actions: map[string]*lifecycleAction{},
	}
}

func cloneEach[T any](m map[string]*T, cp func(T) T) map[string]*T {
	out := make(map[string]*T, len(m))
	for k, v := range m {
		c := cp(*v)
		out[k] = &c
	}
	return out
}

func (st *state) clone() *state {
	return &state{
		vpcs:    cloneEach(st.vpcs, func(v vpc) vpc { v.tags = maps.Clone(v.tags); return v }),
		subnets: cloneEach(st.subnets, func(v subnet) subnet { v.tags = maps.Clone(v.tags); return v }),
		tables: cloneEach(st.tables, func(v routeTable) routeTable {
			v.routes, v.assocs, v.tags = slices.Clone(v.routes), slices.Clone(v.assocs), maps.Clone(v.tags)
			return v
		}),
		instances: cloneEach(st.instances, func(v instance) instance { v.tags = maps.Clone(v.tags); return v }),
		enis:      cloneEach(st.enis, func(v eni) eni { v.tags = maps.Clone(v.tags); return v }),
		addrs:     cloneEach(st.addrs, func(v address) address { v.tags = maps.Clone(v.tags); return v }),
		groups: cloneEach(st.groups, func(v group) group {
			v.members, v.hooks, v.tags = slices.Clone(v.members), slices.Clone(v.hooks), maps.Clone(v.tags)
			return v
		}),
		actions: cloneEach(st.actions, func(v lifecycleAction) lifecycleAction { return v }),
	}
}

// bySeq returns a map's values in creation order.
func bySeq[T any](m map[string]*T, seq func(*T) int) []*T {
	out := make([]*T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return seq(out[i]) < seq(out[j]) })
	return out
}

var stateCodes = map[string]int{
	StatePending: 0, StateRunning: 16, StateShuttingDown: 32, StateTerminated: 48,
	StateStopping: 64, StateStopped: 80,
}

func (st *state) eniByIP(ip netip.Addr) *eni {
	for _, n := range st.enis {
		if !n.deleted && n.ip == ip {
			return n
		}
	}
	return nil
}

// freeIP returns the lowest unused address of a subnet, skipping the four AWS reserves at the
// start and the broadcast address.
func (st *state) freeIP(sn *subnet) netip.Addr {
	a := sn.cidr.Addr()
	for range 4 {
		a = a.Next()
	}
	for ; sn.cidr.Contains(a) && sn.cidr.Contains(a.Next()); a = a.Next() {
		if st.eniByIP(a) == nil {
			return a
		}
	}
	return netip.Addr{}
}

func (st *state) tagsOf(id string) tags {
	switch {
	case st.instances[id] != nil:
		return st.instances[id].tags
	case st.enis[id] != nil && !st.enis[id].deleted:
		return st.enis[id].tags
	case st.subnets[id] != nil:
		return st.subnets[id].tags
	case st.vpcs[id] != nil:
		return st.vpcs[id].tags
	case st.tables[id] != nil:
		return st.tables[id].tags
	case st.addrs[id] != nil:
		return st.addrs[id].tags
	}
	return nil
}

func (t *routeTable) find(dest netip.Prefix) int {
	for i, r := range t.routes {
		if r.dest == dest {
			return i
		}
	}
	return -1
}

// live reports whether traffic sent to the ENI reaches a running instance.
func (st *state) live(eniID string) bool {
	n := st.enis[eniID]
	if n == nil || n.deleted || n.instance == "" {
		return false
	}
	in := st.instances[n.instance]
	return in != nil && (in.state == StateRunning || in.state == StatePending)
}

func (st *state) routeState(r route) string {
	if r.gateway != "" || st.live(r.eni) {
		return RouteActive
	}
	return RouteBlackhole
}

func (st *state) routeView(r route) RouteView {
	v := RouteView{
		Destination: r.dest.String(), GatewayID: r.gateway, NetworkInterfaceID: r.eni,
		InstanceID: r.instance, State: st.routeState(r), Origin: r.origin,
	}
	if n := st.enis[r.eni]; n != nil && !n.deleted && n.instance != "" {
		v.InstanceID = n.instance
	}
	return v
}

func (st *state) routeToInstance(id string) (route, *apiError) {
	in := st.instances[id]
	if in == nil {
		return route{}, errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	if in.state == StateTerminated || in.state == StateShuttingDown {
		return route{}, errf(400, "IncorrectInstanceState", "The instance '%s' is not in a state from which it can be a route target (%s)", id, in.state)
	}
	return route{eni: in.eni, instance: in.id}, nil
}

func (st *state) routeToENI(id, vpcID string) (route, *apiError) {
	n := st.enis[id]
	if n == nil || n.deleted {
		return route{}, errf(400, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
	}
	if n.vpcID != vpcID {
		return route{}, errf(400, "InvalidParameterValue", "route table and network interface %s belong to different networks", id)
	}
	return route{eni: n.id, instance: n.instance}, nil
}

func (st *state) setInstanceState(id, to string) *apiError {
	in := st.instances[id]
	if in == nil {
		return errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	if _, ok := stateCodes[to]; !ok {
		return errf(400, "InvalidParameterValue", "unknown instance state %q", to)
	}
	if in.state == StateTerminated {
		if to == StateTerminated {
			return nil
		}
		return errf(400, "IncorrectInstanceState", "The instance '%s' is terminated", id)
	}
	in.state = to
	if to != StateTerminated {
		return nil
	}
	if n := st.enis[in.eni]; n != nil {
		n.deleted = true
		n.instance = ""
		for _, a := range st.addrs {
			if a.eni == n.id {
				a.assoc, a.eni, a.private = "", "", netip.Addr{}
			}
		}
	}
	for _, g := range st.groups {
		g.members = slices.DeleteFunc(g.members, func(m member) bool { return m.instance == id })
	}
	return nil
}

// kview is what the kernel of the lab must reflect.
type kview struct {
	routes map[string]KernelRoute    // every route table; Absent when it has no default route
	sdc    map[string]sdcState       // every live ENI
	eips   map[netip.Addr]netip.Addr // public -> private, associated EIPs only
}

type sdcState struct {
	ip netip.Addr
	on bool
}

var defaultDest = netip.MustParsePrefix("0.0.0.0/0")

func (st *state) kernelView() kview {
	v := kview{routes: map[string]KernelRoute{}, sdc: map[string]sdcState{}, eips: map[netip.Addr]netip.Addr{}}
	for id, t := range st.tables {
		kr := KernelRoute{Absent: true}
		// A default route to an internet gateway is not the lab's: the kernel sees none.
		if i := t.find(defaultDest); i >= 0 && t.routes[i].gateway == "" {
			r := t.routes[i]
			kr = KernelRoute{Blackhole: st.routeState(r) != RouteActive}
			if n := st.enis[r.eni]; n != nil {
				kr.Target = n.ip
			}
		}
		v.routes[id] = kr
	}
	for id, n := range st.enis {
		if !n.deleted {
			v.sdc[id] = sdcState{ip: n.ip, on: n.sdc}
		}
	}
	for _, a := range st.addrs {
		if a.assoc != "" {
			v.eips[a.public] = a.private
		}
	}
	return v
}

// effect is one Sink call and the call that undoes it.
type effect struct {
	what        string
	apply, undo func(Sink) error
}

// diffViews lists the Sink calls that take the kernel from a to b: EIP removals, routes,
// source/dest checks, EIP additions. With full, every entry of b is sent, changed or not.
func diffViews(a, b kview, full bool) []effect {
	var out []effect
	for _, pub := range sortedAddrs(a.eips) {
		priv := a.eips[pub]
		if nb, ok := b.eips[pub]; !ok || nb != priv {
			out = append(out, effect{
				what:  "disassociate " + pub.String(),
				apply: func(s Sink) error { return s.ElasticIP(priv, pub, false) },
				undo:  func(s Sink) error { return s.ElasticIP(priv, pub, true) },
			})
		}
	}
	for _, id := range sortedKeys(b.routes) {
		nr := b.routes[id]
		or, ok := a.routes[id]
		if !ok {
			or = KernelRoute{Absent: true}
		}
		if full || or != nr {
			out = append(out, effect{
				what:  "default route of " + id,
				apply: func(s Sink) error { return s.DefaultRoute(id, nr) },
				undo:  func(s Sink) error { return s.DefaultRoute(id, or) },
			})
		}
	}
	for _, id := range sortedKeys(a.sdc) {
		o := a.sdc[id]
		if _, ok := b.sdc[id]; !ok && o.on {
			out = append(out, effect{
				what:  "source/dest check of deleted " + id,
				apply: func(s Sink) error { return s.SourceDestCheck(id, o.ip, false) },
				undo:  func(s Sink) error { return s.SourceDestCheck(id, o.ip, true) },
			})
		}
	}
	for _, id := range sortedKeys(b.sdc) {
		n := b.sdc[id]
		o, ok := a.sdc[id]
		if full || (ok && o.on != n.on) || (!ok && n.on) {
			out = append(out, effect{
				what:  "source/dest check of " + id,
				apply: func(s Sink) error { return s.SourceDestCheck(id, n.ip, n.on) },
				undo:  func(s Sink) error { return s.SourceDestCheck(id, n.ip, o.on && ok) },
			})
		}
	}
	for _, pub := range sortedAddrs(b.eips) {
		priv := b.eips[pub]
		if oa, ok := a.eips[pub]; full || !ok || oa != priv {
			out = append(out, effect{
				what:  "associate " + pub.String(),
				apply: func(s Sink) error { return s.ElasticIP(priv, pub, true) },
				undo:  func(s Sink) error { return s.ElasticIP(priv, pub, false) },
			})
		}
	}
	return out
}

func sortedAddrs(m map[netip.Addr]netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// commit runs fn on a clone of the state; on success the Sink applies the resulting kernel
// changes, and only then does the clone become the state. If the Sink fails, the calls already
// made are undone and nothing changes. Callers hold s.mu.
func (s *Sim) commit(fn func(*state) *apiError, dryRun bool) *apiError {
	next := s.st.clone()
	if aerr := fn(next); aerr != nil {
		return aerr
	}
	if dryRun {
		return errf(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	if sink := s.opts.Sink; sink != nil {
		effects := diffViews(s.st.kernelView(), next.kernelView(), false)
		for i, e := range effects {
			if err := e.apply(sink); err != nil {
				s.log.Warn("sink refused a change; rolling back", "change", e.what, "err", err)
				for j := i - 1; j >= 0; j-- {
					if uerr := effects[j].undo(sink); uerr != nil {
						s.log.Error("sink rollback failed", "change", effects[j].what, "err", uerr)
					}
				}
				return errf(500, "InternalError", "An internal error has occurred")
			}
		}
	}
	s.replaceState(next)
	return nil
}
