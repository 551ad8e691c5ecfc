package ec2emu

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func (e *env) autoscaling(region string) *autoscaling.Client {
	return autoscaling.NewFromConfig(e.cfg(region, 3), func(o *autoscaling.Options) { o.BaseEndpoint = aws.String(e.url) })
}

// running launches n instances and waits until they run.
func (e *env) running(n int) []string {
	e.t.Helper()
	c := e.ec2("us-east-1")
	run := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(e.seedImage("debian-12-cis")), MinCount: aws.Int32(int32(n)), MaxCount: aws.Int32(int32(n)), InstanceType: types.InstanceTypeT3Micro}))(e.t)
	var ids []string
	for _, in := range run.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	if err := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = time.Millisecond, 5*time.Millisecond
	}).
		Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, time.Minute); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

func (e *env) state(id string) string {
	out := must(e.ec2("us-east-1").DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}))(e.t)
	return string(out.Reservations[0].Instances[0].State.Name)
}

// A scale-in through a termination hook: the instance waits in
// Terminating:Wait (IMDS target state Terminated), heartbeats extend the
// wait, CompleteLifecycleAction terminates it; without a completion the
// hook's timeout terminates it all the same; without a hook at once.
func TestAutoScalingTerminationHook(t *testing.T) {
	t.Cleanup(SetHookTimeUnit(10 * time.Millisecond)) // HeartbeatTimeout 100 -> 1 s
	e := newEnv(t, Options{})
	as := e.autoscaling("us-east-1")
	ids := e.running(3)
	g := aws.String("es-prod")
	must(as.CreateAutoScalingGroup(e.ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: g, MinSize: aws.Int32(0), MaxSize: aws.Int32(3)}))(t)
	must(as.AttachInstances(e.ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: g, InstanceIds: ids[:2]}))(t)
	must(as.CreateAutoScalingGroup(e.ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("plain"), MinSize: aws.Int32(0), MaxSize: aws.Int32(1)}))(t)
	_, err := as.AttachInstances(e.ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String("plain"), InstanceIds: ids[1:2]})
	if wantCode(t, err, "ValidationError"); err == nil || !strings.Contains(err.Error(), "already part of the Auto Scaling group es-prod") {
		t.Errorf("attach to a second group: %v", err)
	}
	_, err = as.PutLifecycleHook(e.ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: g, LifecycleHookName: aws.String("es-drain"),
		LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"), HeartbeatTimeout: aws.Int32(10)})
	wantCode(t, err, "ValidationError") // below AWS's 30 s
	must(as.PutLifecycleHook(e.ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: g, LifecycleHookName: aws.String("es-drain"),
		LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"), HeartbeatTimeout: aws.Int32(100), DefaultResult: aws.String("CONTINUE")}))(t)
	hooks := must(as.DescribeLifecycleHooks(e.ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: g}))(t)
	if len(hooks.LifecycleHooks) != 1 || aws.ToInt32(hooks.LifecycleHooks[0].HeartbeatTimeout) != 100 || aws.ToString(hooks.LifecycleHooks[0].DefaultResult) != "CONTINUE" {
		t.Fatalf("hooks %+v", hooks.LifecycleHooks)
	}
	inst := must(as.DescribeAutoScalingInstances(e.ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: ids[:1]}))(t)
	if len(inst.AutoScalingInstances) != 1 || aws.ToString(inst.AutoScalingInstances[0].AutoScalingGroupName) != "es-prod" ||
		aws.ToString(inst.AutoScalingInstances[0].LifecycleState) != "InService" || e.srv.TargetLifecycleState(ids[0]) != "InService" {
		t.Fatalf("instances %+v", inst.AutoScalingInstances)
	}

	// 1: completed after heartbeats.
	must(as.TerminateInstanceInAutoScalingGroup(e.ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(ids[0]), ShouldDecrementDesiredCapacity: aws.Bool(true)}))(t)
	if st := e.srv.TargetLifecycleState(ids[0]); st != "Terminated" {
		t.Errorf("target state %q during the wait", st)
	}
	for range 4 {
		time.Sleep(300 * time.Millisecond) // well within the 1 s hook timeout; 1.2 s in all
		must(as.RecordLifecycleActionHeartbeat(e.ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{AutoScalingGroupName: g, LifecycleHookName: aws.String("es-drain"), InstanceId: aws.String(ids[0])}))(t)
	}
	if st := e.state(ids[0]); st != "running" {
		t.Fatalf("instance %s after heartbeats past the hook timeout: want running", st)
	}
	_, err = as.CompleteLifecycleAction(e.ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: g, LifecycleHookName: aws.String("es-drain"), InstanceId: aws.String(ids[0]), LifecycleActionResult: aws.String("MAYBE")})
	wantCode(t, err, "ValidationError")
	must(as.CompleteLifecycleAction(e.ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: g, LifecycleHookName: aws.String("es-drain"), InstanceId: aws.String(ids[0]), LifecycleActionResult: aws.String("CONTINUE")}))(t)
	if st := e.state(ids[0]); st != "shutting-down" && st != "terminated" {
		t.Errorf("instance %s after CompleteLifecycleAction", st)
	}
	if o := e.srv.LifecycleOutcome(ids[0]); o != "completed:CONTINUE" {
		t.Errorf("outcome %q, want completed:CONTINUE", o)
	}
	_, err = as.CompleteLifecycleAction(e.ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: g, LifecycleHookName: aws.String("es-drain"), InstanceId: aws.String(ids[0]), LifecycleActionResult: aws.String("CONTINUE")})
	wantCode(t, err, "ValidationError") // no active action any more

	// 2: nobody completes: the hook's timeout applies its default result.
	must(as.TerminateInstanceInAutoScalingGroup(e.ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(ids[1]), ShouldDecrementDesiredCapacity: aws.Bool(false)}))(t)
	deadline := time.Now().Add(10 * time.Second)
	for e.state(ids[1]) == "running" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := e.state(ids[1]); st == "running" {
		t.Error("the hook's timeout never terminated the instance")
	}
	if o := e.srv.LifecycleOutcome(ids[1]); o != "timeout:CONTINUE" {
		t.Errorf("outcome %q, want timeout:CONTINUE", o)
	}

	// 3: a group without a termination hook terminates at once.
	_, err = as.AttachInstances(e.ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String("plain"), InstanceIds: ids[1:2]})
	wantCode(t, err, "ValidationError") // one group per instance
	must(as.AttachInstances(e.ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String("plain"), InstanceIds: ids[2:]}))(t)
	must(as.TerminateInstanceInAutoScalingGroup(e.ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(ids[2]), ShouldDecrementDesiredCapacity: aws.Bool(true)}))(t)
	if st := e.state(ids[2]); st == "running" {
		t.Error("no hook, but the instance still runs")
	}
	_, err = as.TerminateInstanceInAutoScalingGroup(e.ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String("i-0123456789abcdef0"), ShouldDecrementDesiredCapacity: aws.Bool(true)})
	wantCode(t, err, "ValidationError")
	if e.srv.TargetLifecycleState("i-0123456789abcdef0") != "" {
		t.Error("an instance in no group has a target lifecycle state")
	}
}

// DeleteLifecycleHook removes the hook: the next scale-in terminates at once.
func TestAutoScalingDeleteLifecycleHook(t *testing.T) {
	e := newEnv(t, Options{})
	as := e.autoscaling("us-east-1")
	ids := e.running(1)
	g := aws.String("es-prod")
	must(as.CreateAutoScalingGroup(e.ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: g, MinSize: aws.Int32(0), MaxSize: aws.Int32(1)}))(t)
	must(as.AttachInstances(e.ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: g, InstanceIds: ids}))(t)
	must(as.PutLifecycleHook(e.ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: g, LifecycleHookName: aws.String("es-drain"),
		LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"), HeartbeatTimeout: aws.Int32(3600)}))(t)
	must(as.DeleteLifecycleHook(e.ctx, &autoscaling.DeleteLifecycleHookInput{AutoScalingGroupName: g, LifecycleHookName: aws.String("es-drain")}))(t)
	if hooks := must(as.DescribeLifecycleHooks(e.ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: g}))(t); len(hooks.LifecycleHooks) != 0 {
		t.Fatalf("hooks after delete: %+v", hooks.LifecycleHooks)
	}
	_, err := as.DeleteLifecycleHook(e.ctx, &autoscaling.DeleteLifecycleHookInput{AutoScalingGroupName: g, LifecycleHookName: aws.String("es-drain")})
	wantCode(t, err, "ValidationError")
	must(as.TerminateInstanceInAutoScalingGroup(e.ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(ids[0]), ShouldDecrementDesiredCapacity: aws.Bool(true)}))(t)
	if st := e.state(ids[0]); st == "running" || e.srv.LifecycleOutcome(ids[0]) != "no-hook" {
		t.Errorf("hook deleted, but the instance is %s (%s)", st, e.srv.LifecycleOutcome(ids[0]))
	}
}
