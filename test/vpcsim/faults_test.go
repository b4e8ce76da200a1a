package vpcsim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func oneAttempt() aws.Retryer { return retry.AddWithMaxAttempts(retry.NewStandard(), 1) }

func TestThrottledCallChangesNothing(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	mustOK(t, f.sim.SetRoute(f.rtbA, "0.0.0.0/0", f.eniA))
	e, a := clients(f.url, oneAttempt)
	f.sim.SetFaults(Faults{ThrottleRate: 1, Seed: 1})

	_, err := e.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniB})
	wantCode(t, err, "RequestLimitExceeded")
	_, err = e.ModifyNetworkInterfaceAttribute(c, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &f.eniA,
		SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)}})
	wantCode(t, err, "RequestLimitExceeded")
	if !f.sim.SourceDestCheck(f.eniA) {
		t.Fatal("throttled ModifyNetworkInterfaceAttribute changed the check")
	}
	token, err := f.sim.StartLifecycleAction("nat", f.natA, "drain")
	mustOK(t, err)
	_, err = a.CompleteLifecycleAction(c, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("nat"),
		LifecycleHookName: aws.String("drain"), LifecycleActionResult: aws.String("CONTINUE"), LifecycleActionToken: &token})
	wantCode(t, err, "Throttling")

	if v, _ := f.sim.Route(f.rtbA); v.NetworkInterfaceID != f.eniA {
		t.Fatalf("throttled ReplaceRoute moved the route: %+v", v)
	}
	if v, _ := f.sim.LifecycleAction(token); v.Completed {
		t.Fatal("throttled CompleteLifecycleAction completed the action")
	}
	calls := f.sim.Calls()
	if len(calls) != 3 || !calls[0].Faulted || calls[0].Code != "RequestLimitExceeded" || calls[2].Code != "Throttling" {
		t.Fatalf("call log: %+v", calls)
	}
	if f.sim.CountCalls("ReplaceRoute") != 0 {
		t.Fatal("a faulted call counted as successful")
	}

	// Server errors: 500/503 with the services' codes, nothing changed either.
	f.sim.SetFaults(Faults{ServerErrorRate: 1, Seed: 7})
	codes := map[string]bool{}
	for range 12 {
		_, err := e.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniB})
		var re *smithyhttp.ResponseError
		if !errors.As(err, &re) {
			t.Fatalf("want an HTTP response error, got %v", err)
		}
		codes[code(err)] = true
		if s := re.HTTPStatusCode(); s != 500 && s != 503 {
			t.Fatalf("status %d", s)
		}
	}
	if !codes["InternalError"] || !codes["Unavailable"] || len(codes) != 2 {
		t.Fatalf("server error codes: %v", codes)
	}
	if v, _ := f.sim.Route(f.rtbA); v.NetworkInterfaceID != f.eniA {
		t.Fatalf("failed ReplaceRoute moved the route: %+v", v)
	}

	// Faults limited to some actions leave the others alone.
	f.sim.SetFaults(Faults{ThrottleRate: 1, Actions: []string{"ReplaceRoute"}})
	_, err = e.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{})
	mustOK(t, err)
	_, err = e.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniB})
	wantCode(t, err, "RequestLimitExceeded")

	f.sim.SetFaults(Faults{})
	_, err = e.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniB})
	mustOK(t, err)
}

func code(err error) string {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// With 30% of requests failing, the SDK's standard retryer (its own classification of
// throttling and 5xx; more attempts and a short backoff so the test is quick) gets every
// call through, and the state ends where the successful calls put it.
func TestRetriesGetThrough(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	mustOK(t, f.sim.SetRoute(f.rtbA, "0.0.0.0/0", f.eniA))
	e, a := clients(f.url, func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 12
			o.RateLimiter = ratelimit.None
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		})
	})
	f.sim.SetFaults(Faults{ThrottleRate: 0.15, ServerErrorRate: 0.15, Seed: 2026})

	const n = 40
	enis := []string{f.eniA, f.eniB}
	for i := range n {
		target := enis[(i+1)%2]
		_, err := e.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &target})
		mustOK(t, err)
		_, err = e.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{RouteTableIds: []string{f.rtbA}})
		mustOK(t, err)
	}
	_, err := a.DescribeAutoScalingGroups(c, &autoscaling.DescribeAutoScalingGroupsInput{})
	mustOK(t, err)

	if got := f.sim.CountCalls("ReplaceRoute"); got != n {
		t.Fatalf("successful ReplaceRoute: %d, want %d", got, n)
	}
	faulted := 0
	for _, call := range f.sim.Calls() {
		if call.Faulted {
			faulted++
		}
	}
	if faulted == 0 || f.sim.RequestCount("ReplaceRoute") != n+faulted {
		t.Fatalf("want retried faults: %d faulted, %d requests", faulted, f.sim.RequestCount("ReplaceRoute"))
	}
	if v, _ := f.sim.Route(f.rtbA); v.NetworkInterfaceID != enis[n%2] {
		t.Fatalf("final route %+v, want %s", v, enis[n%2])
	}
}

func TestLatencyHonoursDeadline(t *testing.T) {
	f := newFixture(t, Options{})
	f.sim.SetFaults(Faults{Latency: 2 * time.Second, Actions: []string{"DescribeVpcs"}})
	e, _ := clients(f.url, oneAttempt)
	c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := e.DescribeVpcs(c, &ec2.DescribeVpcsInput{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the caller's deadline to expire during injected latency, got %v", err)
	}
	_, err = e.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{})
	mustOK(t, err)
}
