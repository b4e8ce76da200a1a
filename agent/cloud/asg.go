package cloud

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/smithy-go"
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

// NoActiveLifecycleAction reports whether err says the lifecycle action is no longer pending
// (completed before, or timed out): completing it again has nothing left to do.
func NoActiveLifecycleAction(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" &&
		strings.Contains(ae.ErrorMessage(), "No active Lifecycle Action")
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

// GroupMembership is an instance as its Auto Scaling group sees it.
type GroupMembership struct {
	Group          string // "" when the instance is in no group
	LifecycleState string // Pending:Wait, InService, Terminating:Wait, ...
}

// GroupInstance reads the instance's group and lifecycle state (DescribeAutoScalingInstances);
// an instance in no group is no error: Group is empty.
func (c *Client) GroupInstance(ctx context.Context, instanceID, reason string) (GroupMembership, error) {
	if instanceID == "" {
		return GroupMembership{}, errors.New("describe auto scaling instance: empty instance id")
	}
	var out *autoscaling.DescribeAutoScalingInstancesOutput
	err := c.asgCall(ctx, call{op: "DescribeAutoScalingInstances", reason: reason, attrs: []any{"instance", instanceID}},
		func(ctx context.Context) error {
			var err error
			out, err = c.asg.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{
				InstanceIds: []string{instanceID},
			}, c.asgOpt())
			return err
		})
	if err != nil {
		return GroupMembership{}, fmt.Errorf("describe auto scaling instance %s: %w", instanceID, err)
	}
	for _, i := range out.AutoScalingInstances {
		if aws.ToString(i.InstanceId) != instanceID {
			continue
		}
		m := GroupMembership{Group: aws.ToString(i.AutoScalingGroupName), LifecycleState: aws.ToString(i.LifecycleState)}
		if m.Group == "" || m.LifecycleState == "" {
			return GroupMembership{}, fmt.Errorf("describe auto scaling instance %s: %w", instanceID,
				bad("DescribeAutoScalingInstances", "no group name or lifecycle state"))
		}
		return m, nil
	}
	return GroupMembership{}, nil
}

// Lifecycle transitions of a hook.
const (
	TransitionLaunching   = "autoscaling:EC2_INSTANCE_LAUNCHING"
	TransitionTerminating = "autoscaling:EC2_INSTANCE_TERMINATING"
)

// LifecycleHook is one lifecycle hook of a group.
type LifecycleHook struct {
	Group, Name      string
	Transition       string // TransitionLaunching or TransitionTerminating
	HeartbeatTimeout time.Duration
	GlobalTimeout    time.Duration
	DefaultResult    string
}

// LifecycleHooks lists a group's lifecycle hooks, sorted by name.
func (c *Client) LifecycleHooks(ctx context.Context, group, reason string) ([]LifecycleHook, error) {
	if group == "" {
		return nil, errors.New("describe lifecycle hooks: empty group name")
	}
	var out *autoscaling.DescribeLifecycleHooksOutput
	err := c.asgCall(ctx, call{op: "DescribeLifecycleHooks", reason: reason, attrs: []any{"group", group}},
		func(ctx context.Context) error {
			var err error
			out, err = c.asg.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{
				AutoScalingGroupName: aws.String(group),
			}, c.asgOpt())
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("describe lifecycle hooks of %s: %w", group, err)
	}
	var hooks []LifecycleHook
	for _, h := range out.LifecycleHooks {
		lh := LifecycleHook{
			Group: group, Name: aws.ToString(h.LifecycleHookName), Transition: aws.ToString(h.LifecycleTransition),
			HeartbeatTimeout: time.Duration(aws.ToInt32(h.HeartbeatTimeout)) * time.Second,
			GlobalTimeout:    time.Duration(aws.ToInt32(h.GlobalTimeout)) * time.Second,
			DefaultResult:    aws.ToString(h.DefaultResult),
		}
		if lh.Name == "" || (lh.Transition != TransitionLaunching && lh.Transition != TransitionTerminating) {
			// Hooks for other transitions (warm pools) are not the agent's.
			if lh.Name == "" {
				return nil, fmt.Errorf("describe lifecycle hooks of %s: %w", group, bad("DescribeLifecycleHooks", "hook without a name"))
			}
			continue
		}
		if lh.HeartbeatTimeout <= 0 {
			return nil, fmt.Errorf("describe lifecycle hooks of %s: %w", group,
				bad("DescribeLifecycleHooks", "hook %s has heartbeat timeout %d", lh.Name, aws.ToInt32(h.HeartbeatTimeout)))
		}
		hooks = append(hooks, lh)
	}
	sort.Slice(hooks, func(i, j int) bool { return hooks[i].Name < hooks[j].Name })
	return hooks, nil
}
