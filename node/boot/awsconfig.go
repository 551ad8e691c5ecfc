package boot

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// NodeAWSConfig is the AWS configuration esnode's clients use on a node:
// the region from instance metadata and the default credential chain (the
// instance profile on EC2), whose metadata provider reads imdsEndpoint when
// set (the service boot reads). purpose names the clients in errors.
func NodeAWSConfig(ctx context.Context, region, imdsEndpoint, purpose string) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if imdsEndpoint != "" {
		opts = append(opts, config.WithEC2IMDSEndpoint(imdsEndpoint))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration for %s: %w", purpose, err)
	}
	return cfg, nil
}

// bootAWS loads the AWS configuration once per boot, so the Parameter
// Store, Secrets Manager and bootstrap clients share it and its credential
// cache: the instance profile's credentials are read from metadata once.
type bootAWS struct {
	imdsEndpoint string
	mu           sync.Mutex
	region       string
	cfg          *aws.Config
}

func (b *bootAWS) config(ctx context.Context, region, purpose string) (aws.Config, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg != nil && b.region == region {
		return *b.cfg, nil
	}
	cfg, err := NodeAWSConfig(ctx, region, b.imdsEndpoint, purpose)
	if err != nil {
		return aws.Config{}, err
	}
	b.cfg, b.region = &cfg, region
	return cfg, nil
}
