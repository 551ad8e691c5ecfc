package drain

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

// LifecycleClient against the emulator's Auto Scaling API, through the
// default credential chain (environment) and a custom endpoint: it finds
// the group, heartbeats and completes; a drain through it terminates the
// instance.
func TestLifecycleClientOnEmulator(t *testing.T) {
	srv := ec2emu.New(ec2emu.Options{})
	url := srv.Start()
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "stand-in-secret")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	ec := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(url) })
	ami, err := srv.AddImage(ec2emu.ImageSpec{Name: "debian-12-cis", ImdsSupport: "v2.0"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeT3Micro})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	if err := ec2.NewInstanceRunningWaiter(ec, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = time.Millisecond, 5*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	as := autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) { o.BaseEndpoint = aws.String(url) })
	if _, err := NewLifecycleClient(ctx, "us-east-1", url, "", "", "es-drain", id); err == nil || !strings.Contains(err.Error(), "is not in an Auto Scaling group") {
		t.Errorf("instance in no group: %v", err)
	}
	for _, call := range []func() error{
		func() error {
			_, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("es-prod"), MinSize: aws.Int32(0), MaxSize: aws.Int32(3)})
			return err
		},
		func() error {
			_, err := as.AttachInstances(ctx, &autoscaling.AttachInstancesInput{AutoScalingGroupName: aws.String("es-prod"), InstanceIds: []string{id}})
			return err
		},
		func() error {
			_, err := as.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: aws.String("es-prod"), LifecycleHookName: aws.String("es-drain"),
				LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"), HeartbeatTimeout: aws.Int32(300)})
			return err
		},
		func() error {
			_, err := as.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(id), ShouldDecrementDesiredCapacity: aws.Bool(true)})
			return err
		},
	} {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewLifecycleClient(ctx, "us-east-1", url, "", "", "", id); err == nil || !strings.Contains(err.Error(), "lifecycle.termination_hook") {
		t.Errorf("no hook name: %v", err)
	}
	wrong, err := NewLifecycleClient(ctx, "us-east-1", url, "", "", "es-nope", id)
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Heartbeat(ctx); err == nil || !strings.Contains(err.Error(), "No Lifecycle Hook found with name es-nope") {
		t.Errorf("heartbeat on a wrong hook: %v", err)
	}
	lc, err := NewLifecycleClient(ctx, "us-east-1", url, "", "", "es-drain", id)
	if err != nil {
		t.Fatal(err)
	}
	if lc.group != "es-prod" {
		t.Errorf("group %q, want es-prod from DescribeAutoScalingInstances", lc.group)
	}
	f := &fakeES{target: "es-2", health: "green", shards: map[string]string{"0": id}}
	o := fast
	o.HeartbeatEvery = time.Millisecond
	if err := Drain(ctx, newCluster(t, f, 8, 15), lc, Node{Name: id}, o); err != nil {
		t.Fatal(err)
	}
	if srv.LifecycleHeartbeats(id) == 0 {
		t.Error("no heartbeat reached the emulator")
	}
	out, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if st := out.Reservations[0].Instances[0].State.Name; st != types.InstanceStateNameShuttingDown && st != types.InstanceStateNameTerminated {
		t.Errorf("instance %s after the drain completed the action", st)
	}
}
