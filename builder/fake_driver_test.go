package builder

import (
	"context"
	"fmt"
	"path"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// fakeEC2 is an in-memory EC2 with per-operation error injection. Calls it
// does not implement panic through the nil embedded interface, so a step
// calling something unexpected fails its test loudly.
type fakeEC2 struct {
	EC2API
	mu           sync.Mutex
	images       []ec2types.Image
	regions      []string
	keys         map[string]ec2.CreateKeyPairInput
	groups       map[string]*ec2.CreateSecurityGroupInput
	ingress      map[string][]ec2types.IpPermission
	failOnce     map[string][]error // op -> errors returned before succeeding
	calls        map[string]int
	lastDI       *ec2.DescribeImagesInput
	nextID       int
	net          fakeNet
	instances    map[string]*ec2types.Instance
	lastRun      *ec2.RunInstancesInput
	snapshots    map[string]bool
	lastCreate   *ec2.CreateImageInput
	lastCopy     *ec2.CopyImageInput
	modifies     []*ec2.ModifyImageAttributeInput
	deprecations []*ec2.EnableImageDeprecationInput
	tagged       []string
}

func newFakeEC2() *fakeEC2 {
	return &fakeEC2{
		keys:      map[string]ec2.CreateKeyPairInput{},
		groups:    map[string]*ec2.CreateSecurityGroupInput{},
		ingress:   map[string][]ec2types.IpPermission{},
		failOnce:  map[string][]error{},
		calls:     map[string]int{},
		instances: map[string]*ec2types.Instance{},
		snapshots: map[string]bool{},
	}
}

func apiErr(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "injected " + code}
}

// fail returns the next injected error for op, if any; a nil entry lets
// that call succeed, so an error can target the k-th call.
func (f *fakeEC2) fail(op string) error {
	f.calls[op]++
	if errs := f.failOnce[op]; len(errs) > 0 {
		f.failOnce[op] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *fakeEC2) DescribeRegions(_ context.Context, _ *ec2.DescribeRegionsInput, _ ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DescribeRegions"); err != nil {
		return nil, err
	}
	out := &ec2.DescribeRegionsOutput{}
	for _, r := range f.regions {
		out.Regions = append(out.Regions, ec2types.Region{RegionName: aws.String(r)})
	}
	return out, nil
}

func (f *fakeEC2) DescribeImages(_ context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastDI = in
	if err := f.fail("DescribeImages"); err != nil {
		return nil, err
	}
	out := &ec2.DescribeImagesOutput{}
	for i := range f.images {
		if len(in.ImageIds) > 0 && aws.ToString(f.images[i].ImageId) == in.ImageIds[0] && f.images[i].State == ec2types.ImageStatePending {
			f.images[i].State = ec2types.ImageStateAvailable
		}
	}
	for _, img := range f.images {
		if len(in.ImageIds) > 0 && aws.ToString(img.ImageId) != in.ImageIds[0] {
			continue
		}
		match := true
		for _, flt := range in.Filters {
			if aws.ToString(flt.Name) == "name" {
				if ok, _ := path.Match(flt.Values[0], aws.ToString(img.Name)); !ok {
					match = false
				}
			}
		}
		if match {
			out.Images = append(out.Images, img)
		}
	}
	return out, nil
}

func (f *fakeEC2) CreateKeyPair(_ context.Context, in *ec2.CreateKeyPairInput, _ ...func(*ec2.Options)) (*ec2.CreateKeyPairOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("CreateKeyPair"); err != nil {
		return nil, err
	}
	f.keys[aws.ToString(in.KeyName)] = *in
	return &ec2.CreateKeyPairOutput{KeyName: in.KeyName, KeyMaterial: aws.String("-----BEGIN OPENSSH PRIVATE KEY-----\nstand-in\n")}, nil
}

func (f *fakeEC2) DeleteKeyPair(_ context.Context, in *ec2.DeleteKeyPairInput, _ ...func(*ec2.Options)) (*ec2.DeleteKeyPairOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DeleteKeyPair"); err != nil {
		return nil, err
	}
	delete(f.keys, aws.ToString(in.KeyName))
	return &ec2.DeleteKeyPairOutput{}, nil
}

func (f *fakeEC2) CreateSecurityGroup(_ context.Context, in *ec2.CreateSecurityGroupInput, _ ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("CreateSecurityGroup"); err != nil {
		return nil, err
	}
	f.nextID++
	id := fmt.Sprintf("sg-%017x", f.nextID)
	f.groups[id] = in
	return &ec2.CreateSecurityGroupOutput{GroupId: aws.String(id)}, nil
}

func (f *fakeEC2) AuthorizeSecurityGroupIngress(_ context.Context, in *ec2.AuthorizeSecurityGroupIngressInput, _ ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("AuthorizeSecurityGroupIngress"); err != nil {
		return nil, err
	}
	id := aws.ToString(in.GroupId)
	if _, ok := f.groups[id]; !ok {
		return nil, apiErr("InvalidGroup.NotFound")
	}
	f.ingress[id] = append(f.ingress[id], in.IpPermissions...)
	return &ec2.AuthorizeSecurityGroupIngressOutput{}, nil
}

func (f *fakeEC2) DeleteSecurityGroup(_ context.Context, in *ec2.DeleteSecurityGroupInput, _ ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DeleteSecurityGroup"); err != nil {
		return nil, err
	}
	id := aws.ToString(in.GroupId)
	if _, ok := f.groups[id]; !ok {
		return nil, apiErr("InvalidGroup.NotFound")
	}
	delete(f.groups, id)
	delete(f.ingress, id)
	return &ec2.DeleteSecurityGroupOutput{}, nil
}

// fakeDriver serves one fakeEC2 (and fakeSSM) per region.
type fakeDriver struct {
	byRegion map[string]*fakeEC2
	ssm      map[string]*fakeSSM
}

func (d *fakeDriver) EC2(region string) EC2API {
	if f, ok := d.byRegion[region]; ok {
		return f
	}
	panic("fake driver: no EC2 for region " + region)
}

func (d *fakeDriver) SSM(region string) SSMAPI {
	if d.ssm == nil {
		d.ssm = map[string]*fakeSSM{}
	}
	if d.ssm[region] == nil {
		d.ssm[region] = &fakeSSM{params: map[string]*ssm.PutParameterInput{}}
	}
	return d.ssm[region]
}

func newState(d Driver) *multistep.BasicStateBag {
	s := new(multistep.BasicStateBag)
	s.Put(stateDriver, d)
	return s
}

// Network and instance parts of the fake.
type fakeNet struct {
	subnets []ec2types.Subnet
	vpcs    []ec2types.Vpc
}

func (f *fakeEC2) DescribeSubnets(_ context.Context, in *ec2.DescribeSubnetsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DescribeSubnets"); err != nil {
		return nil, err
	}
	out := &ec2.DescribeSubnetsOutput{}
	for _, s := range f.net.subnets {
		if len(in.SubnetIds) > 0 && aws.ToString(s.SubnetId) != in.SubnetIds[0] {
			continue
		}
		ok := true
		for _, fl := range in.Filters {
			if aws.ToString(fl.Name) == "vpc-id" && aws.ToString(s.VpcId) != fl.Values[0] {
				ok = false
			}
		}
		if ok {
			out.Subnets = append(out.Subnets, s)
		}
	}
	return out, nil
}

func (f *fakeEC2) DescribeVpcs(_ context.Context, _ *ec2.DescribeVpcsInput, _ ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DescribeVpcs"); err != nil {
		return nil, err
	}
	return &ec2.DescribeVpcsOutput{Vpcs: f.net.vpcs}, nil
}

func (f *fakeEC2) RunInstances(_ context.Context, in *ec2.RunInstancesInput, _ ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastRun = in
	if err := f.fail("RunInstances"); err != nil {
		return nil, err
	}
	f.nextID++
	id := fmt.Sprintf("i-%017x", f.nextID)
	inst := ec2types.Instance{InstanceId: aws.String(id), State: &ec2types.InstanceState{Name: ec2types.InstanceStateNamePending}}
	f.instances[id] = &inst
	return &ec2.RunInstancesOutput{Instances: []ec2types.Instance{inst}}, nil
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DescribeInstances"); err != nil {
		return nil, err
	}
	out := &ec2.DescribeInstancesOutput{}
	for _, id := range in.InstanceIds {
		inst, ok := f.instances[id]
		if !ok {
			return nil, apiErr("InvalidInstanceID.NotFound")
		}
		if inst.State.Name == ec2types.InstanceStateNamePending {
			inst.State.Name = ec2types.InstanceStateNameRunning
			inst.PublicIpAddress = aws.String("192.0.2.10")
		} else if inst.State.Name == ec2types.InstanceStateNameShuttingDown {
			inst.State.Name = ec2types.InstanceStateNameTerminated
		}
		out.Reservations = append(out.Reservations, ec2types.Reservation{Instances: []ec2types.Instance{*inst}})
	}
	return out, nil
}

func (f *fakeEC2) TerminateInstances(_ context.Context, in *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("TerminateInstances"); err != nil {
		return nil, err
	}
	for _, id := range in.InstanceIds {
		if inst, ok := f.instances[id]; ok {
			inst.State.Name = ec2types.InstanceStateNameShuttingDown
		}
	}
	return &ec2.TerminateInstancesOutput{}, nil
}

// live counts instances not terminated or terminating (EC2 finishes an
// accepted termination by itself).
func (f *fakeEC2) live() int {
	n := 0
	for _, i := range f.instances {
		if i.State.Name != ec2types.InstanceStateNameTerminated && i.State.Name != ec2types.InstanceStateNameShuttingDown {
			n++
		}
	}
	return n
}

// Image parts of the fake.

func (f *fakeEC2) newImage(name string) string {
	f.nextID++
	id := fmt.Sprintf("ami-%017x", f.nextID)
	snap := fmt.Sprintf("snap-%017x", f.nextID)
	f.snapshots[snap] = true
	f.images = append(f.images, ec2types.Image{
		ImageId: aws.String(id), Name: aws.String(name), State: ec2types.ImageStatePending,
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{SnapshotId: aws.String(snap)}}},
	})
	return id
}

func (f *fakeEC2) CreateImage(_ context.Context, in *ec2.CreateImageInput, _ ...func(*ec2.Options)) (*ec2.CreateImageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastCreate = in
	if err := f.fail("CreateImage"); err != nil {
		return nil, err
	}
	return &ec2.CreateImageOutput{ImageId: aws.String(f.newImage(aws.ToString(in.Name)))}, nil
}

func (f *fakeEC2) CopyImage(_ context.Context, in *ec2.CopyImageInput, _ ...func(*ec2.Options)) (*ec2.CopyImageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastCopy = in
	if err := f.fail("CopyImage"); err != nil {
		return nil, err
	}
	return &ec2.CopyImageOutput{ImageId: aws.String(f.newImage(aws.ToString(in.Name)))}, nil
}

func (f *fakeEC2) DeregisterImage(_ context.Context, in *ec2.DeregisterImageInput, _ ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DeregisterImage"); err != nil {
		return nil, err
	}
	for i, img := range f.images {
		if aws.ToString(img.ImageId) == aws.ToString(in.ImageId) {
			f.images = append(f.images[:i], f.images[i+1:]...)
			return &ec2.DeregisterImageOutput{}, nil
		}
	}
	return nil, apiErr("InvalidAMIID.NotFound")
}

func (f *fakeEC2) DeleteSnapshot(_ context.Context, in *ec2.DeleteSnapshotInput, _ ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DeleteSnapshot"); err != nil {
		return nil, err
	}
	if !f.snapshots[aws.ToString(in.SnapshotId)] {
		return nil, apiErr("InvalidSnapshot.NotFound")
	}
	delete(f.snapshots, aws.ToString(in.SnapshotId))
	return &ec2.DeleteSnapshotOutput{}, nil
}

func (f *fakeEC2) ModifyImageAttribute(_ context.Context, in *ec2.ModifyImageAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("ModifyImageAttribute"); err != nil {
		return nil, err
	}
	f.modifies = append(f.modifies, in)
	return &ec2.ModifyImageAttributeOutput{}, nil
}

func (f *fakeEC2) EnableImageDeprecation(_ context.Context, in *ec2.EnableImageDeprecationInput, _ ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("EnableImageDeprecation"); err != nil {
		return nil, err
	}
	f.deprecations = append(f.deprecations, in)
	return &ec2.EnableImageDeprecationOutput{}, nil
}

func (f *fakeEC2) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("CreateTags"); err != nil {
		return nil, err
	}
	f.tagged = append(f.tagged, in.Resources...)
	return &ec2.CreateTagsOutput{}, nil
}

func (f *fakeEC2) StopInstances(_ context.Context, in *ec2.StopInstancesInput, _ ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("StopInstances"); err != nil {
		return nil, err
	}
	for _, id := range in.InstanceIds {
		if inst, ok := f.instances[id]; ok {
			inst.State.Name = ec2types.InstanceStateNameStopped
		}
	}
	return &ec2.StopInstancesOutput{}, nil
}

type fakeSSM struct {
	SSMAPI
	params map[string]*ssm.PutParameterInput
}

func (s *fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	p, ok := s.params[aws.ToString(in.Name)]
	if !ok {
		return nil, &ssmtypes.ParameterNotFound{Message: aws.String("stand-in: not found")}
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Name: p.Name, Value: p.Value}}, nil
}

func (s *fakeSSM) DeleteParameter(_ context.Context, in *ssm.DeleteParameterInput, _ ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error) {
	delete(s.params, aws.ToString(in.Name))
	return &ssm.DeleteParameterOutput{}, nil
}

func (s *fakeSSM) PutParameter(_ context.Context, in *ssm.PutParameterInput, _ ...func(*ssm.Options)) (*ssm.PutParameterOutput, error) {
	s.params[aws.ToString(in.Name)] = in
	return &ssm.PutParameterOutput{}, nil
}

func (f *fakeEC2) DescribeSecurityGroups(_ context.Context, in *ec2.DescribeSecurityGroupsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DescribeSecurityGroups"); err != nil {
		return nil, err
	}
	out := &ec2.DescribeSecurityGroupsOutput{}
	for id, g := range f.groups {
		for _, fl := range in.Filters {
			if aws.ToString(fl.Name) == "group-name" && aws.ToString(g.GroupName) == fl.Values[0] {
				out.SecurityGroups = append(out.SecurityGroups, ec2types.SecurityGroup{GroupId: aws.String(id)})
			}
		}
	}
	return out, nil
}
