package builder

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// stepNetwork resolves vpc_id/vpc_filter and subnet_id/subnet_filter to
// ids. With none of them EC2 picks the default VPC's subnet.
type stepNetwork struct {
	Region string
	RC     *RunConfig
}

func (s *stepNetwork) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ec := state.Get(stateDriver).(Driver).EC2(s.Region)
	rc := s.RC
	vpcID := rc.VpcID
	if len(rc.VpcFilter.Filters) > 0 {
		out, err := ec.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: filtersFrom(rc.VpcFilter.Filters)})
		if err != nil {
			return halt(state, wrapf(err, "find the VPC for vpc_filter (ec2:DescribeVpcs)"))
		}
		if len(out.Vpcs) != 1 {
			return halt(state, fmt.Errorf("vpc_filter: %d VPCs match in %s, want exactly one: narrow the filters", len(out.Vpcs), s.Region))
		}
		vpcID = aws.ToString(out.Vpcs[0].VpcId)
	}

	var subnets []ec2types.Subnet
	switch {
	case rc.SubnetID != "":
		out, err := ec.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{rc.SubnetID}})
		if err != nil {
			return halt(state, wrapf(err, "look up subnet_id %s (ec2:DescribeSubnets)", rc.SubnetID))
		}
		subnets = out.Subnets
		if len(subnets) == 0 {
			return halt(state, fmt.Errorf("subnet_id: %s not found in %s", rc.SubnetID, s.Region))
		}
	case len(rc.SubnetFilter.Filters) > 0 || vpcID != "":
		filters := filtersFrom(rc.SubnetFilter.Filters)
		if vpcID != "" {
			filters = append(filters, ec2types.Filter{Name: aws.String("vpc-id"), Values: []string{vpcID}})
		}
		out, err := ec.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: filters})
		if err != nil {
			return halt(state, wrapf(err, "find a subnet (ec2:DescribeSubnets)"))
		}
		subnets = out.Subnets
		if len(subnets) == 0 {
			return halt(state, fmt.Errorf("subnet_filter/vpc: no subnet matches in %s: check the filters and the VPC", s.Region))
		}
	default:
		return multistep.ActionContinue
	}

	chosen := subnets[0]
	if len(subnets) > 1 {
		switch {
		case rc.SubnetFilter.Random:
			chosen = subnets[rand.IntN(len(subnets))]
		case rc.SubnetFilter.MostFree || len(rc.SubnetFilter.Filters) == 0:
			// A VPC alone: the roomiest subnet is the least surprising.
			sort.SliceStable(subnets, func(i, j int) bool {
				return aws.ToInt32(subnets[i].AvailableIpAddressCount) > aws.ToInt32(subnets[j].AvailableIpAddressCount)
			})
			chosen = subnets[0]
		default:
			return halt(state, fmt.Errorf("subnet_filter: %d subnets match: narrow the filters or set most_free or random", len(subnets)))
		}
	}
	if vpcID != "" && aws.ToString(chosen.VpcId) != vpcID {
		return halt(state, fmt.Errorf("subnet_id: subnet %s is in %s, not in the configured VPC %s", aws.ToString(chosen.SubnetId), aws.ToString(chosen.VpcId), vpcID))
	}
	state.Put(stateSubnetID, aws.ToString(chosen.SubnetId))
	state.Put(stateVpcID, aws.ToString(chosen.VpcId))
	say(state, fmt.Sprintf("Using subnet %s in %s", aws.ToString(chosen.SubnetId), aws.ToString(chosen.VpcId)))
	return multistep.ActionContinue
}

func (s *stepNetwork) Cleanup(multistep.StateBag) {}
