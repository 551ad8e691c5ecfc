package drain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/esbake/packer-plugin-elasticsearch/node/boot"
)

// LifecycleClient is Hook over the Auto Scaling API, with the instance's
// own role (the default credential chain).
type LifecycleClient struct {
	api        *autoscaling.Client
	group      string
	hook       string
	instanceID string
}

// NewLifecycleClient builds the Auto Scaling client for region; endpoint,
// when set, overrides the service endpoint (AWS_ENDPOINT_URL_AUTO_SCALING is
// honoured too). group may be empty: it is then looked up with
// DescribeAutoScalingInstances.
func NewLifecycleClient(ctx context.Context, region, endpoint, imdsEndpoint, group, hook, instanceID string) (*LifecycleClient, error) {
	if hook == "" {
		return nil, errors.New("no lifecycle hook name: set lifecycle.termination_hook in the node spec (or --hook)")
	}
	cfg, err := boot.NodeAWSConfig(ctx, region, imdsEndpoint, "Auto Scaling")
	if err != nil {
		return nil, err
	}
	api := autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	lc := &LifecycleClient{api: api, group: group, hook: hook, instanceID: instanceID}
	if lc.group == "" {
		out, err := api.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{instanceID}})
		if err != nil {
			return nil, fmt.Errorf("find the Auto Scaling group of %s (the instance profile needs autoscaling:DescribeAutoScalingInstances): %w", instanceID, err)
		}
		if len(out.AutoScalingInstances) == 0 || out.AutoScalingInstances[0].AutoScalingGroupName == nil {
			return nil, fmt.Errorf("instance %s is not in an Auto Scaling group: nothing to drain for", instanceID)
		}
		lc.group = *out.AutoScalingInstances[0].AutoScalingGroupName
	}
	return lc, nil
}

// Heartbeat extends the hook's timeout (RecordLifecycleActionHeartbeat).
func (l *LifecycleClient) Heartbeat(ctx context.Context) error {
	_, err := l.api.RecordLifecycleActionHeartbeat(ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String(l.group), LifecycleHookName: aws.String(l.hook), InstanceId: aws.String(l.instanceID),
	})
	if err != nil {
		return fmt.Errorf("heartbeat lifecycle hook %s of %s (needs autoscaling:RecordLifecycleActionHeartbeat): %w", l.hook, l.group, err)
	}
	return nil
}

// Complete ends the lifecycle action (CompleteLifecycleAction).
func (l *LifecycleClient) Complete(ctx context.Context, result string) error {
	_, err := l.api.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String(l.group), LifecycleHookName: aws.String(l.hook), InstanceId: aws.String(l.instanceID),
		LifecycleActionResult: aws.String(result),
	})
	if err != nil {
		return fmt.Errorf("complete lifecycle hook %s of %s (needs autoscaling:CompleteLifecycleAction): %w", l.hook, l.group, err)
	}
	return nil
}

// TargetState reads the instance's Auto Scaling target lifecycle state from
// IMDSv2 (autoscaling/target-lifecycle-state): InService, Terminated,
// Warmed:* ... A 404 means the instance is not in a group.
type TargetState func(ctx context.Context) (string, error)

// IMDSTargetState is TargetState over the instance metadata service.
func IMDSTargetState(endpoint string) TargetState {
	c := imds.New(imds.Options{Endpoint: endpoint})
	return func(ctx context.Context) (string, error) {
		out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: "autoscaling/target-lifecycle-state"})
		if err != nil {
			return "", fmt.Errorf("read autoscaling/target-lifecycle-state from IMDSv2: %w", err)
		}
		defer out.Content.Close()
		b, err := io.ReadAll(io.LimitReader(out.Content, 256))
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
}
