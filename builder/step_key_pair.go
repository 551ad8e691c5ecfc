package builder

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/uuid"
)

// stepKeyPair creates the temporary EC2 key pair (ed25519 by default) and
// hands its private key to the communicator. It does nothing when the user
// brings their own key.
type stepKeyPair struct {
	Region string
	Comm   *communicator.Config
	Tags   map[string]string
	// name overrides the generated key name (tests).
	name string
}

func (s *stepKeyPair) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	if s.Comm.SSHPrivateKeyFile != "" || s.Comm.SSHKeyPairName != "" || s.Comm.SSHAgentAuth || s.Comm.SSHPassword != "" {
		return multistep.ActionContinue
	}
	d := state.Get(stateDriver).(Driver)
	name := s.name
	if name == "" {
		name = "packer_esbake_" + uuid.TimeOrderedUUID()
	}
	keyType := ec2types.KeyTypeEd25519
	if s.Comm.SSHTemporaryKeyPairType == "rsa" {
		keyType = ec2types.KeyTypeRsa
	}
	say(state, fmt.Sprintf("Creating temporary %s key pair %s...", keyType, name))
	out, err := d.EC2(s.Region).CreateKeyPair(ctx, &ec2.CreateKeyPairInput{
		KeyName:           aws.String(name),
		KeyType:           keyType,
		KeyFormat:         ec2types.KeyFormatPem,
		TagSpecifications: tagSpec(ec2types.ResourceTypeKeyPair, s.Tags),
	})
	// Saved before the error check: a create that failed after EC2 made the
	// key (a timeout, say) is still cleaned up; deleting a missing key is a
	// no-op.
	state.Put(stateKeyPairName, name)
	if err != nil {
		return halt(state, wrapf(err, "create temporary key pair (ec2:CreateKeyPair)"))
	}
	s.Comm.SSHKeyPairName = name
	s.Comm.SSHTemporaryKeyPairName = name
	s.Comm.SSHPrivateKey = []byte(aws.ToString(out.KeyMaterial))
	return multistep.ActionContinue
}

func (s *stepKeyPair) Cleanup(state multistep.StateBag) {
	name := stateString(state, stateKeyPairName)
	if name == "" {
		return
	}
	d := state.Get(stateDriver).(Driver)
	ctx, cancel := cleanupContext()
	defer cancel()
	say(state, "Deleting temporary key pair "+name+"...")
	_, err := d.EC2(s.Region).DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(name)})
	if err != nil && errorCode(err) != "InvalidKeyPair.NotFound" {
		reportCleanupError(state, fmt.Errorf("delete temporary key pair %s: %w; delete it by hand (aws ec2 delete-key-pair --key-name %s)", name, err, name))
		return
	}
	forget(state, stateKeyPairName)
}
