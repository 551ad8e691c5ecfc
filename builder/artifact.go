package builder

import (
	"context"
	"fmt"
	"sort"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"
)

// Artifact is the set of images one build made, region -> AMI id.
type Artifact struct {
	Amis      map[string]string
	SourceAMI string
	Labels    map[string]string // HCP labels (manifest summary)
	StateData map[string]interface{}
	driver    Driver
}

var _ packersdk.Artifact = (*Artifact)(nil)

func (a *Artifact) BuilderId() string { return BuilderId }

func (a *Artifact) Files() []string { return nil }

func (a *Artifact) regions() []string {
	rs := make([]string, 0, len(a.Amis))
	for r := range a.Amis {
		rs = append(rs, r)
	}
	sort.Strings(rs)
	return rs
}

// Id is "region:ami,region:ami", as amazon-ebs reports it.
func (a *Artifact) Id() string {
	parts := make([]string, 0, len(a.Amis))
	for _, r := range a.regions() {
		parts = append(parts, r+":"+a.Amis[r])
	}
	return strings.Join(parts, ",")
}

func (a *Artifact) String() string {
	lines := make([]string, 0, len(a.Amis))
	for _, r := range a.regions() {
		lines = append(lines, fmt.Sprintf("%s: %s", r, a.Amis[r]))
	}
	return "AMIs were created:\n" + strings.Join(lines, "\n") + "\n"
}

// State serves generated data and the HCP Packer registry metadata.
func (a *Artifact) State(name string) interface{} {
	if name == registryimage.ArtifactStateURI {
		imgs, err := registryimage.FromMappedData(a.Amis, func(k, v interface{}) (*registryimage.Image, error) {
			return &registryimage.Image{
				ProviderName:   "aws",
				ProviderRegion: k.(string),
				ImageID:        v.(string),
				SourceImageID:  a.SourceAMI,
				Labels:         a.Labels,
			}, nil
		})
		if err != nil {
			return nil
		}
		return imgs
	}
	return a.StateData[name]
}

// Destroy deregisters every image and deletes its snapshots.
func (a *Artifact) Destroy() error {
	if a.driver == nil {
		return fmt.Errorf("artifact %s has no AWS connection to destroy it with", a.Id())
	}
	var errs []string
	for _, r := range a.regions() {
		if err := deleteImage(context.Background(), a.driver.EC2(r), a.Amis[r], true); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", r, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("destroy images: %s", strings.Join(errs, "; "))
	}
	return nil
}
