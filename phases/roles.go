package phases

import (
	"context"
	"fmt"
)

// Roles writes the Kubernetes auth roles: bound ServiceAccounts and namespaces, policies, ttl
// and max_ttl, audience. With --prune it deletes roles vaultctl created that were dropped.
type Roles struct{ Env *Env }

func (p *Roles) Name() string { return "roles" }
func (p *Roles) Description() string {
	return "Kubernetes auth roles bound to ServiceAccount and namespace, short TTLs"
}
func (p *Roles) Inputs() any {
	return struct{ R, Path any }{p.Env.Config.Roles, p.Env.Config.KubernetesAuth.Path}
}

func (p *Roles) Check(ctx context.Context) (Diff, error) { return checkObserved(ctx, p.observe) }

func (p *Roles) Apply(ctx context.Context, _ Diff) error { return applyObserved(ctx, p.observe) }

func (p *Roles) observe(ctx context.Context) ([]step, []string, error) {
	v, err := p.Env.adminVault(ctx)
	if err != nil {
		return nil, nil, err
	}
	mount := p.Env.Config.KubernetesAuth.Path
	var steps []step
	var want, created []string
	for _, r := range p.Env.Config.Roles {
		want = append(want, r.Name)
		data := map[string]any{
			"bound_service_account_names":      r.ServiceAccounts,
			"bound_service_account_namespaces": r.Namespaces,
			"token_policies":                   r.Policies,
			"token_ttl":                        r.TTL.Seconds(),
			"token_max_ttl":                    r.MaxTTL.Seconds(),
			"audience":                         r.Audience,
		}
		s, err := ensureRole(ctx, v, mount, r.Name, data)
		if err != nil {
			return nil, nil, err
		}
		if s != nil {
			steps = append(steps, *s)
			if s.change.Action == Create {
				created = append(created, r.Name)
			}
		}
	}
	owned, err := ownership{p.Env}.list(ctx, "roles")
	if err != nil {
		return nil, nil, err
	}
	steps = append(steps, pruneSteps(p.Env, "roles", owned, want, created, func(ctx context.Context, name string) error {
		_, err := v.Logical().DeleteWithContext(ctx, "auth/"+mount+"/role/"+name)
		return err
	})...)
	return steps, []string{fmt.Sprintf("%d roles on auth/%s", len(want), mount)}, nil
}
