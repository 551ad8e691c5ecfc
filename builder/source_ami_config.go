//go:generate ../internal/tools/packer-sdc.sh struct-markdown
//go:generate ../internal/tools/packer-sdc.sh mapstructure-to-hcl2 -type SourceAMIConfig,AmiFilterOptions

package builder

import (
	"fmt"
	"regexp"
)

var (
	reAMIID     = regexp.MustCompile(`^ami-[0-9a-f]{8}([0-9a-f]{9})?$`)
	reAccountID = regexp.MustCompile(`^[0-9]{12}$`)
	// Owner aliases DescribeImages accepts besides account ids.
	amiOwnerAliases = map[string]bool{"self": true, "amazon": true, "aws-marketplace": true, "aws-backup-vault": true}
)

// AmiFilterOptions selects the source AMI with DescribeImages.
//
// HCL2 example (a CIS-hardened Debian base of your choice):
//
// ```hcl
//
//	source_ami_filter {
//	  filters = {
//	    name                = "debian-12-amd64-*"
//	    architecture        = "x86_64"
//	    root-device-type    = "ebs"
//	    virtualization-type = "hvm"
//	  }
//	  owners      = ["123456789012"]
//	  most_recent = true
//	}
//
// ```
type AmiFilterOptions struct {
	// DescribeImages filters, name to value (a value may contain `*`
	// wildcards). At least one filter is required.
	Filters map[string]string `mapstructure:"filters" required:"true"`
	// Accounts whose images may be used: 12-digit account ids or `self`,
	// `amazon`, `aws-marketplace`. Required: without an owner anyone's
	// public image matching the filters could become your base.
	Owners []string `mapstructure:"owners" required:"true"`
	// Pick the newest image when several match. Without it, several matches
	// fail the build rather than picking one at random.
	MostRecent bool `mapstructure:"most_recent" required:"false"`
}

// Empty reports whether no filter block was given.
func (f *AmiFilterOptions) Empty() bool {
	return len(f.Filters) == 0 && len(f.Owners) == 0 && !f.MostRecent
}

// SourceAMIConfig chooses the image the build instance starts from: give
// exactly one of `source_ami` or `source_ami_filter`.
type SourceAMIConfig struct {
	// The id of the source AMI, e.g. `ami-0123456789abcdef0`. It must be
	// EBS-backed and in `region`.
	SourceAMI string `mapstructure:"source_ami" required:"false"`
	// Find the source AMI with filters instead of an id.
	SourceAMIFilter AmiFilterOptions `mapstructure:"source_ami_filter" required:"false"`
}

// Prepare validates the source AMI choice.
func (c *SourceAMIConfig) Prepare() []error {
	var errs []error
	hasFilter := !c.SourceAMIFilter.Empty()
	switch {
	case c.SourceAMI != "" && hasFilter:
		errs = append(errs, fmt.Errorf("`source_ami` and `source_ami_filter` are both set: keep exactly one of them"))
	case c.SourceAMI == "" && !hasFilter:
		errs = append(errs, fmt.Errorf("`source_ami` or `source_ami_filter` is required: give the base image id, or a filter with owners"))
	}
	if c.SourceAMI != "" && !reAMIID.MatchString(c.SourceAMI) {
		errs = append(errs, fmt.Errorf("`source_ami` %q is not an AMI id: use the form \"ami-0123456789abcdef0\"", c.SourceAMI))
	}
	if hasFilter {
		f := &c.SourceAMIFilter
		if len(f.Filters) == 0 {
			errs = append(errs, fmt.Errorf("`source_ami_filter.filters` is empty: give at least one DescribeImages filter, e.g. name = \"debian-12-amd64-*\""))
		}
		for k, v := range f.Filters {
			if k == "" || v == "" {
				errs = append(errs, fmt.Errorf("`source_ami_filter.filters` has an empty name or value (%q = %q): remove it or fill it in", k, v))
			}
		}
		if len(f.Owners) == 0 {
			errs = append(errs, fmt.Errorf("`source_ami_filter.owners` is required: list the account ids (or \"self\"/\"amazon\") whose images you trust, so a stranger's public image cannot match"))
		}
		for _, o := range f.Owners {
			if !reAccountID.MatchString(o) && !amiOwnerAliases[o] {
				errs = append(errs, fmt.Errorf("`source_ami_filter.owners` entry %q is invalid: use a 12-digit account id or one of self, amazon, aws-marketplace", o))
			}
		}
	}
	return errs
}
