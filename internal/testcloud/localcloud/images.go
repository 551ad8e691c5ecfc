package localcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud"
	"github.com/esbake/packer-plugin-elasticsearch/internal/testcloud/ec2emu"
)

// SeedImage is a cached testcloud image registered in the emulator as a source AMI.
type SeedImage struct {
	Region  string // "" is the emulator's default region
	ID      string // ami-...
	Name    string // e.g. debian-12-cis-hardened-20261125
	Variant testcloud.Variant
	Ref     string // the testcloud image dir RunInstances boots from
}

// debianVersions maps suites to the version AMI names carry.
var debianVersions = map[string]string{"bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}

// seedNames are the AMI name prefixes per variant; the date of the image build follows.
// The CIS one matches example.pkr.hcl's source_ami_filter "debian-<N>-cis-hardened-*".
var seedNames = map[testcloud.Variant]string{
	testcloud.VariantCIS:  "debian-%s-cis-hardened-%s",
	testcloud.VariantBase: "debian-%s-base-%s",
}

// RegisterBaseImages builds (first time, minutes) or reuses the cached CIS and base images
// and registers each as an available x86_64 AMI owned by the caller's account, so
// Owners=["self"] finds them, in every region of Options.EC2.Regions (or the emulator's
// default region when that is empty). Calling it again returns the same images.
func (lc *LocalCloud) RegisterBaseImages(ctx context.Context) ([]SeedImage, error) {
	lc.seedMu.Lock()
	defer lc.seedMu.Unlock()
	if lc.seeds != nil {
		return append([]SeedImage(nil), lc.seeds...), nil
	}
	regions := lc.opts.EC2.Regions
	if len(regions) == 0 {
		regions = []string{""} // the emulator's default region
	}
	owner := lc.opts.EC2.AccountID
	if owner == "" {
		owner = ec2emu.DefaultAccountID
	}
	var out []SeedImage
	for _, spec := range []testcloud.ImageSpec{testcloud.CISImage, testcloud.BaseImage} {
		img, err := testcloud.EnsureImage(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("register base images: %w", err)
		}
		meta := readImageMeta(img.Ref())
		ver := debianVersions[meta.Suite]
		if ver == "" {
			ver = meta.Suite
		}
		name := fmt.Sprintf(seedNames[spec.Variant], ver, meta.Built.UTC().Format("20060102"))
		for _, region := range regions {
			id, err := lc.srv.AddImage(ec2emu.ImageSpec{
				Region: region, Name: name, Owner: owner, Architecture: "x86_64",
				Description:  fmt.Sprintf("Debian %s (%s) %s image, local stand-in built by testcloud", ver, meta.Suite, spec.Variant),
				CreationDate: meta.Built, ImageRef: img.Ref(), Private: true,
				Tags: map[string]string{"localcloud:variant": string(spec.Variant)},
			})
			if err != nil {
				return nil, fmt.Errorf("register %s image %s: %w", spec.Variant, name, err)
			}
			out = append(out, SeedImage{Region: region, ID: id, Name: name, Variant: spec.Variant, Ref: img.Ref()})
		}
	}
	lc.seeds = out
	lc.logf("registered base images: %v", out)
	return append([]SeedImage(nil), out...), nil
}

type imageMeta struct {
	Suite string    `json:"suite"`
	Built time.Time `json:"built"`
}

// readImageMeta reads suite and build time from testcloud's image.json; missing values
// fall back to the host's suite and the directory's time so a name can still be made.
func readImageMeta(dir string) imageMeta {
	var m imageMeta
	if b, err := os.ReadFile(filepath.Join(dir, "image.json")); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	if m.Suite == "" {
		m.Suite, _ = testcloud.HostSuite()
	}
	if m.Built.IsZero() {
		if fi, err := os.Stat(dir); err == nil {
			m.Built = fi.ModTime()
		} else {
			m.Built = time.Now()
		}
	}
	return m
}
