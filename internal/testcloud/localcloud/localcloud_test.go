package localcloud

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

func TestRoleName(t *testing.T) {
	for in, want := range map[string]string{"": "", "es-node": "es-node", "arn:aws:iam::000000000000:instance-profile/path/es-node": "es-node"} {
		if got := roleName(in); got != want {
			t.Errorf("roleName(%q) = %q, want %q", in, got, want)
		}
	}
}

// env is one local cloud with an SDK client pointed at it.
type env struct {
	t     *testing.T
	lc    *LocalCloud
	ec2   *ec2.Client
	ctx   context.Context
	seeds []SeedImage
}

func newEnv(t *testing.T) *env {
	t.Helper()
	lc := New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	start := time.Now()
	seeds, err := lc.RegisterBaseImages(ctx)
	if err != nil {
		t.Fatalf("RegisterBaseImages: %v", err)
	}
	t.Logf("images ready in %s: %+v", time.Since(start).Round(time.Millisecond), seeds)
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion("us-east-1"),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDLOCALCLOUD", "stand-in-secret", "")))
	if err != nil {
		t.Fatalf("load SDK config: %v", err)
	}
	client := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(lc.Endpoint()) })
	return &env{t: t, lc: lc, ec2: client, ctx: ctx, seeds: seeds}
}

// step logs how long each phase took (no assertion on it: speed lives in benchmarks).
func (e *env) step(name string, f func()) {
	e.t.Helper()
	start := time.Now()
	f()
	e.t.Logf("%-28s %s", name, time.Since(start).Round(time.Millisecond))
}

// cisImageID finds the seed image the way example.pkr.hcl's source_ami_filter does.
func (e *env) cisImageID() string {
	e.t.Helper()
	out, err := e.ec2.DescribeImages(e.ctx, &ec2.DescribeImagesInput{
		Owners: []string{"self"},
		Filters: []types.Filter{
			{Name: aws.String("name"), Values: []string{"debian-12-cis-hardened-*"}},
			{Name: aws.String("architecture"), Values: []string{"x86_64"}},
			{Name: aws.String("state"), Values: []string{"available"}},
		},
	})
	if err != nil {
		e.t.Fatalf("DescribeImages: %v", err)
	}
	if len(out.Images) != 1 {
		e.t.Fatalf("source_ami_filter found %d images, want the one CIS seed (seeds: %+v)", len(out.Images), e.seeds)
	}
	return aws.ToString(out.Images[0].ImageId)
}

func fastWaiter[T any](o *T) {
	switch w := any(o).(type) {
	case *ec2.InstanceRunningWaiterOptions:
		w.MinDelay, w.MaxDelay = 50*time.Millisecond, time.Second
	case *ec2.InstanceStoppedWaiterOptions:
		w.MinDelay, w.MaxDelay = 50*time.Millisecond, time.Second
	case *ec2.InstanceTerminatedWaiterOptions:
		w.MinDelay, w.MaxDelay = 50*time.Millisecond, time.Second
	case *ec2.ImageAvailableWaiterOptions:
		w.MinDelay, w.MaxDelay = 50*time.Millisecond, time.Second
	}
}

func (e *env) run(in *ec2.RunInstancesInput) types.Instance {
	e.t.Helper()
	in.MinCount, in.MaxCount = aws.Int32(1), aws.Int32(1)
	if in.InstanceType == "" {
		in.InstanceType = types.InstanceTypeT3Medium
	}
	out, err := e.ec2.RunInstances(e.ctx, in)
	if err != nil {
		e.t.Fatalf("RunInstances: %v", err)
	}
	return out.Instances[0]
}

func (e *env) waitRunning(id string) types.Instance {
	e.t.Helper()
	w := ec2.NewInstanceRunningWaiter(e.ec2, fastWaiter)
	out, err := w.WaitForOutput(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 2*time.Minute)
	if err != nil {
		e.t.Fatalf("wait for %s running: %v (backend errors: %v)", id, err, e.lc.Server().BackendErrors())
	}
	return out.Reservations[0].Instances[0]
}

func (e *env) waitStopped(id string) {
	e.t.Helper()
	w := ec2.NewInstanceStoppedWaiter(e.ec2, fastWaiter)
	if err := w.Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 2*time.Minute); err != nil {
		e.t.Fatalf("wait for %s stopped: %v (backend errors: %v)", id, err, e.lc.Server().BackendErrors())
	}
}

func (e *env) terminate(id string) {
	e.t.Helper()
	if _, err := e.ec2.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		e.t.Fatalf("TerminateInstances %s: %v", id, err)
	}
	w := ec2.NewInstanceTerminatedWaiter(e.ec2, fastWaiter)
	if err := w.Wait(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 2*time.Minute); err != nil {
		e.t.Fatalf("wait for %s terminated: %v", id, err)
	}
}

// describe returns the instance as DescribeInstances shows it.
func (e *env) describe(id string) types.Instance {
	e.t.Helper()
	out, err := e.ec2.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil || len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		e.t.Fatalf("DescribeInstances %s: %v (%+v)", id, err, out)
	}
	return out.Reservations[0].Instances[0]
}

// ssh runs command as admin over SSH to the instance's public address, as the builder's
// communicator would, checking the host key the guest was given.
func (e *env) ssh(id string, signer ssh.Signer, command string) (string, error) {
	e.t.Helper()
	inst := e.lc.Instance(id)
	if inst == nil {
		e.t.Fatalf("no guest behind %s", id)
	}
	addr := aws.ToString(e.describe(id).PublicIpAddress)
	if addr != inst.PrivateIP() {
		e.t.Fatalf("API reports address %q for %s, guest is at %s", addr, id, inst.PrivateIP())
	}
	cfg := &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: inst.HostKeyCallback(), Timeout: 10 * time.Second}
	c, err := ssh.Dial("tcp", addr+":22", cfg)
	if err != nil {
		return "", fmt.Errorf("ssh admin@%s: %w", addr, err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	if err := s.Run(command); err != nil {
		return out.String(), fmt.Errorf("%q: %w: %s", command, err, errb.String())
	}
	return out.String(), nil
}

// checkHostClean asserts that nothing of the closed cloud is left on the host: no
// namespaces, links, nspawn processes or run dir.
func checkHostClean(t *testing.T, cloudID string, instanceIDs []string) {
	t.Helper()
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "esbtc-"+cloudID+"-") {
				t.Errorf("network namespace %s left behind", e.Name())
			}
		}
	}
	if ents, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "esbtc"+cloudID) {
				t.Errorf("link %s left behind", e.Name())
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("systemd-nspawn")) {
			continue
		}
		for _, id := range instanceIDs {
			if bytes.Contains(b, []byte("--machine="+id)) {
				t.Errorf("nspawn for %s still running: %s", id, p)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(testcloud.RunDir(), cloudID)); !os.IsNotExist(err) {
		t.Errorf("run dir %s left behind (stat: %v)", filepath.Join(testcloud.RunDir(), cloudID), err)
	}
}

func (e *env) finish(instanceIDs []string) {
	e.t.Helper()
	rep := e.lc.Leaks()
	if !rep.Empty() || len(rep.BackendErrors) > 0 {
		e.t.Errorf("leaks after cleanup:\n%s", rep)
	}
	id := e.lc.Cloud().ID()
	if err := e.lc.Close(); err != nil {
		e.t.Errorf("Close: %v", err)
	}
	checkHostClean(e.t, id, instanceIDs)
}

// TestRunSnapshotRelaunch drives a real instance through the SDK: key pair, launch, SSH,
// IMDSv2 from inside, stop, CreateImage, terminate, and a launch from the new image that
// still has the change.
func TestRunSnapshotRelaunch(t *testing.T) {
	e := newEnv(t)
	ami := e.cisImageID()

	var signer ssh.Signer
	e.step("CreateKeyPair", func() {
		kp, err := e.ec2.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("localcloud-test"), KeyType: types.KeyTypeEd25519})
		if err != nil {
			t.Fatalf("CreateKeyPair: %v", err)
		}
		if signer, err = ssh.ParsePrivateKey([]byte(aws.ToString(kp.KeyMaterial))); err != nil {
			t.Fatalf("parse key material: %v", err)
		}
	})

	var first types.Instance
	e.step("RunInstances+running", func() {
		first = e.run(&ec2.RunInstancesInput{
			ImageId: aws.String(ami), KeyName: aws.String("localcloud-test"),
			MetadataOptions: &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateRequired},
			UserData:        aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho stand-in user data ran > /var/lib/localcloud/ran\n"))),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance,
				Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("es-localcloud-1")}, {Key: aws.String("Role"), Value: aws.String("stand-in")}}}},
		})
		first = e.waitRunning(aws.ToString(first.InstanceId))
	})
	id := aws.ToString(first.InstanceId)
	if first.State.Name != types.InstanceStateNameRunning {
		t.Fatalf("%s is %s, want running", id, first.State.Name)
	}
	guest := e.lc.Instance(id)
	if guest == nil || guest.PrivateIP() != aws.ToString(first.PrivateIpAddress) {
		t.Fatalf("guest for %s: %v, API private IP %s", id, guest, aws.ToString(first.PrivateIpAddress))
	}
	if !e.lc.Cloud().Subnet().Contains(netip.MustParseAddr(guest.PrivateIP())) {
		t.Fatalf("guest address %s outside the bridge subnet %s", guest.PrivateIP(), e.lc.Cloud().Subnet())
	}

	e.step("SSH+IMDSv2+marker", func() {
		imds := `T=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) && ` +
			`for p in instance-id local-ipv4 mac tags/instance/Name; do curl -fsS -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/$p; echo; done`
		out, err := e.ssh(id, signer, imds)
		if err != nil {
			t.Fatalf("IMDS from inside: %v", err)
		}
		want := strings.Join([]string{id, aws.ToString(first.PrivateIpAddress), aws.ToString(first.NetworkInterfaces[0].MacAddress), "es-localcloud-1"}, "\n") + "\n"
		if out != want {
			t.Fatalf("IMDS inside %s answered\n%q\nwant\n%q", id, out, want)
		}
		// HttpTokens=required reached the guest's IMDS: a tokenless request is refused.
		if out, err := e.ssh(id, signer, `curl -s -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/meta-data/instance-id`); err != nil || out != "401" {
			t.Fatalf("IMDSv1 request answered %q (%v), want 401", out, err)
		}
		if _, err := e.ssh(id, signer, "echo marker-"+id+" | sudo tee /etc/localcloud-marker >/dev/null"); err != nil {
			t.Fatalf("write marker: %v", err)
		}
		// CreateTags reaches the guest's IMDS (TagUpdater).
		if _, err := e.ec2.CreateTags(e.ctx, &ec2.CreateTagsInput{Resources: []string{id},
			Tags: []types.Tag{{Key: aws.String("Env"), Value: aws.String("localcloud-test")}}}); err != nil {
			t.Fatalf("CreateTags: %v", err)
		}
		if err := e.lc.WaitIdle(e.ctx); err != nil {
			t.Fatal(err)
		}
		out, err = e.ssh(id, signer, `T=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) && curl -fsS -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/tags/instance/Env`)
		if err != nil || out != "localcloud-test" {
			t.Fatalf("IMDS tag Env after CreateTags = %q (%v), want localcloud-test", out, err)
		}
		// The stand-in user data runner ran the script as root.
		if out, err := e.ssh(id, signer, "sudo cat /var/lib/localcloud/ran"); err != nil || out != "stand-in user data ran\n" {
			t.Fatalf("user data output %q (%v), want the script's line", out, err)
		}
	})

	var imageID string
	e.step("Stop+CreateImage+available", func() {
		if _, err := e.ec2.StopInstances(e.ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
			t.Fatalf("StopInstances: %v", err)
		}
		e.waitStopped(id)
		if st := guest.State(); st != testcloud.StateStopped {
			t.Fatalf("guest is %s after the API said stopped", st)
		}
		out, err := e.ec2.CreateImage(e.ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("es-localcloud-test-image")})
		if err != nil {
			t.Fatalf("CreateImage: %v", err)
		}
		imageID = aws.ToString(out.ImageId)
		w := ec2.NewImageAvailableWaiter(e.ec2, fastWaiter)
		if err := w.Wait(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}}, 2*time.Minute); err != nil {
			t.Fatalf("wait for %s available: %v (backend errors: %v)", imageID, err, e.lc.Server().BackendErrors())
		}
	})
	info, ok := e.lc.Server().Image("us-east-1", imageID)
	if !ok || info.Ref == "" {
		t.Fatalf("image %s has no backend ref: %+v", imageID, info)
	}

	e.step("Terminate first", func() { e.terminate(id) })
	if st := guest.State(); st != testcloud.StateTerminated {
		t.Fatalf("guest is %s after the API said terminated", st)
	}

	var second types.Instance
	e.step("Run from new image+running", func() {
		second = e.run(&ec2.RunInstancesInput{ImageId: aws.String(imageID), KeyName: aws.String("localcloud-test")})
		second = e.waitRunning(aws.ToString(second.InstanceId))
	})
	id2 := aws.ToString(second.InstanceId)
	e.step("SSH marker check", func() {
		out, err := e.ssh(id2, signer, "sudo cat /etc/localcloud-marker && T=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) && curl -fsS -H \"X-aws-ec2-metadata-token: $T\" http://169.254.169.254/latest/meta-data/ami-id")
		if err != nil {
			t.Fatalf("read marker on %s: %v", id2, err)
		}
		if want := "marker-" + id + "\n" + imageID; out != want {
			t.Fatalf("instance from the new image shows %q, want %q (marker, then its ami-id)", out, want)
		}
	})

	e.step("cleanup via API", func() {
		e.terminate(id2)
		img, err := e.ec2.DescribeImages(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}})
		if err != nil || len(img.Images) != 1 {
			t.Fatalf("DescribeImages %s: %v", imageID, err)
		}
		if _, err := e.ec2.DeregisterImage(e.ctx, &ec2.DeregisterImageInput{ImageId: aws.String(imageID)}); err != nil {
			t.Fatalf("DeregisterImage: %v", err)
		}
		for _, b := range img.Images[0].BlockDeviceMappings {
			if b.Ebs != nil && b.Ebs.SnapshotId != nil {
				if _, err := e.ec2.DeleteSnapshot(e.ctx, &ec2.DeleteSnapshotInput{SnapshotId: b.Ebs.SnapshotId}); err != nil {
					t.Fatalf("DeleteSnapshot: %v", err)
				}
			}
		}
		if _, err := e.ec2.DeleteKeyPair(e.ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("localcloud-test")}); err != nil {
			t.Fatalf("DeleteKeyPair: %v", err)
		}
		if err := e.lc.WaitIdle(e.ctx); err != nil {
			t.Fatal(err)
		}
	})
	// Deleting the AMI and its snapshot released the snapshot layer on the host.
	if _, err := os.Stat(info.Ref); !os.IsNotExist(err) {
		t.Errorf("snapshot image %s still on disk after DeregisterImage+DeleteSnapshot (stat: %v)", info.Ref, err)
	}
	e.finish([]string{id, id2})
}

// TestGuestInitiatedShutdown: a guest that powers itself off ends as its
// InstanceInitiatedShutdownBehavior says, through user data (terminate) and through
// poweroff over SSH (stop).
func TestGuestInitiatedShutdown(t *testing.T) {
	e := newEnv(t)
	ami := e.cisImageID()
	kp, err := e.ec2.CreateKeyPair(e.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("localcloud-shutdown"), KeyType: types.KeyTypeEd25519})
	if err != nil {
		t.Fatalf("CreateKeyPair: %v", err)
	}
	signer, err := ssh.ParsePrivateKey([]byte(aws.ToString(kp.KeyMaterial)))
	if err != nil {
		t.Fatalf("parse key material: %v", err)
	}

	var selfTerm string
	e.step("user data shutdown -h", func() {
		in := e.run(&ec2.RunInstancesInput{
			ImageId:                           aws.String(ami),
			UserData:                          aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\nshutdown -h now\n"))),
			InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
		})
		selfTerm = aws.ToString(in.InstanceId)
		// Poll by hand: the SDK's terminated waiter gives up on "pending", which a
		// self-terminating instance shows first.
		var seen []string
		deadline := time.After(2 * time.Minute)
		for {
			got := e.describe(selfTerm)
			if n := string(got.State.Name); len(seen) == 0 || seen[len(seen)-1] != n {
				seen = append(seen, n)
			}
			if got.State.Name == types.InstanceStateNameTerminated {
				if got.StateReason == nil || aws.ToString(got.StateReason.Code) != "Client.InstanceInitiatedShutdown" {
					t.Fatalf("terminated with reason %+v, want Client.InstanceInitiatedShutdown", got.StateReason)
				}
				break
			}
			select {
			case <-deadline:
				t.Fatalf("%s never terminated; states seen %v; backend errors %v", selfTerm, seen, e.lc.Server().BackendErrors())
			case <-time.After(100 * time.Millisecond):
			}
		}
		t.Logf("states seen: %v", seen)
	})
	if err := e.lc.WaitIdle(e.ctx); err != nil {
		t.Fatal(err)
	}
	if g := e.lc.Instance(selfTerm); g == nil || g.State() != testcloud.StateTerminated {
		t.Fatalf("guest of %s: %v, want terminated", selfTerm, g)
	}

	var selfStop string
	e.step("poweroff over SSH (stop)", func() {
		in := e.run(&ec2.RunInstancesInput{ImageId: aws.String(ami), KeyName: aws.String("localcloud-shutdown"),
			InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorStop})
		selfStop = aws.ToString(in.InstanceId)
		e.waitRunning(selfStop)
		// The session dies with the guest; its error says nothing.
		_, _ = e.ssh(selfStop, signer, "sudo systemctl poweroff")
		e.waitStopped(selfStop)
		if got := e.describe(selfStop); got.StateReason == nil || aws.ToString(got.StateReason.Code) != "Client.InstanceInitiatedShutdown" {
			t.Fatalf("stopped with reason %+v, want Client.InstanceInitiatedShutdown", got.StateReason)
		}
		// Started again it is watched again: a second poweroff is reported too.
		if _, err := e.ec2.StartInstances(e.ctx, &ec2.StartInstancesInput{InstanceIds: []string{selfStop}}); err != nil {
			t.Fatalf("StartInstances: %v", err)
		}
		e.waitRunning(selfStop)
		_, _ = e.ssh(selfStop, signer, "sudo systemctl poweroff")
		e.waitStopped(selfStop)
		e.terminate(selfStop)
	})
	if _, err := e.ec2.DeleteKeyPair(e.ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("localcloud-shutdown")}); err != nil {
		t.Fatalf("DeleteKeyPair: %v", err)
	}
	e.finish([]string{selfTerm, selfStop})
}

// TestLaunchWithoutRef: an AMI the backend has no rootfs for fails the launch the way EC2
// reports a failed launch (terminated, Server.InternalError) and says what to do.
func TestLaunchWithoutRef(t *testing.T) {
	e := newEnv(t)
	ami, err := e.lc.Server().AddImage(ec2emu.ImageSpec{Name: "no-rootfs-stand-in", Owner: "000000000000"})
	if err != nil {
		t.Fatalf("AddImage: %v", err)
	}
	in := e.run(&ec2.RunInstancesInput{ImageId: aws.String(ami)})
	id := aws.ToString(in.InstanceId)
	if err := e.lc.WaitIdle(e.ctx); err != nil {
		t.Fatal(err)
	}
	got := e.describe(id)
	if got.State.Name != types.InstanceStateNameTerminated || got.StateReason == nil || aws.ToString(got.StateReason.Code) != "Server.InternalError" {
		t.Fatalf("%s is %s (%+v), want terminated with Server.InternalError", id, got.State.Name, got.StateReason)
	}
	errs := e.lc.Server().BackendErrors()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "RegisterBaseImages") {
		t.Fatalf("backend errors %v, want one naming RegisterBaseImages", errs)
	}
	if e.lc.Instance(id) != nil {
		t.Fatalf("a guest exists for the failed launch %s", id)
	}
	rep := e.lc.Leaks()
	if !rep.Empty() {
		t.Fatalf("leaks: %s", rep)
	}
}

// TestTwoZones launches one instance in each zone's subnet through the API and checks
// that the API, DescribeSubnets and each guest's IMDS agree on its subnet and AZ, that
// the host routes between the subnets with source addresses kept, and so that a firewall
// rule by source CIDR in one zone really cuts the other zone off.
func TestTwoZones(t *testing.T) {
	e := newEnv(t)
	subs, err := e.ec2.DescribeSubnets(e.ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subs.Subnets) != 2 {
		t.Fatalf("DescribeSubnets: %v, %d subnets, want 2", err, len(subs.Subnets))
	}
	zones := e.lc.Cloud().Zones()
	var ids []string
	var insts []types.Instance
	for i, sn := range subs.Subnets {
		if aws.ToString(sn.CidrBlock) != zones[i].CIDR.String() || aws.ToString(sn.AvailabilityZone) != "us-east-1"+zones[i].Letter {
			t.Fatalf("subnet %d: %s in %s, want the cloud's zone %+v", i, aws.ToString(sn.CidrBlock), aws.ToString(sn.AvailabilityZone), zones[i])
		}
		in := e.run(&ec2.RunInstancesInput{ImageId: aws.String(e.cisImageID()), SubnetId: sn.SubnetId})
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	for i, id := range ids {
		in := e.waitRunning(id)
		sn := subs.Subnets[i]
		ip := netip.MustParseAddr(aws.ToString(in.PrivateIpAddress))
		if aws.ToString(in.SubnetId) != aws.ToString(sn.SubnetId) || aws.ToString(in.Placement.AvailabilityZone) != aws.ToString(sn.AvailabilityZone) || !zones[i].CIDR.Contains(ip) {
			t.Fatalf("%s: subnet %s AZ %s IP %s, want %s %s in %s", id, aws.ToString(in.SubnetId), aws.ToString(in.Placement.AvailabilityZone), ip, aws.ToString(sn.SubnetId), aws.ToString(sn.AvailabilityZone), zones[i].CIDR)
		}
		guest := e.lc.Instance(id)
		if guest.Zone().Letter != zones[i].Letter {
			t.Fatalf("%s: guest in zone %s, want %s", id, guest.Zone().Letter, zones[i].Letter)
		}
		imds := `T=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) && M=$(curl -fsS -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/mac) && ` +
			`for p in placement/availability-zone network/interfaces/macs/$M/subnet-id network/interfaces/macs/$M/subnet-ipv4-cidr-block network/interfaces/macs/$M/vpc-ipv4-cidr-block; do curl -fsS -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/$p; echo; done; ip -4 -o addr show dev eth0 | awk '{print $4}'`
		out, err := guest.Exec(e.ctx, imds)
		want := strings.Join([]string{aws.ToString(sn.AvailabilityZone), aws.ToString(sn.SubnetId), zones[i].CIDR.String(), e.lc.Cloud().Subnet().String(),
			fmt.Sprintf("%s/%d", ip, zones[i].CIDR.Bits())}, "\n") + "\n"
		if err != nil || out != want {
			t.Fatalf("IMDS and eth0 inside %s:\n%q (%v)\nwant\n%q", id, out, err, want)
		}
		insts = append(insts, in)
	}
	a, b := e.lc.Instance(ids[0]), e.lc.Instance(ids[1])
	// Both zones reach the emulator on the bridge (the EC2 API discovery calls).
	for _, g := range []*testcloud.Instance{a, b} {
		out, err := g.Exec(e.ctx, "curl -s -X POST -d Action=DescribeInstances "+e.lc.GuestEndpoint())
		if err != nil || !strings.Contains(out, "MissingAuthenticationToken") {
			t.Fatalf("emulator at %s from zone %s: %q (%v), want its unsigned-request error", e.lc.GuestEndpoint(), g.Zone().Letter, out, err)
		}
	}
	// A one-shot listener in zone b prints the peer address of each connection.
	listen := `nohup python3 -c 'import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 9300)); s.listen()
while True:
    c, p = s.accept(); c.sendall((p[0] + "\n").encode()); c.close()' >/dev/null 2>&1 &`
	if _, err := b.Exec(e.ctx, listen); err != nil {
		t.Fatalf("listener in zone b: %v", err)
	}
	// The CIS image drops what it does not accept; open transport as esnode boot's
	// cross-AZ default does: to the VPC CIDR.
	allow := func(src string) {
		t.Helper()
		cmd := "iptables -D INPUT 1 2>/dev/null; iptables -I INPUT -p tcp --dport 9300 -s " + src + " -j ACCEPT"
		if out, err := b.Exec(e.ctx, cmd); err != nil {
			t.Fatalf("%s: %v %s", cmd, err, out)
		}
	}
	b.Exec(e.ctx, "iptables -I INPUT -j RETURN") // rule 1, replaced by allow
	allow(e.lc.Cloud().Subnet().String())
	dial := fmt.Sprintf(`python3 -c 'import socket,time
for i in range(30):
    try:
        print(socket.create_connection(("%s", 9300), timeout=2).recv(64).decode().strip()); break
    except ConnectionRefusedError: time.sleep(0.2)
    except OSError as e: print("failed:", e); break'`, b.PrivateIP())
	if out, err := a.Exec(e.ctx, dial); err != nil || strings.TrimSpace(out) != a.PrivateIP() {
		t.Fatalf("zone a -> zone b transport: %q (%v), want the peer to see %s", out, err, a.PrivateIP())
	}
	// Zone b accepts transport from its own subnet only: zone a is cut off.
	allow(b.Zone().CIDR.String())
	if out, _ := a.Exec(e.ctx, dial); !strings.Contains(out, "failed") {
		t.Fatalf("zone a reached zone b through a firewall that allows only %s: %q", b.Zone().CIDR, out)
	}
	for _, id := range ids {
		e.terminate(id)
	}
	e.finish(ids)
}
