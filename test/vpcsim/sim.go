// Package vpcsim is a stateful, wire-compatible fake of the EC2 and AutoScaling Query APIs,
// of SSM Parameter Store's GetParameter (seeded with PutParameter), and of CloudWatch's
// PutMetricData (read back with MetricData).
//
// A Sim holds a small VPC (subnets, route tables and associations, instances with their
// primary ENI, source/dest check, Elastic IPs, tags, Auto Scaling groups with lifecycle hooks)
// and serves the Query APIs through Handler, so aws-sdk-go-v2 clients with BaseEndpoint set to
// the server work unchanged. Every accepted change that matters to the data path (a private
// table's default route, an ENI's source/dest check, an EIP association) is pushed to a Sink,
// which in the lab is test/lab's KernelSink: then a ReplaceRoute really moves the traffic.
// The package itself is pure Go and runs no commands.
//
// Seeding methods (AddVPC, AddSubnet, ...) are setup code: like regexp.MustCompile they panic on
// invalid input. They do not notify the Sink: call Sync (or SetSink) once seeding is done.
// Methods that model events while the lab runs (SetInstanceState, SetRoute, AssociateAddress,
// LaunchIntoGroup, StartLifecycleAction, ExpireLifecycleActions) return errors and notify the
// Sink like API calls do. Lifecycle actions model both of AutoScaling's timeouts: the heartbeat
// timeout, which RecordLifecycleActionHeartbeat restarts, and the global timeout (100 heartbeat
// timeouts, at most 48 hours), which nothing extends.
package vpcsim

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Instance states, as EC2 names them.
const (
	StatePending      = "pending"
	StateRunning      = "running"
	StateShuttingDown = "shutting-down"
	StateTerminated   = "terminated"
	StateStopping     = "stopping"
	StateStopped      = "stopped"
)

// Route states.
const (
	RouteActive    = "active"
	RouteBlackhole = "blackhole"
)

// Lifecycle transitions and results, as AutoScaling names them.
const (
	TransitionTerminating = "autoscaling:EC2_INSTANCE_TERMINATING"
	TransitionLaunching   = "autoscaling:EC2_INSTANCE_LAUNCHING"
	ResultContinue        = "CONTINUE"
	ResultAbandon         = "ABANDON"
)

// Options configure a Sim. The zero value works.
type Options struct {
	Region    string       // default "us-east-1"
	AccountID string       // owner of everything; default "123456789012"
	Sink      Sink         // receives data-path changes; nil for none
	Logger    *slog.Logger // nil discards
	// Seed makes generated IDs reproducible; 0 picks a random seed.
	Seed uint64
	// Now is the clock for launch times, lifecycle deadlines and the call log; default time.Now.
	Now func() time.Time
	// PageSize is the page size of paginated Describe calls that give no MaxResults (no
	// MaxRecords for AutoScaling, which pages by 50 on its own). 0 answers such EC2 calls in one
	// page. A small size makes every client's NextToken loop run.
	PageSize int
	// Staleness makes Describe calls eventually consistent, as EC2's and AutoScaling's are:
	// each one reads the state as it was a random age ago, from 0 up to Staleness (by Now), so
	// two reads in a row may even go back in time. Writes always see the current state, and so
	// do the Sim's own accessors (Route, Instance, ...). 0 reads the current state.
	Staleness time.Duration
	// OnCall, when set, is called after every mutating API call (success or failure), outside
	// the Sim's lock, so the lab can react (e.g. stop an agent once it completes its lifecycle
	// action). It must not block for long.
	OnCall func(Call)
}

// Sim is the simulated account. All methods are safe for concurrent use.
type Sim struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	st       *state
	past     []snapshot // states replaced within the last Staleness, oldest first
	srng     *rand.Rand // picks the age of each read
	rng      *rand.Rand
	seq      int
	ids      map[string]struct{}
	calls    []Call
	requests map[string]int
	params   map[string]*ssmParam // SSM Parameter Store, by name
	metrics  []MetricDatum        // CloudWatch data points accepted, in order
	igws     map[string]string    // internet gateway -> its VPC

	faultMu sync.Mutex
	faults  Faults
	frng    *rand.Rand
}

// Call is one mutating API call as the Sim saw it.
type Call struct {
	Time    time.Time
	Service string            // "ec2" or "autoscaling"
	Action  string            // e.g. "ReplaceRoute"
	Params  map[string]string // the form fields except Action and Version
	Code    string            // error code; "" when the call succeeded
	Faulted bool              // failed by an injected fault, before touching state
}

// InstanceSpec describes an instance for AddInstance.
type InstanceSpec struct {
	SubnetID   string            // required
	AZ         string            // defaults to the subnet's AZ; must match it when set
	PrivateIP  string            // defaults to the next free address of the subnet
	Tags       map[string]string //
	LaunchTime time.Time         // defaults to Options.Now()
	State      string            // defaults to "running"
	Type       string            // defaults to "t4g.nano"
	// SourceDestCheckOff starts the ENI with the check disabled (AWS starts it enabled).
	SourceDestCheckOff bool
}

// RouteView is a route as DescribeRouteTables would show it.
type RouteView struct {
	Destination        string // CIDR
	GatewayID          string // "local" for the VPC route
	NetworkInterfaceID string
	InstanceID         string
	State              string // "active" or "blackhole"
	Origin             string // "CreateRouteTable" or "CreateRoute"
}

// InstanceView is an instance with its primary ENI.
type InstanceView struct {
	ID, AZ, SubnetID, VPCID, State string
	ENI                            string
	PrivateIP                      netip.Addr
	SourceDestCheck                bool
	LaunchTime                     time.Time
	Tags                           map[string]string
}

// AddressView is an Elastic IP.
type AddressView struct {
	AllocationID  string
	PublicIP      netip.Addr
	AssociationID string // "" when not associated
	ENI           string
	InstanceID    string
	PrivateIP     netip.Addr
	Tags          map[string]string
}

// GroupSpec describes an Auto Scaling group for AddAutoScalingGroup.
type GroupSpec struct {
	Name                       string
	MinSize, MaxSize, Desired  int32 // Desired defaults to len(Instances), MaxSize to Desired
	Instances                  []string
	Hooks                      []HookSpec
	Tags                       map[string]string
	HealthCheckGracePeriodSecs int32
}

// HookSpec is a lifecycle hook.
type HookSpec struct {
	Name             string
	Transition       string        // TransitionTerminating (default) or TransitionLaunching
	HeartbeatTimeout time.Duration // default 1h
	DefaultResult    string        // default ABANDON
}

// LifecycleActionView is a lifecycle action, pending or finished.
type LifecycleActionView struct {
	Token, Group, Hook, InstanceID, Transition string
	Started, Deadline                          time.Time
	// GlobalDeadline is Started plus the global timeout (100 heartbeat timeouts, at most 48
	// hours): no heartbeat extends Deadline past it.
	GlobalDeadline time.Time
	Heartbeats     int
	Completed      bool
	Result         string // CONTINUE or ABANDON once completed
	TimedOut       bool   // completed by ExpireLifecycleActions
}

// New returns an empty Sim.
func New(opts Options) *Sim {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Sim{
		opts:     opts,
		log:      log,
		st:       newState(),
		rng:      rand.New(rand.NewPCG(seed, 0x7670637369)),
		srng:     rand.New(rand.NewPCG(seed, 0x7374616c65)),
		requests: map[string]int{},
		ids:      map[string]struct{}{},
		igws:     map[string]string{},
		frng:     rand.New(rand.NewPCG(1, 1)),
	}
}

func (s *Sim) nextSeq() int {
	s.seq++
	return s.seq
}

// newID returns prefix + 17 hex digits, unique in the Sim. Callers hold s.mu.
func (s *Sim) newID(prefix string) string {
	for {
		id := fmt.Sprintf("%s0%016x", prefix, s.rng.Uint64())
		if _, dup := s.ids[id]; !dup {
			s.ids[id] = struct{}{}
			return id
		}
	}
}

func copyTags(m map[string]string) tags {
	t := tags{}
	for k, v := range m {
		t[k] = v
	}
	return t
}

func mustPrefix(what, cidr string) netip.Prefix {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		panic(fmt.Sprintf("vpcsim: %s: invalid IPv4 CIDR %q", what, cidr))
	}
	return p.Masked()
}

// AddVPC creates a VPC and its main route table (with the local route) and returns its ID.
func (s *Sim) AddVPC(cidr string, tags map[string]string) string {
	p := mustPrefix("AddVPC", cidr)
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &vpc{id: s.newID("vpc-"), cidr: p, tags: copyTags(tags), seq: s.nextSeq()}
	s.st.vpcs[v.id] = v
	main := s.addRouteTableLocked(v.id, nil)
	v.mainTable = main
	t := s.st.tables[main]
	t.assocs = append(t.assocs, association{id: s.newID("rtbassoc-"), main: true})
	return v.id
}

// MainRouteTable returns the ID of a VPC's main route table ("" if the VPC is unknown).
func (s *Sim) MainRouteTable(vpcID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.st.vpcs[vpcID]; v != nil {
		return v.mainTable
	}
	return ""
}

// AddSubnet creates a subnet inside a VPC's CIDR and returns its ID.
func (s *Sim) AddSubnet(vpcID, az, cidr string, tags map[string]string) string {
	p := mustPrefix("AddSubnet", cidr)
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.st.vpcs[vpcID]
	switch {
	case v == nil:
		panic(fmt.Sprintf("vpcsim: AddSubnet: unknown VPC %q", vpcID))
	case az == "":
		panic("vpcsim: AddSubnet: empty availability zone")
	case !v.cidr.Contains(p.Addr()) || p.Bits() < v.cidr.Bits():
		panic(fmt.Sprintf("vpcsim: AddSubnet: %s is not inside the VPC's %s", p, v.cidr))
	case p.Bits() > 28:
		panic(fmt.Sprintf("vpcsim: AddSubnet: %s is smaller than /28", p))
	}
	for _, o := range s.st.subnets {
		if o.vpcID == vpcID && o.cidr.Overlaps(p) {
			panic(fmt.Sprintf("vpcsim: AddSubnet: %s overlaps %s (%s)", p, o.cidr, o.id))
		}
	}
	sn := &subnet{id: s.newID("subnet-"), vpcID: vpcID, az: az, cidr: p, tags: copyTags(tags), seq: s.nextSeq()}
	s.st.subnets[sn.id] = sn
	return sn.id
}

// AddRouteTable creates a route table (with the local route) and returns its ID.
func (s *Sim) AddRouteTable(vpcID string, tags map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.vpcs[vpcID] == nil {
		panic(fmt.Sprintf("vpcsim: AddRouteTable: unknown VPC %q", vpcID))
	}
	return s.addRouteTableLocked(vpcID, tags)
}

func (s *Sim) addRouteTableLocked(vpcID string, tags map[string]string) string {
	v := s.st.vpcs[vpcID]
	t := &routeTable{id: s.newID("rtb-"), vpcID: vpcID, tags: copyTags(tags), seq: s.nextSeq()}
	t.routes = []route{{dest: v.cidr, gateway: "local", origin: "CreateRouteTable"}}
	s.st.tables[t.id] = t
	return t.id
}

// Associate explicitly associates a subnet with a route table, replacing the subnet's previous
// explicit association, and returns the association ID.
func (s *Sim) Associate(rtbID, subnetID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, sn := s.st.tables[rtbID], s.st.subnets[subnetID]
	switch {
	case t == nil:
		panic(fmt.Sprintf("vpcsim: Associate: unknown route table %q", rtbID))
	case sn == nil:
		panic(fmt.Sprintf("vpcsim: Associate: unknown subnet %q", subnetID))
	case t.vpcID != sn.vpcID:
		panic(fmt.Sprintf("vpcsim: Associate: %s and %s are in different VPCs", rtbID, subnetID))
	}
	for _, o := range s.st.tables {
		kept := o.assocs[:0]
		for _, a := range o.assocs {
			if a.subnetID != subnetID {
				kept = append(kept, a)
			}
		}
		o.assocs = kept
	}
	a := association{id: s.newID("rtbassoc-"), subnetID: subnetID}
	t.assocs = append(t.assocs, a)
	return a.id
}

// AddInstance creates an instance with its primary ENI (device index 0) and returns both IDs.
func (s *Sim) AddInstance(spec InstanceSpec) (instanceID, eniID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, n, err := s.newInstance(s.st, spec)
	if err != nil {
		panic("vpcsim: AddInstance: " + err.Error())
	}
	return in, n
}

// newInstance adds an instance and its primary ENI to st. Callers hold s.mu.
func (s *Sim) newInstance(st *state, spec InstanceSpec) (instanceID, eniID string, err error) {
	sn := st.subnets[spec.SubnetID]
	if sn == nil {
		return "", "", fmt.Errorf("unknown subnet %q", spec.SubnetID)
	}
	if spec.AZ != "" && spec.AZ != sn.az {
		return "", "", fmt.Errorf("AZ %q but subnet %s is in %s", spec.AZ, sn.id, sn.az)
	}
	initial := spec.State
	if initial == "" {
		initial = StateRunning
	}
	if _, ok := stateCodes[initial]; !ok || initial == StateTerminated {
		return "", "", fmt.Errorf("invalid state %q", spec.State)
	}
	ip, err := pickIP(st, sn, spec.PrivateIP)
	if err != nil {
		return "", "", err
	}
	launch := spec.LaunchTime
	if launch.IsZero() {
		launch = s.opts.Now()
	}
	itype := spec.Type
	if itype == "" {
		itype = "t4g.nano"
	}
	in := &instance{
		id: s.newID("i-"), az: sn.az, subnetID: sn.id, vpcID: sn.vpcID, state: initial,
		launch: launch.UTC(), tags: copyTags(spec.Tags), itype: itype, seq: s.nextSeq(),
		reservation: s.newID("r-"),
	}
	n := &eni{
		id: s.newID("eni-"), subnetID: sn.id, vpcID: sn.vpcID, az: sn.az, ip: ip,
		instance: in.id, attachID: s.newID("eni-attach-"), sdc: !spec.SourceDestCheckOff,
		tags: tags{}, seq: s.nextSeq(), mac: s.mac(),
	}
	in.eni = n.id
	st.instances[in.id] = in
	st.enis[n.id] = n
	return in.id, n.id, nil
}

// pickIP checks a requested private IP, or picks the subnet's next free one.
func pickIP(st *state, sn *subnet, want string) (netip.Addr, error) {
	if want == "" {
		ip := st.freeIP(sn)
		if !ip.IsValid() {
			return netip.Addr{}, fmt.Errorf("subnet %s is full", sn.id)
		}
		return ip, nil
	}
	a, err := netip.ParseAddr(want)
	if err != nil || !sn.cidr.Contains(a) {
		return netip.Addr{}, fmt.Errorf("private IP %q is not in subnet %s (%s)", want, sn.id, sn.cidr)
	}
	if n := st.eniByIP(a); n != nil {
		return netip.Addr{}, fmt.Errorf("private IP %s already used by %s", a, n.id)
	}
	return a, nil
}

func (s *Sim) mac() string {
	b := s.rng.Uint64()
	return fmt.Sprintf("0e:%02x:%02x:%02x:%02x:%02x", byte(b), byte(b>>8), byte(b>>16), byte(b>>24), byte(b>>32))
}

// AddAddress allocates an Elastic IP and returns its allocation ID.
func (s *Sim) AddAddress(publicIP string) string {
	a, err := netip.ParseAddr(publicIP)
	if err != nil || !a.Is4() {
		panic(fmt.Sprintf("vpcsim: AddAddress: invalid IPv4 address %q", publicIP))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.st.addrs {
		if o.public == a {
			panic(fmt.Sprintf("vpcsim: AddAddress: %s already allocated as %s", a, o.alloc))
		}
	}
	ad := &address{alloc: s.newID("eipalloc-"), public: a, tags: tags{}, seq: s.nextSeq()}
	s.st.addrs[ad.alloc] = ad
	return ad.alloc
}

// Tag adds or overwrites tags on any resource the Sim knows (instance, ENI, subnet, VPC, route
// table, allocation ID).
func (s *Sim) Tag(resourceID string, tags map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.st.tagsOf(resourceID)
	if t == nil {
		return fmt.Errorf("tag %s: unknown resource", resourceID)
	}
	for k, v := range tags {
		t[k] = v
	}
	return nil
}

// SetInstanceState moves an instance to a state ("running", "stopped", "terminated", ...), as
// the console or a spot reclaim would. Terminating deletes the primary ENI (routes to it become
// blackholes), releases its EIP association and removes it from its Auto Scaling group. The
// Sink is notified; if it fails, nothing changes.
func (s *Sim) SetInstanceState(id, to string) error {
	return s.event(fmt.Sprintf("set %s %s", id, to), func(st *state) *apiError {
		return st.setInstanceState(id, to)
	})
}

// SetRoute creates or replaces a route in a table, targeting an ENI ("eni-...") or an instance
// ("i-...", meaning its primary ENI). The Sink is notified.
func (s *Sim) SetRoute(rtbID, cidr, target string) error {
	return s.event(fmt.Sprintf("route %s %s -> %s", rtbID, cidr, target), func(st *state) *apiError {
		t := st.tables[rtbID]
		if t == nil {
			return errf(400, "InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", rtbID)
		}
		dest, aerr := parseDest(cidr)
		if aerr != nil {
			return aerr
		}
		var r route
		switch {
		case len(target) > 2 && target[:2] == "i-":
			r, aerr = st.routeToInstance(target)
		default:
			r, aerr = st.routeToENI(target, t.vpcID)
		}
		if aerr != nil {
			return aerr
		}
		r.dest, r.origin = dest, "CreateRoute"
		if i := t.find(dest); i >= 0 {
			if t.routes[i].gateway == "local" {
				return errf(400, "InvalidParameterValue", "cannot replace the local route %s", dest)
			}
			t.routes[i] = r
		} else {
			t.routes = append(t.routes, r)
		}
		return nil
	})
}

// AssociateAddress associates an Elastic IP with an ENI's primary private IP (reassociating it
// if needed) and returns the association ID. The Sink is notified.
func (s *Sim) AssociateAddress(allocationID, eniID string) (string, error) {
	var assoc string
	err := s.event("associate "+allocationID, func(st *state) *apiError {
		var aerr *apiError
		assoc, aerr = s.associateAddressIn(st, allocationID, eniID, netip.Addr{}, true)
		return aerr
	})
	return assoc, err
}

// Sync pushes the whole data-path state to the Sink: every route table's default route
// (Absent when it has none), every live ENI's source/dest check and every EIP association.
// Sink implementations are idempotent, so Sync can be called any time.
func (s *Sim) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncLocked(s.opts.Sink)
}

func (s *Sim) syncLocked(sink Sink) error {
	if sink == nil {
		return nil
	}
	for _, e := range diffViews(kview{}, s.st.kernelView(), true) {
		if err := e.apply(sink); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	return nil
}

// SetSink attaches a Sink (replacing Options.Sink) and pushes the whole state to it, as Sync
// does: seed first, then build the sink from the IDs, then SetSink. If the push fails, the
// previous sink stays attached.
func (s *Sim) SetSink(sink Sink) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.syncLocked(sink); err != nil {
		return err
	}
	s.opts.Sink = sink
	return nil
}

// event runs a seed-side state change with the same snapshot/sink/rollback logic as API calls.
func (s *Sim) event(what string, fn func(*state) *apiError) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if aerr := s.commit(fn, false); aerr != nil {
		return fmt.Errorf("%s: %s: %s", what, aerr.Code, aerr.Message)
	}
	return nil
}

// Route returns a table's default (0.0.0.0/0) route.
func (s *Sim) Route(rtbID string) (RouteView, bool) {
	for _, r := range s.Routes(rtbID) {
		if r.Destination == "0.0.0.0/0" {
			return r, true
		}
	}
	return RouteView{}, false
}

// Routes returns all routes of a table, the local route first.
func (s *Sim) Routes(rtbID string) []RouteView {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.st.tables[rtbID]
	if t == nil {
		return nil
	}
	out := make([]RouteView, 0, len(t.routes))
	for _, r := range t.routes {
		out = append(out, s.st.routeView(r))
	}
	return out
}

// SourceDestCheck reports whether an ENI's source/dest check is on.
func (s *Sim) SourceDestCheck(eniID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.st.enis[eniID]
	return n != nil && n.sdc
}

// Instance returns an instance and its primary ENI.
func (s *Sim) Instance(id string) (InstanceView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.st.instances[id]
	if in == nil {
		return InstanceView{}, false
	}
	v := InstanceView{
		ID: in.id, AZ: in.az, SubnetID: in.subnetID, VPCID: in.vpcID, State: in.state,
		ENI: in.eni, LaunchTime: in.launch, Tags: copyTags(in.tags),
	}
	if n := s.st.enis[in.eni]; n != nil {
		v.PrivateIP, v.SourceDestCheck = n.ip, n.sdc
	}
	return v, true
}

// Address returns an Elastic IP by allocation ID.
func (s *Sim) Address(allocationID string) (AddressView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.st.addrs[allocationID]
	if a == nil {
		return AddressView{}, false
	}
	v := AddressView{AllocationID: a.alloc, PublicIP: a.public, AssociationID: a.assoc, ENI: a.eni, PrivateIP: a.private, Tags: copyTags(a.tags)}
	if n := s.st.enis[a.eni]; n != nil {
		v.InstanceID = n.instance
	}
	return v, true
}

// Calls returns the log of mutating API calls, oldest first.
func (s *Sim) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	copy(out, s.calls)
	return out
}

// CountCalls returns how many calls of an action succeeded.
func (s *Sim) CountCalls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Action == action && c.Code == "" {
			n++
		}
	}
	return n
}

// RequestCount returns how many requests named an action, mutating or not, faulted or not.
func (s *Sim) RequestCount(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[action]
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// snapshot is a state as it was until a commit replaced it.
type snapshot struct {
	until time.Time
	st    *state
}

// replaceState makes next the current state, keeping the one it replaces for stale reads as
// long as one may still see it. Callers hold s.mu.
func (s *Sim) replaceState(next *state) {
	if s.opts.Staleness > 0 {
		now := s.opts.Now()
		s.past = append(s.past, snapshot{until: now, st: s.st})
		horizon := now.Add(-s.opts.Staleness)
		i := 0
		for i < len(s.past) && !s.past[i].until.After(horizon) {
			i++
		}
		s.past = s.past[i:]
	}
	s.st = next
}

// readState is the state a Describe call sees: with Staleness, the state as it was a random
// age ago. Callers hold s.mu.
func (s *Sim) readState() *state {
	if s.opts.Staleness <= 0 || len(s.past) == 0 {
		return s.st
	}
	at := s.opts.Now().Add(-time.Duration(s.srng.Int64N(int64(s.opts.Staleness) + 1)))
	for _, p := range s.past {
		if p.until.After(at) {
			return p.st
		}
	}
	return s.st
}
