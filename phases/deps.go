package phases

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	vaultapi "github.com/hashicorp/vault/api"
	"k8s.io/client-go/kubernetes"

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
}

// VaultHealth is how phases learn whether a Vault server answers.
type VaultHealth interface {
	Health(ctx context.Context) (*vaultapi.HealthResponse, error)
}

// Env is what phases work with: the config and narrow handles on the live estate.
type Env struct {
	Config      *config.Config
	Kube        kubernetes.Interface
	KubeHost    string
	KMS         KMSAPI
	KMSEndpoint string // for messages
	Vault       VaultHealth
	VaultAddr   string
}

// All returns the installer phases in order. Later issues add phases here.
func All(env *Env) []Phase {
	return []Phase{
		&Preflight{Env: env},
		&KMSKey{Env: env},
	}
}
