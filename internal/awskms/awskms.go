// Package awskms builds an AWS KMS client the way the Vault awskms seal will reach the key:
// the standard credential chain (environment, IRSA web identity, instance role), the configured
// region, and an optional custom endpoint (VPC endpoint or emulator).
package awskms

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go/logging"
)

// New returns a KMS client. endpoint overrides AWS_ENDPOINT_URL_KMS, which the SDK honours
// by itself when endpoint is empty.
func New(ctx context.Context, region, endpoint string) (*kms.Client, error) {
	// The SDK's default logger writes to stderr on its own (e.g. "WARN falling back to
	// IMDSv1"), over the spinner; what matters of its failures reaches the user as errors.
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region), awsconfig.WithLogger(logging.Nop{}))
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return kms.NewFromConfig(cfg, func(o *kms.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		// Fail fast on an unreachable endpoint instead of retrying for a minute.
		o.RetryMaxAttempts = 2
	}), nil
}

// Endpoint describes where requests go, for messages.
func Endpoint(c *kms.Client, region string) string {
	if e := c.Options().BaseEndpoint; e != nil && *e != "" {
		return *e
	}
	return "https://kms." + region + ".amazonaws.com"
}
