package phases

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vaultctl/vaultctl/config"
)

// KMSAPI is the part of AWS KMS that vaultctl uses; *kms.Client satisfies it.
type KMSAPI interface {
	DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, opts ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	CreateKey(ctx context.Context, in *kms.CreateKeyInput, opts ...func(*kms.Options)) (*kms.CreateKeyOutput, error)
	CreateAlias(ctx context.Context, in *kms.CreateAliasInput, opts ...func(*kms.Options)) (*kms.CreateAliasOutput, error)
	GetKeyRotationStatus(ctx context.Context, in *kms.GetKeyRotationStatusInput, opts ...func(*kms.Options)) (*kms.GetKeyRotationStatusOutput, error)
	EnableKeyRotation(ctx context.Context, in *kms.EnableKeyRotationInput, opts ...func(*kms.Options)) (*kms.EnableKeyRotationOutput, error)
	Encrypt(ctx context.Context, in *kms.EncryptInput, opts ...func(*kms.Options)) (*kms.EncryptOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error)
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, opts ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
}

// HelmFactory builds the Helm client of a namespace.
type HelmFactory func(namespace string) (HelmAPI, error)

// Clock is where phases read the time; tests move it.
type Clock func() time.Time

// KMSHandle is a KMS client and the endpoint it talks to (for messages).
type KMSHandle struct {
	API      KMSAPI
	Endpoint string
}

// Env is the wiring of one run: the config and the handles on the live estate. Phases never
// hold it: All hands each phase its typed inputs (computed from Config, and hashed for its
// checkpoint) and the handles it uses, so what a phase reads is what its Inputs say.
type Env struct {
	// PreviousRunDied: the action's Lease was taken over from a vaultctl of this machine that
	// no longer runs, so what it left pending is its own (set by the action layer).
	PreviousRunDied bool

	Config      *config.Config
	Kube        kubernetes.Interface
	KubeREST    *rest.Config // for Helm and port-forwarding
	KubeHost    string
	KubeCA      []byte // cluster CA (PEM) from the kubeconfig
	Kubeconfig  string // path, "" = default loading rules
	KubeContext string
	KMS         KMSAPI
	KMSEndpoint string // for messages

	// Vault is the run's Vault session: endpoint, root token while it lives, admin login.
	Vault *Session
	// Helm builds Helm clients; Dynamic the dynamic client (cert-manager Certificates).
	Helm    HelmFactory
	Dynamic func() (dynamic.Interface, error)
	Clock   Clock

	// Warnings are things the run should say before it starts (VAULT_* variables ignored).
	Warnings []string

	// Prune lets phases delete objects vaultctl created that the config no longer lists.
	Prune bool

	closers []func()
}

func (e *Env) kms() KMSHandle { return KMSHandle{API: e.KMS, Endpoint: e.KMSEndpoint} }

// dynamic reads e.Dynamic when called, so a client set after the phases were built is used.
func (e *Env) dynamic() (dynamic.Interface, error) {
	if e.Dynamic == nil {
		return nil, errors.New("no dynamic Kubernetes client")
	}
	return e.Dynamic()
}

func (e *Env) clock() Clock {
	if e.Clock != nil {
		return e.Clock
	}
	return time.Now
}

func (e *Env) owners() *ownershipStore {
	return &ownershipStore{store: configMapStore{client: e.Kube, namespace: e.Config.Vault.Namespace, name: OwnershipConfigMap}}
}

// helmFor returns a lazily built, cached Helm client for the Vault namespace, so Check, Apply
// and the verifying Check of one phase share it.
func (e *Env) helmFor() *lazyHelm {
	return &lazyHelm{factory: e.Helm, namespace: e.Config.Vault.Namespace}
}

// All returns the installer phases in order, each with its inputs and handles.
func All(env *Env) []Phase {
	cfg := env.Config
	env.session()
	ns := cfg.Vault.Namespace
	return []Phase{
		&Preflight{In: preflightInputs(cfg), Kube: env.Kube, KubeHost: env.KubeHost, KMS: env.kms(), Vault: env.Vault},
		&KMSKey{In: kmsInputs(cfg), KMS: env.kms()},
		&ServerTLS{In: tlsInputs(cfg), Kube: env.Kube, Dynamic: env.dynamic, Clock: env.clock()},
		&Server{In: serverInputs(cfg), Kube: env.Kube, Helm: env.helmFor(), PodTimeout: 5 * time.Minute, PodPoll: time.Second},
		&Initialize{In: initializeInputs(cfg), Vault: env.Vault, Custody: newCustody(env.Kube, ns, env.kms())},
		&KubernetesAuth{In: kubernetesAuthInputs(cfg), Kube: env.Kube, KubeHost: env.KubeHost, KubeCA: env.KubeCA, Vault: env.Vault},
		&Bootstrap{In: bootstrapInputs(cfg), Kube: env.Kube, Vault: env.Vault},
		&Raft{In: raftInputs(cfg), Vault: env.Vault},
		&Injector{In: injectorInputs(cfg), Kube: env.Kube, Vault: env.Vault, Helm: env.helmFor()},
		&Databases{In: databasesInputs(cfg), Vault: env.Vault, Kube: env.Kube, Owners: env.owners(), Prune: env.Prune},
		&Policies{In: policiesInputs(cfg), Vault: env.Vault, Owners: env.owners(), Prune: env.Prune},
		&Roles{In: rolesInputs(cfg), Vault: env.Vault, Owners: env.owners(), Prune: env.Prune},
		&NetworkPolicies{In: networkPoliciesInputs(cfg), Kube: env.Kube, Prune: env.Prune},
		&Audit{In: auditInputs(cfg), Vault: env.Vault, Owners: env.owners(), Prune: env.Prune},
	}
}

// session returns the run's Vault session, making it on first use (Connect makes it; tests and
// callers without a cluster get one here).
func (e *Env) session() *Session {
	if e.Vault == nil {
		e.Vault = newSession(e)
	}
	return e.Vault
}

// Close revokes what this run holds (its admin login token) and stops what it opened (an
// in-cluster Vault's port-forward).
func (e *Env) Close(ctx context.Context) {
	if e.Vault != nil {
		e.Vault.Close(ctx)
	}
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}
