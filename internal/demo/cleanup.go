package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/esbake/packer-plugin-elasticsearch/node/boot"
)

// cleanup removes everything the demo started, whether it finished, failed
// or was interrupted (it does not use the cancelled context).
func (d *demo) cleanup() error {
	if d.lc == nil && d.tmp == "" {
		return nil
	}
	var errs []error
	_ = step("clean up: terminate the nodes, deregister the image, stop the local cloud", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if d.ec2 != nil {
			ids := d.nodes
			if d.failed != "" {
				ids = append(append([]string(nil), ids...), d.failed)
			}
			if len(ids) > 0 {
				if _, err := d.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
					errs = append(errs, fmt.Errorf("terminate the nodes: %w", err))
				} else {
					fmt.Printf("    terminated %v\n", ids)
				}
			}
			if d.ami != "" {
				errs = append(errs, d.deleteImage(ctx))
			}
			if d.ami != "" {
				// The build published the AMI id (example's ssm_parameter_name).
				sc := ssm.New(ssm.Options{Region: region, BaseEndpoint: aws.String(d.lc.Endpoint()),
					Credentials: credentials.NewStaticCredentialsProvider(testCreds["AWS_ACCESS_KEY_ID"], testCreds["AWS_SECRET_ACCESS_KEY"], "")})
				if _, err := sc.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(ssmParam)}); err == nil {
					fmt.Printf("    deleted SSM parameter %s\n", ssmParam)
				}
				// The bootstrap slots and the TLS material belong to the cluster: gone with it.
				var names []string
				for _, n := range securityParams {
					names = append(names, n)
				}
				if out, err := sc.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: names}); err == nil && len(out.DeletedParameters) > 0 {
					fmt.Printf("    deleted the cluster's TLS material and elastic password /es/%s/*\n", clusterTag)
				}
				slots := boot.SlotNames(clusterTag, demoNodes)
				if out, err := sc.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: slots}); err == nil && len(out.DeletedParameters) > 0 {
					fmt.Printf("    deleted the cluster's bootstrap slots %s/%s/master-1..%d\n", boot.BootstrapPrefix, clusterTag, demoNodes)
				}
			}
			if d.keyMade {
				if _, err := d.ec2.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(keyName)}); err != nil {
					errs = append(errs, fmt.Errorf("delete key pair: %w", err))
				}
			}
		}
		if d.srv != nil {
			_ = d.srv.Shutdown(ctx)
		}
		if d.lc != nil {
			rep := d.lc.Leaks()
			if rep.Empty() {
				fmt.Println("    leak report: nothing left (instances, groups, key pairs, images, snapshots, volumes, guests)")
			} else {
				fmt.Printf("    leak report:\n%s\n", rep)
				errs = append(errs, errors.New("the local cloud still held resources before Close (see the leak report)"))
			}
			if err := d.lc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close the local cloud: %w", err))
			} else {
				fmt.Println("    local cloud closed: guests, network namespaces, bridge and emulator removed")
			}
		}
		if d.tmp != "" {
			_ = os.RemoveAll(d.tmp)
		}
		return errors.Join(errs...)
	})
	return errors.Join(errs...)
}

func (d *demo) deleteImage(ctx context.Context) error {
	out, err := d.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{d.ami}})
	if err != nil {
		return fmt.Errorf("describe %s: %w", d.ami, err)
	}
	var snaps []string
	for _, img := range out.Images {
		for _, bd := range img.BlockDeviceMappings {
			if bd.Ebs != nil && bd.Ebs.SnapshotId != nil {
				snaps = append(snaps, *bd.Ebs.SnapshotId)
			}
		}
	}
	if _, err := d.ec2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(d.ami)}); err != nil {
		return fmt.Errorf("deregister %s: %w", d.ami, err)
	}
	for _, s := range snaps {
		if _, err := d.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(s)}); err != nil {
			return fmt.Errorf("delete snapshot %s: %w", s, err)
		}
	}
	fmt.Printf("    deregistered %s and deleted %v\n", d.ami, snaps)
	return nil
}
