package builder

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// The manifest summary tags the builder adds to the image (see AMITags).
const (
	TagESVersion = ReservedTagPrefix + "es-version"
	TagPlugins   = ReservedTagPrefix + "plugins"
	TagSpecHash  = ReservedTagPrefix + "spec-hash"
)

// noManifestStatus is the exit status manifestCommand uses for "no manifest".
const noManifestStatus = 3

var manifestCommand = "sudo -n sh -c " + shellQuote(fmt.Sprintf("test -e %[1]s || exit %[2]d; cat %[1]s", spec.ManifestPath, noManifestStatus))

// stepManifestTags reads the node manifest the provisioner left on the
// instance and puts its summary (ES version, plugins, spec hash) into the
// state for stepCreateImage to tag the image with. An instance without a
// manifest (no elasticsearch-node provisioner) gets no summary tags.
type stepManifestTags struct{}

func (s *stepManifestTags) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	c, ok := state.GetOk("communicator")
	if !ok || c == nil {
		return multistep.ActionContinue
	}
	comm := c.(packersdk.Communicator)
	var out, errOut bytes.Buffer
	cmd := &packersdk.RemoteCmd{Command: manifestCommand, Stdout: &out, Stderr: &errOut}
	if err := comm.Start(ctx, cmd); err != nil {
		return halt(state, fmt.Errorf("read the node manifest %s on the instance: %w", spec.ManifestPath, err))
	}
	switch st := cmd.Wait(); st {
	case 0:
	case noManifestStatus:
		say(state, "No node manifest ("+spec.ManifestPath+") on the instance: the image gets no esbake: summary tags")
		return multistep.ActionContinue
	default:
		return halt(state, fmt.Errorf("read the node manifest %s on the instance: exit status %d: %s; the ssh_username needs password-less sudo", spec.ManifestPath, st, strings.TrimSpace(errOut.String())))
	}
	m, err := spec.ParseManifest(out.Bytes())
	if err != nil {
		return halt(state, fmt.Errorf("the node manifest %s on the instance: %w; re-run the elasticsearch-node provisioner with this plugin's version", spec.ManifestPath, err))
	}
	tags := manifestTags(m)
	if v, ok := state.GetOk(stateManifestTags); ok {
		for k, val := range v.(map[string]string) {
			if _, set := tags[k]; !set {
				tags[k] = val
			}
		}
	}
	state.Put(stateManifestTags, tags)
	say(state, fmt.Sprintf("Node manifest: Elasticsearch %s, plugins [%s], spec %s", tags[TagESVersion], tags[TagPlugins], tags[TagSpecHash]))
	return multistep.ActionContinue
}

func (s *stepManifestTags) Cleanup(multistep.StateBag) {}

// manifestTags is the image tag summary of a manifest.
func manifestTags(m *spec.Manifest) map[string]string {
	names := make([]string, 0, len(m.Spec.Plugins))
	for _, p := range m.Spec.Plugins {
		names = append(names, p.Name)
	}
	return map[string]string{
		TagESVersion: m.Spec.Elasticsearch.Version,
		TagPlugins:   truncate(strings.Join(names, ","), maxTagValueLen),
		TagSpecHash:  m.SpecHash,
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
