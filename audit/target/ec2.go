package target

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// EC2API is the part of the EC2 client discovery uses.
type EC2API interface {
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
}

// EC2Options select instances.
type EC2Options struct {
	// Tags are key=value filters; all must match (values may use EC2's * and ? wildcards).
	Tags map[string]string
	// Address is "private" (default) or "public".
	Address string
	// Transport for the instances found: ssh (default) or ssm.
	Transport string
}

// ParseTag splits "key=value".
func ParseTag(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || v == "" {
		return "", "", fmt.Errorf("--ec2-tag %q: write KEY=VALUE, e.g. es_cluster=aardvark-cluster", s)
	}
	return k, v, nil
}

// DiscoverEC2 lists running instances with the tags, each with its
// security groups' ingress rules. Instances without the requested address
// (no public IP with --address public) are still returned, with an empty
// Host, so the run accounts for them as node errors.
func DiscoverEC2(ctx context.Context, api EC2API, opts EC2Options) ([]Target, error) {
	if len(opts.Tags) == 0 {
		return nil, fmt.Errorf("EC2 discovery needs at least one --ec2-tag KEY=VALUE")
	}
	switch opts.Address {
	case "", "private", "public":
	default:
		return nil, fmt.Errorf("--address %q: use private or public", opts.Address)
	}
	if opts.Transport == "" {
		opts.Transport = SSH
	}
	filters := []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"running"}}}
	keys := make([]string, 0, len(opts.Tags))
	for k := range opts.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		filters = append(filters, types.Filter{Name: aws.String("tag:" + k), Values: []string{opts.Tags[k]}})
	}
	var out []Target
	groupIDs := map[string]bool{}
	instGroups := map[string][]string{}
	instNet := map[string][2]string{} // instance id -> subnet id, vpc id
	subnetIDs, vpcIDs := map[string]bool{}, map[string]bool{}
	p := ec2.NewDescribeInstancesPaginator(api, &ec2.DescribeInstancesInput{Filters: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("EC2 DescribeInstances: %w (the caller needs ec2:DescribeInstances; check --region/--profile)", err)
		}
		for _, res := range page.Reservations {
			for _, in := range res.Instances {
				if in.State != nil && in.State.Name != types.InstanceStateNameRunning {
					continue
				}
				id := aws.ToString(in.InstanceId)
				t := Target{InstanceID: id, Transport: opts.Transport, Tags: map[string]string{}}
				for _, tag := range in.Tags {
					t.Tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
				}
				if opts.Address == "public" {
					t.Host = aws.ToString(in.PublicIpAddress)
				} else {
					t.Host = aws.ToString(in.PrivateIpAddress)
				}
				t.Name = id
				if n := t.Tags["Name"]; n != "" {
					t.Name = n + " (" + id + ")"
				}
				if sn, vpc := aws.ToString(in.SubnetId), aws.ToString(in.VpcId); sn != "" || vpc != "" {
					instNet[id] = [2]string{sn, vpc}
					if sn != "" {
						subnetIDs[sn] = true
					}
					if vpc != "" {
						vpcIDs[vpc] = true
					}
				}
				for _, g := range in.SecurityGroups {
					gid := aws.ToString(g.GroupId)
					groupIDs[gid] = true
					instGroups[id] = append(instGroups[id], gid)
				}
				out = append(out, t)
			}
		}
	}
	groups, err := securityGroups(ctx, api, groupIDs)
	if err != nil {
		return nil, err
	}
	subnets, vpcs, err := networks(ctx, api, subnetIDs, vpcIDs)
	if err != nil {
		return nil, err
	}
	for i := range out {
		nw := instNet[out[i].InstanceID]
		out[i].SubnetCIDR = subnets[nw[0]]
		out[i].VPCCIDRs = vpcs[nw[1]]
		for _, gid := range instGroups[out[i].InstanceID] {
			if g, ok := groups[gid]; ok {
				out[i].SecurityGroups = append(out[i].SecurityGroups, g)
			} else {
				out[i].SecurityGroups = append(out[i].SecurityGroups, SecurityGroup{ID: gid})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// securityGroups describes the groups in batches (the API takes up to 200 ids
// a call; 100 keeps requests small).
func securityGroups(ctx context.Context, api EC2API, ids map[string]bool) (map[string]SecurityGroup, error) {
	all := make([]string, 0, len(ids))
	for id := range ids {
		all = append(all, id)
	}
	sort.Strings(all)
	out := map[string]SecurityGroup{}
	for len(all) > 0 {
		n := min(100, len(all))
		batch := all[:n]
		all = all[n:]
		p := ec2.NewDescribeSecurityGroupsPaginator(api, &ec2.DescribeSecurityGroupsInput{GroupIds: batch})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("EC2 DescribeSecurityGroups: %w (the caller needs ec2:DescribeSecurityGroups)", err)
			}
			for _, g := range page.SecurityGroups {
				sg := SecurityGroup{ID: aws.ToString(g.GroupId), Name: aws.ToString(g.GroupName)}
				for _, perm := range g.IpPermissions {
					r := IngressRule{Proto: aws.ToString(perm.IpProtocol), FromPort: -1, ToPort: -1, CIDRs: []string{}, IPv6CIDRs: []string{}}
					if r.Proto != "-1" {
						r.FromPort = int(aws.ToInt32(perm.FromPort))
						r.ToPort = int(aws.ToInt32(perm.ToPort))
					}
					for _, rg := range perm.IpRanges {
						r.CIDRs = append(r.CIDRs, aws.ToString(rg.CidrIp))
					}
					for _, rg := range perm.Ipv6Ranges {
						r.IPv6CIDRs = append(r.IPv6CIDRs, aws.ToString(rg.CidrIpv6))
					}
					sg.Ingress = append(sg.Ingress, r)
				}
				out[sg.ID] = sg
			}
		}
	}
	return out, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// networks maps subnet ids to their CIDR and VPC ids to all their CIDRs.
func networks(ctx context.Context, api EC2API, subnetIDs, vpcIDs map[string]bool) (map[string]string, map[string][]string, error) {
	subnets := map[string]string{}
	vpcs := map[string][]string{}
	if len(subnetIDs) > 0 {
		p := ec2.NewDescribeSubnetsPaginator(api, &ec2.DescribeSubnetsInput{SubnetIds: keys(subnetIDs)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, nil, fmt.Errorf("EC2 DescribeSubnets: %w (the caller needs ec2:DescribeSubnets)", err)
			}
			for _, sn := range page.Subnets {
				subnets[aws.ToString(sn.SubnetId)] = aws.ToString(sn.CidrBlock)
			}
		}
	}
	if len(vpcIDs) > 0 {
		p := ec2.NewDescribeVpcsPaginator(api, &ec2.DescribeVpcsInput{VpcIds: keys(vpcIDs)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, nil, fmt.Errorf("EC2 DescribeVpcs: %w (the caller needs ec2:DescribeVpcs)", err)
			}
			for _, v := range page.Vpcs {
				id := aws.ToString(v.VpcId)
				seen := map[string]bool{}
				add := func(c string) {
					if c != "" && !seen[c] {
						seen[c] = true
						vpcs[id] = append(vpcs[id], c)
					}
				}
				add(aws.ToString(v.CidrBlock))
				for _, a := range v.CidrBlockAssociationSet {
					add(aws.ToString(a.CidrBlock))
				}
			}
		}
	}
	return subnets, vpcs, nil
}
