package phases

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	authenticationv1 "k8s.io/api/authentication/v1"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
)

// memKMS is an in-memory KMS: keys, aliases, rotation, and an encryption that needs the key.
type memKMS struct {
	mu       sync.Mutex
	keys     map[string]*kmstypes.KeyMetadata
	rotation map[string]bool
	aliases  map[string]string
	fail     error
}

func newMemKMS(alias string) *memKMS {
	k := &memKMS{keys: map[string]*kmstypes.KeyMetadata{}, rotation: map[string]bool{}, aliases: map[string]string{}}
	if alias != "" {
		id := k.create()
		k.aliases[alias] = id
		k.rotation[id] = true
	}
	return k
}

func (k *memKMS) create() string {
	id := fmt.Sprintf("key-%d", len(k.keys)+1)
	k.keys[id] = &kmstypes.KeyMetadata{KeyId: aws.String(id), KeyState: kmstypes.KeyStateEnabled,
		KeyUsage: kmstypes.KeyUsageTypeEncryptDecrypt, KeySpec: kmstypes.KeySpecSymmetricDefault}
	return id
}

func (k *memKMS) resolve(id string) (string, error) {
	if k.fail != nil {
		return "", k.fail
	}
	if a, ok := k.aliases[id]; ok {
		id = a
	}
	if _, ok := k.keys[id]; !ok {
		return "", &kmstypes.NotFoundException{Message: aws.String("key " + id + " not found")}
	}
	return id, nil
}

func (k *memKMS) DescribeKey(_ context.Context, in *kms.DescribeKeyInput, _ ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, err := k.resolve(aws.ToString(in.KeyId))
	if err != nil {
		return nil, err
	}
	m := *k.keys[id]
	return &kms.DescribeKeyOutput{KeyMetadata: &m}, nil
}

func (k *memKMS) CreateKey(context.Context, *kms.CreateKeyInput, ...func(*kms.Options)) (*kms.CreateKeyOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id := k.create()
	return &kms.CreateKeyOutput{KeyMetadata: k.keys[id]}, nil
}

func (k *memKMS) CreateAlias(_ context.Context, in *kms.CreateAliasInput, _ ...func(*kms.Options)) (*kms.CreateAliasOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.aliases[aws.ToString(in.AliasName)] = aws.ToString(in.TargetKeyId)
	return &kms.CreateAliasOutput{}, nil
}

func (k *memKMS) GetKeyRotationStatus(_ context.Context, in *kms.GetKeyRotationStatusInput, _ ...func(*kms.Options)) (*kms.GetKeyRotationStatusOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return &kms.GetKeyRotationStatusOutput{KeyRotationEnabled: k.rotation[aws.ToString(in.KeyId)]}, nil
}

func (k *memKMS) EnableKeyRotation(_ context.Context, in *kms.EnableKeyRotationInput, _ ...func(*kms.Options)) (*kms.EnableKeyRotationOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if strings.HasPrefix(aws.ToString(in.KeyId), "alias/") {
		return nil, errors.New("EnableKeyRotation takes a key ID, not an alias")
	}
	k.rotation[aws.ToString(in.KeyId)] = true
	return &kms.EnableKeyRotationOutput{}, nil
}

// Encrypt prefixes the key ID: enough for a round trip that needs the key.
func (k *memKMS) Encrypt(_ context.Context, in *kms.EncryptInput, _ ...func(*kms.Options)) (*kms.EncryptOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, err := k.resolve(aws.ToString(in.KeyId))
	if err != nil {
		return nil, err
	}
	return &kms.EncryptOutput{CiphertextBlob: append([]byte(id+":"), in.Plaintext...), KeyId: aws.String(id)}, nil
}

func (k *memKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, pt, ok := strings.Cut(string(in.CiphertextBlob), ":")
	if _, exists := k.keys[id]; !ok || !exists {
		return nil, errors.New("InvalidCiphertextException")
	}
	return &kms.DecryptOutput{Plaintext: []byte(pt), KeyId: aws.String(id)}, nil
}

func (k *memKMS) GenerateDataKey(_ context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, err := k.resolve(aws.ToString(in.KeyId))
	if err != nil {
		return nil, err
	}
	pt := []byte(strings.Repeat("k", 32))
	return &kms.GenerateDataKeyOutput{Plaintext: pt, CiphertextBlob: append([]byte(id+":"), pt...), KeyId: aws.String(id)}, nil
}

// rig is a whole estate of fakes: Kubernetes (client-go fake with TokenRequest and access
// reviews), KMS, the Vault Fake, Helm. Phases are built from it the way a run builds them.
type rig struct {
	t      *testing.T
	cfg    *config.Config
	kube   *fake.Clientset
	kms    *memKMS
	vault  *vault.FakeServer
	helm   *fakeHelm
	env    *Env
	denied map[string]bool // "verb resource" the access review refuses
}

// adminJWT is the TokenRequest token the fake API server issues for the vaultctl ServiceAccount.
const adminJWT = "jwt-vault-vaultctl"

func exampleConfig(mod func(*config.Config)) *config.Config {
	return testConfig(func(c *config.Config) {
		c.Vault.Mode = config.ModeExternal
		c.Vault.Address = "https://vault.example:8200"
		c.KV = []config.KVMount{{Path: "secret"}}
		c.Policies = []config.Policy{{Name: "webapp", Rules: []config.PolicyRule{{Path: "secret/production/db", Capabilities: []string{"read"}}}}}
		c.Roles = []config.Role{{Name: "webapp", ServiceAccounts: []string{"webapp-sa"}, Namespaces: []string{"production"}, Policies: []string{"webapp"},
			TTL: config.Duration{Duration: time.Hour}, MaxTTL: config.Duration{Duration: 4 * time.Hour}}}
		c.Audit.Devices = []config.AuditDevice{{Path: "file", Type: "file", Options: map[string]string{"file_path": "/vault/audit/audit.log"}},
			{Path: "file2", Type: "file", Options: map[string]string{"file_path": "/vault/audit/audit2.log"}}}
		if mod != nil {
			mod(c)
		}
	})
}

func newRig(t *testing.T, mod func(*config.Config)) *rig {
	t.Helper()
	return newRigWith(t, exampleConfig(mod))
}

func newRigWith(t *testing.T, cfg *config.Config) *rig {
	t.Helper()
	r := &rig{t: t, cfg: cfg, kube: fake.NewClientset(), kms: newMemKMS(cfg.Vault.Seal.AWSKMS.KMSKeyID), vault: vault.NewFakeServer(), helm: &fakeHelm{}, denied: map[string]bool{}}
	r.kube.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		name := a.(k8stesting.CreateActionImpl).Name
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{Token: "jwt-" + a.GetNamespace() + "-" + name}}, nil
	})
	r.kube.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview)
		ra := review.Spec.ResourceAttributes
		review.Status.Allowed = !r.denied[ra.Verb+" "+ra.Resource]
		return true, review, nil
	})
	// The token controller fills a service-account-token Secret as it is created.
	r.kube.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if s := a.(k8stesting.CreateAction).GetObject().(*corev1.Secret); s.Type == corev1.SecretTypeServiceAccountToken {
			s.Data = map[string][]byte{corev1.ServiceAccountTokenKey: []byte("reviewer-jwt")}
		}
		return false, nil, nil
	})
	r.vault.AllowLogin(cfg.KubernetesAuth.Path, AdminRole, adminJWT)
	r.env = &Env{Config: cfg, Kube: r.kube, KubeHost: "https://127.0.0.1:6443", KubeCA: []byte("cluster-ca"), KMS: r.kms, KMSEndpoint: "memkms",
		Helm: func(string) (HelmAPI, error) { return r.helm, nil }, Clock: time.Now}
	r.session()
	return r
}

// session gives the env a fresh Vault session on the Fake, as a new run would have.
func (r *rig) session() {
	s := newSession(r.env)
	s.Dialer = r.vault.Dialer()
	// In-cluster, the Fake stands in for the port-forwarded pod: any endpoint reaches it.
	var ep vault.Endpoint
	if r.cfg.External() {
		var err error
		if ep, _, _, err = externalVault(r.cfg, func(string) string { return "" }); err != nil {
			r.t.Fatal(err)
		}
	}
	s.Locate = func(context.Context) (vault.Endpoint, error) { return ep, nil }
	r.env.Vault = s
}

// useRootToken makes the operator's VAULT_TOKEN the Fake's root token.
func (r *rig) useRootToken() { r.env.Vault.FallbackToken = r.vault.RootToken() }

// phase builds the named phase from the current config, as a run does.
func (r *rig) phase(name string) Phase { return phaseNamed(r.env, name) }

// apply runs apply for the named phases and fails the test on an error.
func (r *rig) apply(names ...string) []Result {
	r.t.Helper()
	var ps []Phase
	for _, n := range names {
		ps = append(ps, r.phase(n))
	}
	res, err := (&Runner{Phases: ps, Store: &MemoryStore{}}).Apply(context.Background(), Selection{})
	if err != nil {
		r.t.Fatal(err)
	}
	for _, x := range res {
		if x.Status == Failed {
			r.t.Fatalf("%s failed: %s (fix: %s)", x.Phase, x.Error.What, x.Error.Hint)
		}
	}
	return res
}

func (r *rig) check(name string) Diff {
	r.t.Helper()
	d, err := r.phase(name).Check(context.Background())
	if err != nil {
		r.t.Fatalf("%s check: %v", name, err)
	}
	return d
}

// bootstrapped sets up what a finished install has: Kubernetes auth and the admin role, so
// later phases log in as vaultctl-admin with no root token.
func (r *rig) bootstrapped() {
	r.t.Helper()
	r.useRootToken()
	r.apply("kubernetes-auth", "bootstrap")
	r.env.Vault.Close(context.Background())
	r.session()
}

func (r *rig) ownership(kind string) string {
	cm, err := r.kube.CoreV1().ConfigMaps(r.cfg.Vault.Namespace).Get(context.Background(), OwnershipConfigMap, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return cm.Data[kind]
}

func (r *rig) setOwnership(kind, value string) {
	r.t.Helper()
	ctx := context.Background()
	_ = ensureNamespace(ctx, r.kube, r.cfg.Vault.Namespace)
	cms := r.kube.CoreV1().ConfigMaps(r.cfg.Vault.Namespace)
	cm, err := cms.Get(ctx, OwnershipConfigMap, metav1.GetOptions{})
	if err != nil {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: OwnershipConfigMap, Namespace: r.cfg.Vault.Namespace}, Data: map[string]string{}}
		cm.Data[kind] = value
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			r.t.Fatal(err)
		}
		return
	}
	cm.Data[kind] = value
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

func changesOf(d Diff) string {
	var s []string
	for _, c := range d.Changes {
		s = append(s, c.String())
	}
	return strings.Join(s, "\n")
}

func sleep() { time.Sleep(5 * time.Millisecond) }
