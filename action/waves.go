package action

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/phases"
	"github.com/vaultctl/vaultctl/waves"
)

// WavesLease keeps two runs of the migration plan apart (migrate next / migrate wave); each
// namespace a wave migrates is also held by its own MigrateLease.
const WavesLease = "vaultctl-migrate-waves"

// WavesOptions are the choices of migrate status, next and wave.
type WavesOptions struct {
	// Manifests is a directory check-passing also checks (--manifests).
	Manifests string
	// Wave names the wave to run; "" runs the first incomplete one (migrate next).
	Wave string
	// Plan only says what the run would do.
	Plan bool
	// RolloutTimeout and LockWait are passed to each namespace's migration.
	RolloutTimeout time.Duration
	LockWait       time.Duration
}

// WavesStatusResult is the plan's state, and what the user should know besides.
type WavesStatusResult struct {
	*waves.Status
	Warnings []string
}

// WavesStatus observes every wave of migration.waves and evaluates its gates. It writes
// nothing and takes no lock.
func WavesStatus(ctx context.Context, c *Configuration, o WavesOptions) (*WavesStatusResult, error) {
	res := &WavesStatusResult{}
	ss, err := c.run(ctx, scope{name: "migrate status"}, func(ctx context.Context, ss *session) error {
		obs := c.wavesObserver(ctx, ss.env, o)
		st, err := obs.Status(ctx)
		res.Status = st
		return err
	})
	if ss != nil {
		res.Warnings = ss.warnings
	}
	return res, err
}

// WavesRunResult is what migrate next or migrate wave did.
type WavesRunResult struct {
	*waves.RunResult
	Warnings []string
}

// WavesRun runs one wave (o.Wave, or the first incomplete one) if its gates pass, under
// WavesLease: each namespace through Migrate, as `migrate namespace NS --yes` would, and the
// CI guard wave's admission policy and labels. With o.Plan it takes no lock and writes nothing.
func WavesRun(ctx context.Context, c *Configuration, o WavesOptions) (*WavesRunResult, error) {
	res := &WavesRunResult{}
	sc := scope{name: "migrate next"}
	if o.Wave != "" {
		sc.name = "migrate wave"
	}
	if !o.Plan {
		sc.lease, sc.lockWait = WavesLease, o.LockWait
	}
	ss, err := c.run(ctx, sc, func(ctx context.Context, ss *session) error {
		r := &waves.Runner{
			Observer: *c.wavesObserver(ctx, ss.env, o),
			Progress: func(format string, args ...any) { phases.Progressf(ctx, format, args...) },
			Migrate: func(ctx context.Context, ns string, workloads []string) ([]string, error) {
				out, err := Migrate(ctx, c, MigrateOptions{
					MigratePlanOptions: MigratePlanOptions{Namespace: ns, Workloads: workloads},
					RolloutTimeout:     o.RolloutTimeout, LockWait: o.LockWait,
				})
				if out != nil {
					for _, w := range out.Warnings {
						ss.warnings = append(ss.warnings, ns+": "+w)
					}
				}
				if err != nil {
					return nil, err
				}
				var failed []string
				if out.Report != nil {
					for _, w := range out.Report.Workloads {
						if w.State != migrate.WorkloadVerified {
							failed = append(failed, fmt.Sprintf("%s (%s: %s)", w.Workload, w.State, w.Message))
						}
					}
					for _, s := range out.Report.Secrets {
						if s.Error != "" {
							failed = append(failed, fmt.Sprintf("Secret %s (%s)", s.Name, s.Error))
						}
					}
				}
				return failed, nil
			},
		}
		rr, err := r.Run(ctx, o.Wave, o.Plan)
		res.RunResult = rr
		return err
	})
	if ss != nil {
		res.Warnings = append(res.Warnings, ss.warnings...)
	}
	return res, err
}

// wavesObserver reads the estate for the waves. Vault is logged into only when a wave has the
// dynamic-db-credentials gate: the rest is Kubernetes alone.
func (c *Configuration) wavesObserver(ctx context.Context, env *phases.Env, o WavesOptions) *waves.Observer {
	obs := &waves.Observer{Kube: env.Kube, KubeREST: env.KubeREST, Config: c.config(), Manifests: o.Manifests}
	if needsVault(c.config()) && env.Vault != nil {
		admin, err := env.Vault.Admin(ctx)
		if err != nil {
			obs.VaultErr = err
			c.debugf("migrate waves: logging in to Vault: %v", err)
		} else {
			obs.Vault = admin
		}
	}
	return obs
}

func needsVault(cfg *config.Config) bool {
	for _, w := range cfg.Migration.Waves {
		for _, g := range w.Gates {
			if strings.HasPrefix(g, config.GateDynamicDBCredentials) {
				return true
			}
		}
	}
	return false
}
