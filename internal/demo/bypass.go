package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	sdkssh "github.com/hashicorp/packer-plugin-sdk/sdk-internals/communicator/ssh"
	"golang.org/x/crypto/ssh"
)

// bypassBake bakes without the builder when its Run failed: an instance
// from the CIS seed image through the EC2 API, the provisioner through the
// plugin protocol over the SDK's SSH communicator, then CreateImage.
func (d *demo) bypassBake(ctx context.Context, h *provisionHook, ui packersdk.Ui) error {
	d.bypassed = true
	fmt.Println("    BYPASS: the elasticsearch-ami builder step is bypassed; baking with the EC2 API + the provisioner plugin instead")
	if d.seedCIS == "" {
		return fmt.Errorf("no CIS seed image registered")
	}
	if err := d.ensureKey(ctx); err != nil {
		return err
	}
	out, err := d.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(d.seedCIS), InstanceType: ec2types.InstanceTypeM6iLarge, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		KeyName:         aws.String(keyName),
		UserData:        aws.String(base64.StdEncoding.EncodeToString(nil)),
		MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{
			{Key: aws.String("Name"), Value: aws.String("esbake-demo-bake")}}}},
	})
	if err != nil {
		return fmt.Errorf("bypass: launch the bake instance: %w", err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	defer func() {
		if _, err := d.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
			fmt.Printf("    bypass: terminate %s: %v\n", id, err)
		}
	}()
	fmt.Printf("    bypass: bake instance %s from %s\n", id, d.seedCIS)
	if err := d.waitRunning(ctx, []string{id}); err != nil {
		return err
	}
	inst := d.lc.Instance(id)
	pem, err := os.ReadFile(d.keyFile)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return fmt.Errorf("bypass: parse the key pair's private key: %w", err)
	}
	addr := inst.SSHAddr()
	comm, err := sdkssh.New(addr, &sdkssh.Config{
		SSHConfig: &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: inst.HostKeyCallback(), Timeout: 30 * time.Second},
		Connection: sdkssh.ConnectFunc("tcp", addr),
	})
	if err != nil {
		return fmt.Errorf("bypass: SSH communicator to %s: %w", addr, err)
	}
	if err := h.provision(ctx, ui, comm, map[string]interface{}{}); err != nil {
		return err
	}
	img, err := d.ec2.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id),
		Name: aws.String(fmt.Sprintf("elasticsearch-%s-bypass-%d", esVersion, time.Now().Unix()))})
	if err != nil {
		return fmt.Errorf("bypass: CreateImage: %w", err)
	}
	d.ami = aws.ToString(img.ImageId)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		o, err := d.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{d.ami}})
		if err == nil && len(o.Images) == 1 && o.Images[0].State == ec2types.ImageStateAvailable {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bypass: image %s not available after 5 minutes", d.ami)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	fmt.Printf("    bypass: image %s available (not generalized by the builder's step)\n", d.ami)
	return nil
}
