package phases

import (
	"context"
	"strings"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/plural"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/policy"
)

// Policies writes each configured policy, rendered to KV v2 API paths with the explicit deny on
// the parent, when it differs from Vault's copy. With --prune it deletes policies vaultctl
// created that the config no longer lists.
type Policies struct {
	In     PoliciesInputs
	Vault  VaultAdmin
	Owners Owners
	Prune  bool
}

// PoliciesInputs is what the policies phase reads of the config.
type PoliciesInputs struct {
	Policies []config.Policy
	KVMounts []string
	// Namespace holds the ownership record: another namespace is another installation.
	Namespace string
}

func policiesInputs(cfg *config.Config) PoliciesInputs {
	return PoliciesInputs{Policies: cfg.Policies, KVMounts: kvPaths(cfg), Namespace: cfg.Vault.Namespace}
}

func (p *Policies) Name() string { return "policies" }
func (p *Policies) Description() string {
	return "least-privilege ACL policies on exact KV v2 paths, explicit deny on parents"
}
func (p *Policies) Inputs() any { return p.In }

func (p *Policies) Check(ctx context.Context) (Diff, error) { return checkObserved(ctx, p.observe) }

func (p *Policies) Apply(ctx context.Context, _ Diff) error {
	return applyConcurrently(ctx, p.observe)
}

func (p *Policies) observe(ctx context.Context) ([]step, []string, error) {
	v, err := p.Vault.Admin(ctx)
	if err != nil {
		return nil, nil, err
	}
	rendered := map[string]string{}
	var want []string
	for _, pol := range p.In.Policies {
		want = append(want, pol.Name)
		rendered[pol.Name] = policy.Render(pol, p.In.KVMounts)
	}
	set := ownedSet{
		kind: "policies", noun: "policy", want: want, owners: p.Owners, prune: p.Prune,
		ensure: func(ctx context.Context, name string) (*step, error) {
			return ensurePolicy(ctx, v, name, rendered[name])
		},
		marked: func(ctx context.Context, name string) (bool, error) { return policyMarked(ctx, v, name) },
		remove: func(ctx context.Context, name string) error { return v.DeletePolicy(ctx, name) },
	}
	steps, facts, err := set.observe(ctx)
	if err != nil {
		return nil, nil, err
	}
	return steps, append([]string{plural.Count(len(want), "policy", "policies")}, facts...), nil
}

// policyMarked reports whether a live policy carries the header vaultctl writes.
func policyMarked(ctx context.Context, v vault.ACL, name string) (bool, error) {
	hcl, found, err := v.ReadPolicy(ctx, name)
	if err != nil {
		return false, vaultErr("reading policy "+name, err)
	}
	return found && strings.HasPrefix(hcl, policy.Header), nil
}

// ensurePolicy returns a step when the named ACL policy differs from want.
func ensurePolicy(ctx context.Context, v vault.ACL, name, want string) (*step, error) {
	cur, found, err := v.ReadPolicy(ctx, name)
	if err != nil {
		return nil, vaultErr("reading policy "+name, err)
	}
	if found && strings.TrimSpace(cur) == strings.TrimSpace(want) {
		return nil, nil
	}
	action := Update
	if !found {
		action = Create
	}
	return &step{change: Change{action, "policy " + name, ""}, apply: func(ctx context.Context) error {
		return v.WritePolicy(ctx, name, want)
	}}, nil
}

func kvPaths(cfg *config.Config) []string {
	out := make([]string, len(cfg.KV))
	for i, m := range cfg.KV {
		out[i] = m.Path
	}
	return out
}
