package phases

import (
	"context"
	"fmt"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/awskms"
	"github.com/vaultctl/vaultctl/internal/kube"
)

// Connect builds the handles phases use from the config. Nothing is contacted yet: an
// unreachable cluster, KMS or Vault is reported by preflight with a hint.
func Connect(ctx context.Context, cfg *config.Config) (*Env, error) {
	env := &Env{Config: cfg}
	cluster, err := kube.Connect(cfg.Cluster.Kubeconfig, cfg.Cluster.Context)
	if err != nil {
		return nil, Fail("pass --kubeconfig and --context, or set cluster.kubeconfig / cluster.context", "%v", err)
	}
	env.Kube, env.KubeHost = cluster.Client, cluster.Host

	k := cfg.Vault.Seal.AWSKMS
	client, err := awskms.New(ctx, k.Region, k.Endpoint)
	if err != nil {
		return nil, Fail("check AWS_* environment variables and ~/.aws/config", "%v", err)
	}
	env.KMS, env.KMSEndpoint = client, awskms.Endpoint(client, k.Region)

	if cfg.External() {
		vc, err := newVaultClient(cfg)
		if err != nil {
			return nil, err
		}
		env.Vault, env.VaultAddr = vaultHealth{vc}, cfg.Vault.Address
	}
	return env, nil
}

func newVaultClient(cfg *config.Config) (*vaultapi.Client, error) {
	vc := vaultapi.DefaultConfig() // honours VAULT_CACERT, VAULT_SKIP_VERIFY...
	if vc.Error != nil {
		return nil, fmt.Errorf("vault client config: %w", vc.Error)
	}
	vc.Address = cfg.Vault.Address
	if ca := cfg.Vault.TLS.CACert; ca != "" {
		if err := vc.ConfigureTLS(&vaultapi.TLSConfig{CACert: ca}); err != nil {
			return nil, Fail("vault.tls.caCert must be a readable PEM file", "loading %s: %v", ca, err)
		}
	}
	c, err := vaultapi.NewClient(vc)
	if err != nil {
		return nil, err
	}
	// Never pick up a token from the environment by accident for health checks.
	c.ClearToken()
	return c, nil
}

type vaultHealth struct{ c *vaultapi.Client }

func (v vaultHealth) Health(ctx context.Context) (*vaultapi.HealthResponse, error) {
	return v.c.Sys().HealthWithContext(ctx)
}
