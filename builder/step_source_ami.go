package builder

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
)

// stepSourceAMI resolves source_ami or source_ami_filter to one EBS-backed
// image and records it for the later steps and the generated data.
type stepSourceAMI struct {
	Region    string
	SourceAMI string
	Filter    AmiFilterOptions
}

func (s *stepSourceAMI) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	d := state.Get(stateDriver).(Driver)
	in := &ec2.DescribeImagesInput{}
	if s.SourceAMI != "" {
		in.ImageIds = []string{s.SourceAMI}
	} else {
		in.Owners = s.Filter.Owners
		in.Filters = filtersFrom(s.Filter.Filters)
	}
	out, err := d.EC2(s.Region).DescribeImages(ctx, in)
	if err != nil {
		return halt(state, wrapf(err, "look up the source AMI in %s (ec2:DescribeImages)", s.Region))
	}
	images := out.Images
	switch {
	case len(images) == 0 && s.SourceAMI != "":
		return halt(state, fmt.Errorf("source_ami: %s not found in %s or not shared with this account", s.SourceAMI, s.Region))
	case len(images) == 0:
		return halt(state, fmt.Errorf("source_ami_filter: no image in %s matches the filters and owners: check them (and the region)", s.Region))
	case len(images) > 1 && !s.Filter.MostRecent:
		return halt(state, fmt.Errorf("source_ami_filter: %d images match: narrow the filters or set most_recent = true", len(images)))
	}
	// CreationDate is RFC 3339 in UTC, so string order is time order.
	sort.SliceStable(images, func(i, j int) bool {
		return aws.ToString(images[i].CreationDate) > aws.ToString(images[j].CreationDate)
	})
	img := images[0]
	if img.RootDeviceType != ec2types.DeviceTypeEbs {
		return halt(state, fmt.Errorf("source AMI %s is %s-backed: this builder needs an EBS-backed image", aws.ToString(img.ImageId), img.RootDeviceType))
	}
	say(state, fmt.Sprintf("Source AMI: %s (%s)", aws.ToString(img.ImageId), aws.ToString(img.Name)))
	state.Put(stateSourceImage, img)
	return multistep.ActionContinue
}

func (s *stepSourceAMI) Cleanup(multistep.StateBag) {}

// sourceGeneratedData is the build data derived from the source image.
func sourceGeneratedData(region string, img ec2types.Image) map[string]string {
	return map[string]string{
		"BuildRegion":           region,
		"SourceAMI":             aws.ToString(img.ImageId),
		"SourceAMICreationDate": aws.ToString(img.CreationDate),
		"SourceAMIName":         aws.ToString(img.Name),
		"SourceAMIOwner":        aws.ToString(img.OwnerId),
		"SourceAMIOwnerName":    aws.ToString(img.ImageOwnerAlias),
		"SourceAMIDescription":  aws.ToString(img.Description),
	}
}
