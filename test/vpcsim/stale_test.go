package vpcsim

import (
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// targets reads rtb-a's default route n times and counts the answers by target ENI ("" for no
// default route).
func targets(t *testing.T, f *fixture, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		r := defaultRoute(describeTable(t, f, f.rtbA))
		if r == nil {
			seen[""]++
		} else {
			seen[aws.ToString(r.NetworkInterfaceId)]++
		}
	}
	return seen
}

func TestStaleReads(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f := newFixture(t, Options{Now: clk.now, Staleness: time.Second})
	c := ctx(t)

	// No change yet: every read is current.
	if got := targets(t, f, 20); got[""] != 20 {
		t.Fatalf("reads before any change: %v", got)
	}
	mustOK(t, f.sim.SetRoute(f.rtbA, "0.0.0.0/0", f.eniA))
	clk.add(10 * time.Second)
	_, err := f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniB})
	mustOK(t, err)
	if v, _ := f.sim.Route(f.rtbA); v.NetworkInterfaceID != f.eniB {
		t.Fatalf("the Sim's own view lags: %+v", v)
	}

	// Within the window a read may see either side of the write, never older.
	clk.add(500 * time.Millisecond)
	got := targets(t, f, 60)
	if got[f.eniA] == 0 || got[f.eniB] == 0 || got[""] != 0 || got[f.eniA]+got[f.eniB] != 60 {
		t.Fatalf("reads half a window after the write: %v, want both nat-a and nat-b, nothing older", got)
	}

	// Writes see the current state whatever reads show: the route exists, so CreateRoute fails
	// and DeleteRoute works, twice in a row only the first time.
	_, err = f.ec2.CreateRoute(c, &ec2.CreateRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniA})
	wantCode(t, err, "RouteAlreadyExists")
	_, err = f.ec2.DeleteRoute(c, &ec2.DeleteRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0")})
	mustOK(t, err)
	_, err = f.ec2.DeleteRoute(c, &ec2.DeleteRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0")})
	wantCode(t, err, "InvalidRoute.NotFound")

	// Once the window has passed, every read is current.
	clk.add(time.Second + time.Nanosecond)
	if got := targets(t, f, 20); got[""] != 20 {
		t.Fatalf("reads a full window after the delete: %v", got)
	}
}

func TestStaleAutoScalingReads(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f := newFixture(t, Options{Now: clk.now, Staleness: 2 * time.Second})
	c := ctx(t)
	_, err := f.sim.StartLifecycleAction("nat", f.natA, "drain")
	mustOK(t, err)
	clk.add(time.Second)
	states := map[astypes.LifecycleState]int{}
	for range 40 {
		out, err := f.asg.DescribeAutoScalingInstances(c, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{f.natA}})
		mustOK(t, err)
		states[astypes.LifecycleState(aws.ToString(out.AutoScalingInstances[0].LifecycleState))]++
	}
	if states[astypes.LifecycleStateInService] == 0 || states[astypes.LifecycleStateTerminatingWait] == 0 {
		t.Fatalf("lifecycle states read at once: %v, want both InService and Terminating:Wait", states)
	}
	clk.add(2*time.Second + time.Nanosecond)
	if g := describeGroup(t, f); lifecycleOf(g)[f.natA] != astypes.LifecycleStateTerminatingWait {
		t.Fatalf("after the window: %v", lifecycleOf(g))
	}
}

// Only states a read may still pick are kept.
func TestStaleHistoryIsBounded(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f := newFixture(t, Options{Now: clk.now, Staleness: time.Second})
	for i := range 50 {
		eni := f.eniA
		if i%2 == 1 {
			eni = f.eniB
		}
		mustOK(t, f.sim.SetRoute(f.rtbA, "0.0.0.0/0", eni))
		clk.add(300 * time.Millisecond)
	}
	f.sim.mu.Lock()
	n := len(f.sim.past)
	f.sim.mu.Unlock()
	// Commits 300ms apart: the last four replaced states are younger than a second.
	if n != 4 {
		t.Fatalf("%d past states kept, want 4", n)
	}
}
