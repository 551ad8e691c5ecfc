package builder

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// State bag keys shared by the steps.
const (
	stateConfig        = "config"
	stateDriver        = "driver"
	stateUI            = "ui"
	stateSourceImage   = "source_image"   // ec2types.Image
	stateKeyPairName   = "key_pair_name"  // string, saved as soon as created
	stateSecurityGroup = "security_group" // string id, saved as soon as created
	stateSubnetID      = "subnet_id"
	stateVpcID         = "vpc_id"
	stateError         = "error"
)

// cleanupTimeout bounds each cleanup; cleanups use their own context so an
// interrupt (which cancels the build context) cannot stop them.
const cleanupTimeout = 10 * time.Minute

func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), cleanupTimeout)
}

// halt records err for the builder and tells the runner to stop.
func halt(state multistep.StateBag, err error) multistep.StepAction {
	state.Put(stateError, err)
	if ui, ok := state.GetOk(stateUI); ok {
		ui.(packersdk.Ui).Error(err.Error())
	}
	return multistep.ActionHalt
}

func say(state multistep.StateBag, msg string) {
	if ui, ok := state.GetOk(stateUI); ok {
		ui.(packersdk.Ui).Say(msg)
	}
}

// errorCode is the AWS error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// ec2Tags turns a map into EC2 tags in a stable order.
func ec2Tags(m map[string]string) []ec2types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tags := make([]ec2types.Tag, 0, len(keys))
	for _, k := range keys {
		tags = append(tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return tags
}

// tagSpec tags a resource at creation, so nothing exists untagged.
func tagSpec(rt ec2types.ResourceType, m map[string]string) []ec2types.TagSpecification {
	if len(m) == 0 {
		return nil
	}
	return []ec2types.TagSpecification{{ResourceType: rt, Tags: ec2Tags(m)}}
}

func filtersFrom(m map[string]string) []ec2types.Filter {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]ec2types.Filter, 0, len(keys))
	for _, k := range keys {
		out = append(out, ec2types.Filter{Name: aws.String(k), Values: []string{m[k]}})
	}
	return out
}

func wrapf(err error, format string, args ...interface{}) error {
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// asErr is errors.As for a target pointer.
func asErr[T error](err error, target *T) bool { return errors.As(err, target) }

// forget clears a saved resource id once its resource is gone. It writes
// "" rather than calling state.Remove: BasicStateBag.Remove takes no lock
// (SDK v0.6.4) and races with the runner's cancellation goroutine.
func forget(state multistep.StateBag, key string) { state.Put(key, "") }

// stateString is the string under key, "" when unset.
func stateString(state multistep.StateBag, key string) string {
	raw, _ := state.GetOk(key)
	v, _ := raw.(string)
	return v
}
