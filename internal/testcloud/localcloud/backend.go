package localcloud

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

// backend implements ec2emu.Backend (and ImageReleaser) with testcloud instances.
type backend struct {
	lc *LocalCloud

	mu        sync.Mutex
	insts     map[string]*backendInstance // EC2 instance id → guest
	images    map[string]*testcloud.Image // image ref → resolved image
	snapshots map[string]bool             // refs made by Snapshot (ours to release)
	ips       map[string]string           // private IP → instance id holding it
}

var (
	_ ec2emu.Backend         = (*backend)(nil)
	_ ec2emu.ImageReleaser   = (*backend)(nil)
	_ ec2emu.BackendInstance = (*backendInstance)(nil)
	_ ec2emu.PortLocator     = (*backendInstance)(nil)
	_ ec2emu.TagUpdater      = (*backendInstance)(nil)
)

// image resolves an emulator image ref (an image dir from EnsureImage or SnapshotImage).
func (b *backend) image(ref string) (*testcloud.Image, error) {
	b.mu.Lock()
	img := b.images[ref]
	b.mu.Unlock()
	if img != nil {
		return img, nil
	}
	img, err := testcloud.ImageFromDir(ref, "")
	if err != nil {
		return nil, fmt.Errorf("image ref %q: %w", ref, err)
	}
	b.mu.Lock()
	b.images[ref] = img
	b.mu.Unlock()
	return img, nil
}

// Launch boots a guest for RunInstances.
func (b *backend) Launch(ctx context.Context, req ec2emu.LaunchRequest) (ec2emu.BackendInstance, error) {
	if req.ImageRef == "" {
		return nil, fmt.Errorf("launch %s: image %s has no local rootfs behind it; register images with RegisterBaseImages or Server().AddImage(ImageSpec{ImageRef: <testcloud image dir>})", req.InstanceID, req.ImageID)
	}
	img, err := b.image(req.ImageRef)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", req.InstanceID, err)
	}
	// Every region's subnets map onto the one bridge, so two regions can allocate the
	// same address; the second guest then takes a free one (reported via PrivateIP).
	ip := req.PrivateIP
	b.mu.Lock()
	if holder, ok := b.ips[ip]; ok && holder != req.InstanceID {
		ip = ""
	}
	b.mu.Unlock()
	spec := testcloud.LaunchSpec{
		Image: img, InstanceID: req.InstanceID, InstanceType: req.InstanceType, ImageID: req.ImageID,
		PrivateIP: ip, SubnetCIDR: req.SubnetCIDR, VPCCIDR: req.VPCCIDR, SubnetID: req.SubnetID, VPCID: req.VPCID,
		MAC: req.MAC, AZ: req.AZ, Region: req.Region, AccountID: req.AccountID, Tags: req.Tags,
		UserData: req.UserData, AuthorizedKey: req.KeyPublicKey, AllowIMDSv1: req.HTTPTokens == "optional",
		IAMRole: roleName(req.IAMInstanceProfile), BootTimeout: b.lc.opts.BootTimeout,
		RunFiles: map[string][]byte{GuestEndpointsDropIn: b.lc.guestEndpointsDropIn(), GuestDrainEndpointsDropIn: b.lc.guestDrainEndpointsDropIn()},
		// The group's view at each request: Terminated once a scale-in picks it.
		TargetLifecycleState: func() string { return b.lc.srv.TargetLifecycleState(req.InstanceID) },
	}
	start := time.Now()
	inst, err := b.lc.cloud.Launch(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("launch %s from %s: %w", req.InstanceID, req.ImageRef, err)
	}
	bi := &backendInstance{b: b, inst: inst, id: req.InstanceID}
	b.mu.Lock()
	b.insts[req.InstanceID] = bi
	b.ips[inst.PrivateIP()] = req.InstanceID
	b.mu.Unlock()
	b.lc.logf("launched %s (%s) at %s in %s", req.InstanceID, req.ImageID, inst.PrivateIP(), time.Since(start).Round(time.Millisecond))
	// Armed before user data runs: a script may power the guest off at once.
	bi.watch()
	if !b.lc.opts.NoUserDataRunner && bytes.HasPrefix(req.UserData, []byte("#!")) {
		if err := runUserData(ctx, inst, req.UserData); err != nil {
			// cloud-init does not fail an instance whose script fails either.
			b.lc.logf("user data of %s: %v", req.InstanceID, err)
		}
	}
	return bi, nil
}

// roleName turns an instance profile name or ARN into the role name IMDS serves
// credentials for (a stand-in: real profiles may name a different role).
func roleName(profile string) string {
	if profile == "" {
		return ""
	}
	return path.Base(profile)
}

// userDataPath is where the stand-in runner puts the script inside the guest, as
// cloud-init keeps it under /var/lib/cloud (not /tmp, which is noexec on CIS images).
const userDataPath = "/var/lib/localcloud/user-data"

// runUserData is the stand-in for cloud-init's scripts-user: the script runs once, as
// root, detached from us in a transient systemd unit of the guest.
func runUserData(ctx context.Context, inst *testcloud.Instance, script []byte) error {
	p := filepath.Join(inst.RootDir(), userDataPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("write user data into the guest: %w", err)
	}
	if err := os.WriteFile(p, script, 0o700); err != nil {
		return fmt.Errorf("write user data into the guest: %w", err)
	}
	if _, err := inst.Exec(ctx, "systemd-run --no-block --unit=localcloud-user-data --description='user data (localcloud stand-in for cloud-init)' "+userDataPath); err != nil {
		return fmt.Errorf("start user data: %w", err)
	}
	return nil
}

// ReleaseImage frees a snapshot image once no AMI or snapshot refers to it. Seed images
// (the cached rootfs images) are never ours to remove.
func (b *backend) ReleaseImage(_ context.Context, ref string) error {
	b.mu.Lock()
	ours := b.snapshots[ref]
	img := b.images[ref]
	delete(b.snapshots, ref)
	delete(b.images, ref)
	b.mu.Unlock()
	if !ours {
		return nil
	}
	if img == nil {
		var err error
		if img, err = testcloud.ImageFromDir(ref, ""); err != nil {
			return fmt.Errorf("release image %s: %w", ref, err)
		}
	}
	if err := b.lc.cloud.ReleaseImage(img); err != nil {
		return fmt.Errorf("release image %s: %w", ref, err)
	}
	return nil
}

// backendInstance is one guest as the emulator sees it.
type backendInstance struct {
	b    *backend
	inst *testcloud.Instance
	id   string

	mu sync.Mutex
	// gen counts runs the emulator asked for: a watcher whose run was ended by Stop or
	// Terminate (gen moved on) does not report a guest-initiated shutdown.
	gen int
}

// watch reports a power-off from inside the guest (shutdown -h, poweroff) to the emulator,
// which then applies InstanceInitiatedShutdownBehavior.
func (bi *backendInstance) watch() {
	bi.mu.Lock()
	gen := bi.gen
	bi.mu.Unlock()
	stopped := bi.inst.Stopped()
	lc := bi.b.lc
	lc.wg.Add(1)
	go func() {
		defer lc.wg.Done()
		select {
		case <-stopped:
		case <-lc.ctx.Done():
			return
		}
		for {
			bi.mu.Lock()
			superseded := bi.gen != gen
			bi.mu.Unlock()
			if superseded {
				return
			}
			info, ok := lc.srv.Instance(bi.id)
			if !ok {
				return
			}
			switch info.State {
			case "running":
				lc.logf("%s powered itself off; shutdown behaviour %q", bi.id, info.ShutdownBehavior)
				lc.srv.NotifyShutdown(bi.id)
				return
			case "pending":
				// The API has not shown it running yet (state advances on Describe);
				// EC2 would still apply the shutdown behaviour, so wait for that.
			default:
				return
			}
			select {
			case <-lc.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

func (bi *backendInstance) bump() {
	bi.mu.Lock()
	bi.gen++
	bi.mu.Unlock()
}

func (bi *backendInstance) Stop(ctx context.Context) error {
	bi.bump()
	if err := bi.inst.Stop(ctx); err != nil {
		return fmt.Errorf("stop %s: %w", bi.id, err)
	}
	return nil
}

func (bi *backendInstance) Start(ctx context.Context) error {
	bi.bump()
	if err := bi.inst.Start(ctx); err != nil {
		return fmt.Errorf("start %s: %w", bi.id, err)
	}
	bi.watch()
	return nil
}

func (bi *backendInstance) Terminate(ctx context.Context) error {
	bi.bump()
	err := bi.inst.Terminate(ctx)
	bi.b.mu.Lock()
	if bi.b.ips[bi.inst.PrivateIP()] == bi.id {
		delete(bi.b.ips, bi.inst.PrivateIP())
	}
	bi.b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("terminate %s: %w", bi.id, err)
	}
	return nil
}

// Snapshot makes the image CreateImage registers: the guest's changes as a layer over its
// image, kept in the cloud's run dir until ReleaseImage or Close.
func (bi *backendInstance) Snapshot(ctx context.Context) (string, error) {
	img, err := bi.inst.SnapshotImage(ctx)
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", bi.id, err)
	}
	ref := img.Ref()
	bi.b.mu.Lock()
	bi.b.images[ref] = img
	bi.b.snapshots[ref] = true
	bi.b.mu.Unlock()
	bi.b.lc.logf("snapshot of %s at %s", bi.id, ref)
	return ref, nil
}

func (bi *backendInstance) SetTags(tags map[string]string) { bi.inst.SetTags(tags) }

func (bi *backendInstance) PrivateIP() string { return bi.inst.PrivateIP() }

// PortAddress is where the guest's port is: the host reaches guests on the
// bridge, so Session Manager port forwarding relays there.
func (bi *backendInstance) PortAddress(port int) (string, error) {
	ip := bi.inst.PrivateIP()
	if ip == "" {
		return "", fmt.Errorf("guest of %s has no address", bi.id)
	}
	return net.JoinHostPort(ip, strconv.Itoa(port)), nil
}

// PublicIP is empty: the emulator then reports the private address, which the host reaches.
func (bi *backendInstance) PublicIP() string { return "" }
