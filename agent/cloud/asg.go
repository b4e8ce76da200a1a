package cloud

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
)

// LifecycleAction names one pending lifecycle action of this instance. Token is optional
// (the instance id identifies the action).
type LifecycleAction struct {
	Group      string
	Hook       string
	InstanceID string
	Token      string
}

// Lifecycle action results.
const (
	LifecycleContinue = "CONTINUE"
	LifecycleAbandon  = "ABANDON"
)

func (c *Client) asgCall(ctx context.Context, cl call, fn func(ctx context.Context) error) error {
	if c.asg == nil {
		return fmt.Errorf("%s: %w", cl.op, errNoClient)
	}
	cl.timeout = c.o.Timeouts.Describe
	if cl.write {
		cl.timeout = c.o.Timeouts.Mutate
	}
	return c.do(ctx, cl, fn)
}

func (a LifecycleAction) check() error {
	if a.Group == "" || a.Hook == "" || a.InstanceID == "" {
		return fmt.Errorf("lifecycle action needs group, hook and instance id (got %q, %q, %q)", a.Group, a.Hook, a.InstanceID)
	}
	return nil
}

// CompleteLifecycleAction completes a lifecycle action with result CONTINUE or ABANDON.
func (c *Client) CompleteLifecycleAction(ctx context.Context, a LifecycleAction, result, reason string) error {
	if err := a.check(); err != nil {
		return err
	}
	if result != LifecycleContinue && result != LifecycleAbandon {
		return fmt.Errorf("lifecycle action result %q: want %s or %s", result, LifecycleContinue, LifecycleAbandon)
	}
	err := c.asgCall(ctx, call{op: "CompleteLifecycleAction", reason: reason, write: true,
		attrs: []any{"group", a.Group, "hook", a.Hook, "instance", a.InstanceID, "result", result}},
		func(ctx context.Context) error {
			_, err := c.asg.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
				AutoScalingGroupName:  aws.String(a.Group),
				LifecycleHookName:     aws.String(a.Hook),
				InstanceId:            aws.String(a.InstanceID),
				LifecycleActionResult: aws.String(result),
				LifecycleActionToken:  optString(a.Token),
			}, c.asgOpt())
			return err
		})
	if err != nil {
		return fmt.Errorf("complete lifecycle action %s/%s for %s: %w", a.Group, a.Hook, a.InstanceID, err)
	}
	return nil
}

// RecordLifecycleActionHeartbeat extends the lifecycle action's timeout.
func (c *Client) RecordLifecycleActionHeartbeat(ctx context.Context, a LifecycleAction, reason string) error {
	if err := a.check(); err != nil {
		return err
	}
	err := c.asgCall(ctx, call{op: "RecordLifecycleActionHeartbeat", reason: reason, write: true,
		attrs: []any{"group", a.Group, "hook", a.Hook, "instance", a.InstanceID}},
		func(ctx context.Context) error {
			_, err := c.asg.RecordLifecycleActionHeartbeat(ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{
				AutoScalingGroupName: aws.String(a.Group),
				LifecycleHookName:    aws.String(a.Hook),
				InstanceId:           aws.String(a.InstanceID),
				LifecycleActionToken: optString(a.Token),
			}, c.asgOpt())
			return err
		})
	if err != nil {
		return fmt.Errorf("lifecycle heartbeat %s/%s for %s: %w", a.Group, a.Hook, a.InstanceID, err)
	}
	return nil
}

// Group is an Auto Scaling group, reduced to what draining needs.
type Group struct {
	Name              string
	Min, Max, Desired int32
	Instances         []GroupInstance // sorted by ID
}

// GroupInstance is one instance of a Group.
type GroupInstance struct {
	ID             string
	AZ             string
	LifecycleState string // InService, Terminating:Wait, ...
	Health         string // Healthy, Unhealthy
}

// DescribeGroup describes one Auto Scaling group.
func (c *Client) DescribeGroup(ctx context.Context, name, reason string) (Group, error) {
	if name == "" {
		return Group{}, errors.New("describe auto scaling group: empty name")
	}
	pages := autoscaling.NewDescribeAutoScalingGroupsPaginator(c.asg, &autoscaling.DescribeAutoScalingGroupsInput{
		AutoScalingGroupNames: []string{name},
	})
	for page := 0; pages.HasMorePages(); page++ {
		if page == maxPages {
			return Group{}, bad("DescribeAutoScalingGroups", "more than %d pages", maxPages)
		}
		var resp *autoscaling.DescribeAutoScalingGroupsOutput
		err := c.asgCall(ctx, call{op: "DescribeAutoScalingGroups", reason: reason, attrs: []any{"group", name, "page", page}},
			func(ctx context.Context) error {
				var err error
				resp, err = pages.NextPage(ctx, c.asgOpt())
				return err
			})
		if err != nil {
			return Group{}, fmt.Errorf("describe auto scaling group %s: %w", name, err)
		}
		for _, g := range resp.AutoScalingGroups {
			if aws.ToString(g.AutoScalingGroupName) != name {
				continue
			}
			out := Group{Name: name, Min: aws.ToInt32(g.MinSize), Max: aws.ToInt32(g.MaxSize), Desired: aws.ToInt32(g.DesiredCapacity)}
			for _, i := range g.Instances {
				id := aws.ToString(i.InstanceId)
				if id == "" {
					return Group{}, fmt.Errorf("describe auto scaling group %s: %w", name,
						bad("DescribeAutoScalingGroups", "instance without id"))
				}
				out.Instances = append(out.Instances, GroupInstance{
					ID: id, AZ: aws.ToString(i.AvailabilityZone),
					LifecycleState: string(i.LifecycleState), Health: aws.ToString(i.HealthStatus),
				})
			}
			sort.Slice(out.Instances, func(i, j int) bool { return out.Instances[i].ID < out.Instances[j].ID })
			return out, nil
		}
	}
	return Group{}, fmt.Errorf("auto scaling group %s not found", name)
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
