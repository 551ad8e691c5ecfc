package builder

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

func stateErr(t *testing.T, s multistep.StateBag) string {
	t.Helper()
	v, ok := s.GetOk(stateError)
	if !ok {
		t.Fatal("step halted without recording an error")
	}
	return v.(error).Error()
}

func TestStepPreValidate(t *testing.T) {
	existing := ec2types.Image{ImageId: aws.String("ami-0aaaaaaaaaaaaaaaa"), Name: aws.String("es-8")}
	cases := []struct {
		name    string
		step    stepPreValidate
		images  map[string][]ec2types.Image
		want    multistep.StepAction
		errPart string
	}{
		{"name free", stepPreValidate{Region: "eu-west-2", Regions: []string{"eu-west-1"}, AMIName: "es-8"}, nil, multistep.ActionContinue, ""},
		{"name taken in build region", stepPreValidate{Region: "eu-west-2", AMIName: "es-8"}, map[string][]ec2types.Image{"eu-west-2": {existing}}, multistep.ActionHalt, "already exists in eu-west-2"},
		{"name taken in copy region", stepPreValidate{Region: "eu-west-2", Regions: []string{"eu-west-1"}, AMIName: "es-8"}, map[string][]ec2types.Image{"eu-west-1": {existing}}, multistep.ActionHalt, "already exists in eu-west-1"},
		{"forced", stepPreValidate{Region: "eu-west-2", AMIName: "es-8", ForceDeregister: true}, map[string][]ec2types.Image{"eu-west-2": {existing}}, multistep.ActionContinue, ""},
		{"region not enabled", stepPreValidate{Region: "eu-west-2", Regions: []string{"ap-east-1"}, AMIName: "es-8"}, nil, multistep.ActionHalt, "ap-east-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": newFakeEC2(), "eu-west-1": newFakeEC2()}}
			d.byRegion["eu-west-2"].regions = []string{"eu-west-1", "eu-west-2"}
			for r, imgs := range tc.images {
				d.byRegion[r].images = imgs
			}
			s := newState(d)
			if got := tc.step.Run(t.Context(), s); got != tc.want {
				t.Fatalf("Run = %v, want %v (error: %v)", got, tc.want, s.Get(stateError))
			}
			if tc.errPart != "" && !strings.Contains(stateErr(t, s), tc.errPart) {
				t.Fatalf("error %q lacks %q", stateErr(t, s), tc.errPart)
			}
		})
	}
}

func TestStepSourceAMI(t *testing.T) {
	img := func(id, date string) ec2types.Image {
		return ec2types.Image{ImageId: aws.String(id), Name: aws.String("debian-12-" + id), CreationDate: aws.String(date), RootDeviceType: ec2types.DeviceTypeEbs, OwnerId: aws.String("123456789012")}
	}
	imgs := []ec2types.Image{img("ami-0000000000000000a", "2026-01-01T00:00:00.000Z"), img("ami-0000000000000000b", "2026-03-01T00:00:00.000Z"), img("ami-0000000000000000c", "2026-02-01T00:00:00.000Z")}
	filter := AmiFilterOptions{Filters: map[string]string{"name": "*"}, Owners: []string{"123456789012"}}

	t.Run("most recent wins", func(t *testing.T) {
		f := newFakeEC2()
		f.images = imgs
		s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
		fl := filter
		fl.MostRecent = true
		if got := (&stepSourceAMI{Region: "eu-west-2", Filter: fl}).Run(t.Context(), s); got != multistep.ActionContinue {
			t.Fatalf("Run halted: %v", s.Get(stateError))
		}
		chosen := s.Get(stateSourceImage).(ec2types.Image)
		if aws.ToString(chosen.ImageId) != "ami-0000000000000000b" {
			t.Errorf("chose %s, want the newest ami-...b", aws.ToString(chosen.ImageId))
		}
		if len(f.lastDI.Owners) != 1 || f.lastDI.Owners[0] != "123456789012" {
			t.Errorf("owners not passed to DescribeImages: %v", f.lastDI.Owners)
		}
		gd := sourceGeneratedData("eu-west-2", chosen)
		if gd["SourceAMI"] != "ami-0000000000000000b" || gd["BuildRegion"] != "eu-west-2" || gd["SourceAMIName"] == "" {
			t.Errorf("generated data = %v", gd)
		}
	})
	t.Run("several matches without most_recent", func(t *testing.T) {
		f := newFakeEC2()
		f.images = imgs
		s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
		if got := (&stepSourceAMI{Region: "eu-west-2", Filter: filter}).Run(t.Context(), s); got != multistep.ActionHalt {
			t.Fatal("Run continued with an ambiguous filter")
		}
		if !strings.Contains(stateErr(t, s), "most_recent") {
			t.Errorf("error does not suggest most_recent: %s", stateErr(t, s))
		}
	})
	t.Run("id not found", func(t *testing.T) {
		s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": newFakeEC2()}})
		if got := (&stepSourceAMI{Region: "eu-west-2", SourceAMI: "ami-0123456789abcdef0"}).Run(t.Context(), s); got != multistep.ActionHalt {
			t.Fatal("Run continued without a source image")
		}
		if !strings.Contains(stateErr(t, s), "source_ami") {
			t.Errorf("error does not name source_ami: %s", stateErr(t, s))
		}
	})
	t.Run("instance-store image refused", func(t *testing.T) {
		f := newFakeEC2()
		is := img("ami-0000000000000000d", "2026-01-01T00:00:00.000Z")
		is.RootDeviceType = ec2types.DeviceTypeInstanceStore
		f.images = []ec2types.Image{is}
		s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
		if got := (&stepSourceAMI{Region: "eu-west-2", SourceAMI: "ami-0000000000000000d"}).Run(t.Context(), s); got != multistep.ActionHalt {
			t.Fatal("Run accepted an instance-store image")
		}
	})
}

func TestStepKeyPair(t *testing.T) {
	t.Run("creates ed25519, cleanup deletes", func(t *testing.T) {
		f := newFakeEC2()
		s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
		comm := &communicator.Config{Type: "ssh"}
		comm.SSHTemporaryKeyPairType = "ed25519"
		step := &stepKeyPair{Region: "eu-west-2", Comm: comm, Tags: map[string]string{"Project": "aardvark"}}
		if got := step.Run(t.Context(), s); got != multistep.ActionContinue {
			t.Fatalf("Run halted: %v", s.Get(stateError))
		}
		if len(f.keys) != 1 {
			t.Fatalf("%d key pairs exist, want 1", len(f.keys))
		}
		for _, in := range f.keys {
			if in.KeyType != ec2types.KeyTypeEd25519 {
				t.Errorf("key type %s, want ed25519", in.KeyType)
			}
			if len(in.TagSpecifications) != 1 || aws.ToString(in.TagSpecifications[0].Tags[0].Key) != "Project" {
				t.Errorf("key pair not tagged on create: %+v", in.TagSpecifications)
			}
		}
		if len(comm.SSHPrivateKey) == 0 || comm.SSHKeyPairName == "" {
			t.Error("communicator did not receive the key")
		}
		step.Cleanup(s)
		if len(f.keys) != 0 {
			t.Errorf("%d key pairs left after cleanup", len(f.keys))
		}
	})
	t.Run("failed create is still cleaned up", func(t *testing.T) {
		f := newFakeEC2()
		f.failOnce["CreateKeyPair"] = []error{errors.New("connection reset")}
		s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
		step := &stepKeyPair{Region: "eu-west-2", Comm: &communicator.Config{Type: "ssh"}}
		if got := step.Run(t.Context(), s); got != multistep.ActionHalt {
			t.Fatal("Run continued after CreateKeyPair failed")
		}
		step.Cleanup(s)
		if f.calls["DeleteKeyPair"] != 1 {
			t.Errorf("DeleteKeyPair called %d times, want 1 (the name was saved before the error)", f.calls["DeleteKeyPair"])
		}
	})
	t.Run("user key: nothing created", func(t *testing.T) {
		f := newFakeEC2()
		s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
		comm := &communicator.Config{Type: "ssh"}
		comm.SSHPrivateKeyFile = "/home/build/.ssh/id_ed25519"
		step := &stepKeyPair{Region: "eu-west-2", Comm: comm}
		if got := step.Run(t.Context(), s); got != multistep.ActionContinue {
			t.Fatal("Run halted")
		}
		step.Cleanup(s)
		if f.calls["CreateKeyPair"]+f.calls["DeleteKeyPair"] != 0 {
			t.Errorf("calls made with a user key: %v", f.calls)
		}
	})
}

func TestStepSecurityGroup(t *testing.T) {
	run := &RunConfig{TemporarySGSourceCidrs: []string{"203.0.113.0/24", "2001:db8::/32"}, SSHInterface: "public_ip"}
	t.Run("SSH from CIDRs only; cleanup retries DependencyViolation", func(t *testing.T) {
		f := newFakeEC2()
		f.failOnce["DeleteSecurityGroup"] = []error{apiErr("DependencyViolation"), apiErr("DependencyViolation")}
		s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
		s.Put(stateVpcID, "vpc-0123456789abcdef0")
		step := &stepSecurityGroup{Region: "eu-west-2", RunConfig: run, SSHPort: 22, RetryDelay: time.Millisecond}
		if got := step.Run(t.Context(), s); got != multistep.ActionContinue {
			t.Fatalf("Run halted: %v", s.Get(stateError))
		}
		if len(f.groups) != 1 {
			t.Fatalf("%d groups, want 1", len(f.groups))
		}
		for id, in := range f.groups {
			if aws.ToString(in.VpcId) != "vpc-0123456789abcdef0" {
				t.Errorf("group created in VPC %q", aws.ToString(in.VpcId))
			}
			perms := f.ingress[id]
			if len(perms) != 1 || aws.ToInt32(perms[0].FromPort) != 22 || aws.ToInt32(perms[0].ToPort) != 22 {
				t.Fatalf("ingress = %+v, want port 22 only", perms)
			}
			if len(perms[0].IpRanges) != 1 || aws.ToString(perms[0].IpRanges[0].CidrIp) != "203.0.113.0/24" ||
				len(perms[0].Ipv6Ranges) != 1 || aws.ToString(perms[0].Ipv6Ranges[0].CidrIpv6) != "2001:db8::/32" {
				t.Errorf("ingress ranges = %+v / %+v", perms[0].IpRanges, perms[0].Ipv6Ranges)
			}
		}
		step.Cleanup(s)
		if len(f.groups) != 0 {
			t.Errorf("group left after cleanup")
		}
		if f.calls["DeleteSecurityGroup"] != 3 {
			t.Errorf("DeleteSecurityGroup called %d times, want 3 (two DependencyViolation)", f.calls["DeleteSecurityGroup"])
		}
	})
	t.Run("authorize fails: group still removed", func(t *testing.T) {
		f := newFakeEC2()
		f.failOnce["AuthorizeSecurityGroupIngress"] = []error{apiErr("UnauthorizedOperation")}
		s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
		step := &stepSecurityGroup{Region: "eu-west-2", RunConfig: run, SSHPort: 22, RetryDelay: time.Millisecond}
		if got := step.Run(t.Context(), s); got != multistep.ActionHalt {
			t.Fatal("Run continued after authorize failed")
		}
		step.Cleanup(s)
		if len(f.groups) != 0 {
			t.Errorf("%d groups left", len(f.groups))
		}
	})
	t.Run("cleanup gives up and reports", func(t *testing.T) {
		f := newFakeEC2()
		s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
		step := &stepSecurityGroup{Region: "eu-west-2", RunConfig: run, SSHPort: 22, RetryDelay: time.Millisecond, RetryTimes: 3}
		if got := step.Run(t.Context(), s); got != multistep.ActionContinue {
			t.Fatal("Run halted")
		}
		f.failOnce["DeleteSecurityGroup"] = []error{apiErr("DependencyViolation"), apiErr("DependencyViolation"), apiErr("DependencyViolation"), apiErr("DependencyViolation")}
		step.Cleanup(s)
		v, ok := s.GetOk("cleanup_errors")
		if !ok || !strings.Contains(v.([]error)[0].Error(), "delete-security-group") {
			t.Errorf("no actionable cleanup error recorded: %v", v)
		}
	})
	t.Run("session_manager: no group", func(t *testing.T) {
		f := newFakeEC2()
		s := newState(&fakeDriver{byRegion: map[string]*fakeEC2{"eu-west-2": f}})
		step := &stepSecurityGroup{Region: "eu-west-2", RunConfig: &RunConfig{SSHInterface: SSHInterfaceSessionManager}, SSHPort: 22}
		if got := step.Run(t.Context(), s); got != multistep.ActionContinue || len(f.groups) != 0 {
			t.Fatalf("Run = %v with %d groups, want no group", got, len(f.groups))
		}
	})
}
