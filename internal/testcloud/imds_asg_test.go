package testcloud

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
	"github.com/esbake/packer-plugin-elasticsearch/node/drain"
)

// IMDS answers autoscaling/target-lifecycle-state from the emulator's Auto
// Scaling group, as esnode drain reads it: 404 outside a group, InService
// once attached, Terminated as soon as a scale-in picks the instance (while
// the termination hook holds it in Terminating:Wait).
func TestIMDSTargetLifecycleStateFollowsTheGroup(t *testing.T) {
	requireGoOrMock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	emu := ec2emu.New(ec2emu.Options{})
	endpoint := emu.Start()
	defer emu.Close()
	creds := credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", "")
	ec2c := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), Credentials: creds})
	as := autoscaling.New(autoscaling.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), Credentials: creds})
	img, err := emu.AddImage(ec2emu.ImageSpec{Name: "asg-imds"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := ec2c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(img), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	if err := ec2.NewInstanceRunningWaiter(ec2c, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = time.Millisecond, 10*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	ep, stop, err := StartIMDS(ctx, IMDSConfig{InstanceID: id, TargetLifecycleState: func() string { return emu.TargetLifecycleState(id) }})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	read := drain.IMDSTargetState(ep)

	if code, body := imdsGet(t, ep, "/latest/meta-data/autoscaling/target-lifecycle-state", true); code != 404 {
		t.Errorf("outside a group: %d %q, want 404 as on EC2", code, body)
	}
	if _, err := read(ctx); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("drain's reader outside a group: %v, want a 404 error", err)
	}
	g := aws.String("es-asg")
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: g, MinSize: aws.Int32(0), MaxSize: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := as.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: g, InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if _, err := as.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: g, LifecycleHookName: aws.String("es-drain"),
		LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"), HeartbeatTimeout: aws.Int32(3600)}); err != nil {
		t.Fatal(err)
	}
	if got, err := read(ctx); err != nil || got != "InService" {
		t.Errorf("attached: %q (%v), want InService", got, err)
	}
	if code, body := imdsGet(t, ep, "/latest/meta-data/autoscaling/", true); code != 200 || body != "target-lifecycle-state" {
		t.Errorf("autoscaling/ listing: %d %q", code, body)
	}
	if code, _ := imdsGet(t, ep, "/latest/meta-data/autoscaling/target-lifecycle-state", false); code != 401 {
		t.Errorf("IMDSv1 read of the target state: %d, want 401 (IMDSv2 only)", code)
	}
	if _, err := as.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(id), ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if got, err := read(ctx); err != nil || got != "Terminated" {
		t.Errorf("after the scale-in picked it (hook waiting): %q (%v), want Terminated", got, err)
	}
	ai, err := as.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{id}})
	if err != nil || len(ai.AutoScalingInstances) != 1 || aws.ToString(ai.AutoScalingInstances[0].LifecycleState) != "Terminating:Wait" {
		t.Errorf("the hook should hold the instance in Terminating:Wait: %+v %v", ai, err)
	}
}
