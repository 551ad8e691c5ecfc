package ec2emu

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"golang.org/x/crypto/ssh"
)

func TestDescribeImagesFiltersAndPagination(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-east-1")
	base := e.seedImage("debian-12-cis-20260101")
	for i := 0; i < 4; i++ {
		if _, err := e.srv.AddImage(ImageSpec{Name: fmt.Sprintf("other-%d", i), OwnerAlias: "amazon"}); err != nil {
			t.Fatal(err)
		}
	}
	out := must(c.DescribeImages(e.ctx, &ec2.DescribeImagesInput{
		Owners:  []string{DefaultImageOwner},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"debian-12-cis-*"}}, {Name: aws.String("state"), Values: []string{"available"}}},
	}))(t)
	if len(out.Images) != 1 || aws.ToString(out.Images[0].ImageId) != base {
		t.Fatalf("want only %s, got %+v", base, out.Images)
	}
	im := out.Images[0]
	if im.ImdsSupport != types.ImdsSupportValuesV20 || aws.ToString(im.RootDeviceName) != "/dev/xvda" ||
		len(im.BlockDeviceMappings) != 1 || aws.ToString(im.BlockDeviceMappings[0].Ebs.SnapshotId) == "" ||
		aws.ToString(im.CreationDate) != "2026-01-01T00:00:00.000Z" || im.Architecture != types.ArchitectureValuesX8664 {
		t.Fatalf("image fields wrong: %+v", im)
	}
	// Owner aliases and image-id filters.
	out = must(c.DescribeImages(e.ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}}))(t)
	if len(out.Images) != 4 {
		t.Fatalf("owner alias amazon: want 4 images, got %d", len(out.Images))
	}
	out = must(c.DescribeImages(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{base}}))(t)
	if len(out.Images) != 1 {
		t.Fatalf("by id: want 1 image, got %d", len(out.Images))
	}
	// Paginator over all 5 images, 2 per page.
	var ids []string
	pages := 0
	p := ec2.NewDescribeImagesPaginator(c, &ec2.DescribeImagesInput{MaxResults: aws.Int32(2)})
	for p.HasMorePages() {
		pg := must(p.NextPage(e.ctx))(t)
		pages++
		for _, im := range pg.Images {
			ids = append(ids, aws.ToString(im.ImageId))
		}
	}
	if len(ids) != 5 || pages != 3 {
		t.Fatalf("paginator: want 5 images over 3 pages, got %d over %d", len(ids), pages)
	}
	_, err := c.DescribeImages(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-0123456789abcdef0"}})
	wantCode(t, err, "InvalidAMIID.NotFound")
	_, err = c.DescribeImages(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-xyz"}})
	wantCode(t, err, "InvalidAMIID.Malformed")
	_, err = c.DescribeImages(e.ctx, &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("bogus"), Values: []string{"x"}}}})
	wantCode(t, err, "InvalidParameterValue")
	// Seeded images live in one region only.
	out = must(e.ec2("eu-west-1").DescribeImages(e.ctx, &ec2.DescribeImagesInput{}))(t)
	if len(out.Images) != 0 {
		t.Fatalf("eu-west-1 should have no images, got %d", len(out.Images))
	}
}

func TestNetworkDescribes(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-west-2")
	regions := must(c.DescribeRegions(e.ctx, &ec2.DescribeRegionsInput{}))(t)
	if len(regions.Regions) != 3 {
		t.Fatalf("want 3 regions, got %d", len(regions.Regions))
	}
	_, err := c.DescribeRegions(e.ctx, &ec2.DescribeRegionsInput{RegionNames: []string{"mars-north-1"}})
	wantCode(t, err, "InvalidParameterValue")
	azs := must(c.DescribeAvailabilityZones(e.ctx, &ec2.DescribeAvailabilityZonesInput{}))(t)
	if len(azs.AvailabilityZones) != 3 || aws.ToString(azs.AvailabilityZones[0].ZoneName) != "us-west-2a" {
		t.Fatalf("zones: %+v", azs.AvailabilityZones)
	}
	vpcs := must(c.DescribeVpcs(e.ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}}))(t)
	if len(vpcs.Vpcs) != 1 || aws.ToString(vpcs.Vpcs[0].CidrBlock) != "10.0.0.0/16" || !aws.ToBool(vpcs.Vpcs[0].IsDefault) {
		t.Fatalf("default vpc: %+v", vpcs.Vpcs)
	}
	vpcID := aws.ToString(vpcs.Vpcs[0].VpcId)
	subs := must(c.DescribeSubnets(e.ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}}))(t)
	if len(subs.Subnets) != 2 || aws.ToString(subs.Subnets[1].AvailabilityZone) != "us-west-2b" {
		t.Fatalf("subnets: %+v", subs.Subnets)
	}
	sub := aws.ToString(subs.Subnets[0].SubnetId)
	must(c.CreateTags(e.ctx, &ec2.CreateTagsInput{Resources: []string{sub}, Tags: []types.Tag{{Key: aws.String("tier"), Value: aws.String("build")}}}))(t)
	subs = must(c.DescribeSubnets(e.ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("tag:tier"), Values: []string{"build"}}}}))(t)
	if len(subs.Subnets) != 1 || aws.ToString(subs.Subnets[0].SubnetId) != sub {
		t.Fatalf("tag filter: %+v", subs.Subnets)
	}
	_, err = c.DescribeSubnets(e.ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-0000000000000000f"}})
	wantCode(t, err, "InvalidSubnetID.NotFound")
	_, err = c.DescribeVpcs(e.ctx, &ec2.DescribeVpcsInput{VpcIds: []string{"vpc-0000000000000000f"}})
	wantCode(t, err, "InvalidVpcID.NotFound")
	added, err := e.srv.AddSubnet("us-west-2", SubnetSpec{CIDR: "10.0.9.0/28", Zone: "c"})
	if err != nil {
		t.Fatal(err)
	}
	subs = must(c.DescribeSubnets(e.ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{added}}))(t)
	if aws.ToInt32(subs.Subnets[0].AvailableIpAddressCount) != 11 {
		t.Fatalf("/28 should have 11 usable addresses, got %d", aws.ToInt32(subs.Subnets[0].AvailableIpAddressCount))
	}
}

func TestKeyPairs(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-east-1")
	ed := must(c.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("build-ed"), KeyType: types.KeyTypeEd25519,
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("test")}}}}}))(t)
	if !strings.HasPrefix(aws.ToString(ed.KeyMaterial), "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Fatalf("ed25519 material should be an OpenSSH key, got %.40q", aws.ToString(ed.KeyMaterial))
	}
	signer := must(ssh.ParsePrivateKey([]byte(aws.ToString(ed.KeyMaterial))))(t)
	desc := must(c.DescribeKeyPairs(e.ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"build-ed"}, IncludePublicKey: aws.Bool(true)}))(t)
	if len(desc.KeyPairs) != 1 || desc.KeyPairs[0].KeyType != types.KeyTypeEd25519 || aws.ToString(desc.KeyPairs[0].KeyPairId) != aws.ToString(ed.KeyPairId) {
		t.Fatalf("describe key: %+v", desc.KeyPairs)
	}
	pub := must(func() (ssh.PublicKey, error) {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(aws.ToString(desc.KeyPairs[0].PublicKey)))
		return k, err
	}())(t)
	if !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
		t.Fatal("described public key does not match the private key material")
	}
	rsaKey := must(c.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("build-rsa")}))(t)
	blk, _ := pem.Decode([]byte(aws.ToString(rsaKey.KeyMaterial)))
	if blk == nil || blk.Type != "RSA PRIVATE KEY" || strings.Count(aws.ToString(rsaKey.KeyFingerprint), ":") != 19 {
		t.Fatalf("rsa key: type %v fingerprint %q", blk, aws.ToString(rsaKey.KeyFingerprint))
	}
	must(ssh.ParsePrivateKey([]byte(aws.ToString(rsaKey.KeyMaterial))))(t)
	_, err := c.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("build-ed")})
	wantCode(t, err, "InvalidKeyPair.Duplicate")
	_, err = c.DescribeKeyPairs(e.ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"nope"}})
	wantCode(t, err, "InvalidKeyPair.NotFound")
	must(c.DeleteKeyPair(e.ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("build-ed")}))(t)
	must(c.DeleteKeyPair(e.ctx, &ec2.DeleteKeyPairInput{KeyPairId: rsaKey.KeyPairId}))(t)
	_, err = c.DeleteKeyPair(e.ctx, &ec2.DeleteKeyPairInput{KeyPairId: aws.String("key-0123456789abcdef0")})
	wantCode(t, err, "InvalidKeyPair.NotFound")
	desc = must(c.DescribeKeyPairs(e.ctx, &ec2.DescribeKeyPairsInput{}))(t)
	if len(desc.KeyPairs) != 0 {
		t.Fatalf("keys left: %+v", desc.KeyPairs)
	}
}

func TestSecurityGroupsAndDependency(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis")
	sg := must(c.CreateSecurityGroup(e.ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("packer-tmp"), Description: aws.String("temporary")}))(t)
	gid := aws.ToString(sg.GroupId)
	_, err := c.CreateSecurityGroup(e.ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("packer-tmp"), Description: aws.String("again")})
	wantCode(t, err, "InvalidGroup.Duplicate")
	perm := []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
		IpRanges: []types.IpRange{{CidrIp: aws.String("10.1.0.0/16")}}}}
	must(c.AuthorizeSecurityGroupIngress(e.ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perm}))(t)
	_, err = c.AuthorizeSecurityGroupIngress(e.ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perm})
	wantCode(t, err, "InvalidPermission.Duplicate")
	desc := must(c.DescribeSecurityGroups(e.ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{gid}}))(t)
	g := desc.SecurityGroups[0]
	if len(g.IpPermissions) != 1 || aws.ToInt32(g.IpPermissions[0].FromPort) != 22 || aws.ToString(g.IpPermissions[0].IpRanges[0].CidrIp) != "10.1.0.0/16" ||
		len(g.IpPermissionsEgress) != 1 || aws.ToString(g.GroupName) != "packer-tmp" {
		t.Fatalf("group: %+v", g)
	}
	run := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		InstanceType: types.InstanceTypeT3Micro, SecurityGroupIds: []string{gid}}))(t)
	iid := aws.ToString(run.Instances[0].InstanceId)
	_, err = c.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(gid)})
	wantCode(t, err, "DependencyViolation")
	must(c.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{iid}}))(t)
	// Still shutting down: the group stays in use.
	_, err = c.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(gid)})
	wantCode(t, err, "DependencyViolation")
	if err := ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax); err != nil {
		t.Fatalf("terminated waiter: %v", err)
	}
	must(c.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(gid)}))(t)
	_, err = c.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(gid)})
	wantCode(t, err, "InvalidGroup.NotFound")
	_, err = c.DescribeSecurityGroups(e.ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-bad"}})
	wantCode(t, err, "InvalidGroupId.Malformed")
	def := must(c.DescribeSecurityGroups(e.ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"default"}}))(t)
	_, err = c.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: def.SecurityGroups[0].GroupId})
	wantCode(t, err, "CannotDelete")
}

func TestInstanceLifecycleImageAndSnapshots(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis")
	key := must(c.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k"), KeyType: types.KeyTypeEd25519}))(t)
	_ = key
	subs := must(c.DescribeSubnets(e.ctx, &ec2.DescribeSubnetsInput{}))(t)
	subnet := subs.Subnets[1]
	userData := base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\nshutdown -P +60\n"))
	run := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeT3Medium,
		KeyName: aws.String("k"), SubnetId: subnet.SubnetId, UserData: aws.String(userData),
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
		IamInstanceProfile:                &types.IamInstanceProfileSpecification{Name: aws.String("es-bake")},
		MetadataOptions:                   &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateRequired, HttpPutResponseHopLimit: aws.Int32(1)},
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{
			VolumeSize: aws.Int32(20), VolumeType: types.VolumeTypeGp3, Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true)}}},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("bake")}}},
			{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("bake-root")}}},
		},
	}))(t)
	if len(run.Instances) != 1 || run.Instances[0].State.Name != types.InstanceStateNamePending {
		t.Fatalf("run: want one pending instance, got %+v", run.Instances)
	}
	iid := aws.ToString(run.Instances[0].InstanceId)
	if err := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax); err != nil {
		t.Fatalf("running waiter: %v", err)
	}
	d := must(c.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}))(t)
	in := d.Reservations[0].Instances[0]
	_, cidr, _ := net.ParseCIDR(aws.ToString(subnet.CidrBlock))
	if !cidr.Contains(net.ParseIP(aws.ToString(in.PrivateIpAddress))) || aws.ToString(in.PublicIpAddress) == "" ||
		in.MetadataOptions.HttpTokens != types.HttpTokensStateRequired || aws.ToString(in.KeyName) != "k" ||
		!strings.HasSuffix(aws.ToString(in.IamInstanceProfile.Arn), ":instance-profile/es-bake") ||
		len(in.Tags) != 1 || aws.ToString(in.Tags[0].Value) != "bake" || len(in.BlockDeviceMappings) != 1 ||
		aws.ToString(in.NetworkInterfaces[0].MacAddress) == "" || aws.ToString(in.Placement.AvailabilityZone) != aws.ToString(subnet.AvailabilityZone) {
		t.Fatalf("instance fields wrong: %+v", in)
	}
	vols := must(c.DescribeVolumes(e.ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{aws.ToString(in.BlockDeviceMappings[0].Ebs.VolumeId)}}))(t)
	if v := vols.Volumes[0]; aws.ToInt32(v.Size) != 20 || v.VolumeType != types.VolumeTypeGp3 || !aws.ToBool(v.Encrypted) || v.State != types.VolumeStateInUse {
		t.Fatalf("root volume: %+v", v)
	}
	info, ok := e.srv.Instance(iid)
	if !ok || string(info.UserData) != "#!/bin/sh\nshutdown -P +60\n" || info.ShutdownBehavior != "terminate" {
		t.Fatalf("instance info: %+v", info)
	}
	st := must(c.DescribeInstanceStatus(e.ctx, &ec2.DescribeInstanceStatusInput{InstanceIds: []string{iid}}))(t)
	if len(st.InstanceStatuses) != 1 || st.InstanceStatuses[0].InstanceStatus.Status != types.SummaryStatusOk {
		t.Fatalf("status: %+v", st.InstanceStatuses)
	}

	// Stop, start, stop again, then image the stopped instance.
	stop := must(c.StopInstances(e.ctx, &ec2.StopInstancesInput{InstanceIds: []string{iid}}))(t)
	if stop.StoppingInstances[0].CurrentState.Name != types.InstanceStateNameStopping || stop.StoppingInstances[0].PreviousState.Name != types.InstanceStateNameRunning {
		t.Fatalf("stop answer: %+v", stop.StoppingInstances[0])
	}
	stopped := ec2.NewInstanceStoppedWaiter(c, func(o *ec2.InstanceStoppedWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast })
	if err := stopped.Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax); err != nil {
		t.Fatalf("stopped waiter: %v", err)
	}
	must(c.StartInstances(e.ctx, &ec2.StartInstancesInput{InstanceIds: []string{iid}}))(t)
	if err := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax); err != nil {
		t.Fatalf("running waiter after start: %v", err)
	}
	must(c.StopInstances(e.ctx, &ec2.StopInstancesInput{InstanceIds: []string{iid}}))(t)
	if err := stopped.Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax); err != nil {
		t.Fatalf("stopped waiter: %v", err)
	}
	img := must(c.CreateImage(e.ctx, &ec2.CreateImageInput{InstanceId: aws.String(iid), Name: aws.String("es-8-node-1"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("es_version"), Value: aws.String("8.15.0")}}},
			{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("es_version"), Value: aws.String("8.15.0")}}}}}))(t)
	newAMI := aws.ToString(img.ImageId)
	_, err := c.CreateImage(e.ctx, &ec2.CreateImageInput{InstanceId: aws.String(iid), Name: aws.String("es-8-node-1")})
	wantCode(t, err, "InvalidAMIName.Duplicate")
	if err := ec2.NewImageAvailableWaiter(c, func(o *ec2.ImageAvailableWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		Wait(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{newAMI}}, waitMax); err != nil {
		t.Fatalf("image available waiter: %v", err)
	}
	imgs := must(c.DescribeImages(e.ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}}))(t)
	if len(imgs.Images) != 1 || aws.ToString(imgs.Images[0].ImageId) != newAMI || imgs.Images[0].ImdsSupport != types.ImdsSupportValuesV20 {
		t.Fatalf("self images: %+v", imgs.Images)
	}
	snapID := aws.ToString(imgs.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId)
	snaps := must(c.DescribeSnapshots(e.ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: []types.Filter{{Name: aws.String("tag:es_version"), Values: []string{"8.*"}}}}))(t)
	if len(snaps.Snapshots) != 1 || aws.ToString(snaps.Snapshots[0].SnapshotId) != snapID || snaps.Snapshots[0].State != types.SnapshotStateCompleted ||
		aws.ToInt32(snaps.Snapshots[0].VolumeSize) != 20 {
		t.Fatalf("snapshots: %+v", snaps.Snapshots)
	}
	_, err = c.DeleteSnapshot(e.ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapID)})
	wantCode(t, err, "InvalidSnapshot.InUse")

	must(c.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{iid}}))(t)
	if err := ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax); err != nil {
		t.Fatalf("terminated waiter: %v", err)
	}
	// Terminated instances stay visible; their volumes went with them.
	d = must(c.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"terminated"}}}}))(t)
	if len(d.Reservations) != 1 {
		t.Fatalf("terminated instance should remain visible: %+v", d.Reservations)
	}
	_, err = c.DescribeVolumes(e.ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{aws.ToString(in.BlockDeviceMappings[0].Ebs.VolumeId)}})
	wantCode(t, err, "InvalidVolume.NotFound")
	_, err = c.StartInstances(e.ctx, &ec2.StartInstancesInput{InstanceIds: []string{iid}})
	wantCode(t, err, "IncorrectInstanceState")
	_, err = c.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	wantCode(t, err, "InvalidInstanceID.NotFound")

	// The new image boots, with its imds v2.0 forcing HttpTokens required.
	run2 := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(newAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))(t)
	if run2.Instances[0].MetadataOptions.HttpTokens != types.HttpTokensStateRequired {
		t.Fatalf("imds v2.0 image should default to required tokens: %+v", run2.Instances[0].MetadataOptions)
	}
	must(c.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(run2.Instances[0].InstanceId)}}))(t)

	// Deregister with its snapshots; then the snapshot is gone.
	dr := must(c.DeregisterImage(e.ctx, &ec2.DeregisterImageInput{ImageId: aws.String(newAMI), DeleteAssociatedSnapshots: aws.Bool(true)}))(t)
	if len(dr.DeleteSnapshotResults) != 1 || aws.ToString(dr.DeleteSnapshotResults[0].SnapshotId) != snapID {
		t.Fatalf("deregister results: %+v", dr.DeleteSnapshotResults)
	}
	_, err = c.DeleteSnapshot(e.ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapID)})
	wantCode(t, err, "InvalidSnapshot.NotFound")
	_, err = c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(newAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	wantCode(t, err, "InvalidAMIID.NotFound")
}

func TestRunInstancesErrors(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis")
	one := func(in *ec2.RunInstancesInput) *ec2.RunInstancesInput {
		in.MinCount, in.MaxCount = aws.Int32(1), aws.Int32(1)
		if in.ImageId == nil {
			in.ImageId = aws.String(ami)
		}
		return in
	}
	_, err := c.RunInstances(e.ctx, one(&ec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0")}))
	wantCode(t, err, "InvalidAMIID.NotFound")
	_, err = c.RunInstances(e.ctx, one(&ec2.RunInstancesInput{ImageId: aws.String("debian")}))
	wantCode(t, err, "InvalidAMIID.Malformed")
	_, err = c.RunInstances(e.ctx, one(&ec2.RunInstancesInput{KeyName: aws.String("missing")}))
	wantCode(t, err, "InvalidKeyPair.NotFound")
	_, err = c.RunInstances(e.ctx, one(&ec2.RunInstancesInput{SecurityGroupIds: []string{"sg-0123456789abcdef0"}}))
	wantCode(t, err, "InvalidGroup.NotFound")
	_, err = c.RunInstances(e.ctx, one(&ec2.RunInstancesInput{SubnetId: aws.String("subnet-0123456789abcdef0")}))
	wantCode(t, err, "InvalidSubnetID.NotFound")
	_, err = c.RunInstances(e.ctx, one(&ec2.RunInstancesInput{UserData: aws.String("not base64!")}))
	wantCode(t, err, "InvalidParameterValue")
	_, err = c.RunInstances(e.ctx, one(&ec2.RunInstancesInput{MetadataOptions: &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateOptional}}))
	wantCode(t, err, "InvalidParameterCombination")
	_, err = c.RunInstances(e.ctx, one(&ec2.RunInstancesInput{DryRun: aws.Bool(true)}))
	wantCode(t, err, "DryRunOperation")
	_, err = c.RunInstances(e.ctx, one(&ec2.RunInstancesInput{BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(2)}}}}))
	wantCode(t, err, "InvalidBlockDeviceMapping")
	if n := len(e.srv.Leaks().Instances); n != 0 {
		t.Fatalf("failed launches must not leave instances, got %d", n)
	}
	// Idempotent ClientToken: the same reservation comes back.
	a := must(c.RunInstances(e.ctx, one(&ec2.RunInstancesInput{ClientToken: aws.String("tok-1")})))(t)
	b := must(c.RunInstances(e.ctx, one(&ec2.RunInstancesInput{ClientToken: aws.String("tok-1")})))(t)
	if aws.ToString(a.ReservationId) != aws.ToString(b.ReservationId) || len(e.srv.Leaks().Instances) != 1 {
		t.Fatalf("client token should be idempotent: %s vs %s", aws.ToString(a.ReservationId), aws.ToString(b.ReservationId))
	}
}

func TestDescribeInstancesPaginatorAndFilters(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis")
	must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(4), MaxCount: aws.Int32(4),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("batch"), Value: aws.String("a")}}}}}))(t)
	must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(3), MaxCount: aws.Int32(3)}))(t)
	n, pages := 0, 0
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		pg := must(p.NextPage(e.ctx))(t)
		pages++
		for _, r := range pg.Reservations {
			n += len(r.Instances)
		}
	}
	if n != 7 || pages != 2 {
		t.Fatalf("paginator: want 7 instances in 2 pages, got %d in %d", n, pages)
	}
	d := must(c.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:batch"), Values: []string{"a"}}}}))(t)
	if len(d.Reservations) != 1 || len(d.Reservations[0].Instances) != 4 {
		t.Fatalf("tag filter: %+v", d.Reservations)
	}
	_, err := c.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(2)})
	wantCode(t, err, "InvalidParameterValue")
}

func TestPollsTiming(t *testing.T) {
	e := newEnv(t, Options{InstanceTiming: &Timing{Polls: 3}})
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis")
	run := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))(t)
	id := aws.ToString(run.Instances[0].InstanceId)
	var states []string
	for i := 0; i < 4; i++ {
		d := must(c.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}))(t)
		states = append(states, string(d.Reservations[0].Instances[0].State.Name))
	}
	if got := strings.Join(states, ","); got != "pending,pending,pending,running" {
		t.Fatalf("with Polls 3 want three pending answers then running, got %s", got)
	}
}

func TestTags(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-east-1")
	sg := must(c.CreateSecurityGroup(e.ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("g"), Description: aws.String("d")}))(t)
	must(c.CreateTags(e.ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(sg.GroupId)},
		Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("b"), Value: aws.String("2")}}}))(t)
	tags := must(c.DescribeTags(e.ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("resource-id"), Values: []string{aws.ToString(sg.GroupId)}}}}))(t)
	if len(tags.Tags) != 2 || tags.Tags[0].ResourceType != types.ResourceTypeSecurityGroup {
		t.Fatalf("describe tags: %+v", tags.Tags)
	}
	must(c.DeleteTags(e.ctx, &ec2.DeleteTagsInput{Resources: []string{aws.ToString(sg.GroupId)}, Tags: []types.Tag{{Key: aws.String("a")}}}))(t)
	// A value that does not match leaves the tag.
	must(c.DeleteTags(e.ctx, &ec2.DeleteTagsInput{Resources: []string{aws.ToString(sg.GroupId)}, Tags: []types.Tag{{Key: aws.String("b"), Value: aws.String("other")}}}))(t)
	tags = must(c.DescribeTags(e.ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("key"), Values: []string{"a", "b"}}}}))(t)
	if len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "b" {
		t.Fatalf("after delete: %+v", tags.Tags)
	}
	_, err := c.CreateTags(e.ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(sg.GroupId), "i-0123456789abcdef0"}, Tags: []types.Tag{{Key: aws.String("c"), Value: aws.String("1")}}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	tags = must(c.DescribeTags(e.ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("key"), Values: []string{"c"}}}}))(t)
	if len(tags.Tags) != 0 {
		t.Fatalf("a failed CreateTags must tag nothing: %+v", tags.Tags)
	}
	_, err = c.CreateTags(e.ctx, &ec2.CreateTagsInput{Resources: []string{"ami-0123456789abcdef0"}, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("1")}}})
	wantCode(t, err, "InvalidAMIID.NotFound")
}

func TestImageSharingCopyDeprecation(t *testing.T) {
	e := newEnv(t, Options{})
	east, west := e.ec2("us-east-1"), e.ec2("us-west-2")
	ami := e.seedImage("debian-12-cis")
	run := must(east.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))(t)
	iid := aws.ToString(run.Instances[0].InstanceId)
	must(east.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}))(t)
	must(east.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}))(t)
	img := must(east.CreateImage(e.ctx, &ec2.CreateImageInput{InstanceId: aws.String(iid), Name: aws.String("es-node"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("spec_hash"), Value: aws.String("abc")}}}}}))(t)
	id := aws.ToString(img.ImageId)
	avail := func(c *ec2.Client, id string) {
		t.Helper()
		if err := ec2.NewImageAvailableWaiter(c, func(o *ec2.ImageAvailableWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
			Wait(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}}, waitMax); err != nil {
			t.Fatalf("image %s available: %v", id, err)
		}
	}
	avail(east, id)

	// Share with an account and an organization.
	must(east.ModifyImageAttribute(e.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id), LaunchPermission: &types.LaunchPermissionModifications{
		Add: []types.LaunchPermission{{UserId: aws.String("123456789012")}, {OrganizationArn: aws.String("arn:aws:organizations::123456789012:organization/o-example")}}}}))(t)
	attr := must(east.DescribeImageAttribute(e.ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(id), Attribute: types.ImageAttributeNameLaunchPermission}))(t)
	if len(attr.LaunchPermissions) != 2 || aws.ToString(attr.LaunchPermissions[0].UserId) != "123456789012" ||
		aws.ToString(attr.LaunchPermissions[1].OrganizationArn) == "" {
		t.Fatalf("launch permissions: %+v", attr.LaunchPermissions)
	}
	_, err := east.ModifyImageAttribute(e.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id), LaunchPermission: &types.LaunchPermissionModifications{
		Add: []types.LaunchPermission{{UserId: aws.String("not-an-account")}}}})
	wantCode(t, err, "InvalidAMIAttributeItemValue")
	_, err = east.ModifyImageAttribute(e.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami), LaunchPermission: &types.LaunchPermissionModifications{
		Add: []types.LaunchPermission{{UserId: aws.String("123456789012")}}}})
	wantCode(t, err, "AuthFailure")
	must(east.ModifyImageAttribute(e.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id), ImdsSupport: &types.AttributeValue{Value: aws.String("v2.0")}}))(t)
	imds := must(east.DescribeImageAttribute(e.ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(id), Attribute: types.ImageAttributeNameImdsSupport}))(t)
	if aws.ToString(imds.ImdsSupport.Value) != "v2.0" {
		t.Fatalf("imdsSupport attribute: %+v", imds.ImdsSupport)
	}

	// Deprecation.
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Minute)
	must(east.EnableImageDeprecation(e.ctx, &ec2.EnableImageDeprecationInput{ImageId: aws.String(id), DeprecateAt: aws.Time(at)}))(t)
	_, err = east.EnableImageDeprecation(e.ctx, &ec2.EnableImageDeprecationInput{ImageId: aws.String(id), DeprecateAt: aws.Time(time.Now().Add(-time.Hour))})
	wantCode(t, err, "InvalidParameterValue")
	d := must(east.DescribeImages(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}}))(t)
	if aws.ToString(d.Images[0].DeprecationTime) != at.Format("2006-01-02T15:04:05.000Z") {
		t.Fatalf("deprecation time: %q want %s", aws.ToString(d.Images[0].DeprecationTime), at)
	}

	// Copy to us-west-2: visible there only, with its own id and snapshot.
	cp := must(west.CopyImage(e.ctx, &ec2.CopyImageInput{SourceImageId: aws.String(id), SourceRegion: aws.String("us-east-1"),
		Name: aws.String("es-node"), Encrypted: aws.Bool(true), CopyImageTags: aws.Bool(true)}))(t)
	wid := aws.ToString(cp.ImageId)
	if wid == id {
		t.Fatal("copy must get a new id")
	}
	avail(west, wid)
	wd := must(west.DescribeImages(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{wid}}))(t)
	if len(wd.Images[0].Tags) != 1 || aws.ToString(wd.Images[0].SourceImageId) != id || !aws.ToBool(wd.Images[0].BlockDeviceMappings[0].Ebs.Encrypted) {
		t.Fatalf("copied image: %+v", wd.Images[0])
	}
	_, err = east.DescribeImages(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{wid}})
	wantCode(t, err, "InvalidAMIID.NotFound")
	_, err = west.CopyImage(e.ctx, &ec2.CopyImageInput{SourceImageId: aws.String("ami-0123456789abcdef0"), SourceRegion: aws.String("us-east-1"), Name: aws.String("x-copy")})
	wantCode(t, err, "InvalidAMIID.NotFound")
	if info, ok := e.srv.Image("us-west-2", wid); !ok || info.SourceRegion != "us-east-1" {
		t.Fatalf("Image view: %+v", info)
	}
	westSnaps := must(west.DescribeSnapshots(e.ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}}))(t)
	if len(westSnaps.Snapshots) != 1 {
		t.Fatalf("west snapshots: %+v", westSnaps.Snapshots)
	}
	if err := ec2.NewSnapshotCompletedWaiter(west, func(o *ec2.SnapshotCompletedWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		Wait(e.ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(westSnaps.Snapshots[0].SnapshotId)}}, waitMax); err != nil {
		t.Fatalf("snapshot completed waiter: %v", err)
	}
}

func TestSSMParameterStore(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ssm("us-east-1")
	v := must(c.PutParameter(e.ctx, &ssm.PutParameterInput{Name: aws.String("/esbake/ami/latest"), Value: aws.String("ami-0123456789abcdef0"),
		Type: ssmtypes.ParameterTypeString, DataType: aws.String("aws:ec2:image")}))(t)
	if v.Version != 1 {
		t.Fatalf("version: %d", v.Version)
	}
	_, err := c.PutParameter(e.ctx, &ssm.PutParameterInput{Name: aws.String("/esbake/ami/latest"), Value: aws.String("ami-0123456789abcdef1"), Type: ssmtypes.ParameterTypeString})
	wantCode(t, err, "ParameterAlreadyExists")
	v = must(c.PutParameter(e.ctx, &ssm.PutParameterInput{Name: aws.String("/esbake/ami/latest"), Value: aws.String("ami-0123456789abcdef1"), Overwrite: aws.Bool(true)}))(t)
	if v.Version != 2 {
		t.Fatalf("overwrite version: %d", v.Version)
	}
	g := must(c.GetParameter(e.ctx, &ssm.GetParameterInput{Name: aws.String("/esbake/ami/latest")}))(t)
	if aws.ToString(g.Parameter.Value) != "ami-0123456789abcdef1" || g.Parameter.Version != 2 || aws.ToString(g.Parameter.DataType) != "aws:ec2:image" {
		t.Fatalf("get: %+v", g.Parameter)
	}
	must(c.PutParameter(e.ctx, &ssm.PutParameterInput{Name: aws.String("/esbake/secret"), Value: aws.String("s3cret"), Type: ssmtypes.ParameterTypeSecureString}))(t)
	g = must(c.GetParameter(e.ctx, &ssm.GetParameterInput{Name: aws.String("/esbake/secret")}))(t)
	if aws.ToString(g.Parameter.Value) == "s3cret" {
		t.Fatal("SecureString without decryption must not return plaintext")
	}
	g = must(c.GetParameter(e.ctx, &ssm.GetParameterInput{Name: aws.String("/esbake/secret"), WithDecryption: aws.Bool(true)}))(t)
	if aws.ToString(g.Parameter.Value) != "s3cret" {
		t.Fatalf("decrypted: %q", aws.ToString(g.Parameter.Value))
	}
	gs := must(c.GetParameters(e.ctx, &ssm.GetParametersInput{Names: []string{"/esbake/secret", "/missing"}, WithDecryption: aws.Bool(true)}))(t)
	if len(gs.Parameters) != 1 || len(gs.InvalidParameters) != 1 || gs.InvalidParameters[0] != "/missing" {
		t.Fatalf("get parameters: %+v", gs)
	}
	byPath := must(c.GetParametersByPath(e.ctx, &ssm.GetParametersByPathInput{Path: aws.String("/esbake"), Recursive: aws.Bool(true)}))(t)
	if len(byPath.Parameters) != 2 {
		t.Fatalf("by path: %+v", byPath.Parameters)
	}
	must(c.DeleteParameter(e.ctx, &ssm.DeleteParameterInput{Name: aws.String("/esbake/secret")}))(t)
	_, err = c.GetParameter(e.ctx, &ssm.GetParameterInput{Name: aws.String("/esbake/secret")})
	wantCode(t, err, "ParameterNotFound")
	_, err = c.DeleteParameter(e.ctx, &ssm.DeleteParameterInput{Name: aws.String("/esbake/secret")})
	wantCode(t, err, "ParameterNotFound")
	// Parameters are regional.
	_, err = e.ssm("eu-west-1").GetParameter(e.ctx, &ssm.GetParameterInput{Name: aws.String("/esbake/ami/latest")})
	wantCode(t, err, "ParameterNotFound")
	if val, ok := e.srv.Parameter("us-east-1", "/esbake/ami/latest"); !ok || val != "ami-0123456789abcdef1" {
		t.Fatalf("Parameter view: %q %v", val, ok)
	}
}

func TestSTSGetCallerIdentity(t *testing.T) {
	e := newEnv(t, Options{})
	out := must(e.sts().GetCallerIdentity(e.ctx, &sts.GetCallerIdentityInput{}))(t)
	if aws.ToString(out.Account) != DefaultAccountID || !strings.HasPrefix(aws.ToString(out.Arn), "arn:aws:iam::000000000000:") {
		t.Fatalf("caller identity: %+v", out)
	}
}

func TestUnsignedRequestRejected(t *testing.T) {
	e := newEnv(t, Options{})
	resp, err := http.Post(e.url, "application/x-www-form-urlencoded", strings.NewReader("Action=DescribeRegions&Version=2016-11-15"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "<Code>MissingAuthenticationToken</Code>") ||
		!strings.Contains(string(body), "<RequestID>") {
		t.Fatalf("unsigned: %d %s", resp.StatusCode, body)
	}
	// Unknown actions answer InvalidAction.
	_, err = e.ec2("us-east-1").DescribeAddresses(e.ctx, &ec2.DescribeAddressesInput{})
	wantCode(t, err, "InvalidAction")
}

func TestFaultInjectionNth(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-east-1")
	e.srv.InjectFault(Fault{Action: "CreateKeyPair", Code: "UnauthorizedOperation", Nth: 2})
	must(c.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k1"), KeyType: types.KeyTypeEd25519}))(t)
	_, err := c.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k2"), KeyType: types.KeyTypeEd25519})
	wantCode(t, err, "UnauthorizedOperation")
	must(c.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k3"), KeyType: types.KeyTypeEd25519}))(t)
	keys := must(c.DescribeKeyPairs(e.ctx, &ec2.DescribeKeyPairsInput{}))(t)
	if len(keys.KeyPairs) != 2 {
		t.Fatalf("the failed call must not create a key: %+v", keys.KeyPairs)
	}
	// AfterApply: the resource exists though the caller saw an error.
	e.srv.ClearFaults()
	e.srv.InjectFault(Fault{Action: "CreateSecurityGroup", Code: "InvalidParameterValue", AfterApply: true})
	_, err = c.CreateSecurityGroup(e.ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("lost"), Description: aws.String("d")})
	wantCode(t, err, "InvalidParameterValue")
	if sgs := e.srv.Leaks().SecurityGroups; len(sgs) != 1 || sgs[0].Name != "lost" {
		t.Fatalf("after-apply fault should leave the group: %+v", sgs)
	}
	// Every call of an action, via the JSON admin endpoint.
	e.srv.ClearFaults()
	resp, err := http.Post(e.url+"/_emu/faults", "application/json", strings.NewReader(`{"action":"DescribeVpcs","code":"InternalError","latency":"1ms"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin fault: %v %v", err, resp)
	}
	resp.Body.Close()
	_, err = c.DescribeVpcs(e.ctx, &ec2.DescribeVpcsInput{})
	wantCode(t, err, "InternalError")
	// The standard retryer tried 3 times; the log shows every attempt with its code.
	n := 0
	for _, call := range e.srv.Calls() {
		if call.Action == "DescribeVpcs" && call.ErrorCode == "InternalError" && call.Region == "us-east-1" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("want 3 logged InternalError attempts, got %d", n)
	}
	// Call log carries parameters for assertions.
	found := false
	for _, call := range e.srv.Calls() {
		if call.Action == "CreateKeyPair" && len(call.Params["KeyName"]) == 1 && call.Params["KeyName"][0] == "k2" && call.ErrorCode == "UnauthorizedOperation" {
			found = true
		}
	}
	if !found {
		t.Fatal("call log should record the failed CreateKeyPair k2")
	}
	del, err := http.NewRequest(http.MethodDelete, e.url+"/_emu/faults", nil)
	if err != nil {
		t.Fatal(err)
	}
	dr, err := http.DefaultClient.Do(del)
	if err != nil {
		t.Fatal(err)
	}
	dr.Body.Close()
	if dr.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE /_emu/faults: %d", dr.StatusCode)
	}
	must(c.DescribeVpcs(e.ctx, &ec2.DescribeVpcsInput{}))(t)
}

func TestThrottlingWithStandardRetryer(t *testing.T) {
	e := newEnv(t, Options{})
	e.srv.SetThrottle(0.3, 42)
	c := e.ec2Attempts("us-east-1", 10)
	for i := 0; i < 60; i++ {
		must(c.DescribeRegions(e.ctx, &ec2.DescribeRegionsInput{}))(t)
	}
	throttled := 0
	for _, call := range e.srv.Calls() {
		if call.ErrorCode == "RequestLimitExceeded" {
			throttled++
		}
	}
	if throttled == 0 {
		t.Fatal("a 30% throttle over 60 calls should throttle some attempts")
	}
	// Without retries the throttling surfaces with its code.
	single := e.ec2Attempts("us-east-1", 1)
	var lastErr error
	for i := 0; i < 40 && lastErr == nil; i++ {
		_, lastErr = single.DescribeRegions(e.ctx, &ec2.DescribeRegionsInput{})
	}
	wantCode(t, lastErr, "RequestLimitExceeded")
	// SSM throttles with its own code and the retryer still succeeds.
	sc := ssm.NewFromConfig(e.cfg("us-east-1", 10), func(o *ssm.Options) { o.BaseEndpoint = aws.String(e.url) })
	for i := 0; i < 20; i++ {
		must(sc.PutParameter(e.ctx, &ssm.PutParameterInput{Name: aws.String(fmt.Sprintf("/p/%d", i)), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString}))(t)
	}
}

func TestLeakReport(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis")
	if rep := e.srv.Leaks(); !rep.Empty() {
		t.Fatalf("a fresh emulator with seeds must report no leaks: %s", rep)
	}
	key := must(c.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k"), KeyType: types.KeyTypeEd25519}))(t)
	sg := must(c.CreateSecurityGroup(e.ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("g"), Description: aws.String("d")}))(t)
	run := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		KeyName: key.KeyName, SecurityGroupIds: []string{aws.ToString(sg.GroupId)}}))(t)
	iid := aws.ToString(run.Instances[0].InstanceId)
	must(c.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}))(t)
	must(c.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}))(t)
	img := must(c.CreateImage(e.ctx, &ec2.CreateImageInput{InstanceId: aws.String(iid), Name: aws.String("leaky")}))(t)
	must(e.ssm("us-east-1").PutParameter(e.ctx, &ssm.PutParameterInput{Name: aws.String("/x"), Value: aws.String("y"), Type: ssmtypes.ParameterTypeString}))(t)
	rep := e.srv.Leaks()
	if len(rep.Instances) != 1 || len(rep.SecurityGroups) != 1 || len(rep.KeyPairs) != 1 || len(rep.Images) != 1 || len(rep.Snapshots) != 1 ||
		len(rep.Parameters) != 1 || rep.Count() != 5 {
		t.Fatalf("leaks: %s", rep)
	}
	// Same report over the admin endpoint.
	resp, err := http.Get(e.url + "/_emu/leaks")
	if err != nil {
		t.Fatal(err)
	}
	var viaHTTP Report
	if err := json.NewDecoder(resp.Body).Decode(&viaHTTP); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if viaHTTP.Count() != 5 || viaHTTP.Images[0].ID != aws.ToString(img.ImageId) {
		t.Fatalf("leaks via HTTP: %+v", viaHTTP)
	}

	// Clean up the way a builder would.
	must(c.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{iid}}))(t)
	must(ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		WaitForOutput(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax))(t)
	must(c.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}))(t)
	must(c.DeleteKeyPair(e.ctx, &ec2.DeleteKeyPairInput{KeyName: key.KeyName}))(t)
	info, _ := e.srv.Image("us-east-1", aws.ToString(img.ImageId))
	must(c.DeregisterImage(e.ctx, &ec2.DeregisterImageInput{ImageId: img.ImageId}))(t)
	must(c.DeleteSnapshot(e.ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(info.SnapshotIDs[0])}))(t)
	if rep := e.srv.Leaks(); !rep.Empty() || len(rep.Parameters) != 1 {
		t.Fatalf("after cleanup: %s", rep)
	}
}

func TestVolumeLeakWhenNotDeletedOnTermination(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis")
	run := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{DeleteOnTermination: aws.Bool(false)}}}}))(t)
	iid := aws.ToString(run.Instances[0].InstanceId)
	must(c.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{iid}}))(t)
	must(ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		WaitForOutput(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax))(t)
	rep := e.srv.Leaks()
	if len(rep.Volumes) != 1 || rep.Volumes[0].State != "available" {
		t.Fatalf("the kept root volume is a leak: %s", rep)
	}
	must(c.DeleteVolume(e.ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(rep.Volumes[0].ID)}))(t)
	if rep := e.srv.Leaks(); !rep.Empty() {
		t.Fatalf("after DeleteVolume: %s", rep)
	}
}

func TestGlob(t *testing.T) {
	cases := []struct {
		pat, s string
		want   bool
	}{
		{"debian-12-*", "debian-12-cis-2026", true},
		{"debian-12-*", "debian-11-cis", false},
		{"*cis*", "debian-12-cis-x", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"exact", "exact", true},
		{"*", "", true},
		{"a*b*c", "a-b-x-c", true},
		{"a*b*c", "a-c-b", false},
	}
	for _, c := range cases {
		if got := glob(c.pat, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v, want %v", c.pat, c.s, got, c.want)
		}
	}
}

func TestDeprecatedImagesHiddenByDefault(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.ec2("us-east-1")
	old, err := e.srv.AddImage(ImageSpec{Name: "debian-12-cis-old", DeprecateAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	e.seedImage("debian-12-cis-new")
	d := must(c.DescribeImages(e.ctx, &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"debian-12-cis-*"}}}}))(t)
	if len(d.Images) != 1 || aws.ToString(d.Images[0].Name) != "debian-12-cis-new" {
		t.Fatalf("deprecated image should be hidden: %+v", d.Images)
	}
	d = must(c.DescribeImages(e.ctx, &ec2.DescribeImagesInput{IncludeDeprecated: aws.Bool(true)}))(t)
	if len(d.Images) != 2 {
		t.Fatalf("IncludeDeprecated should show both, got %d", len(d.Images))
	}
	d = must(c.DescribeImages(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{old}}))(t)
	if len(d.Images) != 1 || aws.ToString(d.Images[0].DeprecationTime) == "" {
		t.Fatalf("by id a deprecated image is shown with its deprecation time: %+v", d.Images)
	}
}

func TestEventualConsistency(t *testing.T) {
	e := newEnv(t, Options{EventualConsistency: 2})
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis")
	run := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))(t)
	iid := aws.ToString(run.Instances[0].InstanceId)
	tag := &ec2.CreateTagsInput{Resources: []string{iid}, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}
	_, err := c.CreateTags(e.ctx, tag)
	wantCode(t, err, "InvalidInstanceID.NotFound")
	// The running waiter retries through the remaining NotFound answer.
	must(ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		WaitForOutput(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax))(t)
	must(c.CreateTags(e.ctx, tag))(t)
	n := 0
	for _, call := range e.srv.Calls() {
		if call.ErrorCode == "InvalidInstanceID.NotFound" {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("want exactly 2 NotFound answers, got %d", n)
	}
}

func TestAdminEndpoints(t *testing.T) {
	e := newEnv(t, Options{})
	post := func(path, body string) *http.Response {
		t.Helper()
		resp, err := http.Post(e.url+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := post("/_emu/images", `{"name":"debian-12-cis","owner_alias":"debian","tags":{"cis":"level1"}}`)
	var added map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&added); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("add image: %d %v", resp.StatusCode, err)
	}
	c := e.ec2("us-east-1")
	d := must(c.DescribeImages(e.ctx, &ec2.DescribeImagesInput{Owners: []string{"debian"}}))(t)
	if len(d.Images) != 1 || aws.ToString(d.Images[0].ImageId) != added["image_id"] {
		t.Fatalf("image added over HTTP: %+v", d.Images)
	}
	if resp := post("/_emu/images", `{"name":"x"}`); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a too short name must be rejected, got %d", resp.StatusCode)
	}
	if resp := post("/_emu/throttle", `{"rate":1,"seed":7}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("throttle: %d", resp.StatusCode)
	}
	_, err := e.ec2Attempts("us-east-1", 1).DescribeVpcs(e.ctx, &ec2.DescribeVpcsInput{})
	wantCode(t, err, "RequestLimitExceeded")
	if resp := post("/_emu/faults", `[{"action":"DescribeVpcs","code":"Unavailable","nth":1},{"latency":"bogus"}]`); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad latency must be rejected, got %d", resp.StatusCode)
	}
	resp, err = http.Get(e.url + "/_emu/calls")
	if err != nil {
		t.Fatal(err)
	}
	var calls []Call
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(calls) != 2 || calls[1].Action != "DescribeVpcs" || calls[1].ErrorCode != "RequestLimitExceeded" {
		t.Fatalf("calls: %+v", calls)
	}
	resp, err = http.Get(e.url + "/_emu/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown admin path: %d", resp.StatusCode)
	}
}

func TestConcurrentClients(t *testing.T) {
	e := newEnv(t, Options{})
	ami := e.seedImage("debian-12-cis")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := e.ec2([]string{"us-east-1", "us-west-2"}[i%2])
			name := fmt.Sprintf("build-%d", i)
			sg, err := c.CreateSecurityGroup(e.ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String("d")})
			if err != nil {
				errs <- err
				return
			}
			if _, err := c.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(name), KeyType: types.KeyTypeEd25519}); err != nil {
				errs <- err
				return
			}
			if i%2 == 0 {
				run, err := c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
					SecurityGroupIds: []string{aws.ToString(sg.GroupId)}, KeyName: aws.String(name)})
				if err != nil {
					errs <- err
					return
				}
				iid := aws.ToString(run.Instances[0].InstanceId)
				if _, err := c.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{iid}}); err != nil {
					errs <- err
					return
				}
				if err := ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
					Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax); err != nil {
					errs <- err
					return
				}
			}
			if _, err := c.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}); err != nil {
				errs <- err
				return
			}
			if _, err := c.DeleteKeyPair(e.ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(name)}); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if rep := e.srv.Leaks(); !rep.Empty() {
		t.Fatalf("leaks after concurrent builds: %s", rep)
	}
}

// fakeClock lets tests move time without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestDelayTimingAndTerminatedRetention(t *testing.T) {
	e := newEnv(t, Options{InstanceTiming: &Timing{Delay: time.Minute}, TerminatedRetention: time.Hour})
	clock := &fakeClock{t: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	e.srv.mu.Lock()
	e.srv.now = clock.now
	e.srv.mu.Unlock()
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis")
	run := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))(t)
	id := aws.ToString(run.Instances[0].InstanceId)
	state := func() types.InstanceStateName {
		t.Helper()
		d := must(c.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}))(t)
		return d.Reservations[0].Instances[0].State.Name
	}
	for i := 0; i < 3; i++ {
		if s := state(); s != types.InstanceStateNamePending {
			t.Fatalf("before the delay the instance must stay pending, got %s", s)
		}
	}
	clock.add(time.Minute)
	if s := state(); s != types.InstanceStateNameRunning {
		t.Fatalf("after the delay want running, got %s", s)
	}
	must(c.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}))(t)
	clock.add(time.Minute)
	if s := state(); s != types.InstanceStateNameTerminated {
		t.Fatalf("want terminated, got %s", s)
	}
	clock.add(59 * time.Minute)
	if s := state(); s != types.InstanceStateNameTerminated {
		t.Fatalf("terminated instances stay visible within the retention, got %s", s)
	}
	clock.add(2 * time.Minute)
	_, err := c.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
}

func TestFixedAddrAndSSMFault(t *testing.T) {
	srv := New(Options{Addr: "127.0.0.1:0"})
	url := srv.Start()
	defer srv.Close()
	if !strings.HasPrefix(url, "http://127.0.0.1:") || srv.Endpoint() != url {
		t.Fatalf("endpoint %q", url)
	}
	e := &env{t: t, srv: srv, url: url, ctx: context.Background()}
	c := e.ssm("us-east-1")
	must(c.PutParameter(e.ctx, &ssm.PutParameterInput{Name: aws.String("/a"), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString}))(t)
	srv.InjectFault(Fault{Action: "GetParameter", Code: "AccessDeniedException", Nth: 1})
	_, err := c.GetParameter(e.ctx, &ssm.GetParameterInput{Name: aws.String("/a")})
	wantCode(t, err, "AccessDeniedException")
	g := must(c.GetParameter(e.ctx, &ssm.GetParameterInput{Name: aws.String("/a")}))(t)
	if aws.ToString(g.Parameter.Value) != "v" {
		t.Fatalf("value %q", aws.ToString(g.Parameter.Value))
	}
}
