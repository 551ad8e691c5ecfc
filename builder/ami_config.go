//go:generate ../internal/tools/packer-sdc.sh struct-markdown
//go:generate ../internal/tools/packer-sdc.sh mapstructure-to-hcl2 -type AMIConfig

package builder

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/template/config"
)

// DefaultIMDSSupport is the only image IMDS mode we build: instances
// launched from the image get IMDSv2-only metadata.
const DefaultIMDSSupport = "v2.0"

const (
	maxTags             = 50
	maxTagKeyLen        = 128
	maxTagValueLen      = 256
	maxSSMNameLen       = 1011
	maxSSMHierarchy     = 15
	maxDeprecateHorizon = 10 * 365 * 24 * time.Hour
	// ReservedTagPrefix marks the tags the builder writes itself (manifest
	// summary); templates may not set them.
	ReservedTagPrefix = "esbake:"
)

var (
	reAMIName   = regexp.MustCompile(`^[a-zA-Z0-9()\[\] ./'@_-]{3,128}$`)
	reOrgARN    = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}$`)
	reOUARN     = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$`)
	reSSMName   = regexp.MustCompile(`^[a-zA-Z0-9_.\-/]+$`)
	reKMSKey    = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|alias/[a-zA-Z0-9/_-]+|arn:aws(-cn|-us-gov)?:kms:[a-z0-9-]+:[0-9]{12}:(key/[0-9a-f-]+|key/mrk-[0-9a-f]{32}|alias/[a-zA-Z0-9/_-]+))$`)
	timeNowFunc = time.Now
)

// AMIConfig describes the image the build produces and where it goes.
type AMIConfig struct {
	// The image name, 3 to 128 characters of letters, digits and
	// `()[] ./-'@_`, unique in the account and region. Template functions
	// work: `es-8-{{timestamp}}`, `{{ clean_resource_name "..." }}`.
	AMIName string `mapstructure:"ami_name" required:"true"`
	// The image description. Rendered at build time, so build data such as
	// `{{ .SourceAMIName }}` may be used.
	AMIDescription string `mapstructure:"ami_description" required:"false"`
	// Tags for the image (and, when copied, its copies). Rendered at build
	// time. Keys starting with `aws:` or `esbake:` are reserved: the builder
	// adds `esbake:es-version`, `esbake:plugins` and `esbake:spec-hash`
	// itself.
	AMITags map[string]string `mapstructure:"tags" required:"false"`
	// Tags for the image's snapshots. Rendered at build time.
	SnapshotTags map[string]string `mapstructure:"snapshot_tags" required:"false"`
	// More regions to copy the image to, e.g. `["eu-west-1"]`. The build
	// region is always included and need not be listed.
	AMIRegions []string `mapstructure:"ami_regions" required:"false"`
	// 12-digit account ids allowed to launch the image.
	AMIUsers []string `mapstructure:"ami_users" required:"false"`
	// AWS Organizations ARNs whose accounts may launch the image, e.g.
	// `arn:aws:organizations::123456789012:organization/o-abcdefghij`.
	AMIOrgArns []string `mapstructure:"ami_org_arns" required:"false"`
	// Organizational unit ARNs whose accounts may launch the image.
	AMIOuArns []string `mapstructure:"ami_ou_arns" required:"false"`
	// When the image is deprecated, RFC 3339, e.g. `2027-01-31T00:00:00Z`.
	// Must be in the future and within 10 years.
	DeprecationTime string `mapstructure:"deprecate_at" required:"false"`
	// The image's IMDS support. `v2.0` (the default) is the only value:
	// instances from the image get IMDSv2-only metadata.
	IMDSSupport string `mapstructure:"imds_support" required:"false"`
	// Deregister an existing image of the same name first, instead of
	// failing. `packer build -force` sets it too.
	AMIForceDeregister bool `mapstructure:"force_deregister" required:"false"`
	// With `force_deregister`, delete the old image's snapshots too.
	AMIForceDeleteSnapshot bool `mapstructure:"force_delete_snapshot" required:"false"`
	// An SSM parameter to write the new image id to (in every image region),
	// so launch templates can resolve `resolve:ssm:<name>`, e.g.
	// `/esbake/aardvark-cluster/ami`. A hierarchy starts with `/`; names use
	// `a-zA-Z0-9_.-/`, at most 15 levels and 1011 characters, and may not
	// start with `aws` or `ssm`. An existing parameter is overwritten.
	SSMParameterName string `mapstructure:"ssm_parameter_name" required:"false"`
	// Encrypt the image's snapshots. Defaults to `true` (the build root
	// volume is launched encrypted anyway); `false` is refused.
	AMIEncryptBootVolume config.Trilean `mapstructure:"encrypt_boot" required:"false"`
	// The KMS key (id, alias or ARN) for the image's snapshots in the build
	// region. Empty uses the account's default EBS key.
	AMIKmsKeyID string `mapstructure:"kms_key_id" required:"false"`
	// A KMS key per copy region, region to key. Every region listed must be
	// in `ami_regions` (or be the build region).
	AMIRegionKMSKeyIDs map[string]string `mapstructure:"region_kms_key_ids" required:"false"`

	deprecateAt time.Time
}

// DeprecateAt is the parsed `deprecate_at` (zero when unset).
func (c *AMIConfig) DeprecateAt() time.Time { return c.deprecateAt }

// Prepare applies defaults and validates the image settings; buildRegion
// is the access config's region.
func (c *AMIConfig) Prepare(buildRegion string) []error {
	var errs []error
	if c.AMIName == "" {
		errs = append(errs, fmt.Errorf("`ami_name` is required: name the image, e.g. \"es-8-{{timestamp}}\""))
	} else if !reAMIName.MatchString(c.AMIName) {
		errs = append(errs, fmt.Errorf("`ami_name` %q is invalid: use 3 to 128 characters of letters, digits and ()[] ./-'@_ (wrap it in {{ clean_resource_name `...` }} to strip the rest)", c.AMIName))
	}
	if len(c.AMIDescription) > 255 {
		errs = append(errs, fmt.Errorf("`ami_description` is %d characters long: EC2 allows 255", len(c.AMIDescription)))
	}
	errs = append(errs, validateTags("tags", c.AMITags)...)
	errs = append(errs, validateTags("snapshot_tags", c.SnapshotTags)...)

	// Copy regions: deduplicated, without the build region.
	seen := map[string]bool{}
	var regions []string
	for i, r := range c.AMIRegions {
		switch {
		case !reRegion.MatchString(r):
			errs = append(errs, fmt.Errorf("`ami_regions[%d]` %q is not an AWS region name: use a code such as \"eu-west-1\"", i, r))
		case r == buildRegion || seen[r]:
			// already covered
		default:
			seen[r] = true
			regions = append(regions, r)
		}
	}
	c.AMIRegions = regions

	for i, u := range c.AMIUsers {
		if !reAccountID.MatchString(u) {
			errs = append(errs, fmt.Errorf("`ami_users[%d]` %q is not an account id: use the 12-digit AWS account id", i, u))
		}
	}
	for i, a := range c.AMIOrgArns {
		if !reOrgARN.MatchString(a) {
			errs = append(errs, fmt.Errorf("`ami_org_arns[%d]` %q is not an organization ARN: use \"arn:aws:organizations::<account>:organization/o-<id>\"", i, a))
		}
	}
	for i, a := range c.AMIOuArns {
		if !reOUARN.MatchString(a) {
			errs = append(errs, fmt.Errorf("`ami_ou_arns[%d]` %q is not an organizational unit ARN: use \"arn:aws:organizations::<account>:ou/o-<id>/ou-<id>\"", i, a))
		}
	}

	if c.DeprecationTime != "" {
		t, err := time.Parse(time.RFC3339, c.DeprecationTime)
		now := timeNowFunc()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("`deprecate_at` %q is not an RFC 3339 time: use the form \"2027-01-31T00:00:00Z\" (%w)", c.DeprecationTime, err))
		case !t.After(now):
			errs = append(errs, fmt.Errorf("`deprecate_at` %s is in the past: give a future time or remove it", c.DeprecationTime))
		case t.Sub(now) > maxDeprecateHorizon:
			errs = append(errs, fmt.Errorf("`deprecate_at` %s is more than 10 years ahead, which EC2 refuses: give an earlier time", c.DeprecationTime))
		default:
			c.deprecateAt = t.UTC()
		}
	}

	switch c.IMDSSupport {
	case "":
		c.IMDSSupport = DefaultIMDSSupport
	case DefaultIMDSSupport:
	default:
		errs = append(errs, fmt.Errorf("`imds_support` %q is not allowed: the only value is \"v2.0\" (IMDSv2 only); remove the setting", c.IMDSSupport))
	}

	if c.AMIForceDeleteSnapshot && !c.AMIForceDeregister {
		errs = append(errs, fmt.Errorf("`force_delete_snapshot` needs `force_deregister`: set force_deregister = true or remove force_delete_snapshot"))
	}

	if c.SSMParameterName != "" {
		if err := validateSSMParameterName(c.SSMParameterName); err != nil {
			errs = append(errs, fmt.Errorf("`ssm_parameter_name` %q is invalid: %w", c.SSMParameterName, err))
		}
	}

	if c.AMIEncryptBootVolume == config.TriUnset {
		c.AMIEncryptBootVolume = config.TriTrue
	}
	if c.AMIEncryptBootVolume.False() {
		errs = append(errs, fmt.Errorf("`encrypt_boot` = false is refused: the image's snapshots are always encrypted; remove the setting"))
	}
	if c.AMIKmsKeyID != "" && !reKMSKey.MatchString(c.AMIKmsKeyID) {
		errs = append(errs, fmt.Errorf("`kms_key_id` %q is not a KMS key id, alias or ARN", c.AMIKmsKeyID))
	}
	keyRegions := make([]string, 0, len(c.AMIRegionKMSKeyIDs))
	for r := range c.AMIRegionKMSKeyIDs {
		keyRegions = append(keyRegions, r)
	}
	sort.Strings(keyRegions)
	for _, r := range keyRegions {
		k := c.AMIRegionKMSKeyIDs[r]
		if r != buildRegion && !seen[r] {
			errs = append(errs, fmt.Errorf("`region_kms_key_ids` has a key for %q, which is not in ami_regions: add the region to ami_regions or remove the key", r))
		}
		if !reKMSKey.MatchString(k) {
			errs = append(errs, fmt.Errorf("`region_kms_key_ids[%q]` %q is not a KMS key id, alias or ARN", r, k))
		}
	}
	if k, ok := c.AMIRegionKMSKeyIDs[buildRegion]; ok && c.AMIKmsKeyID != "" && k != c.AMIKmsKeyID {
		errs = append(errs, fmt.Errorf("`region_kms_key_ids[%q]` and `kms_key_id` name different keys for the build region: keep one", buildRegion))
	}
	return errs
}

// validateSSMParameterName applies Parameter Store's naming rules.
func validateSSMParameterName(name string) error {
	if len(name) > maxSSMNameLen {
		return fmt.Errorf("it is %d characters long, the limit is %d", len(name), maxSSMNameLen)
	}
	if !reSSMName.MatchString(name) {
		return fmt.Errorf("use only letters, digits and _.-/")
	}
	hierarchical := strings.Contains(name, "/")
	if hierarchical && !strings.HasPrefix(name, "/") {
		return fmt.Errorf("a name with a hierarchy must start with \"/\", e.g. \"/esbake/cluster/ami\"")
	}
	if strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return fmt.Errorf("path segments may not be empty (no trailing or doubled \"/\")")
	}
	if hierarchical && strings.Count(name, "/") > maxSSMHierarchy {
		return fmt.Errorf("it has more than %d hierarchy levels", maxSSMHierarchy)
	}
	first := strings.ToLower(strings.TrimPrefix(name, "/"))
	if strings.HasPrefix(first, "aws") || strings.HasPrefix(first, "ssm") {
		return fmt.Errorf("names starting with \"aws\" or \"ssm\" are reserved by AWS; pick another prefix such as \"/esbake/\"")
	}
	return nil
}

// validateTags checks what EC2 accepts and what the builder reserves.
func validateTags(field string, tags map[string]string) []error {
	var errs []error
	if len(tags) > maxTags {
		errs = append(errs, fmt.Errorf("`%s` has %d tags: EC2 allows %d per resource", field, len(tags), maxTags))
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := tags[k]
		switch {
		case k == "":
			errs = append(errs, fmt.Errorf("`%s` has an empty key: remove it", field))
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			errs = append(errs, fmt.Errorf("`%s` key %q uses the reserved \"aws:\" prefix: rename it", field, k))
		case strings.HasPrefix(k, ReservedTagPrefix):
			errs = append(errs, fmt.Errorf("`%s` key %q uses the %q prefix the builder writes itself: rename it", field, k, ReservedTagPrefix))
		case len(k) > maxTagKeyLen:
			errs = append(errs, fmt.Errorf("`%s` key %q is longer than %d characters", field, k, maxTagKeyLen))
		}
		if len(v) > maxTagValueLen && !strings.Contains(v, "{{") {
			errs = append(errs, fmt.Errorf("`%s` value of %q is longer than %d characters", field, k, maxTagValueLen))
		}
	}
	return errs
}
