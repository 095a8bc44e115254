package config

import (
	"fmt"
	"slices"
	"strings"
)

// CredsPath is the API path a database role's credentials are read at: MOUNT/creds/ROLE.
func CredsPath(mount, role string) string { return strings.Trim(mount, "/") + "/creds/" + role }

// GrantsPath reports whether an ACL rule path (with Vault's globs: + for one segment, a
// trailing * for any suffix) covers the API path p.
func GrantsPath(rule, p string) bool {
	prefix, glob := strings.CutSuffix(rule, "*")
	rs, ps := strings.Split(prefix, "/"), strings.Split(p, "/")
	for i, seg := range rs {
		last := i == len(rs)-1
		switch {
		case i >= len(ps):
			return false
		case last && glob:
			return seg == "+" || strings.HasPrefix(ps[i], seg)
		case seg != "+" && seg != ps[i]:
			return false
		}
	}
	return glob || len(rs) == len(ps)
}

// validateDatabaseTTLs warns where a database role's credentials outlive the token that can
// read them: Vault revokes a lease with its parent token, so credentials die at the token's
// max_ttl however long the database role allows (hello-vault-go#27).
func validateDatabaseTTLs(c *Config, ps *problems) {
	for i, d := range c.Databases {
		base := fmt.Sprintf("databases[%d]", i)
		if d.MaxOpenConnections < 0 {
			ps.errorf(base+".maxOpenConnections", "must be 0 (Vault's default) or more, got %d", d.MaxOpenConnections)
		}
		if d.MaxIdleConnections < 0 {
			ps.errorf(base+".maxIdleConnections", "must be 0 (Vault's default) or more, got %d", d.MaxIdleConnections)
		}
		if d.MaxConnectionLifetime.Duration < 0 {
			ps.errorf(base+".maxConnectionLifetime", "must be 0 (no limit) or more, got %s", d.MaxConnectionLifetime)
		}
		for j, r := range d.Roles {
			if r.MaxTTL.Duration <= 0 {
				continue
			}
			creds := CredsPath(d.Mount, r.Name)
			key := fmt.Sprintf("%s.roles[%d].maxTTL", base, j)
			for _, role := range c.Roles {
				if role.MaxTTL.Duration <= 0 || role.MaxTTL.Duration >= r.MaxTTL.Duration || !rolePoliciesGrant(c, role, creds) {
					continue
				}
				ps.warnf(key, "credentials of %s may live %s, but the Kubernetes auth role %s that reads them issues tokens with max_ttl %s: Vault revokes the credentials with the token, so the application loses its database login after %s; raise roles' maxTTL for %s to at least %s or lower this maxTTL",
					creds, r.MaxTTL, role.Name, role.MaxTTL, role.MaxTTL, role.Name, r.MaxTTL)
			}
			if m := c.Migration.Defaults.MaxTTL.Duration; m > 0 && m < r.MaxTTL.Duration {
				ps.warnf(key, "credentials of %s may live %s, but the roles `vaultctl migrate database` creates issue tokens with migration.defaults.maxTTL %s: Vault revokes the credentials with the token; raise migration.defaults.maxTTL to at least %s or lower this maxTTL",
					creds, r.MaxTTL, c.Migration.Defaults.MaxTTL, r.MaxTTL)
			}
		}
	}
}

// rolePoliciesGrant reports whether one of the role's configured policies grants read on p.
func rolePoliciesGrant(c *Config, role Role, p string) bool {
	for _, pol := range c.Policies {
		if !slices.Contains(role.Policies, pol.Name) {
			continue
		}
		for _, rule := range pol.Rules {
			if slices.Contains(rule.Capabilities, "read") && GrantsPath(rule.Path, p) {
				return true
			}
		}
	}
	return false
}
