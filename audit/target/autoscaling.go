package target

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
)

// AutoScalingAPI is the part of the Auto Scaling client the audit uses.
type AutoScalingAPI interface {
	DescribeAutoScalingInstances(context.Context, *autoscaling.DescribeAutoScalingInstancesInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingInstancesOutput, error)
	DescribeLifecycleHooks(context.Context, *autoscaling.DescribeLifecycleHooksInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeLifecycleHooksOutput, error)
}

// AutoScaling is an instance's Auto Scaling group and its lifecycle hooks;
// Group is "" for an instance in no group.
type AutoScaling struct {
	Group string
	Hooks []LifecycleHook
}

// LifecycleHook is one of the group's hooks.
type LifecycleHook struct {
	Name, Transition, DefaultResult string
	HeartbeatTimeout                int
}

// AddAutoScaling fills each EC2 target's AutoScaling: one
// DescribeAutoScalingInstances per 50 instances and one
// DescribeLifecycleHooks per group.
func AddAutoScaling(ctx context.Context, api AutoScalingAPI, targets []Target) error {
	idx := map[string][]int{}
	var ids []string
	for i, t := range targets {
		if t.InstanceID != "" {
			if _, seen := idx[t.InstanceID]; !seen {
				ids = append(ids, t.InstanceID)
			}
			idx[t.InstanceID] = append(idx[t.InstanceID], i)
		}
	}
	groupOf := map[string]string{}
	for start := 0; start < len(ids); start += 50 {
		batch := ids[start:min(start+50, len(ids))]
		out, err := api.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: batch})
		if err != nil {
			return fmt.Errorf("Auto Scaling DescribeAutoScalingInstances: %w (the caller needs autoscaling:DescribeAutoScalingInstances)", err)
		}
		for _, in := range out.AutoScalingInstances {
			groupOf[aws.ToString(in.InstanceId)] = aws.ToString(in.AutoScalingGroupName)
		}
	}
	hooks := map[string][]LifecycleHook{}
	var groups []string
	for _, g := range groupOf {
		if _, ok := hooks[g]; !ok {
			hooks[g] = nil
			groups = append(groups, g)
		}
	}
	sort.Strings(groups)
	for _, g := range groups {
		out, err := api.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String(g)})
		if err != nil {
			return fmt.Errorf("Auto Scaling DescribeLifecycleHooks for %s: %w (the caller needs autoscaling:DescribeLifecycleHooks)", g, err)
		}
		hs := []LifecycleHook{}
		for _, h := range out.LifecycleHooks {
			hs = append(hs, LifecycleHook{Name: aws.ToString(h.LifecycleHookName), Transition: aws.ToString(h.LifecycleTransition),
				DefaultResult: aws.ToString(h.DefaultResult), HeartbeatTimeout: int(aws.ToInt32(h.HeartbeatTimeout))})
		}
		hooks[g] = hs
	}
	for _, id := range ids {
		as := &AutoScaling{Group: groupOf[id], Hooks: hooks[groupOf[id]]}
		for _, i := range idx[id] {
			targets[i].AutoScaling = as
		}
	}
	return nil
}
