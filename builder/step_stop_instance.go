package builder

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// stepStopInstance stops the instance so the image is consistent.
type stepStopInstance struct {
	Region  string
	Polling PollingConfig
}

func (s *stepStopInstance) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ec := state.Get(stateDriver).(Driver).EC2(s.Region)
	id := state.Get(stateInstanceID).(string)
	say(state, "Stopping instance "+id+"...")
	if _, err := ec.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		return halt(state, wrapf(err, "stop instance %s (ec2:StopInstances)", id))
	}
	w := ec2.NewInstanceStoppedWaiter(ec, func(o *ec2.InstanceStoppedWaiterOptions) {
		o.MinDelay = s.Polling.Delay()
		o.MaxDelay = s.Polling.Delay()
	})
	if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(&id)}}, s.Polling.MaxWait()); err != nil {
		return halt(state, wrapf(err, "wait for instance %s to stop", id))
	}
	return multistep.ActionContinue
}

func (s *stepStopInstance) Cleanup(multistep.StateBag) {}
