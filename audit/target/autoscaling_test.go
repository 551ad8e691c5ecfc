package target

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

type fakeAS struct {
	groupOf    map[string]string
	hooks      map[string][]types.LifecycleHook
	calls      []string
	denyHooks  bool
	batchSizes []int
}

func (f *fakeAS) DescribeAutoScalingInstances(_ context.Context, in *autoscaling.DescribeAutoScalingInstancesInput, _ ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingInstancesOutput, error) {
	f.batchSizes = append(f.batchSizes, len(in.InstanceIds))
	out := &autoscaling.DescribeAutoScalingInstancesOutput{}
	for _, id := range in.InstanceIds {
		if g, ok := f.groupOf[id]; ok {
			out.AutoScalingInstances = append(out.AutoScalingInstances, types.AutoScalingInstanceDetails{InstanceId: aws.String(id), AutoScalingGroupName: aws.String(g)})
		}
	}
	return out, nil
}

func (f *fakeAS) DescribeLifecycleHooks(_ context.Context, in *autoscaling.DescribeLifecycleHooksInput, _ ...func(*autoscaling.Options)) (*autoscaling.DescribeLifecycleHooksOutput, error) {
	f.calls = append(f.calls, aws.ToString(in.AutoScalingGroupName))
	if f.denyHooks {
		return nil, errors.New("AccessDenied: not authorized to perform autoscaling:DescribeLifecycleHooks")
	}
	return &autoscaling.DescribeLifecycleHooksOutput{LifecycleHooks: f.hooks[aws.ToString(in.AutoScalingGroupName)]}, nil
}

func TestAddAutoScaling(t *testing.T) {
	f := &fakeAS{groupOf: map[string]string{}, hooks: map[string][]types.LifecycleHook{
		"es-prod": {{LifecycleHookName: aws.String("es-drain"), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"), HeartbeatTimeout: aws.Int32(900), DefaultResult: aws.String("CONTINUE")}},
	}}
	var ts []Target
	for i := range 120 {
		id := fmt.Sprintf("i-%016d", i)
		ts = append(ts, Target{Name: id, InstanceID: id})
		switch {
		case i < 60:
			f.groupOf[id] = "es-prod"
		case i < 100:
			f.groupOf[id] = "es-bare"
		}
	}
	ts = append(ts, Target{Name: "inventory-host"})
	if err := AddAutoScaling(context.Background(), f, ts); err != nil {
		t.Fatal(err)
	}
	if len(f.batchSizes) != 3 || f.batchSizes[0] != 50 || f.batchSizes[2] != 20 {
		t.Errorf("DescribeAutoScalingInstances batches %v, want 50, 50, 20", f.batchSizes)
	}
	if strings.Join(f.calls, ",") != "es-bare,es-prod" {
		t.Errorf("DescribeLifecycleHooks calls %v, want one per group", f.calls)
	}
	if a := ts[0].AutoScaling; a == nil || a.Group != "es-prod" || len(a.Hooks) != 1 || a.Hooks[0].Name != "es-drain" || a.Hooks[0].HeartbeatTimeout != 900 {
		t.Errorf("es-prod node: %+v", a)
	}
	if a := ts[70].AutoScaling; a == nil || a.Group != "es-bare" || len(a.Hooks) != 0 {
		t.Errorf("es-bare node: %+v", a)
	}
	if a := ts[110].AutoScaling; a == nil || a.Group != "" {
		t.Errorf("node in no group: %+v", a)
	}
	if ts[120].AutoScaling != nil {
		t.Error("a target without an instance id got Auto Scaling data")
	}
	f.denyHooks = true
	ts2 := []Target{{InstanceID: "i-0000000000000001"}}
	if err := AddAutoScaling(context.Background(), f, ts2); err == nil || !strings.Contains(err.Error(), "autoscaling:DescribeLifecycleHooks") || ts2[0].AutoScaling != nil {
		t.Errorf("denied: %v, %+v", err, ts2[0].AutoScaling)
	}
}
