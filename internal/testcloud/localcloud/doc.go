// Package localcloud is the local cloud the builder's end-to-end tests and the demo run on:
// the EC2 API emulator (ec2emu) backed by real nspawn instances (testcloud).
//
// # localcloud
//
//	lc := localcloud.New(t)                 // or Start(ctx, Options{}); Close removes everything
//	seeds, _ := lc.RegisterBaseImages(ctx)  // debian-12-cis-hardened-<date>, debian-12-base-<date>, owner "self"
//	client := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(lc.Endpoint()) })
//
// Endpoint() goes into the builder's ec2_endpoint, ssm_endpoint and sts_endpoint (one
// server speaks all three). The emulator's default VPC is the bridge subnet, split into a
// zone-a and a zone-b subnet that are the cloud's two zones (testcloud.Config.Zones: each
// its own subnet and gateway, routed through the host), so every private IP it allocates is
// the guest's real address in its own subnet; PublicIpAddress is that same address,
// reachable from the host.
//
// What the API calls do to guests:
//   - RunInstances boots a testcloud instance from the image's ref (a testcloud image dir)
//     with the instance id, type, private IP, MAC, subnet/VPC CIDRs, AZ/region, account,
//     tags and user data in its own IMDS (IMDSv2 only unless HttpTokens=optional), and the
//     key pair's public key in root's and admin's authorized_keys. The instance turns
//     "running" once sshd answers.
//   - Stop/Start/TerminateInstances stop (clean poweroff, disk kept), boot and remove the guest;
//     CreateImage snapshots its disk (a layer over the image it booted from) and later
//     RunInstances boot from that; when the AMI and its snapshot are both deleted the layer is
//     removed. CreateTags/DeleteTags update the tags its IMDS serves; its IMDS answers
//     autoscaling/target-lifecycle-state from the emulator's Auto Scaling group (InService,
//     Terminated once TerminateInstanceInAutoScalingGroup picks it; 404 outside a group).
//   - A guest that powers itself off (shutdown -h, poweroff) is reported to the emulator,
//     which applies InstanceInitiatedShutdownBehavior (stop or terminate).
//
// User data: the images have no cloud-init. As a stand-in for cloud-init's scripts-user,
// user data starting with "#!" is written to /var/lib/localcloud/user-data in the guest and
// run once, as root, in a transient systemd unit (localcloud-user-data) right after the first
// boot (Options.NoUserDataRunner turns this off). #cloud-config, MIME multipart and gzip user
// data are not interpreted; they are only served by IMDS.
//
// Leaks() waits for backend work, then lists what the API still holds (instances, groups,
// key pairs, images, snapshots, volumes) and guests still alive on the host.
//
// Needs what testcloud needs: Linux, root, systemd-container, debootstrap, iproute2,
// iptables, util-linux; the first RegisterBaseImages builds the images (minutes), later ones
// reuse ${ESBAKE_CACHE:-/var/cache/esbake}/images. Tests skip without them and fail with
// CI=true:
//
//	sudo go test ./internal/testcloud/localcloud/   # ~35-45 s with cached images
//
// Not done: regions other than Options.EC2.Regions get no seed images (default: only the
// emulator's default region); instance types are labels (no CPU/memory limits); the IAM
// role IMDS serves is the instance profile's name; HttpPutResponseHopLimit is not applied
// (the guest is one hop from its IMDS either way); no QEMU backend yet.
package localcloud
