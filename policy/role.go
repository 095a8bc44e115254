package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vaultctl/vaultctl/config"
)

// RoleData is the Kubernetes auth role vaultctl writes for r (auth/<mount>/role/<name>): the
// bound ServiceAccounts and namespaces, the policies its tokens carry, ttl and max_ttl in
// seconds, and the audience. The roles phase and migrate both write this shape, so a role one
// of them wrote compares equal when the other reads it.
func RoleData(r config.Role) map[string]any {
	return map[string]any{
		"bound_service_account_names":      r.ServiceAccounts,
		"bound_service_account_namespaces": r.Namespaces,
		"token_policies":                   r.Policies,
		"token_ttl":                        int64(r.TTL.Seconds()),
		"token_max_ttl":                    int64(r.MaxTTL.Seconds()),
		"audience":                         r.Audience,
	}
}

// RoleDiff lists, sorted, the keys of want whose value in live (a role as Vault returned it)
// differs; keys Vault adds with defaults are not compared. Empty means nothing to write.
func RoleDiff(live, want map[string]any) []string {
	var diffs []string
	for k, w := range want {
		if !SameRoleValue(live[k], w) {
			diffs = append(diffs, k)
		}
	}
	slices.Sort(diffs)
	return diffs
}

// SameRoleValue compares a value Vault returned (JSON-decoded: []any lists in any order,
// json.Number or float64 numbers) with the one vaultctl would write.
func SameRoleValue(got, want any) bool {
	norm := func(v any) string {
		switch x := v.(type) {
		case []string:
			s := slices.Clone(x)
			slices.Sort(s)
			return strings.Join(s, ",")
		case []any:
			s := make([]string, len(x))
			for i, e := range x {
				s[i] = fmt.Sprint(e)
			}
			slices.Sort(s)
			return strings.Join(s, ",")
		case nil:
			return ""
		}
		return fmt.Sprint(v)
	}
	return norm(got) == norm(want)
}
