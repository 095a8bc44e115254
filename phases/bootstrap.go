package phases

import (
	"context"
	"fmt"
	"slices"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/vaultctl/vaultctl/config"
)

// Bootstrap creates what every later run needs to authenticate without a root token: the
// vaultctl-admin policy and role bound to the vaultctl ServiceAccount (on the auth method the
// kubernetes-auth phase set up), and the KV v2 mounts. Then it revokes the initial root token,
// after proving that the vaultctl-admin login works.
type Bootstrap struct{ Env *Env }

func (p *Bootstrap) Name() string { return "bootstrap" }
func (p *Bootstrap) Description() string {
	return "vaultctl-admin identity and KV v2 mounts exist; initial root token revoked"
}
func (p *Bootstrap) Inputs() any {
	c := p.Env.Config
	return struct {
		Path string
		KV   any
		NS   string
		Keep bool
	}{c.KubernetesAuth.Path, c.KV, c.Vault.Namespace, c.Vault.Init.KeepRootToken}
}

// step is one observed difference and how to remove it.
type step struct {
	change Change
	apply  func(ctx context.Context) error
}

func (p *Bootstrap) Check(ctx context.Context) (Diff, error) { return checkObserved(ctx, p.observe) }

func (p *Bootstrap) Apply(ctx context.Context, _ Diff) error { return applyObserved(ctx, p.observe) }

func (p *Bootstrap) observe(ctx context.Context) ([]step, []string, error) {
	cfg := p.Env.Config
	ns := cfg.Vault.Namespace
	var steps []step
	if s, err := p.Env.namespaceStep(ctx); err != nil {
		return nil, nil, err
	} else if s != nil {
		steps = append(steps, *s)
	}
	if s, err := ensureServiceAccount(ctx, p.Env, ns, AdminServiceAccount); err != nil {
		return nil, nil, err
	} else if s != nil {
		steps = append(steps, *s)
	}
	v, err := p.Env.adminVault(ctx)
	if err != nil {
		return nil, nil, err
	}
	path := cfg.KubernetesAuth.Path
	if s, err := ensurePolicy(ctx, v, AdminPolicy, adminPolicyHCL(path, kvPaths(cfg))); err != nil {
		return nil, nil, err
	} else if s != nil {
		steps = append(steps, *s)
	}
	role := map[string]any{
		"bound_service_account_names":      []string{AdminServiceAccount},
		"bound_service_account_namespaces": []string{ns},
		"token_policies":                   []string{AdminPolicy},
		"token_ttl":                        int64(15 * 60),
		"token_max_ttl":                    int64(60 * 60),
	}
	if s, err := ensureRole(ctx, v, path, AdminRole, role); err != nil {
		return nil, nil, err
	} else if s != nil {
		steps = append(steps, *s)
	}
	mounts, err := v.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return nil, nil, vaultErr("listing secrets engines", err)
	}
	for _, kv := range cfg.KV {
		m, ok := mounts[kv.Path+"/"]
		switch {
		case !ok:
			kv := kv
			steps = append(steps, step{Change{Create, "KV v2 secrets engine at " + kv.Path + "/", ""}, func(ctx context.Context) error {
				return v.Sys().MountWithContext(ctx, kv.Path, &vaultapi.MountInput{Type: "kv", Description: kv.Description, Options: map[string]string{"version": "2"}})
			}})
		case m.Type != "kv" || m.Options["version"] != "2":
			return nil, nil, Fail("use another kv[].path, or migrate the engine to KV v2 by hand (`vault kv enable-versioning`)",
				"%s/ is a %s engine (version %q), not KV v2", kv.Path, m.Type, m.Options["version"])
		}
	}
	var facts []string
	if p.Env.sess.rootToken != "" && !cfg.Vault.Init.KeepRootToken {
		steps = append(steps, step{Change{Delete, "initial root token", "revoke now that vaultctl-admin exists"}, p.revokeRoot})
	} else if p.Env.sess.rootToken == "" {
		facts = append(facts, "authenticated as "+AdminRole)
	}
	return steps, facts, nil
}

// revokeRoot revokes the root token and forgets it; the next observation logs in as
// vaultctl-admin, which proves the identity works before the root token is gone for good.
func (p *Bootstrap) revokeRoot(ctx context.Context) error {
	root := p.Env.sess.rootToken
	probe, err := p.Env.newVault(ctx)
	if err != nil {
		return err
	}
	if err := p.Env.adminLogin(ctx, probe); err != nil {
		return Fail("the root token was kept (KMS-encrypted in custody) so a re-run can retry", "vaultctl-admin login does not work yet: %v", err)
	}
	_ = probe.Auth().Token().RevokeSelfWithContext(ctx, "")
	// Revoke, then forget: root tokens never expire, so a live one must not outlive its record.
	// A run killed in between leaves a dead token in custody, which adminVault detects and drops.
	if err := p.Env.sess.admin.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		return redact(fmt.Errorf("revoking root token: %w", err), root)
	}
	p.Env.sess.rootToken, p.Env.sess.admin, p.Env.sess.ownsToken = "", nil, false
	return (custody{env: p.Env}).dropRootToken(ctx)
}

func kvPaths(cfg *config.Config) []string {
	out := make([]string, len(cfg.KV))
	for i, m := range cfg.KV {
		out[i] = m.Path
	}
	return out
}

// adminPolicyHCL scopes vaultctl-admin to what vaultctl manages: its auth mount, ACL policies,
// the KV and database mounts, audit devices and Raft health. Anyone who can get a token for
// the vaultctl ServiceAccount holds these rights: guard that with cluster RBAC.
func adminPolicyHCL(authPath string, kv []string) string {
	var b strings.Builder
	rule := func(path string, caps ...string) {
		fmt.Fprintf(&b, "path %q {\n  capabilities = [%s]\n}\n\n", path, quoteList(caps))
	}
	b.WriteString("# Managed by vaultctl: the rights of the vaultctl-admin role.\n\n")
	rule("sys/auth", "read")
	rule("sys/auth/"+authPath, "create", "read", "update", "sudo")
	rule("auth/"+authPath+"/*", "create", "read", "update", "delete", "list")
	rule("sys/policies/acl", "list")
	rule("sys/policies/acl/*", "create", "read", "update", "delete", "list")
	rule("sys/capabilities", "update")
	rule("sys/mounts", "read")
	for _, m := range kv {
		rule("sys/mounts/"+m, "create", "read", "update")
		rule(m+"/*", "create", "read", "update", "patch", "delete", "list")
	}
	rule("sys/mounts/database", "create", "read", "update")
	rule("database/*", "create", "read", "update", "delete", "list")
	rule("sys/audit", "read", "sudo")
	rule("sys/audit/*", "create", "read", "update", "delete", "sudo")
	rule("sys/storage/raft/configuration", "read")
	rule("sys/storage/raft/autopilot/*", "read", "update")
	rule("sys/leases/lookup/*", "list", "sudo")
	rule("sys/leases/revoke-prefix/*", "update", "sudo")
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// ensurePolicy returns a step when the named ACL policy differs from want.
func ensurePolicy(ctx context.Context, v *vaultapi.Client, name, want string) (*step, error) {
	cur, err := v.Sys().GetPolicyWithContext(ctx, name)
	if err != nil && !isNotFound(err) {
		return nil, vaultErr("reading policy "+name, err)
	}
	if strings.TrimSpace(cur) == strings.TrimSpace(want) {
		return nil, nil
	}
	action := Update
	if cur == "" {
		action = Create
	}
	return &step{Change{action, "policy " + name, ""}, func(ctx context.Context) error {
		return v.Sys().PutPolicyWithContext(ctx, name, want)
	}}, nil
}

// ensureRole returns a step when the Kubernetes auth role differs from want on any key in want.
func ensureRole(ctx context.Context, v *vaultapi.Client, mount, name string, want map[string]any) (*step, error) {
	path := "auth/" + mount + "/role/" + name
	cur, err := v.Logical().ReadWithContext(ctx, path)
	if err != nil && !isNotFound(err) {
		return nil, vaultErr("reading "+path, err)
	}
	action := Create
	var diffs []string
	if cur != nil && cur.Data != nil {
		action = Update
		for k, w := range want {
			if !sameValue(cur.Data[k], w) {
				diffs = append(diffs, k)
			}
		}
		slices.Sort(diffs)
		if len(diffs) == 0 {
			return nil, nil
		}
	}
	return &step{Change{action, "Kubernetes auth role " + name, strings.Join(diffs, ", ")}, func(ctx context.Context) error {
		_, err := v.Logical().WriteWithContext(ctx, path, want)
		return err
	}}, nil
}

// sameValue compares a value Vault returned (JSON-decoded) with the one we would write.
func sameValue(got, want any) bool {
	norm := func(v any) string {
		switch x := v.(type) {
		case []string:
			s := slices.Clone(x)
			slices.Sort(s)
			return strings.Join(s, ",")
		case []any:
			s := make([]string, len(x))
			for i, e := range x {
				s[i] = fmt.Sprint(e)
			}
			slices.Sort(s)
			return strings.Join(s, ",")
		case nil:
			return ""
		}
		return fmt.Sprint(v)
	}
	return norm(got) == norm(want)
}

func isNotFound(err error) bool {
	var re *vaultapi.ResponseError
	if ok := asResponseError(err, &re); ok {
		return re.StatusCode == 404
	}
	return false
}

func vaultErr(what string, err error) error {
	var re *vaultapi.ResponseError
	if asResponseError(err, &re) && re.StatusCode == 403 {
		return Fail("the token in use lacks the right; vaultctl-admin's policy covers what vaultctl manages (or set VAULT_TOKEN)", "%s: permission denied", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
