package phases

import (
	"context"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/policy"
)

// Bootstrap creates what every later run needs to authenticate without a root token: the
// vaultctl-admin policy and role bound to the vaultctl ServiceAccount (on the auth method the
// kubernetes-auth phase set up), and the KV v2 mounts. Then it revokes the initial root token,
// after proving that the vaultctl-admin login works.
type Bootstrap struct {
	In    BootstrapInputs
	Kube  kubernetes.Interface
	Vault *Session
}

// BootstrapInputs is what the bootstrap phase reads of the config.
type BootstrapInputs struct {
	Namespace      string
	AuthPath       string
	KV             []config.KVMount
	DatabaseMounts []string
	KeepRootToken  bool
}

func bootstrapInputs(cfg *config.Config) BootstrapInputs {
	var dbs []string
	for _, d := range cfg.Databases {
		if !slices.Contains(dbs, d.Mount) {
			dbs = append(dbs, d.Mount)
		}
	}
	return BootstrapInputs{Namespace: cfg.Vault.Namespace, AuthPath: cfg.KubernetesAuth.Path, KV: cfg.KV,
		DatabaseMounts: dbs, KeepRootToken: cfg.Vault.Init.KeepRootToken}
}

func (p *Bootstrap) Name() string { return "bootstrap" }
func (p *Bootstrap) Description() string {
	return "vaultctl-admin identity and KV v2 mounts exist; initial root token revoked"
}
func (p *Bootstrap) Inputs() any { return p.In }

func (p *Bootstrap) Check(ctx context.Context) (Diff, error) { return checkObserved(ctx, p.observe) }

func (p *Bootstrap) Apply(ctx context.Context, _ Diff) error { return applyObserved(ctx, p.observe) }

func (p *Bootstrap) adminPolicy() string {
	kv := make([]string, len(p.In.KV))
	for i, m := range p.In.KV {
		kv[i] = m.Path
	}
	return policy.Admin(policy.AdminScope{AuthPath: p.In.AuthPath, KVMounts: kv, DatabaseMounts: p.In.DatabaseMounts})
}

func (p *Bootstrap) observe(ctx context.Context) ([]step, []string, error) {
	ns := p.In.Namespace
	var steps []step
	s, err := namespaceStep(ctx, p.Kube, ns)
	if err != nil {
		return nil, nil, err
	}
	steps = appendStep(steps, s)
	if s, err = ensureServiceAccount(ctx, p.Kube, ns, AdminServiceAccount); err != nil {
		return nil, nil, err
	}
	steps = appendStep(steps, s)
	v, err := p.Vault.Admin(ctx)
	if err != nil {
		return nil, nil, err
	}
	if s, err = ensurePolicy(ctx, v, AdminPolicy, p.adminPolicy()); err != nil {
		return nil, nil, err
	}
	steps = appendStep(steps, s)
	role := map[string]any{
		"bound_service_account_names":      []string{AdminServiceAccount},
		"bound_service_account_namespaces": []string{ns},
		"token_policies":                   []string{AdminPolicy},
		"token_ttl":                        int64(15 * 60),
		"token_max_ttl":                    int64(60 * 60),
	}
	if s, err = ensureRole(ctx, v, p.In.AuthPath, AdminRole, role); err != nil {
		return nil, nil, err
	}
	steps = appendStep(steps, s)
	mounts, err := v.ListMounts(ctx)
	if err != nil {
		return nil, nil, vaultErr("listing secrets engines", err)
	}
	for _, kv := range p.In.KV {
		m, ok := mounts[kv.Path+"/"]
		switch {
		case !ok:
			steps = append(steps, step{change: Change{Create, "KV v2 secrets engine at " + kv.Path + "/", ""}, apply: func(ctx context.Context) error {
				return v.EnableMount(ctx, kv.Path, vault.MountInfo{Type: "kv", Description: kv.Description, Options: map[string]string{"version": "2"}})
			}})
		case m.Type != "kv" || m.Options["version"] != "2":
			return nil, nil, Fail("use another kv[].path, or migrate the engine to KV v2 by hand (`vault kv enable-versioning`)",
				"%s/ is a %s engine (version %q), not KV v2", kv.Path, m.Type, m.Options["version"])
		}
	}
	var facts []string
	switch root := p.Vault.HasRootToken(); {
	case root && !p.In.KeepRootToken:
		steps = append(steps, step{change: Change{Delete, "initial root token", "revoke now that vaultctl-admin exists"}, apply: p.revokeRoot})
	case !root:
		facts = append(facts, "authenticated as "+AdminRole)
	}
	return steps, facts, nil
}

// revokeRoot proves the vaultctl-admin login works, then revokes the root token and drops it
// from custody. A run killed between the revoke and the drop leaves a dead token in custody,
// which the session detects and drops.
func (p *Bootstrap) revokeRoot(ctx context.Context) error {
	if err := p.Vault.ProveAdminLogin(ctx); err != nil {
		return Fail("the root token was kept (KMS-encrypted in custody) so a re-run can retry", "vaultctl-admin login does not work yet: %v", err)
	}
	if err := p.Vault.RevokeRoot(ctx); err != nil {
		return err
	}
	if p.Vault.Custody == nil {
		return nil
	}
	return p.Vault.Custody.dropRootToken(ctx)
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
