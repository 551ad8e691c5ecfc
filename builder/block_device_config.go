//go:generate ../internal/tools/packer-sdc.sh struct-markdown
//go:generate ../internal/tools/packer-sdc.sh mapstructure-to-hcl2 -type BlockDevice

package builder

import (
	"fmt"
	"regexp"

	"github.com/hashicorp/packer-plugin-sdk/template/config"
)

const (
	DefaultVolumeType = "gp3"
	minGP3Throughput  = 125
	maxGP3Throughput  = 2000
)

var (
	reDeviceName = regexp.MustCompile(`^(/dev/)?(sd[a-z]{1,2}[0-9]*|xvd[a-z]{1,2}[0-9]*|nvme[0-9]+n[0-9]+)$`)
	reSnapshotID = regexp.MustCompile(`^snap-[0-9a-f]{8}([0-9a-f]{9})?$`)
)

// BlockDevice is one EBS volume attached to the build instance
// (`launch_block_device_mappings`). A mapping whose `device_name` is the
// source AMI's root device overrides the root volume; without one the
// builder still launches the root volume as encrypted gp3. Volumes outside
// the root become part of the image.
//
// HCL2 example:
//
// ```hcl
//
//	launch_block_device_mappings {
//	  device_name = "/dev/xvda"
//	  volume_size = 30
//	}
//	launch_block_device_mappings {
//	  device_name = "/dev/sdf"   # Elasticsearch data
//	  volume_size = 100
//	  iops        = 6000
//	  throughput  = 250
//	}
//
// ```
type BlockDevice struct {
	// The device name, e.g. `/dev/xvda` or `/dev/sdf`.
	DeviceName string `mapstructure:"device_name" required:"true"`
	// Size in GiB. 0 keeps the snapshot's size (required for a new,
	// snapshot-less volume). Limits depend on the volume type.
	VolumeSize int64 `mapstructure:"volume_size" required:"false"`
	// One of `gp3` (default), `gp2`, `io1`, `io2`, `st1`, `sc1`, `standard`.
	VolumeType string `mapstructure:"volume_type" required:"false"`
	// Provisioned IOPS: gp3 3000-80000 (3000 included in the price),
	// io1 100-64000, io2 100-256000 (required for io1/io2). Not allowed on
	// other types.
	IOPS int64 `mapstructure:"iops" required:"false"`
	// Throughput in MiB/s, gp3 only: 125-2000. Defaults to AWS's 125.
	Throughput int64 `mapstructure:"throughput" required:"false"`
	// Encrypt the volume. Defaults to `true`: a CIS-hardened image keeps its
	// data encrypted at rest.
	Encrypted config.Trilean `mapstructure:"encrypted" required:"false"`
	// The KMS key (id, alias or ARN) to encrypt with. Empty uses the
	// account's default EBS key. Requires `encrypted` not to be false.
	KmsKeyID string `mapstructure:"kms_key_id" required:"false"`
	// Delete the volume when the instance terminates. Defaults to `true` so
	// a failed build leaves no volume behind.
	DeleteOnTermination config.Trilean `mapstructure:"delete_on_termination" required:"false"`
	// Create the volume from this snapshot instead of empty.
	SnapshotID string `mapstructure:"snapshot_id" required:"false"`
}

// prepare applies defaults and validates one mapping; path names it in
// messages, e.g. "launch_block_device_mappings[1]".
func (b *BlockDevice) prepare(path string) []error {
	var errs []error
	if b.DeviceName == "" {
		errs = append(errs, fmt.Errorf("`%s.device_name` is required: give the device, e.g. \"/dev/sdf\"", path))
	} else if !reDeviceName.MatchString(b.DeviceName) {
		errs = append(errs, fmt.Errorf("`%s.device_name` %q is invalid: use a Linux device name such as \"/dev/xvda\" or \"/dev/sdf\"", path, b.DeviceName))
	}
	if b.VolumeType == "" {
		b.VolumeType = DefaultVolumeType
	}
	lim, ok := volumeTypes[b.VolumeType]
	if !ok {
		errs = append(errs, fmt.Errorf("`%s.volume_type` %q is unknown: use gp3, gp2, io1, io2, st1, sc1 or standard", path, b.VolumeType))
	}
	if b.Encrypted == config.TriUnset {
		b.Encrypted = config.TriTrue
	}
	if b.DeleteOnTermination == config.TriUnset {
		b.DeleteOnTermination = config.TriTrue
	}
	if b.KmsKeyID != "" && b.Encrypted.False() {
		errs = append(errs, fmt.Errorf("`%s.kms_key_id` is set but `encrypted` is false: remove kms_key_id or encrypt the volume", path))
	}
	if b.SnapshotID != "" && !reSnapshotID.MatchString(b.SnapshotID) {
		errs = append(errs, fmt.Errorf("`%s.snapshot_id` %q is not a snapshot id: use the form \"snap-0123456789abcdef0\"", path, b.SnapshotID))
	}
	if b.VolumeSize < 0 {
		errs = append(errs, fmt.Errorf("`%s.volume_size` %d is negative: give the size in GiB", path, b.VolumeSize))
	}
	if b.VolumeSize == 0 && b.SnapshotID == "" && !reRootish(b.DeviceName) {
		// A data volume needs a size; the root keeps the AMI's size.
		errs = append(errs, fmt.Errorf("`%s.volume_size` is required for a new volume without snapshot_id: give the size in GiB", path))
	}
	if !ok {
		return errs
	}
	if b.VolumeSize > 0 && (b.VolumeSize < lim.minSize || b.VolumeSize > lim.maxSize) {
		errs = append(errs, fmt.Errorf("`%s.volume_size` %d GiB is out of range for %s: use %d to %d", path, b.VolumeSize, b.VolumeType, lim.minSize, lim.maxSize))
	}
	switch {
	case b.IOPS != 0 && lim.maxIOPS == 0:
		errs = append(errs, fmt.Errorf("`%s.iops` cannot be set on a %s volume: remove it or use gp3, io1 or io2", path, b.VolumeType))
	case b.IOPS != 0 && (b.IOPS < lim.minIOPS || b.IOPS > lim.maxIOPS):
		errs = append(errs, fmt.Errorf("`%s.iops` %d is out of range for %s: use %d to %d", path, b.IOPS, b.VolumeType, lim.minIOPS, lim.maxIOPS))
	case b.IOPS == 0 && lim.iopsRequired:
		errs = append(errs, fmt.Errorf("`%s.iops` is required for %s volumes: give %d to %d", path, b.VolumeType, lim.minIOPS, lim.maxIOPS))
	}
	if b.Throughput != 0 {
		if b.VolumeType != "gp3" {
			errs = append(errs, fmt.Errorf("`%s.throughput` only applies to gp3 volumes, not %s: remove it or set volume_type = \"gp3\"", path, b.VolumeType))
		} else if b.Throughput < minGP3Throughput || b.Throughput > maxGP3Throughput {
			errs = append(errs, fmt.Errorf("`%s.throughput` %d MiB/s is out of range for gp3: use %d to %d", path, b.Throughput, minGP3Throughput, maxGP3Throughput))
		}
	}
	return errs
}

// reRootish guesses the usual root device names, which may keep the AMI's
// size; the real root name is only known once the source AMI is resolved.
func reRootish(name string) bool {
	switch name {
	case "/dev/xvda", "/dev/sda1", "/dev/sda", "xvda", "sda1", "/dev/nvme0n1":
		return true
	}
	return false
}

func prepareBlockDevices(field string, devs []BlockDevice) []error {
	var errs []error
	seen := map[string]int{}
	for i := range devs {
		path := fmt.Sprintf("%s[%d]", field, i)
		errs = append(errs, devs[i].prepare(path)...)
		if j, dup := seen[devs[i].DeviceName]; dup && devs[i].DeviceName != "" {
			errs = append(errs, fmt.Errorf("`%s.device_name` %q is already used by %s[%d]: give each volume its own device", path, devs[i].DeviceName, field, j))
		}
		seen[devs[i].DeviceName] = i
	}
	return errs
}
