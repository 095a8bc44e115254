package action

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/phases"
)

// MigratePlanOptions are `migrate namespace --plan`'s choices.
type MigratePlanOptions struct {
	Namespace string
	// Workloads are --workload KIND/NAME: only they and the Secrets they read are planned.
	Workloads []string
	// Entrypoints are --entrypoint values; they win over migration.entrypoints.
	Entrypoints []migrate.Entrypoint
	// KeepServiceAccount keeps workloads that run as default on it (--keep-service-account).
	KeepServiceAccount bool
	// CopyRoleBindings copies default's RoleBindings to the new ServiceAccounts.
	CopyRoleBindings bool
}

// planOptions are the plan's options from the config and the command's choices.
func (o MigratePlanOptions) planOptions(cfg *config.Config) (migrate.PlanOptions, error) {
	opts, err := migrate.OptionsFromConfig(cfg, o.Namespace)
	if err != nil {
		return opts, err
	}
	opts.Workloads = o.Workloads
	opts.Entrypoints = append(opts.Entrypoints, o.Entrypoints...)
	opts.KeepServiceAccount, opts.CopyRoleBindings = o.KeepServiceAccount, o.CopyRoleBindings
	return opts, nil
}

// MigratePlanResult is the namespace's plan and what the user should know besides.
type MigratePlanResult struct {
	*migrate.NamespacePlan
	Warnings []string
}

// ErrNoNamespace marks a migrate run asked for a namespace the cluster does not have.
var ErrNoNamespace = errors.New("namespace not found")

// MigratePlan plans migrating one namespace off raw Secrets. Like Plan, it takes no lock and
// writes nothing; unlike Plan, it runs no preflight, which probes what the installer needs (KMS,
// Vault), while a migrate plan only lists the namespace's objects through the Kubernetes API.
// It connects to Kubernetes only: neither KMS nor Vault is set up, so neither need be reachable
// or configured in the environment.
func MigratePlan(ctx context.Context, c *Configuration, o MigratePlanOptions) (*MigratePlanResult, error) {
	opts, err := o.planOptions(c.config())
	if err != nil {
		return nil, err
	}
	res := &MigratePlanResult{}
	kubeOnly := *c
	if kubeOnly.Connect == nil {
		kubeOnly.Connect = func(_ context.Context, cfg *config.Config) (*phases.Env, error) { return phases.ConnectKube(cfg) }
	}
	ss, err := kubeOnly.run(ctx, scope{name: "migrate namespace"}, func(ctx context.Context, ss *session) error {
		if _, err := ss.env.Kube.CoreV1().Namespaces().Get(ctx, o.Namespace, metav1.GetOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("%w: the cluster has no namespace %s (kubectl get namespaces lists them)", ErrNoNamespace, o.Namespace)
			}
			// Reading namespaces may be denied to someone allowed to read this one: go on.
			c.debugf("migrate namespace: reading namespace %s: %v", o.Namespace, err)
		}
		c.debugf("migrate namespace: discovering namespace %s", o.Namespace)
		np, err := planWithJournal(ctx, ss.env, o.Namespace, opts, migrate.JournalStore{Kube: ss.env.Kube, Namespace: o.Namespace})
		if err != nil {
			return err
		}
		res.NamespacePlan = np
		return nil
	})
	if ss != nil {
		res.Warnings = ss.warnings
	}
	return res, err
}
