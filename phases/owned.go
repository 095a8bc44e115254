package phases

import (
	"context"
	"fmt"
	"slices"
)

// ownedSet reconciles the named objects of one kind that vaultctl manages: ensure each one the
// config lists, and with --prune delete those vaultctl created that the config dropped.
// Policies, roles and audit devices use it (NetworkPolicies carry their ownership as labels and
// go through package networkpolicy).
//
// Ownership is two facts that must agree before anything is deleted: the installation's record
// (which names vaultctl created) and, where the kind has one, the mark vaultctl leaves on the
// object itself (policy.Header, the audit device description). The record alone is a ConfigMap
// anyone with access can edit; the mark alone would not tell a dropped object from one a person
// copied. A same-named object that existed before vaultctl is updated to the config but never
// recorded, so --prune can never delete something a person made.
type ownedSet struct {
	kind string // key of the ownership record: "policies"
	noun string // for changes: "policy"
	want []string
	// ensure observes one wanted object and returns the step that makes it match the config,
	// nil when it does; a step creating it has Action Create.
	ensure func(ctx context.Context, name string) (*step, error)
	// marked reports whether the live object carries vaultctl's mark; nil when the kind has
	// no place for one (Kubernetes auth roles), then the record alone decides.
	marked func(ctx context.Context, name string) (bool, error)
	remove func(ctx context.Context, name string) error
	owners Owners
	prune  bool
}

// observe returns the steps (object changes, then the ownership record when it is stale) and
// facts about what --prune would do. Objects are observed with bounded concurrency.
func (s ownedSet) observe(ctx context.Context) ([]step, []string, error) {
	found, err := forEach(ctx, s.want, s.ensure)
	if err != nil {
		return nil, nil, err
	}
	owned, err := s.owners.list(ctx, s.kind)
	if err != nil {
		return nil, nil, err
	}
	var steps []step
	var keep []string
	for i, name := range s.want {
		st := found[i]
		if st != nil {
			steps = append(steps, *st)
		}
		if slices.Contains(owned, name) || (st != nil && st.change.Action == Create) {
			keep = append(keep, name)
		}
	}
	var facts []string
	dropped := minus(owned, s.want)
	// Marks matter only to a delete: without --prune, dropped objects stay recorded unread, so
	// a config that dropped many costs no extra reads on every run.
	checkMarks := s.marked != nil && s.prune
	marks := make([]bool, len(dropped))
	if checkMarks {
		if marks, err = forEach(ctx, dropped, s.marked); err != nil {
			return nil, nil, err
		}
	}
	var waiting, foreign []string
	for i, name := range dropped {
		if checkMarks && !marks[i] {
			// Listed as ours but not marked as ours in Vault: gone already, rewritten by a
			// person, or listed by someone else. Never delete it; stop claiming it.
			foreign = append(foreign, name)
			continue
		}
		if !s.prune {
			keep = append(keep, name) // still ours until pruned
			waiting = append(waiting, name)
			continue
		}
		steps = append(steps, step{change: Change{Delete, s.noun + " " + name, "dropped from the config (--prune)"},
			apply: func(ctx context.Context) error { return s.remove(ctx, name) }})
	}
	if len(waiting) > 0 {
		facts = append(facts, fmt.Sprintf("%d owned %s no longer in the config (%v); apply --prune deletes them", len(waiting), s.kind, waiting))
	}
	if len(foreign) > 0 {
		facts = append(facts, fmt.Sprintf("%s %v listed as owned but without vaultctl's mark in Vault: left alone and dropped from the record", s.kind, foreign))
	}
	slices.Sort(keep)
	keep = slices.Compact(keep)
	sortedOwned := slices.Clone(owned)
	slices.Sort(sortedOwned)
	if !slices.Equal(keep, sortedOwned) {
		// Recording ownership is bookkeeping, not a change to Vault: it rides along with the
		// first real change, or is written on its own when only the record is stale.
		steps = append(steps, step{change: Change{Update, "ownership record " + s.kind, ""}, bookkeeping: true,
			apply: func(ctx context.Context) error { return s.owners.set(ctx, s.kind, keep) }})
	}
	return steps, facts, nil
}
