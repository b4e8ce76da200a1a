package vpcsim

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func wantEvents(t *testing.T, sink *recSink, want ...string) {
	t.Helper()
	if got := sink.take(); !equal(got, want) {
		t.Fatalf("sink events:\n got  %q\n want %q", got, want)
	}
}

func TestSinkSeesEachChange(t *testing.T) {
	sink := &recSink{}
	f := newFixture(t, Options{Sink: sink})
	c := ctx(t)
	dflt := aws.String("0.0.0.0/0")

	mustOK(t, f.sim.Sync())
	tables := []string{f.sim.MainRouteTable(f.vpc), f.rtbA, f.rtbB}
	slices.Sort(tables)
	enis := []string{f.eniA, f.eniB}
	slices.Sort(enis)
	ip := map[string]string{f.eniA: "198.18.0.10", f.eniB: "198.18.1.10"}
	var want []string
	for _, id := range tables {
		want = append(want, "route "+id+" absent")
	}
	for _, id := range enis {
		want = append(want, "sdc "+id+" "+ip[id]+" true")
	}
	wantEvents(t, sink, want...)

	_, err := f.ec2.CreateRoute(c, &ec2.CreateRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: dflt, NetworkInterfaceId: &f.eniA})
	mustOK(t, err)
	wantEvents(t, sink, "route "+f.rtbA+" via 198.18.0.10")

	_, err = f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: dflt, InstanceId: &f.natB})
	mustOK(t, err)
	wantEvents(t, sink, "route "+f.rtbA+" via 198.18.1.10")

	// A route that is not the default route is not the kernel's business.
	_, err = f.ec2.CreateRoute(c, &ec2.CreateRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("10.0.0.0/8"), NetworkInterfaceId: &f.eniA})
	mustOK(t, err)
	wantEvents(t, sink)

	_, err = f.ec2.ModifyNetworkInterfaceAttribute(c, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &f.eniB,
		SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)}})
	mustOK(t, err)
	wantEvents(t, sink, "sdc "+f.eniB+" 198.18.1.10 false")
	// Setting what is already set changes nothing.
	_, err = f.ec2.ModifyNetworkInterfaceAttribute(c, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &f.eniB,
		SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)}})
	mustOK(t, err)
	wantEvents(t, sink)

	_, err = f.ec2.AssociateAddress(c, &ec2.AssociateAddressInput{AllocationId: &f.eipB, InstanceId: &f.natB})
	mustOK(t, err)
	wantEvents(t, sink, "eip 198.18.1.10 203.0.113.11 true")

	_, err = f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{})
	mustOK(t, err)
	wantEvents(t, sink)

	// Termination: EIP released, route blackholed (nat-b's check is off: no rule to drop).
	mustOK(t, f.sim.SetInstanceState(f.natB, StateTerminated))
	wantEvents(t, sink, "eip 198.18.1.10 203.0.113.11 false", "route "+f.rtbA+" blackhole (198.18.1.10)")

	_, err = f.ec2.DeleteRoute(c, &ec2.DeleteRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: dflt})
	mustOK(t, err)
	wantEvents(t, sink, "route "+f.rtbA+" absent")
}

func TestSinkErrorRollsBack(t *testing.T) {
	sink := &recSink{}
	f := newFixture(t, Options{Sink: sink})
	c := ctx(t)
	dflt := aws.String("0.0.0.0/0")
	mustOK(t, f.sim.SetRoute(f.rtbA, "0.0.0.0/0", f.natA))
	sink.take()
	// One attempt: the SDK rightly retries an InternalError, which would repeat the events.
	f.ec2, f.asg = clients(f.url, oneAttempt)

	boom := errors.New("boom")
	failOn := func(event string) {
		sink.mu.Lock()
		sink.fail = func(e string) error {
			if e == event {
				return boom
			}
			return nil
		}
		sink.mu.Unlock()
	}

	failOn("route " + f.rtbA + " via 198.18.1.10")
	_, err := f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: dflt, NetworkInterfaceId: &f.eniB})
	wantCode(t, err, "InternalError")
	wantEvents(t, sink, "FAILED route "+f.rtbA+" via 198.18.1.10")
	if r := defaultRoute(describeTable(t, f, f.rtbA)); aws.ToString(r.NetworkInterfaceId) != f.eniA {
		t.Fatalf("refused ReplaceRoute moved the route: %+v", r)
	}
	if c := f.sim.Calls(); c[len(c)-1].Code != "InternalError" || c[len(c)-1].Faulted {
		t.Fatalf("call log: %+v", c[len(c)-1])
	}

	// Two effects, the second refused: the first is undone.
	_, err = f.ec2.AssociateAddress(c, &ec2.AssociateAddressInput{AllocationId: &f.eipA, InstanceId: &f.natA})
	mustOK(t, err)
	sink.take()
	failOn("route " + f.rtbA + " blackhole (198.18.0.10)")
	if err := f.sim.SetInstanceState(f.natA, StateTerminated); err == nil {
		t.Fatal("SetInstanceState succeeded though the sink refused")
	}
	wantEvents(t, sink,
		"eip 198.18.0.10 203.0.113.10 false",
		"FAILED route "+f.rtbA+" blackhole (198.18.0.10)",
		"eip 198.18.0.10 203.0.113.10 true")
	if v, _ := f.sim.Instance(f.natA); v.State != StateRunning {
		t.Fatalf("instance state changed: %s", v.State)
	}
	if v, _ := f.sim.Address(f.eipA); v.InstanceID != f.natA {
		t.Fatalf("EIP association lost: %+v", v)
	}

	// The same through AutoScaling: completing the hook would terminate nat-a.
	token, err := f.sim.StartLifecycleAction("nat", f.natA, "drain")
	mustOK(t, err)
	_, err = f.asg.CompleteLifecycleAction(c, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("nat"),
		LifecycleHookName: aws.String("drain"), LifecycleActionResult: aws.String("CONTINUE"), LifecycleActionToken: &token})
	wantCode(t, err, "InternalFailure")
	if v, _ := f.sim.LifecycleAction(token); v.Completed {
		t.Fatal("refused CompleteLifecycleAction completed the action")
	}
	if st := f.sim.GroupInstanceState("nat", f.natA); st != LifecycleTerminatingWait {
		t.Fatalf("member state %q", st)
	}
}

// Concurrent SDK callers, for the race detector and for a consistent final state.
func TestConcurrentCallers(t *testing.T) {
	f := newFixture(t, Options{Sink: &recSink{}})
	c := ctx(t)
	mustOK(t, f.sim.SetRoute(f.rtbA, "0.0.0.0/0", f.eniA))
	mustOK(t, f.sim.SetRoute(f.rtbB, "0.0.0.0/0", f.eniB))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			table := []string{f.rtbA, f.rtbB}[w%2]
			for i := range 10 {
				target := []string{f.eniA, f.eniB}[(w+i)%2]
				if _, err := f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &table,
					DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &target}); err != nil {
					errs <- err
					return
				}
				if _, err := f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{Filters: []types.Filter{
					filt("tag:headnat:cluster", cluster)}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := f.sim.CountCalls("ReplaceRoute"); got != 80 {
		t.Fatalf("ReplaceRoute calls: %d", got)
	}
	for _, id := range []string{f.rtbA, f.rtbB} {
		if v, ok := f.sim.Route(id); !ok || v.State != RouteActive {
			t.Fatalf("%s: %+v", id, v)
		}
	}
}

func TestSetSink(t *testing.T) {
	f := newFixture(t, Options{})
	mustOK(t, f.sim.SetRoute(f.rtbA, "0.0.0.0/0", f.eniA))
	bad := &recSink{fail: func(string) error { return errors.New("down") }}
	if err := f.sim.SetSink(bad); err == nil {
		t.Fatal("SetSink accepted a sink that refused the sync")
	}
	good := &recSink{}
	mustOK(t, f.sim.SetSink(good))
	if got := good.take(); !slices.Contains(got, "route "+f.rtbA+" via 198.18.0.10") {
		t.Fatalf("SetSink did not push the state: %q", got)
	}
	mustOK(t, f.sim.SetRoute(f.rtbA, "0.0.0.0/0", f.eniB))
	wantEvents(t, good, "route "+f.rtbA+" via 198.18.1.10")
	if got := bad.take(); len(got) != 1 {
		t.Fatalf("the refused sink was used after SetSink failed: %q", got)
	}
}
