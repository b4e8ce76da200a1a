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
