package target

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

// TestDiscoverEC2 runs discovery against the EC2 emulator through the real
// SDK client: running instances with the tag, their security groups and
// ingress (including 9200 open to the world, which policies flag).
func TestDiscoverEC2(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := ec2emu.New(ec2emu.Options{})
	url := srv.Start()
	defer srv.Close()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")))
	if err != nil {
		t.Fatal(err)
	}
	c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(url) })
	ami, err := srv.AddImage(ec2emu.ImageSpec{Name: "esbake-test"})
	if err != nil {
		t.Fatal(err)
	}
	sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("es-nodes"), Description: aws.String("es")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: sg.GroupId,
		IpPermissions: []types.IpPermission{
			{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(9200), ToPort: aws.Int32(9200),
				IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}, Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("::/0")}}},
			{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(9300), ToPort: aws.Int32(9300), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/16")}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	launch := func(n int32, tags map[string]string) {
		var ts []types.Tag
		for k, v := range tags {
			ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		_, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(n), MaxCount: aws.Int32(n),
			InstanceType: types.InstanceTypeT3Medium, SecurityGroupIds: []string{aws.ToString(sg.GroupId)},
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: ts}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	launch(3, map[string]string{"es_cluster": "aardvark-cluster", "Name": "es-data"})
	launch(2, map[string]string{"es_cluster": "other"})
	// The emulator shows one pending answer before running.
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatal(err)
	}

	ts, err := DiscoverEC2(ctx, c, EC2Options{Tags: map[string]string{"es_cluster": "aardvark-cluster"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 3 {
		t.Fatalf("discovered %d instances, want 3: %+v", len(ts), ts)
	}
	for _, tg := range ts {
		if tg.Host == "" || tg.InstanceID == "" || tg.Tags["es_cluster"] != "aardvark-cluster" || tg.Transport != SSH {
			t.Errorf("target = %+v", tg)
		}
		if tg.SubnetCIDR == "" || len(tg.VPCCIDRs) == 0 || tg.VPCCIDRs[0] != "10.0.0.0/16" {
			t.Errorf("network not recorded: subnet %q vpc %v", tg.SubnetCIDR, tg.VPCCIDRs)
		}
		if len(tg.SecurityGroups) != 1 || tg.SecurityGroups[0].Name != "es-nodes" || len(tg.SecurityGroups[0].Ingress) != 2 {
			t.Fatalf("security groups = %+v", tg.SecurityGroups)
		}
		var open bool
		for _, r := range tg.SecurityGroups[0].Ingress {
			if r.FromPort == 9200 && r.Proto == "tcp" && len(r.CIDRs) == 1 && r.CIDRs[0] == "0.0.0.0/0" {
				open = true
			}
		}
		if !open {
			t.Errorf("9200 open to the world not recorded: %+v", tg.SecurityGroups[0].Ingress)
		}
	}
	// --address public: the emulator gives public IPs from 192.0.2.0/24 only on
	// public subnets; either way every instance is still returned.
	pub, err := DiscoverEC2(ctx, c, EC2Options{Tags: map[string]string{"es_cluster": "aardvark-cluster"}, Address: "public", Transport: SSM})
	if err != nil || len(pub) != 3 || pub[0].Transport != SSM {
		t.Errorf("public discovery = %+v, %v", pub, err)
	}
	if _, err := DiscoverEC2(ctx, c, EC2Options{}); err == nil {
		t.Error("discovery without tags must be refused")
	}
}

// fakeEC2 serves canned pages, for what the emulator does not model (IPv6
// ranges, all-protocol rules, pagination across pages).
type fakeEC2 struct{ calls int }

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.calls++
	mk := func(id, ip string, state types.InstanceStateName) types.Instance {
		return types.Instance{InstanceId: aws.String(id), PrivateIpAddress: aws.String(ip), State: &types.InstanceState{Name: state},
			SecurityGroups: []types.GroupIdentifier{{GroupId: aws.String("sg-1")}}}
	}
	if in.NextToken == nil {
		return &ec2.DescribeInstancesOutput{NextToken: aws.String("p2"), Reservations: []types.Reservation{{Instances: []types.Instance{mk("i-1", "10.0.0.1", types.InstanceStateNameRunning)}}}}, nil
	}
	return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: []types.Instance{mk("i-2", "10.0.0.2", types.InstanceStateNameRunning), mk("i-3", "10.0.0.3", types.InstanceStateNameStopping)}}}}, nil
}

func (f *fakeEC2) DescribeSecurityGroups(_ context.Context, in *ec2.DescribeSecurityGroupsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	return &ec2.DescribeSecurityGroupsOutput{SecurityGroups: []types.SecurityGroup{{GroupId: aws.String("sg-1"), GroupName: aws.String("es"), IpPermissions: []types.IpPermission{
		{IpProtocol: aws.String("-1"), Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("::/0")}}},
	}}}}, nil
}

func (f *fakeEC2) DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	return &ec2.DescribeSubnetsOutput{}, nil
}

func (f *fakeEC2) DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	return &ec2.DescribeVpcsOutput{}, nil
}

func TestDiscoverEC2PagesAndIPv6(t *testing.T) {
	f := &fakeEC2{}
	ts, err := DiscoverEC2(context.Background(), f, EC2Options{Tags: map[string]string{"es_cluster": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.calls != 2 || len(ts) != 2 {
		t.Fatalf("want 2 pages and 2 running instances, got %d calls, %+v", f.calls, ts)
	}
	r := ts[0].SecurityGroups[0].Ingress[0]
	if r.Proto != "-1" || r.FromPort != -1 || r.ToPort != -1 || len(r.IPv6CIDRs) != 1 || r.IPv6CIDRs[0] != "::/0" {
		t.Errorf("all-traffic IPv6 rule = %+v", r)
	}
}
