package action

import (
	"context"
	"time"

	"github.com/vaultctl/vaultctl/auditlog"
	"github.com/vaultctl/vaultctl/check"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

// PolicyAuditOptions are `policies audit`'s choices.
type PolicyAuditOptions struct {
	// Source and ConfigFile locate findings in the config file.
	Source     *config.Source
	ConfigFile string
	// Audit are audit log inputs (see AuditInputs); none leaves the unused rules out.
	Audit        []auditlog.Input
	Since, Until time.Time
}

// PolicyAuditResult is the review and what did not change it.
type PolicyAuditResult struct {
	Report   *check.Report
	Usage    *auditlog.Usage
	Warnings []string
}

// PolicyAudit reads the config's policies and roles as Vault holds them now and reviews them
// (lifecycle.PolicyAudit). It takes no lock and writes nothing.
func PolicyAudit(ctx context.Context, c *Configuration, o PolicyAuditOptions) (*PolicyAuditResult, error) {
	out := &PolicyAuditResult{}
	var usage *auditlog.Usage
	if len(o.Audit) > 0 {
		u, err := auditlog.PolicyUsage(ctx, o.Since, o.Until, o.Audit...)
		if err != nil {
			return nil, err
		}
		usage, out.Usage = u, u
	}
	ss, err := c.run(ctx, scope{name: "policies audit"}, func(ctx context.Context, ss *session) error {
		cfg := ss.env.Config
		v, err := ss.env.Vault.Admin(ctx)
		if err != nil {
			return err
		}
		in := lifecycle.PolicyAuditInput{Config: cfg, Source: o.Source, ConfigFile: o.ConfigFile, AuthPath: cfg.KubernetesAuth.Path,
			Usage: usage, Since: o.Since, Until: o.Until}
		for _, p := range cfg.Policies {
			hcl, found, err := v.ReadPolicy(ctx, p.Name)
			if err != nil {
				return phases.Fail("check that vaultctl-admin (or VAULT_TOKEN) may read sys/policies/acl", "reading policy %s: %v", p.Name, err)
			}
			in.Policies = append(in.Policies, lifecycle.LivePolicy{Name: p.Name, HCL: hcl, Found: found})
		}
		for _, r := range cfg.Roles {
			data, err := v.ReadRole(ctx, cfg.KubernetesAuth.Path, r.Name)
			if err != nil {
				return phases.Fail("check that vaultctl-admin (or VAULT_TOKEN) may read auth/"+cfg.KubernetesAuth.Path+"/role", "reading role %s: %v", r.Name, err)
			}
			in.Roles = append(in.Roles, lifecycle.LiveRole{Name: r.Name, Data: data})
		}
		out.Report, err = lifecycle.PolicyAudit(in)
		return err
	})
	if ss != nil {
		out.Warnings = ss.warnings
	}
	return out, err
}
