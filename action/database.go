package action

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/phases"
)

// MigrateDatabaseOptions are `migrate database`'s choices.
type MigrateDatabaseOptions struct {
	Namespace string
	Workload  migrate.WorkloadID
	// Role is the database role; Mount the engine's mount, found from the config when empty.
	Role, Mount              string
	Source                   string // --from: Secret name or KV path
	UsernameKey, PasswordKey string
	Entrypoints              []migrate.Entrypoint
	// Plan only observes; Rollback restores the template from before the switch.
	Plan, Rollback bool
	RolloutTimeout time.Duration
	LockWait       time.Duration
	// Confirm is asked once the plan is known, before anything is written.
	Confirm func(*migrate.DatabasePlan) bool
}

// MigrateDatabaseResult is what a migrate database run found and did.
type MigrateDatabaseResult struct {
	Plan     *migrate.DatabasePlan    `json:"plan,omitempty"`
	Outcome  *migrate.DatabaseOutcome `json:"outcome,omitempty"`
	Declined bool                     `json:"declined,omitempty"`
	Warnings []string                 `json:"warnings"`
}

// databaseFor finds the configured database role and its mount.
func databaseFor(cfg *config.Config, mount, role string) (config.Database, error) {
	var found []config.Database
	for _, d := range cfg.Databases {
		if mount != "" && strings.Trim(d.Mount, "/") != strings.Trim(mount, "/") {
			continue
		}
		if slices.ContainsFunc(d.Roles, func(r config.DatabaseRole) bool { return r.Name == role }) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		var known []string
		for _, d := range cfg.Databases {
			for _, r := range d.Roles {
				known = append(known, d.Mount+"/"+r.Name)
			}
		}
		listed := "none"
		if len(known) > 0 {
			listed = strings.Join(known, ", ")
		}
		return config.Database{}, fmt.Errorf("no database role %q in the config (databases[].roles lists %s): add it and run vaultctl apply first", role, listed)
	case 1:
		return found[0], nil
	}
	return config.Database{}, fmt.Errorf("database role %q is on several mounts: name one with --mount", role)
}

// MigrateDatabase switches one workload to dynamic database credentials under the namespace's
// migrate lock, or plans it (no lock, nothing written), or rolls it back.
func MigrateDatabase(ctx context.Context, c *Configuration, o MigrateDatabaseOptions) (*MigrateDatabaseResult, error) {
	cfg := c.config()
	res := &MigrateDatabaseResult{Warnings: []string{}}
	db, err := databaseFor(cfg, o.Mount, o.Role)
	if err != nil && !o.Rollback {
		return res, err
	}
	var kvMounts []string
	for _, m := range cfg.KV {
		kvMounts = append(kvMounts, strings.Trim(m.Path, "/"))
	}
	if len(kvMounts) == 0 {
		return res, errors.New("the config lists no kv mount: migrate database keeps its backup on the first one")
	}
	entry := map[string][]string{}
	for _, e := range cfg.Migration.Entrypoints {
		if e.Namespace == o.Namespace && e.Workload == o.Workload.String() {
			entry[e.Container] = e.Entrypoint
		}
	}
	for _, e := range o.Entrypoints {
		if e.Workload == o.Workload {
			entry[e.Container] = e.Argv
		}
	}
	authMount := strings.Trim(cfg.KubernetesAuth.Path, "/")
	opts := migrate.DatabaseOptions{Namespace: o.Namespace, Workload: o.Workload, Mount: strings.Trim(db.Mount, "/"), Role: o.Role,
		Source: o.Source, UsernameKey: o.UsernameKey, PasswordKey: o.PasswordKey, AuthMount: authMount, KVMounts: kvMounts,
		Defaults: cfg.Migration.Defaults, Entrypoints: entry}
	s := scope{name: "migrate database", lease: MigrateLease(o.Namespace), lockWait: o.LockWait}
	if o.Plan {
		s.lease = "" // a plan writes nothing and takes no lock
	}
	ss, err := c.run(ctx, s, func(ctx context.Context, ss *session) error {
		env := ss.env
		if _, err := env.Kube.CoreV1().Namespaces().Get(ctx, o.Namespace, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("namespace %s: %w", o.Namespace, err)
		}
		admin, err := env.Vault.Admin(ctx)
		if err != nil {
			return err
		}
		sw := &migrate.DatabaseSwitch{Kube: env.Kube, Vault: admin, BackupMount: kvMounts[0],
			Journal: migrate.JournalStore{Kube: env.Kube, Namespace: o.Namespace}, RolloutTimeout: o.RolloutTimeout,
			Progress: func(format string, args ...any) { phases.Progressf(ctx, format, args...) }}
		if o.Rollback {
			out, err := sw.Rollback(ctx, o.Namespace, o.Workload)
			res.Outcome = &out
			return err
		}
		p, err := migrate.PlanDatabase(ctx, env.Kube, admin, opts)
		if err != nil {
			return err
		}
		res.Plan = p
		if d := cfg.Migration.Defaults.MaxTTL.Duration; d > 0 {
			for _, r := range db.Roles {
				if r.Name == o.Role && r.MaxTTL.Duration > d {
					res.Warnings = append(res.Warnings, fmt.Sprintf("role %s issues tokens for at most %s (migration.defaults.maxTTL) but credentials of %s may live %s: Vault revokes them with the token", p.Role, cfg.Migration.Defaults.MaxTTL, p.CredsPath, r.MaxTTL))
				}
			}
		}
		if o.Plan {
			return nil
		}
		if o.Confirm != nil && !p.Done && !o.Confirm(p) {
			res.Declined = true
			return nil
		}
		sw.Prove = func(ctx context.Context) error {
			return migrate.ProveDatabase(ctx, env.Kube, func() (migrate.DatabaseProofClient, error) { return env.Vault.Anonymous(ctx) }, p, opts.Mount, o.Role)
		}
		out, err := sw.Apply(ctx, o.Workload, p)
		res.Outcome = &out
		return err
	})
	if ss != nil {
		res.Warnings = append(res.Warnings, ss.warnings...)
	}
	return res, err
}
