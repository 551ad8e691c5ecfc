package builder

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
)

func TestStepNetwork(t *testing.T) {
	subnet := func(id, vpc string, free int32) ec2types.Subnet {
		return ec2types.Subnet{SubnetId: aws.String(id), VpcId: aws.String(vpc), AvailableIpAddressCount: aws.Int32(free)}
	}
	subnets := []ec2types.Subnet{
		subnet("subnet-0000000000000000a", "vpc-0000000000000000a", 10),
		subnet("subnet-0000000000000000b", "vpc-0000000000000000a", 200),
		subnet("subnet-0000000000000000c", "vpc-0000000000000000c", 50),
	}
	cases := []struct {
		name       string
		rc         RunConfig
		wantSubnet string
		wantErr    string
	}{
		{"nothing set: default VPC", RunConfig{}, "", ""},
		{"subnet id", RunConfig{SubnetID: "subnet-0000000000000000c"}, "subnet-0000000000000000c", ""},
		{"vpc: most free subnet", RunConfig{VpcID: "vpc-0000000000000000a"}, "subnet-0000000000000000b", ""},
		{"filter most_free", RunConfig{SubnetFilter: SubnetFilterOptions{Filters: map[string]string{"tag:Tier": "build"}, MostFree: true}}, "subnet-0000000000000000b", ""},
		{"filter ambiguous", RunConfig{SubnetFilter: SubnetFilterOptions{Filters: map[string]string{"tag:Tier": "build"}}}, "", "subnet_filter"},
		{"subnet outside vpc", RunConfig{SubnetID: "subnet-0000000000000000c", VpcID: "vpc-0000000000000000a"}, "", "not in the configured VPC"},
		{"subnet missing", RunConfig{SubnetID: "subnet-0000000000000000f"}, "", "subnet_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeEC2()
			f.net.subnets = subnets
			s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
			got := (&stepNetwork{Region: "eu-west-2", RC: &tc.rc}).Run(t.Context(), s)
			if tc.wantErr != "" {
				if got != multistep.ActionHalt || !strings.Contains(stateErr(t, s), tc.wantErr) {
					t.Fatalf("Run = %v, error %v; want a halt naming %s", got, s.Get(stateError), tc.wantErr)
				}
				return
			}
			if got != multistep.ActionContinue {
				t.Fatalf("Run halted: %v", s.Get(stateError))
			}
			v, _ := s.GetOk(stateSubnetID)
			if gotSubnet, _ := v.(string); gotSubnet != tc.wantSubnet {
				t.Errorf("subnet = %q, want %q", gotSubnet, tc.wantSubnet)
			}
		})
	}
}

func runInstanceFixture(t *testing.T) (*fakeEC2, *multistep.BasicStateBag, *stepRunInstance) {
	t.Helper()
	f := newFakeEC2()
	s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
	s.Put(stateSourceImage, ec2types.Image{ImageId: aws.String("ami-0123456789abcdef0"), RootDeviceName: aws.String("/dev/xvda")})
	s.Put(stateSecurityGroup, "sg-0123456789abcdef0")
	s.Put(stateSubnetID, "subnet-0123456789abcdef0")
	rc := &RunConfig{
		InstanceType: "m6i.large", TemporarySGSourceCidrs: []string{"203.0.113.0/24"},
		RunTags: map[string]string{"Project": "aardvark"}, RunVolumeTags: map[string]string{"Data": "es"},
		UserData: "#!/bin/sh\necho stand-in user script\n",
	}
	if errs := rc.Prepare(); len(errs) > 0 {
		t.Fatal(errs)
	}
	data := BlockDevice{DeviceName: "/dev/sdf", VolumeSize: 100}
	if errs := data.prepare("d"); len(errs) > 0 {
		t.Fatal(errs)
	}
	comm := &communicator.Config{Type: "ssh"}
	comm.SSHKeyPairName = "packer_esbake_test"
	launch := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	step := &stepRunInstance{
		Region: "eu-west-2", RC: rc, Mappings: []BlockDevice{data}, Comm: comm,
		Polling: PollingConfig{DelaySeconds: 1, MaxAttempts: 3},
		Now:     func() time.Time { return launch },
	}
	return f, s, step
}

func TestStepRunInstanceLaunchesHardened(t *testing.T) {
	f, s, step := runInstanceFixture(t)
	if got := step.Run(t.Context(), s); got != multistep.ActionContinue {
		t.Fatalf("Run halted: %v", s.Get(stateError))
	}
	in := f.lastRun
	if in.MetadataOptions.HttpTokens != ec2types.HttpTokensStateRequired || aws.ToInt32(in.MetadataOptions.HttpPutResponseHopLimit) != 1 ||
		in.MetadataOptions.InstanceMetadataTags != ec2types.InstanceMetadataTagsStateEnabled {
		t.Errorf("metadata options = %+v, want IMDSv2 required, hop 1, tags enabled", in.MetadataOptions)
	}
	if in.InstanceInitiatedShutdownBehavior != ec2types.ShutdownBehaviorTerminate {
		t.Errorf("shutdown behaviour %q", in.InstanceInitiatedShutdownBehavior)
	}
	if aws.ToString(in.ClientToken) == "" {
		t.Error("RunInstances without a client token: a retried call could start a second instance")
	}
	if aws.ToString(in.KeyName) != "packer_esbake_test" || aws.ToString(in.SubnetId) != "subnet-0123456789abcdef0" ||
		len(in.SecurityGroupIds) != 1 || in.SecurityGroupIds[0] != "sg-0123456789abcdef0" {
		t.Errorf("key/subnet/groups = %q %q %v", aws.ToString(in.KeyName), aws.ToString(in.SubnetId), in.SecurityGroupIds)
	}
	if len(in.BlockDeviceMappings) != 2 {
		t.Fatalf("mappings = %d, want root + data", len(in.BlockDeviceMappings))
	}
	root := in.BlockDeviceMappings[0]
	if aws.ToString(root.DeviceName) != "/dev/xvda" || root.Ebs.VolumeType != ec2types.VolumeTypeGp3 || !aws.ToBool(root.Ebs.Encrypted) || !aws.ToBool(root.Ebs.DeleteOnTermination) {
		t.Errorf("root mapping = %+v / %+v, want encrypted gp3 deleted on termination", root, root.Ebs)
	}
	rts := map[ec2types.ResourceType]bool{}
	for _, ts := range in.TagSpecifications {
		rts[ts.ResourceType] = true
	}
	if !rts[ec2types.ResourceTypeInstance] || !rts[ec2types.ResourceTypeVolume] || !rts[ec2types.ResourceTypeNetworkInterface] {
		t.Errorf("tags on create missing for some resource types: %v", rts)
	}
	ud, err := base64.StdEncoding.DecodeString(aws.ToString(in.UserData))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Date(2026, 11, 25, 5, 0, 0, 0, time.UTC).Unix()
	for _, want := range []string{"text/cloud-config", "bootcmd", "systemctl poweroff", "text/x-shellscript", "stand-in user script", strconv.FormatInt(deadline, 10)} {
		if !strings.Contains(string(ud), want) {
			t.Errorf("user data lacks %q:\n%s", want, ud)
		}
	}
	if strings.Index(string(ud), "bootcmd") > strings.Index(string(ud), "stand-in user script") {
		t.Error("user's data comes before the self-terminate part")
	}
	if inst := s.Get(stateInstance).(ec2types.Instance); aws.ToString(inst.PublicIpAddress) == "" {
		t.Error("running instance (with its address) not recorded")
	}
	step.Cleanup(s)
	if f.live() != 0 {
		t.Errorf("%d instances still alive after cleanup", f.live())
	}
	if stateString(s, stateInstanceID) != "" {
		t.Error("instance id kept after a successful terminate")
	}
}

func TestStepRunInstancePublicIPUsesInterface(t *testing.T) {
	f, s, step := runInstanceFixture(t)
	step.RC.AssociatePublicIpAddress = config.TriTrue
	if got := step.Run(t.Context(), s); got != multistep.ActionContinue {
		t.Fatalf("Run halted: %v", s.Get(stateError))
	}
	in := f.lastRun
	if in.SubnetId != nil || len(in.SecurityGroupIds) != 0 || len(in.NetworkInterfaces) != 1 ||
		!aws.ToBool(in.NetworkInterfaces[0].AssociatePublicIpAddress) || aws.ToString(in.NetworkInterfaces[0].SubnetId) != "subnet-0123456789abcdef0" {
		t.Errorf("public IP request not on the network interface: %+v", in)
	}
	step.Cleanup(s)
}

func TestStepRunInstanceFailedWaitStillTerminates(t *testing.T) {
	f, s, step := runInstanceFixture(t)
	f.failOnce["DescribeInstances"] = []error{apiErr("UnauthorizedOperation")}
	if got := step.Run(t.Context(), s); got != multistep.ActionHalt {
		t.Fatal("Run continued although the wait failed")
	}
	if f.live() != 1 {
		t.Fatalf("%d live instances before cleanup, want 1", f.live())
	}
	step.Cleanup(s)
	if f.live() != 0 {
		t.Errorf("instance leaked: %d alive after cleanup", f.live())
	}
}
