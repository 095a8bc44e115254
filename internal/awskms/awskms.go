// Package awskms builds an AWS KMS client the way the Vault awskms seal will reach the key:
// the standard credential chain (environment, IRSA web identity, instance role), the configured
// region, and an optional custom endpoint (VPC endpoint or emulator).
package awskms

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
	if cfg.Credentials != nil {
		cfg.Credentials = &markedProvider{inner: cfg.Credentials, chain: chainTried(cfg.Credentials)}
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

// CredentialsError means the SDK could not obtain credentials, so no request reached KMS: it
// is not KMS refusing anything.
type CredentialsError struct {
	// Tried lists, in the SDK's order, where credentials were looked for, when nothing in the
	// environment or shared files named a source and only the EC2 instance role was left to
	// try. Empty when a configured source (a profile's role, SSO, a process...) failed.
	Tried []string
	Err   error
}

func (e *CredentialsError) Error() string {
	// The SDK's cache prefixes every failure with this; it says nothing to the user.
	detail := strings.TrimPrefix(e.Err.Error(), "failed to refresh cached credentials, ")
	if len(e.Tried) > 0 {
		return fmt.Sprintf("no AWS credentials found; tried %s: %s", strings.Join(e.Tried, ", "), detail)
	}
	return "could not get AWS credentials: " + detail
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// Fix is the next step for the user.
func (e *CredentialsError) Fix() string {
	if len(e.Tried) > 0 {
		return "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile in the shared files " +
			"(aws configure, aws sso login), or run where an IAM role is attached (EKS IRSA, ECS task role, EC2 instance profile); " +
			"a KMS emulator accepts any dummy keys"
	}
	return "check the credential source your AWS profile or environment names (role, SSO session, credential_process) and that it works, e.g. aws sts get-caller-identity"
}

// markedProvider types the chain's failures, which the SDK reports as plain wrapped strings,
// so callers can tell "no credentials" from "KMS refused".
type markedProvider struct {
	inner aws.CredentialsProvider
	chain []string
}

func (p *markedProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.inner.Retrieve(ctx)
	if err != nil {
		return c, &CredentialsError{Tried: p.chain, Err: err}
	}
	return c, nil
}

// ProviderSources keeps the SDK's record of where credentials came from (its user agent uses it).
func (p *markedProvider) ProviderSources() []aws.CredentialSource {
	if s, ok := p.inner.(aws.CredentialProviderSource); ok {
		return s.ProviderSources()
	}
	return nil
}

// chainTried is the list of places the default chain looked, in its order, when it fell all the way through to
// the EC2 instance role: the SDK records that as the only credential source. Anything else was
// named by the user's configuration, and its own error says what went wrong.
func chainTried(p aws.CredentialsProvider) []string {
	s, ok := p.(aws.CredentialProviderSource)
	if !ok || !slices.Equal(s.ProviderSources(), []aws.CredentialSource{aws.CredentialSourceIMDS}) {
		return nil
	}
	profile := os.Getenv("AWS_PROFILE")
	if profile == "" {
		profile = awsconfig.DefaultSharedConfigProfile
	}
	return []string{
		"environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
		"web identity / IRSA (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)",
		fmt.Sprintf("shared files %s and %s (profile %q)",
			envOr("AWS_CONFIG_FILE", awsconfig.DefaultSharedConfigFilename()),
			envOr("AWS_SHARED_CREDENTIALS_FILE", awsconfig.DefaultSharedCredentialsFilename()), profile),
		"container role (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, AWS_CONTAINER_CREDENTIALS_FULL_URI)",
		"EC2 instance role (IMDS)",
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return filepath.Clean(v)
	}
	return def
}
