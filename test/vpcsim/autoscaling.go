package vpcsim

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Lifecycle states of a group member, as AutoScaling names them.
const (
	LifecycleInService          = "InService"
	LifecyclePendingWait        = "Pending:Wait"
	LifecycleTerminatingWait    = "Terminating:Wait"
	LifecycleTerminatingProceed = "Terminating:Proceed"
)

var asgOps = map[string]op{
	"DescribeAutoScalingGroups":      {false, (*Sim).describeAutoScalingGroups},
	"DescribeAutoScalingInstances":   {false, (*Sim).describeAutoScalingInstances},
	"DescribeLifecycleHooks":         {false, (*Sim).describeLifecycleHooks},
	"CompleteLifecycleAction":        {true, (*Sim).completeLifecycleAction},
	"RecordLifecycleActionHeartbeat": {true, (*Sim).recordLifecycleActionHeartbeat},
}

// AddAutoScalingGroup creates a group of existing instances, all InService, and tags them with
// aws:autoscaling:groupName as AutoScaling does.
func (s *Sim) AddAutoScalingGroup(g GroupSpec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.Name == "" {
		panic("vpcsim: AddAutoScalingGroup: empty name")
	}
	if s.st.groups[g.Name] != nil {
		panic(fmt.Sprintf("vpcsim: AddAutoScalingGroup: group %q exists", g.Name))
	}
	gr := &group{name: g.Name, min: g.MinSize, max: g.MaxSize, desired: g.Desired, grace: g.HealthCheckGracePeriodSecs,
		tags: copyTags(g.Tags), created: s.opts.Now().UTC(), seq: s.nextSeq()}
	if gr.desired == 0 {
		gr.desired = int32(len(g.Instances))
	}
	if gr.max < gr.desired {
		gr.max = gr.desired
	}
	for _, id := range g.Instances {
		in := s.st.instances[id]
		if in == nil || in.state == StateTerminated {
			panic(fmt.Sprintf("vpcsim: AddAutoScalingGroup: unknown or terminated instance %q", id))
		}
		if other := s.st.groupOf(id); other != nil {
			panic(fmt.Sprintf("vpcsim: AddAutoScalingGroup: %s is already in group %s", id, other.name))
		}
		gr.members = append(gr.members, member{instance: id, lifecycle: LifecycleInService})
		in.tags["aws:autoscaling:groupName"] = g.Name
	}
	for _, h := range g.Hooks {
		if h.Name == "" {
			panic("vpcsim: AddAutoScalingGroup: hook without a name")
		}
		hk := hook{name: h.Name, transition: h.Transition, defaultResult: h.DefaultResult, timeout: h.HeartbeatTimeout}
		if hk.transition == "" {
			hk.transition = TransitionTerminating
		}
		if hk.transition != TransitionTerminating && hk.transition != TransitionLaunching {
			panic(fmt.Sprintf("vpcsim: AddAutoScalingGroup: hook %s: unknown transition %q", h.Name, h.Transition))
		}
		if hk.defaultResult == "" {
			hk.defaultResult = ResultAbandon
		}
		if hk.timeout == 0 {
			hk.timeout = time.Hour
		}
		gr.hooks = append(gr.hooks, hk)
	}
	s.st.groups[g.Name] = gr
}

func (st *state) groupOf(instanceID string) *group {
	for _, g := range st.groups {
		for _, m := range g.members {
			if m.instance == instanceID {
				return g
			}
		}
	}
	return nil
}

func (g *group) member(instanceID string) *member {
	for i := range g.members {
		if g.members[i].instance == instanceID {
			return &g.members[i]
		}
	}
	return nil
}

func (g *group) hook(name string) *hook {
	for i := range g.hooks {
		if g.hooks[i].name == name {
			return &g.hooks[i]
		}
	}
	return nil
}

// StartLifecycleAction puts a group member into the hook's wait state (Terminating:Wait for a
// termination hook, Pending:Wait for a launch hook), as a scale-in, an instance refresh or a
// launch would, and returns the lifecycle action token. The member waits until
// CompleteLifecycleAction, or ExpireLifecycleActions after the heartbeat timeout.
func (s *Sim) StartLifecycleAction(groupName, instanceID, hookName string) (string, error) {
	var token string
	err := s.event("start lifecycle action", func(st *state) *apiError {
		g := st.groups[groupName]
		if g == nil {
			return errf(400, "ValidationError", "Group %s not found", groupName)
		}
		m := g.member(instanceID)
		if m == nil {
			return errf(400, "ValidationError", "Instance %s is not part of group %s", instanceID, groupName)
		}
		h := g.hook(hookName)
		if h == nil {
			return errf(400, "ValidationError", "No Lifecycle Hook named %s found for group %s", hookName, groupName)
		}
		for _, a := range st.actions {
			if a.instance == instanceID && !a.done {
				return errf(400, "ValidationError", "Instance %s already has a lifecycle action in progress", instanceID)
			}
		}
		if m.lifecycle != LifecycleInService {
			return errf(400, "ValidationError", "Instance %s is %s, not InService", instanceID, m.lifecycle)
		}
		m.lifecycle = LifecycleTerminatingWait
		if h.transition == TransitionLaunching {
			m.lifecycle = LifecyclePendingWait
		}
		token = s.startAction(st, g, h, instanceID)
		return nil
	})
	return token, err
}

// startAction records a new lifecycle action of hook h for a member and returns its token.
// Callers hold s.mu.
func (s *Sim) startAction(st *state, g *group, h *hook, instanceID string) string {
	now := s.opts.Now()
	token := s.uuid()
	st.actions[token] = &lifecycleAction{token: token, group: g.name, hook: h.name, instance: instanceID,
		transition: h.transition, started: now, deadline: now.Add(h.timeout), global: now.Add(globalTimeout(h.timeout))}
	return token
}

// maxGlobalTimeout caps a lifecycle action's global timeout, as AutoScaling does (48 hours).
const maxGlobalTimeout = 48 * time.Hour

// globalTimeout is how long an action may wait in all, heartbeats included: 100 times the
// heartbeat timeout, at most 48 hours.
func globalTimeout(heartbeat time.Duration) time.Duration {
	return min(100*heartbeat, maxGlobalTimeout)
}

// LifecycleAction returns a lifecycle action by token.
func (s *Sim) LifecycleAction(token string) (LifecycleActionView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.st.actions[token]
	if a == nil {
		return LifecycleActionView{}, false
	}
	return LifecycleActionView{Token: a.token, Group: a.group, Hook: a.hook, InstanceID: a.instance,
		Transition: a.transition, Started: a.started, Deadline: a.deadline, GlobalDeadline: a.global, Heartbeats: a.heartbeats,
		Completed: a.done, Result: a.result, TimedOut: a.timedOut}, true
}

// GroupInstanceState returns a member's lifecycle state ("InService", "Terminating:Wait", ...),
// or "" once it has left the group (terminated) or was never in it.
func (s *Sim) GroupInstanceState(groupName, instanceID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.st.groups[groupName]; g != nil {
		if m := g.member(instanceID); m != nil {
			return m.lifecycle
		}
	}
	return ""
}

// ExpireLifecycleActions applies the default result of every pending lifecycle action whose
// heartbeat deadline or global timeout has passed (by Options.Now), as AutoScaling does on its
// own, and returns how many it finished. Call it from a ticker to model the timeouts.
func (s *Sim) ExpireLifecycleActions() (int, error) {
	n := 0
	err := s.event("expire lifecycle actions", func(st *state) *apiError {
		n = 0
		now := s.opts.Now()
		for _, token := range sortedKeys(st.actions) {
			a := st.actions[token]
			if a.done || now.Before(a.deadline) && now.Before(a.global) {
				continue
			}
			g := st.groups[a.group]
			res := ResultAbandon
			if g != nil {
				if h := g.hook(a.hook); h != nil {
					res = h.defaultResult
				}
			}
			if aerr := st.finishAction(a, res, true); aerr != nil {
				return aerr
			}
			n++
		}
		return nil
	})
	return n, err
}

// finishAction completes a lifecycle action. A termination proceeds whatever the result (as in
// AutoScaling: ABANDON only skips remaining hooks); a launch goes InService on CONTINUE and is
// terminated on ABANDON.
func (st *state) finishAction(a *lifecycleAction, result string, timedOut bool) *apiError {
	a.done, a.result, a.timedOut = true, result, timedOut
	g := st.groups[a.group]
	var m *member
	if g != nil {
		m = g.member(a.instance)
	}
	if a.transition == TransitionLaunching && result == ResultContinue {
		if m != nil {
			m.lifecycle = LifecycleInService
		}
		return nil
	}
	if m != nil {
		m.lifecycle = LifecycleTerminatingProceed
	}
	return st.setInstanceState(a.instance, StateTerminated)
}

func validationError(format string, a ...any) *apiError {
	return errf(400, "ValidationError", format, a...)
}

func notNull(f form, params ...string) *apiError {
	for _, p := range params {
		if f.get(p) == "" {
			name := strings.ToLower(p[:1]) + p[1:]
			return validationError("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", name)
		}
	}
	return nil
}

// findAction finds the pending action a CompleteLifecycleAction/RecordLifecycleActionHeartbeat
// names, by token or by instance ID.
func findAction(st *state, f form) (*lifecycleAction, *apiError) {
	if aerr := notNull(f, "AutoScalingGroupName", "LifecycleHookName"); aerr != nil {
		return nil, aerr
	}
	gname, hname := f.get("AutoScalingGroupName"), f.get("LifecycleHookName")
	g := st.groups[gname]
	if g == nil {
		return nil, validationError("AutoScalingGroup name not found - no such group: %s", gname)
	}
	if g.hook(hname) == nil {
		return nil, validationError("No Lifecycle Hook found with name %s for group %s", hname, gname)
	}
	token, inst := f.get("LifecycleActionToken"), f.get("InstanceId")
	switch {
	case token != "":
		a := st.actions[token]
		if a == nil || a.done || a.group != gname || a.hook != hname || (inst != "" && a.instance != inst) {
			return nil, validationError("No active Lifecycle Action found with token %s", token)
		}
		return a, nil
	case inst != "":
		for _, t := range sortedKeys(st.actions) {
			a := st.actions[t]
			if !a.done && a.instance == inst && a.group == gname && a.hook == hname {
				return a, nil
			}
		}
		return nil, validationError("No active Lifecycle Action found with instance ID %s", inst)
	}
	return nil, validationError("Either LifecycleActionToken or InstanceId must be specified")
}

func (s *Sim) completeLifecycleAction(f form) ([]any, *apiError) {
	if aerr := notNull(f, "AutoScalingGroupName", "LifecycleHookName", "LifecycleActionResult"); aerr != nil {
		return nil, aerr
	}
	res := f.get("LifecycleActionResult")
	if res != ResultContinue && res != ResultAbandon {
		return nil, validationError("Invalid LifecycleActionResult %s: must be CONTINUE or ABANDON", res)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return nil, s.commit(func(st *state) *apiError {
		a, aerr := findAction(st, f)
		if aerr != nil {
			return aerr
		}
		return st.finishAction(a, res, false)
	}, false)
}

func (s *Sim) recordLifecycleActionHeartbeat(f form) ([]any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return nil, s.commit(func(st *state) *apiError {
		a, aerr := findAction(st, f)
		if aerr != nil {
			return aerr
		}
		h := st.groups[a.group].hook(a.hook)
		a.heartbeats++
		// A heartbeat extends the wait, but never past the global timeout.
		a.deadline = s.opts.Now().Add(h.timeout)
		if a.deadline.After(a.global) {
			a.deadline = a.global
		}
		return nil
	}, false)
}

// ---- DescribeAutoScalingGroups

type aTag struct {
	Key               string
	Value             string
	ResourceID        string `xml:"ResourceId"`
	ResourceType      string
	PropagateAtLaunch bool
}

type aInstance struct {
	InstanceID           string `xml:"InstanceId"`
	InstanceType         string
	AvailabilityZone     string
	LifecycleState       string
	HealthStatus         string
	ProtectedFromScaleIn bool
}

type aGroup struct {
	AutoScalingGroupName             string
	AutoScalingGroupARN              string
	MinSize                          int32
	MaxSize                          int32
	DesiredCapacity                  int32
	DefaultCooldown                  int32
	AvailabilityZones                []string `xml:"AvailabilityZones>member"`
	HealthCheckType                  string
	HealthCheckGracePeriod           int32
	Instances                        []aInstance `xml:"Instances>member"`
	CreatedTime                      string
	Tags                             []aTag   `xml:"Tags>member"`
	VPCZoneIdentifier                string   `xml:"VPCZoneIdentifier,omitempty"`
	TerminationPolicies              []string `xml:"TerminationPolicies>member"`
	NewInstancesProtectedFromScaleIn bool
	ServiceLinkedRoleARN             string
}

type aGroups struct {
	XMLName xml.Name `xml:"AutoScalingGroups"`
	Items   []aGroup `xml:"member"`
}

func asgFilters(f form) ([]filter, *apiError) {
	var out []filter
	for _, i := range f.indices("Filters.member") {
		p := "Filters.member." + i
		name := f.get(p + ".Name")
		switch {
		case name == "tag-key" || name == "tag-value" || (strings.HasPrefix(name, "tag:") && len(name) > 4):
		default:
			return nil, validationError("Filter type %q is not supported", name)
		}
		out = append(out, filter{name: name, values: f.list(p + ".Values.member")})
	}
	return out, nil
}

var groupFields = fieldSet[*group]{tags: func(g *group) tags { return g.tags }, literal: true}

func (s *Sim) describeAutoScalingGroups(f form) ([]any, *apiError) {
	filters, aerr := asgFilters(f)
	if aerr != nil {
		return nil, aerr
	}
	names := f.list("AutoScalingGroupNames.member")
	p, aerr := s.asgPage(f, "DescribeAutoScalingGroups", 100)
	if aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.readState()
	var groups []*group
	for _, g := range bySeq(st.groups, groupSeq) {
		if (len(names) == 0 || slices.Contains(names, g.name)) && groupFields.match(st, g, filters) {
			groups = append(groups, g)
		}
	}
	groups, next := cut(groups, groupSeq, p, "DescribeAutoScalingGroups")
	out := aGroups{Items: []aGroup{}}
	for _, g := range groups {
		x := aGroup{
			AutoScalingGroupName: g.name,
			AutoScalingGroupARN: fmt.Sprintf("arn:aws:autoscaling:%s:%s:autoScalingGroup:%s:autoScalingGroupName/%s",
				s.opts.Region, s.opts.AccountID, "00000000-0000-4000-8000-000000000000", g.name),
			MinSize: g.min, MaxSize: g.max, DesiredCapacity: g.desired, DefaultCooldown: 300,
			HealthCheckType: "EC2", HealthCheckGracePeriod: g.grace, CreatedTime: xTime(g.created),
			TerminationPolicies: []string{"Default"},
			ServiceLinkedRoleARN: fmt.Sprintf("arn:aws:iam::%s:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
				s.opts.AccountID),
		}
		var azs, subnets []string
		for _, m := range g.members {
			in := st.instances[m.instance]
			if in == nil {
				continue
			}
			x.Instances = append(x.Instances, aInstance{InstanceID: in.id, InstanceType: in.itype, AvailabilityZone: in.az,
				LifecycleState: m.lifecycle, HealthStatus: health(in.state)})
			if !slices.Contains(azs, in.az) {
				azs = append(azs, in.az)
			}
			if !slices.Contains(subnets, in.subnetID) {
				subnets = append(subnets, in.subnetID)
			}
		}
		slices.Sort(azs)
		x.AvailabilityZones, x.VPCZoneIdentifier = azs, strings.Join(subnets, ",")
		for _, k := range sortedKeys(g.tags) {
			x.Tags = append(x.Tags, aTag{Key: k, Value: g.tags[k], ResourceID: g.name,
				ResourceType: "auto-scaling-group", PropagateAtLaunch: true})
		}
		out.Items = append(out.Items, x)
	}
	if next != "" {
		return []any{out, asgNextToken(next)}, nil
	}
	return []any{out}, nil
}

func groupSeq(g *group) int { return g.seq }

// ---- DescribeAutoScalingInstances

type aInstanceDetails struct {
	InstanceID           string `xml:"InstanceId"`
	InstanceType         string
	AutoScalingGroupName string
	AvailabilityZone     string
	LifecycleState       string
	HealthStatus         string
	ProtectedFromScaleIn bool
}

type aInstances struct {
	XMLName xml.Name           `xml:"AutoScalingInstances"`
	Items   []aInstanceDetails `xml:"member"`
}

// describeAutoScalingInstances lists group members in launch order; unknown instance IDs are
// ignored, as AutoScaling does.
func (s *Sim) describeAutoScalingInstances(f form) ([]any, *apiError) {
	ids := f.list("InstanceIds.member")
	if len(ids) > 50 {
		return nil, validationError("1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50")
	}
	p, aerr := s.asgPage(f, "DescribeAutoScalingInstances", 50)
	if aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.readState()
	var members []*instance
	for _, in := range bySeq(st.instances, instanceSeq) {
		if (len(ids) == 0 || slices.Contains(ids, in.id)) && st.groupOf(in.id) != nil {
			members = append(members, in)
		}
	}
	members, next := cut(members, instanceSeq, p, "DescribeAutoScalingInstances")
	out := aInstances{Items: []aInstanceDetails{}}
	for _, in := range members {
		g := st.groupOf(in.id)
		out.Items = append(out.Items, aInstanceDetails{InstanceID: in.id, InstanceType: in.itype,
			AutoScalingGroupName: g.name, AvailabilityZone: in.az, LifecycleState: g.member(in.id).lifecycle,
			HealthStatus: strings.ToUpper(health(in.state))})
	}
	if next != "" {
		return []any{out, asgNextToken(next)}, nil
	}
	return []any{out}, nil
}

func health(state string) string {
	if state == StateRunning || state == StatePending {
		return "Healthy"
	}
	return "Unhealthy"
}

// LaunchIntoGroup launches an instance into a group while the Sim runs, as a scale-out or an
// instance refresh does: the instance (tagged aws:autoscaling:groupName) becomes a member in
// Pending:Wait with a launch lifecycle action started when the group has an
// EC2_INSTANCE_LAUNCHING hook (its token is returned), otherwise InService. The group's
// desired capacity (and max size) grow to fit. The Sink is notified (the new ENI's
// source/dest check is on unless spec says otherwise).
func (s *Sim) LaunchIntoGroup(groupName string, spec InstanceSpec) (instanceID, eniID, token string, err error) {
	err = s.event("launch into "+groupName, func(st *state) *apiError {
		g := st.groups[groupName]
		if g == nil {
			return validationError("Group %s not found", groupName)
		}
		spec.Tags = copyTags(spec.Tags)
		spec.Tags["aws:autoscaling:groupName"] = groupName
		var ierr error
		instanceID, eniID, ierr = s.newInstance(st, spec)
		if ierr != nil {
			return validationError("%v", ierr)
		}
		m := member{instance: instanceID, lifecycle: LifecycleInService}
		h := g.launchHook()
		if h != nil {
			m.lifecycle = LifecyclePendingWait
		}
		g.members = append(g.members, m)
		g.desired = max(g.desired, int32(len(g.members)))
		g.max = max(g.max, g.desired)
		if h != nil {
			token = s.startAction(st, g, h, instanceID)
		}
		return nil
	})
	return instanceID, eniID, token, err
}

// launchHook returns the group's first EC2_INSTANCE_LAUNCHING hook, nil if it has none.
func (g *group) launchHook() *hook {
	for i := range g.hooks {
		if g.hooks[i].transition == TransitionLaunching {
			return &g.hooks[i]
		}
	}
	return nil
}

// ---- DescribeLifecycleHooks

type aHook struct {
	LifecycleHookName    string
	AutoScalingGroupName string
	LifecycleTransition  string
	HeartbeatTimeout     int32
	GlobalTimeout        int32
	DefaultResult        string
}

type aHooks struct {
	XMLName xml.Name `xml:"LifecycleHooks"`
	Items   []aHook  `xml:"member"`
}

// describeLifecycleHooks lists a group's hooks in creation order, or those named; unknown
// names are ignored, as AutoScaling does.
func (s *Sim) describeLifecycleHooks(f form) ([]any, *apiError) {
	if aerr := notNull(f, "AutoScalingGroupName"); aerr != nil {
		return nil, aerr
	}
	names := f.list("LifecycleHookNames.member")
	if len(names) > 50 {
		return nil, validationError("1 validation error detected: Value at 'lifecycleHookNames' failed to satisfy constraint: Member must have length less than or equal to 50")
	}
	gname := f.get("AutoScalingGroupName")
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.readState().groups[gname]
	if g == nil {
		return nil, validationError("Group %s not found", gname)
	}
	out := aHooks{Items: []aHook{}}
	for _, h := range g.hooks {
		if len(names) > 0 && !slices.Contains(names, h.name) {
			continue
		}
		out.Items = append(out.Items, aHook{LifecycleHookName: h.name, AutoScalingGroupName: g.name,
			LifecycleTransition: h.transition, HeartbeatTimeout: int32(h.timeout / time.Second),
			GlobalTimeout: int32(globalTimeout(h.timeout) / time.Second), DefaultResult: h.defaultResult})
	}
	return []any{out}, nil
}
