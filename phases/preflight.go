package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/awskms"
)

// Preflight proves the estate can be worked on before anything changes: the cluster answers and
// its version is known, the caller holds every permission later phases use, the KMS key (or the
// right to create it) works, and an external Vault answers.
type Preflight struct {
	In       PreflightInputs
	Kube     kubernetes.Interface // nil: no connection (reported)
	KubeHost string
	KMS      KMSHandle
	Vault    *Session
	// ClusterTimeout bounds the wait for the API server's version (default 30s).
	ClusterTimeout time.Duration
}

// PreflightInputs is what preflight reads of the config.
type PreflightInputs struct {
	Cluster   config.Cluster
	External  bool
	Address   string
	AWSKMS    config.AWSKMS
	Namespace string
}

func preflightInputs(cfg *config.Config) PreflightInputs {
	return PreflightInputs{Cluster: cfg.Cluster, External: cfg.External(), Address: cfg.Vault.Address, AWSKMS: cfg.Vault.Seal.AWSKMS, Namespace: cfg.Vault.Namespace}
}

func (p *Preflight) Name() string { return "preflight" }
func (p *Preflight) Description() string {
	return "cluster reachable, RBAC sufficient, KMS key usable, versions known"
}
func (p *Preflight) Inputs() any { return p.In }

// Apply has nothing to do: preflight only observes.
func (p *Preflight) Apply(context.Context, Diff) error { return nil }

// Check runs every probe and reports all failures together, so one run shows everything to fix.
func (p *Preflight) Check(ctx context.Context) (Diff, error) {
	var d Diff
	var errs []error
	if fact, err := p.cluster(ctx); err != nil {
		errs = append(errs, err)
	} else {
		d.Facts = append(d.Facts, fact)
		if err := p.permissions(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if fact, err := p.kmsKey(ctx); err != nil {
		errs = append(errs, err)
	} else {
		d.Facts = append(d.Facts, fact)
	}
	if p.In.External {
		if fact, err := p.vault(ctx); err != nil {
			errs = append(errs, err)
		} else {
			d.Facts = append(d.Facts, fact)
		}
	}
	return d, Failures(errs)
}

func (p *Preflight) cluster(ctx context.Context) (string, error) {
	if p.Kube == nil {
		return "", Fail("pass --kubeconfig/--context or set cluster.kubeconfig", "no Kubernetes connection")
	}
	// ServerVersion takes no context: an API server that accepts the connection and never
	// answers would hold the run forever, so the wait is bounded here.
	type answer struct {
		v   *version.Info
		err error
	}
	got := make(chan answer, 1)
	go func() {
		v, err := p.Kube.Discovery().ServerVersion()
		got <- answer{v, err}
	}()
	timeout := p.ClusterTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	select {
	case a := <-got:
		if a.err != nil {
			return "", Fail("check --kubeconfig, --context and that the API server is up ("+p.KubeHost+")",
				"cannot reach the Kubernetes API at %s: %v", p.KubeHost, a.err)
		}
		return "Kubernetes " + a.v.GitVersion, nil
	case <-time.After(timeout):
		return "", Fail("check that "+p.KubeHost+" is the API server and that nothing between you and it holds connections open (a proxy, a firewall)",
			"the Kubernetes API at %s accepted the connection but did not answer within %s", p.KubeHost, timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// requiredAccess lists what later phases do; checked up front so a run never stops half-way on
// a 403. Namespaced rules are checked in the Vault namespace.
var requiredAccess = []struct {
	group, resource, verb string
	namespaced            bool
}{
	{"", "namespaces", "create", false},
	{"", "namespaces", "get", false},
	{"", "configmaps", "create", true},
	{"", "configmaps", "update", true},
	{"", "secrets", "create", true},
	{"", "secrets", "get", true},
	{"", "serviceaccounts", "create", true},
	{"", "serviceaccounts/token", "create", true},
	{"", "services", "create", true},
	{"", "pods", "list", true},
	{"", "pods", "delete", true},
	{"apps", "statefulsets", "create", true},
	{"apps", "deployments", "create", true},
	{"policy", "poddisruptionbudgets", "create", true},
	{"rbac.authorization.k8s.io", "roles", "create", true},
	{"rbac.authorization.k8s.io", "rolebindings", "create", true},
	{"rbac.authorization.k8s.io", "clusterroles", "create", false},
	{"rbac.authorization.k8s.io", "clusterrolebindings", "create", false},
	{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "create", false},
	{"networking.k8s.io", "networkpolicies", "create", true},
	{"coordination.k8s.io", "leases", "create", true},
}

func (p *Preflight) permissions(ctx context.Context) error {
	ns := p.In.Namespace
	var missing []string
	for _, a := range requiredAccess {
		resource, sub, _ := strings.Cut(a.resource, "/")
		attrs := &authv1.ResourceAttributes{Group: a.group, Resource: resource, Subresource: sub, Verb: a.verb}
		if a.namespaced {
			attrs.Namespace = ns
		}
		review := &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}}
		res, err := p.Kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return Fail("make sure the API server serves authorization.k8s.io/v1", "SelfSubjectAccessReview failed: %v", err)
		}
		if !res.Status.Allowed {
			where := "cluster-wide"
			if a.namespaced {
				where = "in namespace " + ns
			}
			name := a.resource
			if a.group != "" {
				name += "." + a.group
			}
			missing = append(missing, fmt.Sprintf("%s %s %s", a.verb, name, where))
		}
	}
	if len(missing) > 0 {
		return Fail("grant these to the identity in your kubeconfig (cluster-admin during install is simplest) and re-run",
			"missing Kubernetes permissions: %s", strings.Join(missing, ", "))
	}
	return nil
}

func (p *Preflight) kmsKey(ctx context.Context) (string, error) {
	k := p.In.AWSKMS
	if p.KMS.API == nil {
		return "", Fail("check vault.seal.awskms.region and your AWS configuration", "no KMS client")
	}
	out, err := describeKey(ctx, p.KMS.API, k.KMSKeyID)
	var nf *kmstypes.NotFoundException
	switch {
	case errors.As(err, &nf):
		if k.CreateKey {
			return fmt.Sprintf("KMS key %s not found; the kms phase will create it", k.KMSKeyID), nil
		}
		return "", Fail(createKeySteps(k.KMSKeyID, k.Region)+"; or set vault.seal.awskms.createKey: true",
			"KMS key %s does not exist at %s", k.KMSKeyID, p.KMS.Endpoint)
	case err != nil:
		return "", kmsError(err, p.KMS.Endpoint)
	}
	if err := usableKey(out.KeyMetadata); err != nil {
		return "", err
	}
	if err := roundTrip(ctx, p.KMS.API, k.KMSKeyID); err != nil {
		return "", kmsError(err, p.KMS.Endpoint)
	}
	return fmt.Sprintf("KMS key %s usable (encrypt/decrypt round trip, data key)", aws.ToString(out.KeyMetadata.KeyId)), nil
}

func (p *Preflight) vault(ctx context.Context) (string, error) {
	addr := p.In.Address
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := p.Vault.Anonymous(ctx)
	if err != nil {
		return "", err
	}
	h, err := c.Health(ctx)
	if err != nil {
		return "", Fail("check vault.address, vault.tls.caCert (or VAULT_CACERT) and that Vault is listening",
			"cannot reach Vault at %s: %v", addr, err)
	}
	state := "unsealed"
	switch {
	case !h.Initialized:
		state = "uninitialized"
	case h.Sealed:
		state = "sealed"
	}
	return fmt.Sprintf("Vault %s at %s (%s)", h.Version, addr, state), nil
}

func describeKey(ctx context.Context, c KMSAPI, id string) (*kms.DescribeKeyOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
}

func usableKey(m *kmstypes.KeyMetadata) error {
	id := aws.ToString(m.KeyId)
	if m.KeyState != kmstypes.KeyStateEnabled {
		return Fail("enable the key (aws kms enable-key --key-id "+id+") or cancel its deletion", "KMS key %s is %s", id, m.KeyState)
	}
	if m.KeyUsage != kmstypes.KeyUsageTypeEncryptDecrypt || m.KeySpec != kmstypes.KeySpecSymmetricDefault {
		return Fail("point vault.seal.awskms.kmsKeyId at a SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key", "KMS key %s is %s/%s; Vault's awskms seal needs a symmetric encryption key", id, m.KeySpec, m.KeyUsage)
	}
	return nil
}

// roundTrip encrypts and decrypts a probe, which proves both permissions Vault's seal needs.
func roundTrip(ctx context.Context, c KMSAPI, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	probe := []byte("vaultctl preflight probe")
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: probe})
	if err != nil {
		return fmt.Errorf("kms:Encrypt: %w", err)
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, KeyId: aws.String(id)})
	if err != nil {
		return fmt.Errorf("kms:Decrypt: %w", err)
	}
	if !bytes.Equal(dec.Plaintext, probe) {
		return errors.New("kms round trip returned different bytes")
	}
	// vaultctl encrypts the recovery keys under data keys from this key: prove that right too,
	// before operator init ever runs.
	if _, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: kmstypes.DataKeySpecAes256}); err != nil {
		return fmt.Errorf("kms:GenerateDataKey: %w", err)
	}
	return nil
}

// kmsError says why a KMS call failed and what to do. The SDK's error types decide first; the
// strings remain for errors that do not come from the SDK (fakes, emulators' proxies).
func kmsError(err error, endpoint string) error {
	// Credentials come first: an unreachable instance metadata service also says "connection
	// refused" or "i/o timeout", and no request ever reached KMS.
	var ce *awskms.CredentialsError
	if errors.As(err, &ce) {
		return Fail(ce.Fix(), "%v (KMS at %s was not contacted)", ce, endpoint)
	}
	var send *smithyhttp.RequestSendError
	var api smithy.APIError
	msg := err.Error()
	switch {
	case errors.As(err, &send), errors.Is(err, context.DeadlineExceeded),
		strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"), strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "deadline exceeded"):
		return Fail("check vault.seal.awskms.endpoint / AWS_ENDPOINT_URL_KMS and network access to KMS",
			"KMS endpoint %s is unreachable: %v", endpoint, err)
	case errors.As(err, &api) && api.ErrorCode() == "AccessDeniedException", strings.Contains(msg, "AccessDenied"):
		return Fail("give the identity kms:DescribeKey, kms:Encrypt, kms:Decrypt and kms:GenerateDataKey on the key (on EKS via the IRSA role)",
			"KMS at %s refused the request: %v", endpoint, err)
	case errors.As(err, &api) && badCredentialCodes[api.ErrorCode()],
		strings.Contains(msg, "UnrecognizedClient"), strings.Contains(msg, "InvalidSignature"):
		return Fail("check the AWS credentials in use (aws sts get-caller-identity) and the system clock; AWS_SESSION_TOKEN must go with temporary keys",
			"KMS at %s rejected the AWS credentials: %v", endpoint, err)
	}
	return Fail("check the KMS key and endpoint", "KMS at %s: %v", endpoint, err)
}

// badCredentialCodes are KMS's answers to credentials it does not accept: unknown, expired or
// signed wrongly. Granting permissions would not help.
var badCredentialCodes = map[string]bool{
	"UnrecognizedClientException": true, "InvalidSignatureException": true, "IncompleteSignature": true,
	"ExpiredTokenException": true, "InvalidClientTokenId": true,
}

func createKeySteps(alias, region string) string {
	return fmt.Sprintf("create it: aws kms create-key --region %s --key-spec SYMMETRIC_DEFAULT --key-usage ENCRYPT_DECRYPT, then aws kms create-alias --region %s --alias-name %s --target-key-id KEY_ID, then aws kms enable-key-rotation --key-id KEY_ID",
		region, region, alias)
}
