package phases

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/kms"
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

// Env is what phases work with: the config and narrow handles on the live estate.
type Env struct {
	Config      *config.Config
	Kube        kubernetes.Interface
	KubeREST    *rest.Config // for Helm and port-forwarding
	KubeHost    string
	KubeCA      []byte // cluster CA (PEM) from the kubeconfig
	Kubeconfig  string // path, "" = default loading rules
	KubeContext string
	KMS         KMSAPI
	KMSEndpoint string // for messages
	// InClusterVault opens a way to an in-cluster Vault (a port-forward to a pod) and returns
	// its address and the CA to trust.
	InClusterVault func(ctx context.Context) (addr string, caPEM []byte, err error)

	// Prune lets phases delete objects vaultctl created that the config no longer lists.
	Prune bool

	sess session
}

// All returns the installer phases in order. Later issues add phases here.
func All(env *Env) []Phase {
	return []Phase{
		&Preflight{Env: env},
		&KMSKey{Env: env},
		&ServerTLS{Env: env},
		&Server{Env: env},
		&Initialize{Env: env},
		&KubernetesAuth{Env: env},
		&Bootstrap{Env: env},
		&Raft{Env: env},
		&Injector{Env: env},
		&Policies{Env: env},
		&Roles{Env: env},
		&NetworkPolicies{Env: env},
		&Audit{Env: env},
	}
}
