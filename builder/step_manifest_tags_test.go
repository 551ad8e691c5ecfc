package builder

import (
	"strings"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

func TestStepManifestTags(t *testing.T) {
	const manifest = `{"api_version":"esbake/v1","spec":{"elasticsearch":{"version":"8.15.3"},"plugins":[{"name":"discovery-ec2"},{"name":"repository-s3"}]},"spec_hash":"0123456789abcdef"}`
	t.Run("manifest", func(t *testing.T) {
		s := newState(&fakeDriver{})
		comm := &packersdk.MockCommunicator{StartStdout: manifest}
		s.Put("communicator", comm)
		if got := (&stepManifestTags{}).Run(t.Context(), s); got != multistep.ActionContinue {
			t.Fatalf("Run = %v: %v", got, s.Get(stateError))
		}
		if !strings.Contains(comm.StartCmd.Command, "/etc/esnode/manifest.json") {
			t.Errorf("command %q does not read the manifest", comm.StartCmd.Command)
		}
		tags, _ := s.Get(stateManifestTags).(map[string]string)
		want := map[string]string{TagESVersion: "8.15.3", TagPlugins: "discovery-ec2,repository-s3", TagSpecHash: "0123456789abcdef"}
		for k, v := range want {
			if tags[k] != v {
				t.Errorf("tag %s = %q, want %q (all: %v)", k, tags[k], v, tags)
			}
		}
	})
	t.Run("no manifest", func(t *testing.T) {
		s := newState(&fakeDriver{})
		s.Put("communicator", &packersdk.MockCommunicator{StartExitStatus: noManifestStatus})
		if got := (&stepManifestTags{}).Run(t.Context(), s); got != multistep.ActionContinue {
			t.Fatalf("Run = %v: %v", got, s.Get(stateError))
		}
		if _, ok := s.GetOk(stateManifestTags); ok {
			t.Errorf("summary tags without a manifest: %v", s.Get(stateManifestTags))
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		s := newState(&fakeDriver{})
		s.Put("communicator", &packersdk.MockCommunicator{StartExitStatus: 1, StartStderr: "sudo: a password is required"})
		if got := (&stepManifestTags{}).Run(t.Context(), s); got != multistep.ActionHalt {
			t.Fatalf("Run = %v, want halt", got)
		}
		if e := stateErr(t, s); !strings.Contains(e, "password is required") {
			t.Errorf("error %q hides the cause", e)
		}
	})
	t.Run("no communicator", func(t *testing.T) {
		s := newState(&fakeDriver{})
		if got := (&stepManifestTags{}).Run(t.Context(), s); got != multistep.ActionContinue {
			t.Fatalf("Run = %v", got)
		}
	})
}
