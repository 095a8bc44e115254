package action

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/networkpolicy"
	"github.com/vaultctl/vaultctl/phases"
)

// MigrateOptions are `migrate namespace` choices when it changes things.
type MigrateOptions struct {
	MigratePlanOptions
	// Prune deletes the raw Secrets whose every reader is migrated and verified, then labels the
	// namespace; it runs after the migration in the same run.
	Prune bool
	// Rollback restores every Secret and workload from the backups; Purge also deletes what
	// migrate created.
	Rollback, Purge bool
	// Overwrite replaces a KV entry that holds different values.
	Overwrite bool
	// GitOpsOut is a directory for the patches of workloads a GitOps controller manages.
	GitOpsOut string
	// PatchGitOps patches those live all the same.
	PatchGitOps bool
	// RolloutTimeout bounds each workload's rollout before it is rolled back by itself.
	RolloutTimeout time.Duration
	// LockWait waits this long for another run's lock on the namespace.
	LockWait time.Duration
	// Confirm is asked once the plan is known, before anything is written; false stops the run.
	Confirm func(*migrate.Plan) bool
}

// MigrateResult is what a migrate run did.
type MigrateResult struct {
	Plan      *migrate.Plan
	Report    *migrate.Report
	GitOps    []string // files written to GitOpsOut
	Declined  bool     // Confirm said no: nothing was written
	Warnings  []string
	NothingTo bool // the plan had nothing to do and no prune was asked
}

// Migrate runs the namespace's migration under the namespace's lock: plan (folding in the
// journal), confirm, then the engine (copy and back up, access, proof, patch, rollout), then
// --prune; or --rollback. Every step observes first, so a run killed anywhere is finished by
// the next one and a second run changes nothing.
func Migrate(ctx context.Context, c *Configuration, o MigrateOptions) (*MigrateResult, error) {
	cfg := c.config()
	opts, err := o.planOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts.PatchGitOps = o.PatchGitOps
	res := &MigrateResult{}
	var kvMounts []string
	for _, m := range cfg.KV {
		kvMounts = append(kvMounts, strings.Trim(m.Path, "/"))
	}
	authMount := strings.Trim(cfg.KubernetesAuth.Path, "/")
	ss, err := c.run(ctx, scope{name: "migrate namespace", lease: MigrateLease(o.Namespace), lockWait: o.LockWait}, func(ctx context.Context, ss *session) error {
		env := ss.env
		if _, err := env.Kube.CoreV1().Namespaces().Get(ctx, o.Namespace, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("namespace %s: %w", o.Namespace, err)
		}
		admin, err := env.Vault.Admin(ctx)
		if err != nil {
			return err
		}
		journal := migrate.JournalStore{Kube: env.Kube, Namespace: o.Namespace}
		eng := &migrate.Engine{
			Kube: env.Kube, Vault: admin, Namespace: o.Namespace, KVMounts: kvMounts, AuthMount: authMount,
			Journal: journal, Overwrite: o.Overwrite, RolloutTimeout: o.RolloutTimeout, VaultNamespace: cfg.Vault.Namespace,
			Progress: func(format string, args ...any) { phases.Progressf(ctx, format, args...) },
		}
		if o.Rollback {
			rep, err := eng.Rollback(ctx, o.Purge)
			res.Report = rep
			return err
		}

		np, err := planWithJournal(ctx, env, o.Namespace, opts, journal)
		if err != nil {
			return err
		}
		res.Plan = np.Plan
		if len(np.Plan.Problems) > 0 {
			return fmt.Errorf("the plan has problems to fix first (nothing was changed):\n  %s", strings.Join(np.Plan.Problems, "\n  "))
		}
		if !np.Plan.HasWork() && !o.Prune && o.GitOpsOut == "" {
			res.NothingTo = true
			return nil
		}
		if o.Confirm != nil && !o.Confirm(np.Plan) {
			res.Declined = true
			return nil
		}
		targets := map[migrate.WorkloadID]corev1.PodTemplateSpec{}
		gitops := map[migrate.WorkloadID]corev1.PodTemplateSpec{}
		for _, wp := range np.Plan.Workloads {
			id := migrate.WorkloadID{Kind: wp.Kind, Name: wp.Name}
			rw, ok := np.Rewrites[id]
			switch {
			case !ok:
			case wp.Action == migrate.WorkloadMigrate:
				targets[id] = rw.Template
			case wp.Action == migrate.WorkloadManual:
				gitops[id] = rw.Template // GitOps-managed: its rewrite is for a commit
			}
		}
		if o.GitOpsOut != "" && len(gitops) > 0 {
			if res.GitOps, err = migrate.WriteGitOps(o.GitOpsOut, o.Namespace, gitops); err != nil {
				return err
			}
		}
		eng.Access = func(ctx context.Context, wp migrate.WorkloadPlan) error {
			_, err := migrate.EnsureAccess(ctx, env.Kube, admin, migrate.AccessInput{
				Namespace: o.Namespace, AuthMount: authMount, KVMounts: kvMounts, Defaults: cfg.Migration.Defaults,
				Workloads: []migrate.WorkloadPlan{wp},
			})
			return err
		}
		eng.GuardRails = func(ctx context.Context, wps []migrate.WorkloadPlan) error {
			changes, err := migrate.EnsureGuardRails(ctx, env.Kube, migrate.GuardRailsInput{
				Namespace: o.Namespace, VaultNamespace: cfg.Vault.Namespace, Workloads: wps,
				NetworkPolicies: networkpolicy.BuildMigrated(cfg, o.Namespace),
				ClientJWT:       cfg.KubernetesAuth.TokenReviewer == config.ClientJWT,
			})
			for _, ch := range changes {
				if ch.Outcome != migrate.Unchanged {
					phases.Progressf(ctx, "%s %s %s", ch.Outcome, ch.Object, ch.Detail)
				}
			}
			return err
		}
		eng.Prove = func(ctx context.Context, wp migrate.WorkloadPlan) error {
			return migrate.Prove(ctx, migrate.ProofInput{
				Kube: env.Kube, Admin: admin, Namespace: o.Namespace, AuthMount: authMount, KVMounts: kvMounts, Plan: np.Plan,
				NewClient: func() (migrate.ProofClient, error) { return env.Vault.Anonymous(ctx) },
			}, wp)
		}
		rep, err := eng.Apply(ctx, np.Plan, np.Inventory, targets)
		res.Report = rep
		if err != nil || !o.Prune {
			return err
		}
		// Prune observes again: the switched workloads no longer name their Secrets.
		after, err := planWithJournal(ctx, env, o.Namespace, opts, journal)
		if err != nil {
			return err
		}
		pr, err := eng.Prune(ctx, after.Plan, after.Inventory)
		if pr != nil {
			rep.Pruned, rep.Kept, rep.Labelled = pr.Pruned, pr.Kept, pr.Labelled
		}
		return err
	})
	if ss != nil {
		res.Warnings = append(res.Warnings, ss.warnings...)
	}
	return res, err
}

// planWithJournal is the namespace's plan with what earlier runs did folded in.
func planWithJournal(ctx context.Context, env *phases.Env, ns string, opts migrate.PlanOptions, journal migrate.JournalStore) (*migrate.NamespacePlan, error) {
	var dyn dynamic.Interface
	if env.Dynamic != nil {
		d, err := env.Dynamic()
		if err != nil {
			return nil, fmt.Errorf("a client for the Gateway API: %w", err)
		}
		dyn = d
	}
	np, err := migrate.PlanNamespace(ctx, env.Kube, dyn, ns, opts)
	if err != nil {
		return nil, err
	}
	j, err := journal.Load(ctx)
	if err != nil {
		return nil, err
	}
	if err := np.WithJournal(ctx, env.Kube, j); err != nil {
		return nil, err
	}
	return np, nil
}
