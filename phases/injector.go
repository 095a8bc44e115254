package phases

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/config"
)

// Injector installs the Vault Agent Injector as its own Helm release (vault-agent-injector):
// two phases upgrading one release would delete each other's objects. In-cluster mode points it
// at the in-cluster Service; external mode sets global.externalVaultAddr and installs no server.
//
// Webhook TLS: the injector runs with AGENT_INJECT_TLS_AUTO, generating its own serving
// certificate and writing the caBundle of its MutatingWebhookConfiguration. That keeps every
// private key out of Helm values (Helm stores values in the cluster) and needs no cert-manager;
// the chart leaves caBundle empty so upgrades never fight the injector over it.
type Injector struct {
	In    InjectorInputs
	Kube  kubernetes.Interface
	Vault *Session
	Helm  *lazyHelm
}

// InjectorInputs is what the injector phase reads of the config, and the chart it installs.
// The CA agents trust is read live from its source: the TLS Secret in-cluster, vault.tls.caCert
// for an external Vault.
type InjectorInputs struct {
	Enabled   bool
	Injector  config.Injector
	AuthPath  string
	External  bool
	Address   string
	Images    config.Images
	Namespace string
	TLSSecret string // CA source in-cluster
	CACert    string // CA source for an external Vault (else VAULT_CACERT, read live)
	Chart     string // embedded chart version
}

func injectorInputs(cfg *config.Config) InjectorInputs {
	return InjectorInputs{
		Enabled: cfg.InjectorEnabled(), Injector: cfg.Injector, AuthPath: cfg.KubernetesAuth.Path,
		External: cfg.External(), Address: cfg.Vault.Address, Images: cfg.Vault.Images,
		Namespace: cfg.Vault.Namespace, TLSSecret: cfg.Vault.TLS.SecretName, CACert: cfg.Vault.TLS.CACert,
		Chart: chartVersion(),
	}
}

// chartVersion is the embedded chart's version, part of the inputs of the phases installing it.
func chartVersion() string {
	if ch, err := charts.Vault(); err == nil {
		return ch.Metadata.Version
	}
	return ""
}

func (p *Injector) Name() string { return "injector" }
func (p *Injector) Description() string {
	return "Vault Agent Injector (own Helm release), webhook failurePolicy as configured"
}
func (p *Injector) Inputs() any { return p.In }

// caPEM is the CA injected agents trust to reach Vault. It is public.
func (p *Injector) caPEM(ctx context.Context) ([]byte, error) {
	if p.In.External {
		// The CA the session trusts: vault.tls.caCert (a file or inline PEM), else VAULT_CACERT.
		ep, err := p.Vault.Endpoint(ctx)
		if err != nil {
			return nil, err
		}
		return ep.CAPEM, nil
	}
	s, err := p.Kube.CoreV1().Secrets(p.In.Namespace).Get(ctx, p.In.TLSSecret, metav1.GetOptions{})
	if err != nil {
		return nil, Fail("run the tls phase first", "reading Vault's TLS Secret: %v", err)
	}
	return s.Data["ca.crt"], nil
}

// release is the injector release with values built only from the inputs and the live CA.
func (p *Injector) release(ctx context.Context) (helmRelease, error) {
	ca, err := p.caPEM(ctx)
	if err != nil {
		return helmRelease{}, err
	}
	ch, err := charts.Vault()
	if err != nil {
		return helmRelease{}, err
	}
	mode := config.ModeInCluster
	if p.In.External {
		mode = config.ModeExternal
	}
	cfg := &config.Config{
		Injector:       p.In.Injector,
		KubernetesAuth: config.KubernetesAuth{Path: p.In.AuthPath},
		Vault:          config.Vault{Mode: mode, Address: p.In.Address, Images: p.In.Images},
	}
	return helmRelease{helm: p.Helm, name: charts.InjectorRelease, namespace: p.In.Namespace, chart: ch, values: charts.InjectorValues(cfg, ca)}, nil
}

func (p *Injector) Check(ctx context.Context) (Diff, error) {
	if !p.In.Enabled {
		return Diff{Facts: []string{"injector disabled in the config"}}, nil
	}
	r, err := p.release(ctx)
	if err != nil {
		return Diff{}, err
	}
	st, err := r.status(ctx)
	if err != nil {
		return Diff{}, err
	}
	target := "in-cluster Vault"
	if p.In.External {
		target = p.In.Address
	}
	c, fact := r.change(st, fmt.Sprintf("%d replicas, failurePolicy %s, Vault %s", p.In.Injector.Replicas, p.In.Injector.FailurePolicy, target))
	if c != nil {
		return Diff{Changes: []Change{*c}}, nil
	}
	return Diff{Facts: []string{fact + ", Vault " + target}}, nil
}

func (p *Injector) Apply(ctx context.Context, _ Diff) error {
	r, err := p.release(ctx)
	if err != nil {
		return err
	}
	return r.upgrade(ctx)
}
