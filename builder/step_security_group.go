package builder

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/uuid"
)

// stepSecurityGroup creates the temporary security group that lets the
// builder reach SSH from the configured CIDRs only. With existing
// security_group_ids or session_manager it creates nothing.
type stepSecurityGroup struct {
	Region      string
	RunConfig   *RunConfig
	SSHPort     int
	Tags        map[string]string
	RetryDelay  time.Duration // between DependencyViolation retries; 0: 5s
	RetryTimes  int           // 0: 60
	groupNameFn func() string
}

func (s *stepSecurityGroup) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	if !s.RunConfig.UsesTemporarySG() {
		return multistep.ActionContinue
	}
	d := state.Get(stateDriver).(Driver)
	name := "packer_esbake_" + uuid.TimeOrderedUUID()
	if s.groupNameFn != nil {
		name = s.groupNameFn()
	}
	in := &ec2.CreateSecurityGroupInput{
		GroupName:         aws.String(name),
		Description:       aws.String("Temporary group for an elasticsearch-ami build: SSH from the configured CIDRs"),
		TagSpecifications: tagSpec(ec2types.ResourceTypeSecurityGroup, s.Tags),
	}
	if v, ok := state.GetOk(stateVpcID); ok && v.(string) != "" {
		in.VpcId = aws.String(v.(string))
	}
	say(state, "Creating temporary security group "+name+"...")
	ec := d.EC2(s.Region)
	out, err := ec.CreateSecurityGroup(ctx, in)
	if err != nil {
		// The group may exist with its answer lost: find it by its unique name.
		if found, ferr := ec.DescribeSecurityGroups(context.WithoutCancel(ctx), &ec2.DescribeSecurityGroupsInput{
			Filters: []ec2types.Filter{{Name: aws.String("group-name"), Values: []string{name}}},
		}); ferr == nil && len(found.SecurityGroups) > 0 {
			state.Put(stateSecurityGroup, aws.ToString(found.SecurityGroups[0].GroupId))
		}
		return halt(state, wrapf(err, "create temporary security group (ec2:CreateSecurityGroup)"))
	}
	id := aws.ToString(out.GroupId)
	state.Put(stateSecurityGroup, id)

	perm := ec2types.IpPermission{
		IpProtocol: aws.String("tcp"),
		FromPort:   aws.Int32(int32(s.SSHPort)),
		ToPort:     aws.Int32(int32(s.SSHPort)),
	}
	for _, cidr := range s.RunConfig.TemporarySGSourceCidrs {
		ip, _, _ := net.ParseCIDR(cidr)
		if ip != nil && ip.To4() == nil {
			perm.Ipv6Ranges = append(perm.Ipv6Ranges, ec2types.Ipv6Range{CidrIpv6: aws.String(cidr)})
		} else {
			perm.IpRanges = append(perm.IpRanges, ec2types.IpRange{CidrIp: aws.String(cidr)})
		}
	}
	if _, err := ec.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId:       aws.String(id),
		IpPermissions: []ec2types.IpPermission{perm},
	}, RetryNotFound); err != nil {
		return halt(state, wrapf(err, "allow SSH (port %d) into security group %s (ec2:AuthorizeSecurityGroupIngress)", s.SSHPort, id))
	}
	return multistep.ActionContinue
}

func (s *stepSecurityGroup) Cleanup(state multistep.StateBag) {
	id := stateString(state, stateSecurityGroup)
	if id == "" {
		return
	}
	d := state.Get(stateDriver).(Driver)
	ctx, cancel := cleanupContext()
	defer cancel()
	delay, times := s.RetryDelay, s.RetryTimes
	if delay == 0 {
		delay = 5 * time.Second
	}
	if times == 0 {
		times = 60
	}
	say(state, "Deleting temporary security group "+id+"...")
	var err error
	for i := 0; i < times; i++ {
		_, err = d.EC2(s.Region).DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)}, RetryNotFound)
		switch errorCode(err) {
		case "":
			if err == nil {
				forget(state, stateSecurityGroup)
				return
			}
		case "InvalidGroup.NotFound":
			forget(state, stateSecurityGroup)
			return
		case "DependencyViolation":
			// The terminating instance still holds an interface in the group.
			select {
			case <-time.After(delay):
				continue
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		break
	}
	reportCleanupError(state, fmt.Errorf("delete temporary security group %s: %w; delete it by hand once its instance is gone (aws ec2 delete-security-group --group-id %s)", id, err, id))
}

// reportCleanupError tells the user about a resource that may be left
// behind; cleanups cannot fail the build any more than it already has.
func reportCleanupError(state multistep.StateBag, err error) {
	if ui, ok := state.GetOk(stateUI); ok {
		ui.(packersdk.Ui).Error(err.Error())
	}
	var errs []error
	if v, ok := state.GetOk("cleanup_errors"); ok {
		errs = v.([]error)
	}
	state.Put("cleanup_errors", append(errs, err))
}
