package phases

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/charts"
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
	Env *Env

	helm HelmAPI
}

func (p *Injector) Name() string { return "injector" }
func (p *Injector) Description() string {
	return "Vault Agent Injector (own Helm release), webhook failurePolicy as configured"
}
func (p *Injector) Inputs() any {
	c := p.Env.Config
	return struct{ I, Path, Mode, Addr, Images, NS any }{c.Injector, c.KubernetesAuth.Path, c.Vault.Mode, c.Vault.Address, c.Vault.Images, c.Vault.Namespace}
}

func (p *Injector) client() (HelmAPI, error) { return cachedHelm(p.Env, &p.helm) }

// caPEM is the CA injected agents trust to reach Vault: from the TLS Secret in-cluster, from
// vault.tls.caCert for an external Vault. It is public.
func (p *Injector) caPEM(ctx context.Context) ([]byte, error) {
	cfg := p.Env.Config
	if cfg.External() {
		_, ca, err := p.Env.vaultEndpoint(ctx)
		return ca, err
	}
	s, err := p.Env.Kube.CoreV1().Secrets(cfg.Vault.Namespace).Get(ctx, cfg.Vault.TLS.SecretName, metav1.GetOptions{})
	if err != nil {
		return nil, Fail("run the tls phase first", "reading Vault's TLS Secret: %v", err)
	}
	return s.Data["ca.crt"], nil
}

func (p *Injector) Check(ctx context.Context) (Diff, error) {
	cfg := p.Env.Config
	if !cfg.InjectorEnabled() {
		return Diff{Facts: []string{"injector disabled in the config"}}, nil
	}
	ca, err := p.caPEM(ctx)
	if err != nil {
		return Diff{}, err
	}
	ch, err := charts.Vault()
	if err != nil {
		return Diff{}, err
	}
	h, err := p.client()
	if err != nil {
		return Diff{}, err
	}
	st, err := h.Status(ctx, charts.InjectorRelease, ch, charts.InjectorValues(cfg, ca))
	if err != nil {
		return Diff{}, helmFailure(err, cfg.Vault.Namespace)
	}
	obj := "Helm release " + cfg.Vault.Namespace + "/" + charts.InjectorRelease
	target := "in-cluster Vault"
	if cfg.External() {
		target = cfg.Vault.Address
	}
	switch {
	case !st.Exists:
		return Diff{Changes: []Change{{Action: Create, Object: obj, Detail: fmt.Sprintf("%d replicas, failurePolicy %s, Vault %s", cfg.Injector.Replicas, cfg.Injector.FailurePolicy, target)}}}, nil
	case st.Differs:
		return Diff{Changes: []Change{{Action: Update, Object: obj, Detail: fmt.Sprintf("revision %d: %s", st.Revision, st.Reason)}}}, nil
	}
	return Diff{Facts: []string{fmt.Sprintf("%s revision %d, Vault %s", obj, st.Revision, target)}}, nil
}

func (p *Injector) Apply(ctx context.Context, _ Diff) error {
	cfg := p.Env.Config
	ca, err := p.caPEM(ctx)
	if err != nil {
		return err
	}
	ch, err := charts.Vault()
	if err != nil {
		return err
	}
	h, err := p.client()
	if err != nil {
		return err
	}
	if _, err := h.UpgradeOrInstall(ctx, charts.InjectorRelease, ch, charts.InjectorValues(cfg, ca)); err != nil {
		return helmFailure(err, cfg.Vault.Namespace)
	}
	return nil
}
