// Package builder is the elasticsearch-ami Packer builder: it launches a
// temporary EC2 instance from a (CIS-hardened) source AMI, lets the
// provisioners turn it into an Elasticsearch node, checks it against the
// bake policies, and creates the image, leaving no resource behind when
// anything fails.
package builder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// BuilderId identifies the builder's artifacts.
const BuilderId = "esbake.elasticsearch-ami"

// Generated data names, available to provisioners as
// `build.<Name>` (HCL2) or `{{ build `<Name>` }}`.
var generatedDataNames = []string{
	"BuildRegion",
	"SourceAMI",
	"SourceAMICreationDate",
	"SourceAMIName",
	"SourceAMIOwner",
	"SourceAMIOwnerName",
	"SourceAMIDescription",
}

// GeneratedDataNames lists the build data the builder publishes.
func GeneratedDataNames() []string { return append([]string(nil), generatedDataNames...) }

// Builder implements packersdk.Builder.
type Builder struct {
	config Config
	runner multistep.Runner
	gate   PolicyGate
	// stepsHook lets tests splice steps in (interrupts at each step).
	stepsHook func([]multistep.Step) []multistep.Step
}

var _ packersdk.Builder = new(Builder)

// ConfigSpec is the HCL2 schema of the source block.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Config returns the prepared configuration (for tests and the steps).
func (b *Builder) Config() *Config { return &b.config }

// Prepare decodes, defaults and validates the configuration.
func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	// Decode zeroes the target for HCL2 input, so the context lives outside
	// it until decoding is done.
	ctx := interpolate.Context{Funcs: TemplateFuncs}
	err := config.Decode(&b.config, &config.DecodeOpts{
		PluginType:         BuilderId,
		Interpolate:        true,
		InterpolateContext: &ctx,
		InterpolateFilter: &interpolate.RenderFilter{
			// Rendered at build time, when the source AMI is known.
			Exclude: []string{
				"ami_description",
				"run_tags",
				"run_volume_tags",
				"snapshot_tags",
				"tags",
			},
		},
	}, raws...)
	if err != nil {
		return nil, nil, fmt.Errorf("elasticsearch-ami: %w (check the key against the builder's documented fields)", err)
	}
	b.config.ctx = ctx

	warns, errs := b.config.Prepare()
	var merr *packersdk.MultiError
	merr = packersdk.MultiErrorAppend(merr, errs...)
	if len(merr.Errors) > 0 {
		return nil, warns, merr
	}
	return GeneratedDataNames(), warns, nil
}

// SetPolicyGate wires the bake-policy evaluator (the plugin main does).
func (b *Builder) SetPolicyGate(g PolicyGate) { b.gate = g }

// Run builds the image.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	c := &b.config
	if c.SSHInterface == SSHInterfaceSessionManager {
		// Fail before anything is created when the tunnel cannot run.
		if _, err := findSessionManagerPlugin(c.SessionManagerPluginPath); err != nil {
			return nil, err
		}
	}
	d, err := NewDriver(ctx, &c.AccessConfig)
	if err != nil {
		return nil, err
	}
	if !c.SkipCredentialValidation {
		who, err := d.ValidateCredentials(ctx)
		if err != nil {
			return nil, err
		}
		ui.Say("Building as " + who)
	}
	return b.run(ctx, ui, hook, d)
}

// run is Run after the driver exists (tests pass a fake).
func (b *Builder) run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook, d Driver) (packersdk.Artifact, error) {
	c := &b.config
	state := new(multistep.BasicStateBag)
	state.Put(stateConfig, c)
	state.Put(stateDriver, d)
	state.Put(stateUI, ui)
	state.Put("hook", hook)

	steps := b.steps()
	if b.stepsHook != nil {
		steps = b.stepsHook(steps)
	}
	b.runner = commonsteps.NewRunner(steps, c.PackerConfig, ui)
	b.runner.Run(ctx, state)

	var cleanupErrs []error
	if v, ok := state.GetOk("cleanup_errors"); ok {
		cleanupErrs = v.([]error)
	}
	_, complete := state.GetOk(stateBuildComplete)
	if v, ok := state.GetOk(stateError); ok {
		return nil, errors.Join(append([]error{v.(error)}, cleanupErrs...)...)
	}
	if _, ok := state.GetOk(multistep.StateCancelled); ok && !complete {
		return nil, errors.Join(append([]error{errors.New("build was cancelled; its resources were cleaned up")}, cleanupErrs...)...)
	}
	if _, ok := state.GetOk(multistep.StateHalted); ok && !complete {
		return nil, errors.Join(append([]error{errors.New("build was halted; its resources were cleaned up")}, cleanupErrs...)...)
	}
	amis := recordedAMIs(state)
	if len(amis) == 0 {
		return nil, errors.New("build finished without an image")
	}
	src := state.Get(stateSourceImage).(ec2types.Image)
	labels := map[string]string{}
	if v, ok := state.GetOk(stateManifestTags); ok {
		for k, val := range v.(map[string]string) {
			labels[k] = val
		}
	}
	return &Artifact{
		Amis:      amis,
		SourceAMI: aws.ToString(src.ImageId),
		Labels:    labels,
		StateData: map[string]interface{}{"generated_data": state.Get("generated_data")},
		driver:    d,
	}, nil
}

func (b *Builder) steps() []multistep.Step {
	c := &b.config
	allRegions := append([]string{c.Region}, c.AMIRegions...)
	steps := []multistep.Step{
		&stepPreValidate{Region: c.Region, Regions: c.AMIRegions, AMIName: c.AMIName, ForceDeregister: c.AMIForceDeregister},
		&stepSourceAMI{Region: c.Region, SourceAMI: c.SourceAMI, Filter: c.SourceAMIFilter},
		&stepRenderTemplates{Region: c.Region, Ctx: c.ctx, Config: c},
		&stepNetwork{Region: c.Region, RC: &c.RunConfig},
		&stepKeyPair{Region: c.Region, Comm: &c.Comm, Tags: c.RunTags},
		&stepSecurityGroup{Region: c.Region, RunConfig: &c.RunConfig, SSHPort: c.Comm.SSHPort, Tags: c.RunTags, RetryDelay: min(c.Polling.Delay(), 5*time.Second)},
		&stepRunInstance{Region: c.Region, RC: &c.RunConfig, Mappings: c.LaunchMappings, Comm: &c.Comm, Polling: c.Polling},
	}
	if c.SSHInterface == SSHInterfaceSessionManager {
		steps = append(steps, &stepSSMTunnel{
			Region: c.Region, PluginPath: c.SessionManagerPluginPath, LocalPort: c.SessionManagerPort,
			RemotePort: c.Comm.SSHPort, Endpoint: c.SSMEndpoint, Profile: c.Profile,
			RetryDelay: min(c.Polling.Delay(), 5*time.Second), Timeout: c.Comm.SSHTimeout,
		})
	}
	steps = append(steps,
		&communicator.StepConnect{
			Config:    &c.Comm,
			Host:      sshHost(c.SSHInterface, c.Comm.SSHHost),
			SSHPort:   sshPort(c.SSHInterface, c.Comm.SSHPort),
			SSHConfig: c.Comm.SSHConfigFunc(),
		},
		&commonsteps.StepProvision{},
		&stepPolicyGate{Config: c.PolicyGate, Gate: b.gate},
	)
	if c.Comm.Type != "none" { // "none" only in tests: no manifest to read, nothing to generalize
		steps = append(steps, &stepManifestTags{}, &stepGeneralize{})
	}
	return append(steps,
		&stepStopInstance{Region: c.Region, Polling: c.Polling},
		&stepDeregisterExisting{Regions: allRegions, AMIName: c.AMIName, Force: c.AMIForceDeregister, DeleteSnapshots: c.AMIForceDeleteSnapshot},
		&stepCreateImage{Region: c.Region, Name: c.AMIName, Description: c.AMIDescription, Tags: c.AMITags, SnapshotTags: c.SnapshotTags, IMDSSupport: c.IMDSSupport, Polling: c.Polling},
		&stepCopyImage{Region: c.Region, Regions: c.AMIRegions, Name: c.AMIName, RegionKeys: c.AMIRegionKMSKeyIDs, Polling: c.Polling},
		&stepModifyImage{BuildRegion: c.Region, IMDSSupport: c.IMDSSupport, Users: c.AMIUsers, OrgArns: c.AMIOrgArns, OuArns: c.AMIOuArns, DeprecateAt: c.DeprecateAt()},
		&stepPublishSSM{Name: c.SSMParameterName},
		stepComplete{},
	)
}

// sshHost picks the instance address ssh_interface names.
func sshHost(iface, override string) func(multistep.StateBag) (string, error) {
	return func(state multistep.StateBag) (string, error) {
		if override != "" {
			return override, nil
		}
		if iface == SSHInterfaceSessionManager {
			return "127.0.0.1", nil // the SSM tunnel's local end
		}
		inst := state.Get(stateInstance).(ec2types.Instance)
		var host string
		switch iface {
		case "public_ip":
			host = aws.ToString(inst.PublicIpAddress)
		case "private_ip":
			host = aws.ToString(inst.PrivateIpAddress)
		case "public_dns":
			host = aws.ToString(inst.PublicDnsName)
		case "private_dns":
			host = aws.ToString(inst.PrivateDnsName)
		}
		if host == "" {
			return "", fmt.Errorf("instance %s has no %s: set associate_public_ip_address = true, use a subnet that assigns one, or choose another ssh_interface", aws.ToString(inst.InstanceId), iface)
		}
		return host, nil
	}
}
