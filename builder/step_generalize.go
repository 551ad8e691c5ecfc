package builder

import (
	"context"
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// generalizeScript makes the instance an image: instances from it get new
// host keys, machine id and cloud-init run, and none of the build's
// credentials.
const generalizeScript = `set -e
cloud-init clean --logs 2>/dev/null || rm -rf /var/lib/cloud/instances /var/lib/cloud/instance
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
find /root /home -maxdepth 3 -name authorized_keys -path '*/.ssh/*' -exec truncate -s 0 {} +
find /root /home -maxdepth 2 -name '.*_history' -exec rm -f {} +
sync
`

// stepGeneralize runs generalizeScript over the communicator.
type stepGeneralize struct {
}

func (s *stepGeneralize) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	comm, ok := state.GetOk("communicator")
	if !ok {
		return halt(state, fmt.Errorf("generalize: no communicator in the build state"))
	}
	say(state, "Generalizing the instance (cloud-init, host keys, machine id, keys)...")
	cmd := &packersdk.RemoteCmd{Command: "sudo -n sh -c " + shellQuote(generalizeScript)}
	if err := cmd.RunWithUi(ctx, comm.(packersdk.Communicator), state.Get(stateUI).(packersdk.Ui)); err != nil {
		return halt(state, fmt.Errorf("generalize the instance: %w", err))
	}
	if cmd.ExitStatus() != 0 {
		return halt(state, fmt.Errorf("generalize the instance: script exited %d; the ssh_username needs password-less sudo", cmd.ExitStatus()))
	}
	return multistep.ActionContinue
}

func (s *stepGeneralize) Cleanup(multistep.StateBag) {}

func shellQuote(s string) string {
	out := "'"
	for _, r := range s {
		if r == '\'' {
			out += `'\''`
		} else {
			out += string(r)
		}
	}
	return out + "'"
}
