package phases

import (
	"context"
	"strings"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/plural"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/policy"
)

// Roles writes the Kubernetes auth roles: bound ServiceAccounts and namespaces, policies, ttl
// and max_ttl, audience. With --prune it deletes roles vaultctl created that were dropped.
type Roles struct {
	In     RolesInputs
	Vault  VaultAdmin
	Owners Owners
	Prune  bool
}

// RolesInputs is what the roles phase reads of the config.
type RolesInputs struct {
	Roles    []config.Role
	AuthPath string
	// Namespace holds the ownership record: another namespace is another installation.
	Namespace string
}

func rolesInputs(cfg *config.Config) RolesInputs {
	return RolesInputs{Roles: cfg.Roles, AuthPath: cfg.KubernetesAuth.Path, Namespace: cfg.Vault.Namespace}
}

func (p *Roles) Name() string { return "roles" }
func (p *Roles) Description() string {
	return "Kubernetes auth roles bound to ServiceAccount and namespace, short TTLs"
}
func (p *Roles) Inputs() any { return p.In }

func (p *Roles) Check(ctx context.Context) (Diff, error) { return checkObserved(ctx, p.observe) }

func (p *Roles) Apply(ctx context.Context, _ Diff) error { return applyConcurrently(ctx, p.observe) }

func (p *Roles) observe(ctx context.Context) ([]step, []string, error) {
	v, err := p.Vault.Admin(ctx)
	if err != nil {
		return nil, nil, err
	}
	mount := p.In.AuthPath
	data := map[string]map[string]any{}
	var want []string
	for _, r := range p.In.Roles {
		want = append(want, r.Name)
		data[r.Name] = policy.RoleData(r)
	}
	// Kubernetes auth roles have no field for a mark: the ownership record alone decides.
	set := ownedSet{
		kind: "roles", noun: "role", want: want, owners: p.Owners, prune: p.Prune,
		ensure: func(ctx context.Context, name string) (*step, error) {
			return ensureRole(ctx, v, mount, name, data[name])
		},
		remove: func(ctx context.Context, name string) error { return v.DeleteRole(ctx, mount, name) },
	}
	steps, facts, err := set.observe(ctx)
	if err != nil {
		return nil, nil, err
	}
	return steps, append([]string{plural.S(len(want), "role") + " on auth/" + mount}, facts...), nil
}

// ensureRole returns a step when the Kubernetes auth role differs from want on any key in want.
func ensureRole(ctx context.Context, v vault.AuthRoles, mount, name string, want map[string]any) (*step, error) {
	cur, err := v.ReadRole(ctx, mount, name)
	if err != nil && !isNotFound(err) {
		return nil, vaultErr("reading auth/"+mount+"/role/"+name, err)
	}
	action := Create
	var diffs []string
	if cur != nil {
		action = Update
		if diffs = policy.RoleDiff(cur, want); len(diffs) == 0 {
			return nil, nil
		}
	}
	return &step{change: Change{action, "Kubernetes auth role " + name, strings.Join(diffs, ", ")}, apply: func(ctx context.Context) error {
		return v.WriteRole(ctx, mount, name, want)
	}}, nil
}
