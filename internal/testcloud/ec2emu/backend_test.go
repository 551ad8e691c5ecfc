package ec2emu

import (
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// fakeBackend is a stand-in for the nspawn backend: it records what the emulator asks of it.
type fakeBackend struct {
	mu       sync.Mutex
	tags     map[string]map[string]string
	launches []LaunchRequest
	ops      []string
	released []string
}

func (b *fakeBackend) Launch(_ context.Context, req LaunchRequest) (BackendInstance, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.launches = append(b.launches, req)
	if req.Tags["fail"] == "launch" {
		return nil, errors.New("stand-in launch failure")
	}
	return &fakeInstance{b: b, id: req.InstanceID}, nil
}

func (b *fakeBackend) ReleaseImage(_ context.Context, ref string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.released = append(b.released, ref)
	return nil
}

func (b *fakeBackend) record(op string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, op)
}

func (b *fakeBackend) snapshot() ([]LaunchRequest, []string, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]LaunchRequest(nil), b.launches...), append([]string(nil), b.ops...), append([]string(nil), b.released...)
}

type fakeInstance struct {
	b  *fakeBackend
	id string
}

func (f *fakeInstance) Stop(context.Context) error      { f.b.record("stop " + f.id); return nil }
func (f *fakeInstance) Start(context.Context) error     { f.b.record("start " + f.id); return nil }
func (f *fakeInstance) Terminate(context.Context) error { f.b.record("terminate " + f.id); return nil }
func (f *fakeInstance) Snapshot(context.Context) (string, error) {
	f.b.record("snapshot " + f.id)
	return "ref-" + f.id, nil
}
func (f *fakeInstance) SetTags(tags map[string]string) {
	f.b.mu.Lock()
	defer f.b.mu.Unlock()
	if f.b.tags == nil {
		f.b.tags = map[string]map[string]string{}
	}
	f.b.tags[f.id] = tags
}
func (f *fakeInstance) PrivateIP() string { return "" }
func (f *fakeInstance) PublicIP() string  { return "" }

func TestBackendWiring(t *testing.T) {
	be := &fakeBackend{}
	e := newEnv(t, Options{Backend: be})
	c := e.ec2("us-east-1")
	ami, err := e.srv.AddImage(ImageSpec{Name: "debian-12-cis", ImageRef: "rootfs-base"})
	if err != nil {
		t.Fatal(err)
	}
	must(c.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k"), KeyType: types.KeyTypeEd25519}))(t)
	keys := must(c.DescribeKeyPairs(e.ctx, &ec2.DescribeKeyPairsInput{IncludePublicKey: aws.Bool(true)}))(t)
	run := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		KeyName: aws.String("k"), UserData: aws.String(base64.StdEncoding.EncodeToString([]byte("hello"))),
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
		TagSpecifications:                 []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("bake")}}}}}))(t)
	iid := aws.ToString(run.Instances[0].InstanceId)
	running := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast })
	out := must(running.WaitForOutput(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax))(t)
	in := out.Reservations[0].Instances[0]
	launches, _, _ := be.snapshot()
	if len(launches) != 1 {
		t.Fatalf("want one launch, got %d", len(launches))
	}
	lr := launches[0]
	if lr.InstanceID != iid || lr.ImageRef != "rootfs-base" || lr.KeyPublicKey != aws.ToString(keys.KeyPairs[0].PublicKey) ||
		lr.PrivateIP != aws.ToString(in.PrivateIpAddress) || lr.MAC != aws.ToString(in.NetworkInterfaces[0].MacAddress) ||
		lr.SubnetCIDR != "10.0.0.0/24" || lr.VPCCIDR != "10.0.0.0/16" || string(lr.UserData) != "hello" ||
		lr.Tags["Name"] != "bake" || lr.Region != "us-east-1" || lr.AccountID != DefaultAccountID || lr.SubnetID == "" || lr.VPCID == "" || lr.AZ != "us-east-1a" || lr.ShutdownBehavior != "terminate" {
		t.Fatalf("launch request: %+v", lr)
	}
	// Without a backend public address the private one is reported, so clients can connect.
	if aws.ToString(in.PublicIpAddress) != aws.ToString(in.PrivateIpAddress) {
		t.Fatalf("public %q should fall back to private %q", aws.ToString(in.PublicIpAddress), aws.ToString(in.PrivateIpAddress))
	}

	// Tag changes reach the guest (its IMDS serves tags).
	must(c.CreateTags(e.ctx, &ec2.CreateTagsInput{Resources: []string{iid}, Tags: []types.Tag{{Key: aws.String("stage"), Value: aws.String("provision")}}}))(t)
	if err := e.srv.WaitIdle(e.ctx); err != nil {
		t.Fatal(err)
	}
	be.mu.Lock()
	got := be.tags[iid]
	be.mu.Unlock()
	if got["stage"] != "provision" || got["Name"] != "bake" {
		t.Fatalf("backend tags after CreateTags: %v", got)
	}

	// CreateImage snapshots through the backend; the new image launches with that ref.
	img := must(c.CreateImage(e.ctx, &ec2.CreateImageInput{InstanceId: aws.String(iid), Name: aws.String("baked")}))(t)
	must(ec2.NewImageAvailableWaiter(c, func(o *ec2.ImageAvailableWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		WaitForOutput(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(img.ImageId)}}, waitMax))(t)
	info, _ := e.srv.Image("us-east-1", aws.ToString(img.ImageId))
	if info.Ref != "ref-"+iid {
		t.Fatalf("image ref: %q", info.Ref)
	}
	run2 := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: img.ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}))(t)
	iid2 := aws.ToString(run2.Instances[0].InstanceId)
	must(running.WaitForOutput(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid2}}, waitMax))(t)
	launches, _, _ = be.snapshot()
	if launches[1].ImageRef != "ref-"+iid {
		t.Fatalf("second launch should boot the snapshot, got ref %q", launches[1].ImageRef)
	}

	// Stop, then the guest-initiated shutdown path on the second instance.
	must(c.StopInstances(e.ctx, &ec2.StopInstancesInput{InstanceIds: []string{iid}}))(t)
	must(ec2.NewInstanceStoppedWaiter(c, func(o *ec2.InstanceStoppedWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		WaitForOutput(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax))(t)
	must(c.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{iid}}))(t)
	e.srv.NotifyShutdown(iid2) // default behaviour stop
	must(ec2.NewInstanceStoppedWaiter(c, func(o *ec2.InstanceStoppedWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		WaitForOutput(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid2}}, waitMax))(t)
	must(c.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{iid2}}))(t)
	must(ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		WaitForOutput(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid, iid2}}, waitMax))(t)

	// Dropping the image and its snapshot releases the ref.
	must(c.DeregisterImage(e.ctx, &ec2.DeregisterImageInput{ImageId: img.ImageId, DeleteAssociatedSnapshots: aws.Bool(true)}))(t)
	if err := e.srv.WaitIdle(e.ctx); err != nil {
		t.Fatal(err)
	}
	_, ops, released := be.snapshot()
	want := []string{"snapshot " + iid, "stop " + iid, "terminate " + iid, "stop " + iid2, "terminate " + iid2}
	for _, w := range want {
		if !contains(ops, w) {
			t.Fatalf("backend ops %v lack %q", ops, w)
		}
	}
	if len(released) != 1 || released[0] != "ref-"+iid {
		t.Fatalf("released refs: %v", released)
	}
	if errs := e.srv.BackendErrors(); len(errs) != 0 {
		t.Fatalf("backend errors: %v", errs)
	}
	if rep := e.srv.Leaks(); len(rep.Instances)+len(rep.Images)+len(rep.Snapshots) != 0 {
		t.Fatalf("leaks: %s", rep)
	}
}

func TestBackendLaunchFailureTerminates(t *testing.T) {
	be := &fakeBackend{}
	e := newEnv(t, Options{Backend: be})
	c := e.ec2("us-east-1")
	ami := e.seedImage("debian-12-cis")
	run := must(c.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("fail"), Value: aws.String("launch")}}}}}))(t)
	iid := aws.ToString(run.Instances[0].InstanceId)
	_, err := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay, o.MaxDelay = fast, 5*fast }).
		WaitForOutput(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}, waitMax)
	if err == nil {
		t.Fatal("running waiter must fail when the launch fails")
	}
	d := must(c.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{iid}}))(t)
	in := d.Reservations[0].Instances[0]
	if in.State.Name != types.InstanceStateNameTerminated || aws.ToString(in.StateReason.Code) != "Server.InternalError" {
		t.Fatalf("failed launch: state %s reason %+v", in.State.Name, in.StateReason)
	}
	if len(e.srv.BackendErrors()) != 1 {
		t.Fatalf("backend errors: %v", e.srv.BackendErrors())
	}
}
