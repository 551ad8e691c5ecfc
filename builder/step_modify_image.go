package builder

import (
	"context"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// stepModifyImage finishes every image of the build: IMDSv2-only on the
// copies, launch permissions for ami_users/org/OU ARNs, and deprecate_at.
type stepModifyImage struct {
	BuildRegion string
	IMDSSupport string
	Users       []string
	OrgArns     []string
	OuArns      []string
	DeprecateAt time.Time
}

func (s *stepModifyImage) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	d := state.Get(stateDriver).(Driver)
	amis := recordedAMIs(state)
	regions := make([]string, 0, len(amis))
	for r := range amis {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		id, ec := amis[r], d.EC2(r)
		if r != s.BuildRegion && s.IMDSSupport != "" {
			if _, err := ec.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{
				ImageId: aws.String(id), ImdsSupport: &ec2types.AttributeValue{Value: aws.String(s.IMDSSupport)},
			}); err != nil {
				return halt(state, wrapf(err, "make image %s in %s IMDSv2-only (ec2:ModifyImageAttribute)", id, r))
			}
		}
		if len(s.Users)+len(s.OrgArns)+len(s.OuArns) > 0 {
			var add []ec2types.LaunchPermission
			for _, u := range s.Users {
				add = append(add, ec2types.LaunchPermission{UserId: aws.String(u)})
			}
			for _, a := range s.OrgArns {
				add = append(add, ec2types.LaunchPermission{OrganizationArn: aws.String(a)})
			}
			for _, a := range s.OuArns {
				add = append(add, ec2types.LaunchPermission{OrganizationalUnitArn: aws.String(a)})
			}
			say(state, "Sharing image "+id+" in "+r+"...")
			if _, err := ec.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{
				ImageId: aws.String(id), LaunchPermission: &ec2types.LaunchPermissionModifications{Add: add},
			}); err != nil {
				return halt(state, wrapf(err, "share image %s in %s (ec2:ModifyImageAttribute launchPermission)", id, r))
			}
		}
		if !s.DeprecateAt.IsZero() {
			if _, err := ec.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{
				ImageId: aws.String(id), DeprecateAt: aws.Time(s.DeprecateAt),
			}); err != nil {
				return halt(state, wrapf(err, "set deprecate_at on image %s in %s (ec2:EnableImageDeprecation)", id, r))
			}
		}
	}
	return multistep.ActionContinue
}

func (s *stepModifyImage) Cleanup(multistep.StateBag) {}
