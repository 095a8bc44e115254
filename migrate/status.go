package migrate

import (
	"context"
	"fmt"

	"k8s.io/client-go/kubernetes"
)

// WithJournal folds what earlier runs did into a fresh plan, so the plan says where the
// namespace stands rather than what a first run would do:
//   - a migrated Secret whose copy the journal records, for the very Secret (UID and
//     resourceVersion) that is there now, is "copied": nothing to do but --prune;
//   - its consumers are the plan's (live readers) plus those the journal recorded, whose
//     switched templates no longer name it;
//   - a workload the journal says is verified and whose live template is still the one migrate
//     wrote is "verified" and skipped; one whose template changed since is planned again.
func (np *NamespacePlan) WithJournal(ctx context.Context, cs kubernetes.Interface, j *Journal) error {
	for i := range np.Plan.Secrets {
		sp := &np.Plan.Secrets[i]
		rec, ok := j.Secrets[sp.Name]
		if !ok || sp.Action != SecretMigrate {
			continue
		}
		if s := np.Inventory.Secret(sp.Name); s != nil && rec.State == SecretCopied && string(s.UID) == rec.UID && s.ResourceVersion == rec.Version {
			sp.State = string(SecretCopied)
			if len(sp.Consumers) == 0 && len(rec.Consumers) > 0 {
				sp.Reason = fmt.Sprintf("copied to KV; read from Vault by %d migrated workload(s); --prune deletes it", len(rec.Consumers))
			}
		}
		sp.Consumers = mergeSorted(sp.Consumers, rec.Consumers)
	}
	// A workload migrate patched reads no Secret any more, so discovery leaves it out of the
	// plan: the journal brings it back, to resume or to show as done.
	planned := map[string]bool{}
	for _, wp := range np.Plan.Workloads {
		planned[WorkloadID{Kind: wp.Kind, Name: wp.Name}.String()] = true
	}
	for _, key := range sortedKeys(j.Workloads) {
		id, err := ParseWorkload(key)
		if err != nil || planned[key] || j.Workloads[key].PatchedHash == "" {
			continue
		}
		np.Plan.Workloads = append(np.Plan.Workloads, WorkloadPlan{Kind: id.Kind, Name: id.Name, Action: WorkloadSkip})
	}
	for i := range np.Plan.Workloads {
		wp := &np.Plan.Workloads[i]
		id := WorkloadID{Kind: wp.Kind, Name: wp.Name}
		rec, ok := j.Workloads[id.String()]
		if !ok {
			continue
		}
		wp.State = string(rec.State)
		if rec.PatchedHash == "" || rec.State == WorkloadRolledBack {
			continue
		}
		live, err := ReadTemplate(ctx, cs, j.namespace, id)
		if err != nil {
			return err
		}
		if TemplateHash(*live) != rec.PatchedHash {
			continue // changed since migrate patched it: planned from what it is now
		}
		done := WorkloadPlan{Kind: wp.Kind, Name: wp.Name, State: string(rec.State),
			ServiceAccount: rec.ServiceAccount, Role: rec.Role, Policy: rec.Policy, KVPaths: rec.KVPaths,
			// A run with --keep-service-account bound its role to default; the resume keeps it.
			KeepsDefaultServiceAccount: rec.ServiceAccount == DefaultServiceAccount}
		if rec.State == WorkloadVerified {
			done.Action = WorkloadSkip
			done.Changes = []string{"already migrated: reads its secrets through the Vault Agent Injector (verified " + rec.At.Format("2006-01-02 15:04 MST") + ")"}
		} else {
			// Patched by a run that did not see its rollout through (killed, or it failed
			// after the patch): it reads no Secret any more, so only the journal says it is
			// still to verify. Its target is the template it runs.
			done.Action = WorkloadMigrate
			done.Changes = []string{"resuming: patched by an earlier run, its rollout is still to verify"}
			np.Rewrites[id] = RewriteResult{Template: *live, Action: WorkloadMigrate}
		}
		*wp = done
	}
	return nil
}

// HasWork says the namespace is not migrated yet: a Secret still to copy into KV, or a
// workload still to switch (or waiting for the user, manual). Copied Secrets waiting for
// --prune are not work: the namespace reads everything from Vault already.
func (p *Plan) HasWork() bool {
	for _, s := range p.Secrets {
		if s.Action == SecretMigrate && s.State != string(SecretCopied) {
			return true
		}
	}
	for _, w := range p.Workloads {
		if w.Action == WorkloadMigrate || w.Action == WorkloadManual {
			return true
		}
	}
	return false
}
