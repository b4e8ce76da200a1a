package vpcsim

import (
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func describeGroup(t *testing.T, f *fixture) astypes.AutoScalingGroup {
	t.Helper()
	out, err := f.asg.DescribeAutoScalingGroups(ctx(t), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"nat"}})
	mustOK(t, err)
	if len(out.AutoScalingGroups) != 1 {
		t.Fatalf("want group nat, got %+v", out.AutoScalingGroups)
	}
	return out.AutoScalingGroups[0]
}

func lifecycleOf(g astypes.AutoScalingGroup) map[string]astypes.LifecycleState {
	m := map[string]astypes.LifecycleState{}
	for _, in := range g.Instances {
		m[aws.ToString(in.InstanceId)] = in.LifecycleState
	}
	return m
}

func TestDescribeAutoScalingGroups(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	g := describeGroup(t, f)
	if aws.ToString(g.AutoScalingGroupName) != "nat" || aws.ToInt32(g.MinSize) != 2 || aws.ToInt32(g.MaxSize) != 4 ||
		aws.ToInt32(g.DesiredCapacity) != 2 || len(g.AvailabilityZones) != 2 || g.CreatedTime == nil {
		t.Fatalf("group fields: %+v", g)
	}
	lc := lifecycleOf(g)
	if lc[f.natA] != astypes.LifecycleStateInService || lc[f.natB] != astypes.LifecycleStateInService {
		t.Fatalf("members: %v", lc)
	}
	if len(g.Tags) != 1 || aws.ToString(g.Tags[0].Key) != "headnat:cluster" || aws.ToString(g.Tags[0].Value) != cluster {
		t.Fatalf("tags: %+v", g.Tags)
	}
	for _, in := range g.Instances {
		if aws.ToString(in.HealthStatus) != "Healthy" || in.AvailabilityZone == nil {
			t.Fatalf("instance fields: %+v", in)
		}
	}

	out, err := f.asg.DescribeAutoScalingGroups(c, &autoscaling.DescribeAutoScalingGroupsInput{
		Filters: []astypes.Filter{{Name: aws.String("tag:headnat:cluster"), Values: []string{cluster}}},
	})
	mustOK(t, err)
	if len(out.AutoScalingGroups) != 1 {
		t.Fatalf("tag filter: %+v", out.AutoScalingGroups)
	}
	// AutoScaling filter values are literal: no wildcards, unlike EC2's.
	for _, v := range []string{"la*", "l?b", "*"} {
		out, err = f.asg.DescribeAutoScalingGroups(c, &autoscaling.DescribeAutoScalingGroupsInput{
			Filters: []astypes.Filter{{Name: aws.String("tag:headnat:cluster"), Values: []string{v}}},
		})
		mustOK(t, err)
		if len(out.AutoScalingGroups) != 0 {
			t.Fatalf("tag filter %q matched as a wildcard: %+v", v, out.AutoScalingGroups)
		}
	}
	out, err = f.asg.DescribeAutoScalingGroups(c, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"other"}})
	mustOK(t, err)
	if len(out.AutoScalingGroups) != 0 {
		t.Fatalf("unknown name matched: %+v", out.AutoScalingGroups)
	}
	_, err = f.asg.DescribeAutoScalingGroups(c, &autoscaling.DescribeAutoScalingGroupsInput{
		Filters: []astypes.Filter{{Name: aws.String("color"), Values: []string{"blue"}}},
	})
	wantCode(t, err, "ValidationError")
}

func TestLifecycleDrain(t *testing.T) {
	sink := &recSink{}
	f := newFixture(t, Options{Sink: sink})
	c := ctx(t)
	var seen []Call
	var mu sync.Mutex
	f.sim.opts.OnCall = func(call Call) { mu.Lock(); seen = append(seen, call); mu.Unlock() }

	mustOK(t, f.sim.SetRoute(f.rtbA, "0.0.0.0/0", f.eniA))
	mustOK(t, f.sim.SetRoute(f.rtbB, "0.0.0.0/0", f.eniB))
	token, err := f.sim.StartLifecycleAction("nat", f.natA, "drain")
	mustOK(t, err)
	if lc := lifecycleOf(describeGroup(t, f)); lc[f.natA] != astypes.LifecycleStateTerminatingWait {
		t.Fatalf("want Terminating:Wait over the API, got %v", lc)
	}
	if _, err := f.sim.StartLifecycleAction("nat", f.natA, "drain"); err == nil {
		t.Fatal("second lifecycle action for the same instance accepted")
	}

	_, err = f.asg.RecordLifecycleActionHeartbeat(c, &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String("nat"), LifecycleHookName: aws.String("drain"), LifecycleActionToken: &token,
	})
	mustOK(t, err)
	if v, _ := f.sim.LifecycleAction(token); v.Heartbeats != 1 || v.Completed {
		t.Fatalf("after heartbeat: %+v", v)
	}

	// Wrong token, hook, group: ValidationError, nothing completes.
	for _, in := range []*autoscaling.CompleteLifecycleActionInput{
		{AutoScalingGroupName: aws.String("nat"), LifecycleHookName: aws.String("drain"), LifecycleActionResult: aws.String("CONTINUE"),
			LifecycleActionToken: aws.String("00000000-0000-4000-8000-000000000000")},
		{AutoScalingGroupName: aws.String("nat"), LifecycleHookName: aws.String("launch"), LifecycleActionResult: aws.String("CONTINUE"), InstanceId: &f.natA},
		{AutoScalingGroupName: aws.String("nope"), LifecycleHookName: aws.String("drain"), LifecycleActionResult: aws.String("CONTINUE"), InstanceId: &f.natA},
		{AutoScalingGroupName: aws.String("nat"), LifecycleHookName: aws.String("drain"), LifecycleActionResult: aws.String("CONTINUE"), InstanceId: &f.natB},
		{AutoScalingGroupName: aws.String("nat"), LifecycleHookName: aws.String("drain"), LifecycleActionResult: aws.String("MAYBE"), InstanceId: &f.natA},
	} {
		_, err := f.asg.CompleteLifecycleAction(c, in)
		wantCode(t, err, "ValidationError")
	}
	if v, _ := f.sim.LifecycleAction(token); v.Completed {
		t.Fatal("a refused CompleteLifecycleAction completed the action")
	}

	// The drained instance hands over, then completes by instance ID (no token, as from IMDS).
	_, err = f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniB})
	mustOK(t, err)
	sink.take()
	_, err = f.asg.CompleteLifecycleAction(c, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String("nat"), LifecycleHookName: aws.String("drain"),
		LifecycleActionResult: aws.String("CONTINUE"), InstanceId: &f.natA,
	})
	mustOK(t, err)
	v, _ := f.sim.LifecycleAction(token)
	if !v.Completed || v.Result != ResultContinue || v.TimedOut {
		t.Fatalf("after complete: %+v", v)
	}
	if iv, _ := f.sim.Instance(f.natA); iv.State != StateTerminated {
		t.Fatalf("completed termination hook must terminate the instance, state %s", iv.State)
	}
	if lc := lifecycleOf(describeGroup(t, f)); len(lc) != 1 || lc[f.natB] != astypes.LifecycleStateInService {
		t.Fatalf("group after termination: %v", lc)
	}
	// nat-a's ENI is gone; its SDC rule is dropped. No route pointed at it any more.
	if got, want := sink.take(), []string{"sdc " + f.eniA + " 198.18.0.10 false"}; !equal(got, want) {
		t.Fatalf("sink: got %q, want %q", got, want)
	}
	out, err := f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{filt("attachment.instance-id", f.natA)}})
	mustOK(t, err)
	if len(out.NetworkInterfaces) != 0 {
		t.Fatalf("terminated instance still has ENIs: %+v", out.NetworkInterfaces)
	}

	_, err = f.asg.CompleteLifecycleAction(c, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String("nat"), LifecycleHookName: aws.String("drain"),
		LifecycleActionResult: aws.String("CONTINUE"), LifecycleActionToken: &token,
	})
	wantCode(t, err, "ValidationError")

	mu.Lock()
	defer mu.Unlock()
	var completes int
	for _, call := range seen {
		if call.Action == "CompleteLifecycleAction" && call.Code == "" && call.Params["InstanceId"] == f.natA {
			completes++
		}
	}
	if completes != 1 {
		t.Fatalf("OnCall saw %d successful CompleteLifecycleAction for nat-a: %+v", completes, seen)
	}
}

func TestLifecycleTimeout(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	f := newFixture(t, Options{Now: clock})
	c := ctx(t)

	token, err := f.sim.StartLifecycleAction("nat", f.natB, "drain")
	mustOK(t, err)
	advance(4 * time.Minute)
	if n, err := f.sim.ExpireLifecycleActions(); err != nil || n != 0 {
		t.Fatalf("expired early: %d %v", n, err)
	}
	// A heartbeat pushes the deadline another 5 minutes.
	_, err = f.asg.RecordLifecycleActionHeartbeat(c, &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String("nat"), LifecycleHookName: aws.String("drain"), InstanceId: &f.natB,
	})
	mustOK(t, err)
	advance(4 * time.Minute)
	if n, _ := f.sim.ExpireLifecycleActions(); n != 0 {
		t.Fatal("heartbeat did not extend the deadline")
	}
	advance(2 * time.Minute)
	if n, err := f.sim.ExpireLifecycleActions(); err != nil || n != 1 {
		t.Fatalf("want 1 expired, got %d %v", n, err)
	}
	v, _ := f.sim.LifecycleAction(token)
	if !v.Completed || !v.TimedOut || v.Result != ResultAbandon {
		t.Fatalf("after timeout: %+v", v)
	}
	if iv, _ := f.sim.Instance(f.natB); iv.State != StateTerminated {
		t.Fatalf("timed out termination must proceed, state %s", iv.State)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDescribeLifecycleHooks(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	f.sim.AddAutoScalingGroup(GroupSpec{Name: "web", Hooks: []HookSpec{
		{Name: "boot", Transition: TransitionLaunching, HeartbeatTimeout: 10 * time.Minute, DefaultResult: ResultContinue},
		{Name: "bye", HeartbeatTimeout: 1000 * time.Hour},
	}})

	out, err := f.asg.DescribeLifecycleHooks(c, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String("web")})
	mustOK(t, err)
	if len(out.LifecycleHooks) != 2 {
		t.Fatalf("want 2 hooks, got %+v", out.LifecycleHooks)
	}
	boot, bye := out.LifecycleHooks[0], out.LifecycleHooks[1]
	if aws.ToString(boot.LifecycleHookName) != "boot" || aws.ToString(boot.AutoScalingGroupName) != "web" ||
		aws.ToString(boot.LifecycleTransition) != TransitionLaunching || aws.ToInt32(boot.HeartbeatTimeout) != 600 ||
		aws.ToInt32(boot.GlobalTimeout) != 60000 || aws.ToString(boot.DefaultResult) != ResultContinue {
		t.Fatalf("launch hook: %+v", boot)
	}
	// The global timeout is 100 heartbeat timeouts, at most 48 hours.
	if aws.ToString(bye.LifecycleTransition) != TransitionTerminating || aws.ToInt32(bye.HeartbeatTimeout) != 3600000 ||
		aws.ToInt32(bye.GlobalTimeout) != 172800 || aws.ToString(bye.DefaultResult) != ResultAbandon {
		t.Fatalf("terminate hook: %+v", bye)
	}

	out, err = f.asg.DescribeLifecycleHooks(c, &autoscaling.DescribeLifecycleHooksInput{
		AutoScalingGroupName: aws.String("web"), LifecycleHookNames: []string{"bye", "nope"}})
	mustOK(t, err)
	if len(out.LifecycleHooks) != 1 || aws.ToString(out.LifecycleHooks[0].LifecycleHookName) != "bye" {
		t.Fatalf("by name: %+v", out.LifecycleHooks)
	}
	_, err = f.asg.DescribeLifecycleHooks(c, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String("nope")})
	wantCode(t, err, "ValidationError")
}

func launchFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := newFixture(t, opts)
	f.sim.AddAutoScalingGroup(GroupSpec{Name: "web", MaxSize: 1, Hooks: []HookSpec{
		{Name: "boot", Transition: TransitionLaunching, HeartbeatTimeout: time.Minute},
		{Name: "bye", HeartbeatTimeout: time.Minute},
	}})
	return f
}

func TestLaunchIntoGroup(t *testing.T) {
	sink := &recSink{}
	f := launchFixture(t, Options{Sink: sink})
	c := ctx(t)

	id, eni, token, err := f.sim.LaunchIntoGroup("web", InstanceSpec{SubnetID: f.pubA, PrivateIP: "198.18.0.20",
		Tags: map[string]string{"Name": "web-1"}})
	mustOK(t, err)
	if token == "" || f.sim.GroupInstanceState("web", id) != LifecyclePendingWait {
		t.Fatalf("want Pending:Wait with a token, got %q %q", f.sim.GroupInstanceState("web", id), token)
	}
	iv, _ := f.sim.Instance(id)
	if iv.ENI != eni || iv.State != StateRunning || iv.Tags["aws:autoscaling:groupName"] != "web" || iv.Tags["Name"] != "web-1" {
		t.Fatalf("instance: %+v", iv)
	}
	if got, want := sink.take(), []string{"sdc " + eni + " 198.18.0.20 true"}; !equal(got, want) {
		t.Fatalf("sink: got %q, want %q", got, want)
	}
	gs, err := f.asg.DescribeAutoScalingGroups(c, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"web"}})
	mustOK(t, err)
	g := gs.AutoScalingGroups[0]
	if lc := lifecycleOf(g); lc[id] != astypes.LifecycleStatePendingWait || aws.ToInt32(g.DesiredCapacity) != 1 {
		t.Fatalf("group: %v desired %d", lc, aws.ToInt32(g.DesiredCapacity))
	}
	// A terminate action cannot start while the launch waits.
	if _, err := f.sim.StartLifecycleAction("web", id, "bye"); err == nil {
		t.Fatal("terminate action started during the launch action")
	}
	_, err = f.asg.CompleteLifecycleAction(c, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("boot"), LifecycleActionResult: aws.String("CONTINUE"), InstanceId: &id})
	mustOK(t, err)
	if st := f.sim.GroupInstanceState("web", id); st != LifecycleInService {
		t.Fatalf("after CONTINUE: %q", st)
	}

	// A second launch outgrows MaxSize 1; ABANDON terminates it.
	id2, _, token2, err := f.sim.LaunchIntoGroup("web", InstanceSpec{SubnetID: f.pubB})
	mustOK(t, err)
	_, err = f.asg.CompleteLifecycleAction(c, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("boot"), LifecycleActionResult: aws.String("ABANDON"), LifecycleActionToken: &token2})
	mustOK(t, err)
	if iv, _ := f.sim.Instance(id2); iv.State != StateTerminated || f.sim.GroupInstanceState("web", id2) != "" {
		t.Fatalf("after ABANDON: %s, member %q", iv.State, f.sim.GroupInstanceState("web", id2))
	}
	gs, err = f.asg.DescribeAutoScalingGroups(c, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"web"}})
	mustOK(t, err)
	if g := gs.AutoScalingGroups[0]; aws.ToInt32(g.MaxSize) != 2 || aws.ToInt32(g.DesiredCapacity) != 2 {
		t.Fatalf("max %d desired %d, want 2 and 2", aws.ToInt32(g.MaxSize), aws.ToInt32(g.DesiredCapacity))
	}

	// Without a launch hook the instance is InService at once.
	id3, _, token3, err := f.sim.LaunchIntoGroup("nat", InstanceSpec{SubnetID: f.pubA})
	mustOK(t, err)
	if token3 != "" || f.sim.GroupInstanceState("nat", id3) != LifecycleInService {
		t.Fatalf("no hook: %q %q", token3, f.sim.GroupInstanceState("nat", id3))
	}
	if _, _, _, err := f.sim.LaunchIntoGroup("nope", InstanceSpec{SubnetID: f.pubA}); err == nil {
		t.Fatal("launch into an unknown group accepted")
	}
	if _, _, _, err := f.sim.LaunchIntoGroup("web", InstanceSpec{SubnetID: f.pubA, PrivateIP: "198.18.0.20"}); err == nil {
		t.Fatal("launch with a used private IP accepted")
	}
}

func TestLaunchTimeout(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	f := launchFixture(t, Options{Now: clock})

	id, _, token, err := f.sim.LaunchIntoGroup("web", InstanceSpec{SubnetID: f.pubA})
	mustOK(t, err)
	advance(time.Minute)
	if n, err := f.sim.ExpireLifecycleActions(); err != nil || n != 1 {
		t.Fatalf("want the launch action expired, got %d %v", n, err)
	}
	v, _ := f.sim.LifecycleAction(token)
	if !v.TimedOut || v.Result != ResultAbandon {
		t.Fatalf("launch action: %+v", v)
	}
	if iv, _ := f.sim.Instance(id); iv.State != StateTerminated {
		t.Fatalf("abandoned launch: state %s", iv.State)
	}
}

// Heartbeats extend an action's deadline, but not past its global timeout: 100 heartbeat
// timeouts.
func TestLifecycleGlobalTimeout(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	f := launchFixture(t, Options{Now: clock})
	c := ctx(t)
	id, _, _, err := f.sim.LaunchIntoGroup("web", InstanceSpec{SubnetID: f.pubA})
	mustOK(t, err)
	_, err = f.asg.CompleteLifecycleAction(c, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web"),
		LifecycleHookName: aws.String("boot"), LifecycleActionResult: aws.String("CONTINUE"), InstanceId: &id})
	mustOK(t, err)
	token, err := f.sim.StartLifecycleAction("web", id, "bye")
	mustOK(t, err)
	start := now
	heartbeat := func() error {
		_, err := f.asg.RecordLifecycleActionHeartbeat(c, &autoscaling.RecordLifecycleActionHeartbeatInput{
			AutoScalingGroupName: aws.String("web"), LifecycleHookName: aws.String("bye"), InstanceId: &id})
		return err
	}
	// 119 heartbeats 50s apart: the last one at 99m10s would extend the wait to 100m10s.
	for i := range 119 {
		advance(50 * time.Second)
		mustOK(t, heartbeat())
		if n, _ := f.sim.ExpireLifecycleActions(); n != 0 {
			t.Fatalf("expired after heartbeat %d", i+1)
		}
	}
	v, _ := f.sim.LifecycleAction(token)
	if want := start.Add(100 * time.Minute); !v.GlobalDeadline.Equal(want) || !v.Deadline.Equal(want) {
		t.Fatalf("deadline %s, global %s, want both %s", v.Deadline, v.GlobalDeadline, want)
	}
	advance(start.Add(100 * time.Minute).Sub(now))
	if n, err := f.sim.ExpireLifecycleActions(); err != nil || n != 1 {
		t.Fatalf("want expired at the global timeout, got %d %v", n, err)
	}
	if v, _ := f.sim.LifecycleAction(token); !v.TimedOut || v.Result != ResultAbandon {
		t.Fatalf("after global timeout: %+v", v)
	}
}
