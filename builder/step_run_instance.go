package builder

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/uuid"
)

const (
	stateInstance   = "instance"    // ec2types.Instance once running
	stateInstanceID = "instance_id" // string, saved as soon as EC2 returns it
)

// stepRunInstance launches the build instance: IMDSv2 only, encrypted gp3
// volumes, shutdown behaviour terminate, tags on create, and user data
// that powers it off at the self-terminate deadline.
type stepRunInstance struct {
	Region   string
	RC       *RunConfig
	Mappings []BlockDevice
	Comm     *communicator.Config
	Polling  PollingConfig
	Now      func() time.Time // tests; nil: time.Now
	// clientToken makes RunInstances idempotent, so a retried call after a
	// lost response cannot start a second, untracked instance.
	clientToken string
}

func (s *stepRunInstance) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	rc := s.RC
	ec := state.Get(stateDriver).(Driver).EC2(s.Region)
	src := state.Get(stateSourceImage).(ec2types.Image)
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}

	extra := rc.UserData
	if rc.UserDataFile != "" {
		b, err := os.ReadFile(rc.UserDataFile)
		if err != nil {
			return halt(state, fmt.Errorf("user_data_file: read %s: %w", rc.UserDataFile, err))
		}
		extra = string(b)
	}
	userData, err := buildUserData(now().Add(rc.SelfTerminateDuration()), extra)
	if err != nil {
		return halt(state, fmt.Errorf("user_data: %w", err))
	}

	if s.clientToken == "" {
		s.clientToken = uuid.TimeOrderedUUID()
	}
	in := &ec2.RunInstancesInput{
		ImageId:                           src.ImageId,
		InstanceType:                      ec2types.InstanceType(rc.InstanceType),
		MinCount:                          aws.Int32(1),
		MaxCount:                          aws.Int32(1),
		ClientToken:                       aws.String(s.clientToken),
		InstanceInitiatedShutdownBehavior: ec2types.ShutdownBehaviorTerminate,
		UserData:                          aws.String(base64.StdEncoding.EncodeToString([]byte(userData))),
		BlockDeviceMappings:               launchMappings(src, s.Mappings),
		MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{
			HttpEndpoint:            ec2types.InstanceMetadataEndpointStateEnabled,
			HttpTokens:              ec2types.HttpTokensStateRequired,
			HttpPutResponseHopLimit: aws.Int32(int32(rc.Metadata.HttpPutResponseHopLimit)),
			InstanceMetadataTags:    ec2types.InstanceMetadataTagsState(rc.Metadata.InstanceMetadataTags),
		},
	}
	var tags []ec2types.TagSpecification
	for _, rt := range []ec2types.ResourceType{ec2types.ResourceTypeInstance, ec2types.ResourceTypeNetworkInterface} {
		tags = append(tags, tagSpec(rt, rc.RunTags)...)
	}
	tags = append(tags, tagSpec(ec2types.ResourceTypeVolume, rc.RunVolumeTags)...)
	in.TagSpecifications = tags
	if name := s.Comm.SSHKeyPairName; name != "" {
		in.KeyName = aws.String(name)
	}
	if p := rc.IamInstanceProfile; p != "" {
		if strings.HasPrefix(p, "arn:") {
			in.IamInstanceProfile = &ec2types.IamInstanceProfileSpecification{Arn: aws.String(p)}
		} else {
			in.IamInstanceProfile = &ec2types.IamInstanceProfileSpecification{Name: aws.String(p)}
		}
	}
	groups := rc.SecurityGroupIDs
	if id := stateString(state, stateSecurityGroup); id != "" {
		groups = []string{id}
	}
	subnet, _ := state.GetOk(stateSubnetID)
	if rc.AssociatePublicIpAddress.ToBoolPointer() != nil {
		// A public IP can only be asked for on an explicit interface.
		ni := ec2types.InstanceNetworkInterfaceSpecification{
			DeviceIndex:              aws.Int32(0),
			AssociatePublicIpAddress: rc.AssociatePublicIpAddress.ToBoolPointer(),
			DeleteOnTermination:      aws.Bool(true),
			Groups:                   groups,
		}
		if subnet != nil {
			ni.SubnetId = aws.String(subnet.(string))
		}
		in.NetworkInterfaces = []ec2types.InstanceNetworkInterfaceSpecification{ni}
	} else {
		in.SecurityGroupIds = groups
		if subnet != nil {
			in.SubnetId = aws.String(subnet.(string))
		}
	}

	say(state, fmt.Sprintf("Launching a %s build instance from %s (self-terminates after %s)...", rc.InstanceType, aws.ToString(src.ImageId), rc.SelfTerminateDuration()))
	out, err := ec.RunInstances(ctx, in)
	if err != nil {
		// The launch may have happened with its answer lost: find it by
		// client token so the cleanup can terminate it.
		recoverByClientToken(ec, s.clientToken, state)
		return halt(state, wrapf(err, "launch the build instance (ec2:RunInstances)"))
	}
	if len(out.Instances) != 1 {
		for _, i := range out.Instances {
			state.Put(stateInstanceID, aws.ToString(i.InstanceId))
		}
		return halt(state, fmt.Errorf("ec2:RunInstances returned %d instances, want 1", len(out.Instances)))
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	state.Put(stateInstanceID, id)
	say(state, "Instance "+id+" launched; waiting for it to run...")

	w := ec2.NewInstanceRunningWaiter(ec, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay = s.Polling.Delay()
		o.MaxDelay = s.Polling.Delay()
	})
	desc, err := w.WaitForOutput(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, s.Polling.MaxWait())
	if err != nil {
		return halt(state, wrapf(err, "wait for instance %s to run (raise polling.max_attempts if it is just slow)", id))
	}
	inst := desc.Reservations[0].Instances[0]
	state.Put(stateInstance, inst)
	return multistep.ActionContinue
}

func (s *stepRunInstance) Cleanup(state multistep.StateBag) {
	id := stateString(state, stateInstanceID)
	if id == "" {
		return
	}
	ec := state.Get(stateDriver).(Driver).EC2(s.Region)
	ctx, cancel := cleanupContext()
	defer cancel()
	say(state, "Terminating build instance "+id+"...")
	// We know the instance exists: a NotFound right after launch is EC2's
	// eventual consistency, so it is retried before being believed.
	_, err := ec.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}, RetryNotFound)
	if err != nil && errorCode(err) != "InvalidInstanceID.NotFound" {
		reportCleanupError(state, fmt.Errorf("terminate build instance %s: %w; terminate it by hand (aws ec2 terminate-instances --instance-ids %s)", id, err, id))
		return
	}
	// Wait, so the security group (next cleanup) is free to delete.
	w := ec2.NewInstanceTerminatedWaiter(ec, func(o *ec2.InstanceTerminatedWaiterOptions) {
		o.MinDelay = s.Polling.Delay()
		o.MaxDelay = s.Polling.Delay()
	})
	if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, s.Polling.MaxWait()); err != nil && errorCode(err) != "InvalidInstanceID.NotFound" {
		reportCleanupError(state, fmt.Errorf("wait for build instance %s to terminate: %w", id, err))
		return
	}
	forget(state, stateInstanceID)
}

// launchMappings is the user's mappings plus, when they do not override
// it, the source root volume relaunched as encrypted gp3.
func launchMappings(src ec2types.Image, devs []BlockDevice) []ec2types.BlockDeviceMapping {
	root := aws.ToString(src.RootDeviceName)
	var out []ec2types.BlockDeviceMapping
	haveRoot := false
	for _, d := range devs {
		if d.DeviceName == root {
			haveRoot = true
		}
		out = append(out, d.mapping())
	}
	if !haveRoot && root != "" {
		rootDev := BlockDevice{DeviceName: root}
		_ = rootDev.prepare("root")
		out = append([]ec2types.BlockDeviceMapping{rootDev.mapping()}, out...)
	}
	return out
}

// mapping is the EC2 form of a prepared BlockDevice.
func (b BlockDevice) mapping() ec2types.BlockDeviceMapping {
	ebs := &ec2types.EbsBlockDevice{
		VolumeType:          ec2types.VolumeType(b.VolumeType),
		Encrypted:           b.Encrypted.ToBoolPointer(),
		DeleteOnTermination: b.DeleteOnTermination.ToBoolPointer(),
	}
	if b.VolumeSize > 0 {
		ebs.VolumeSize = aws.Int32(int32(b.VolumeSize))
	}
	if b.IOPS > 0 {
		ebs.Iops = aws.Int32(int32(b.IOPS))
	}
	if b.Throughput > 0 {
		ebs.Throughput = aws.Int32(int32(b.Throughput))
	}
	if b.KmsKeyID != "" {
		ebs.KmsKeyId = aws.String(b.KmsKeyID)
	}
	if b.SnapshotID != "" {
		ebs.SnapshotId = aws.String(b.SnapshotID)
	}
	return ec2types.BlockDeviceMapping{DeviceName: aws.String(b.DeviceName), Ebs: ebs}
}

// recoverByClientToken records an instance launched with token, if any.
func recoverByClientToken(ec EC2API, token string, state multistep.StateBag) {
	ctx, cancel := cleanupContext()
	defer cancel()
	out, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("client-token"), Values: []string{token}}},
	})
	if err != nil {
		reportCleanupError(state, fmt.Errorf("check whether the failed RunInstances started an instance anyway (client token %s): %w; look for an instance with that client token and terminate it", token, err))
		return
	}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			if i.State != nil && i.State.Name != ec2types.InstanceStateNameTerminated {
				state.Put(stateInstanceID, aws.ToString(i.InstanceId))
			}
		}
	}
}
