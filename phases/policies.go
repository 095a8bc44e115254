package phases

import (
	"context"
	"fmt"
	"slices"

	"github.com/vaultctl/vaultctl/policy"
)

// Policies writes each configured policy, rendered to KV v2 API paths with the explicit deny on
// the parent, when it differs from Vault's copy. With --prune it deletes policies vaultctl
// created that the config no longer lists.
type Policies struct{ Env *Env }

func (p *Policies) Name() string { return "policies" }
func (p *Policies) Description() string {
	return "least-privilege ACL policies on exact KV v2 paths, explicit deny on parents"
}
func (p *Policies) Inputs() any { return struct{ P, KV any }{p.Env.Config.Policies, p.Env.Config.KV} }

func (p *Policies) Check(ctx context.Context) (Diff, error) { return checkObserved(ctx, p.observe) }

func (p *Policies) Apply(ctx context.Context, _ Diff) error { return applyObserved(ctx, p.observe) }

func (p *Policies) observe(ctx context.Context) ([]step, []string, error) {
	v, err := p.Env.adminVault(ctx)
	if err != nil {
		return nil, nil, err
	}
	var steps []step
	var want, created []string
	for _, pol := range p.Env.Config.Policies {
		want = append(want, pol.Name)
		s, err := ensurePolicy(ctx, v, pol.Name, policy.Render(pol, kvPaths(p.Env.Config)))
		if err != nil {
			return nil, nil, err
		}
		if s != nil {
			steps = append(steps, *s)
			if s.change.Action == Create {
				created = append(created, pol.Name)
			}
		}
	}
	owned, err := ownership{p.Env}.list(ctx, "policies")
	if err != nil {
		return nil, nil, err
	}
	steps = append(steps, pruneSteps(p.Env, "policies", owned, want, created, func(ctx context.Context, name string) error {
		return v.Sys().DeletePolicyWithContext(ctx, name)
	})...)
	facts := []string{fmt.Sprintf("%d policies", len(want))}
	if dropped := minus(owned, want); len(dropped) > 0 && !p.Env.Prune {
		facts = append(facts, fmt.Sprintf("%d owned policies no longer in the config (%v); apply --prune deletes them", len(dropped), dropped))
	}
	return steps, facts, nil
}

// pruneSteps records ownership and, with --prune, deletes owned names not in want. Only what
// vaultctl creates becomes owned: a same-named object that existed before is updated to the
// config but never recorded, so --prune can never delete something a person made.
func pruneSteps(env *Env, kind string, owned, want, created []string, del func(context.Context, string) error) []step {
	var steps []step
	var keep []string
	for _, name := range want {
		if slices.Contains(owned, name) || slices.Contains(created, name) {
			keep = append(keep, name)
		}
	}
	for _, name := range minus(owned, want) {
		if !env.Prune {
			keep = append(keep, name) // still ours until pruned
			continue
		}
		name := name
		steps = append(steps, step{Change{Delete, kind[:len(kind)-1] + " " + name, "dropped from the config (--prune)"}, func(ctx context.Context) error {
			return del(ctx, name)
		}})
	}
	slices.Sort(keep)
	sortedOwned := slices.Clone(owned)
	slices.Sort(sortedOwned)
	if !slices.Equal(slices.Compact(keep), sortedOwned) {
		// Recording ownership is bookkeeping, not a change to Vault: it rides along with the
		// first real change, or is written on its own when only the record is stale.
		steps = append(steps, step{Change{Update, "ownership record " + kind, ""}, func(ctx context.Context) error {
			return ownership{env}.set(ctx, kind, keep)
		}})
	}
	return steps
}

// observer is how step-based phases look at the estate: the steps that would remove each
// difference, and facts worth showing.
type observer func(ctx context.Context) ([]step, []string, error)

// checkObserved is Check for a step-based phase.
func checkObserved(ctx context.Context, observe observer) (Diff, error) {
	steps, facts, err := observe(ctx)
	if err != nil {
		return Diff{}, err
	}
	d := Diff{Facts: facts}
	for _, s := range steps {
		d.Changes = append(d.Changes, s.change)
	}
	return d, nil
}

// applyObserved is Apply for a step-based phase: it observes again, since the estate may have
// moved since Check, and applies each step in order.
func applyObserved(ctx context.Context, observe observer) error {
	steps, _, err := observe(ctx)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if err := s.apply(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.change, err)
		}
	}
	return nil
}
