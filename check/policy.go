package check

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/policy"
)

// roleACL is a config role and what its token may do, evaluated by the same code that writes
// the policies (package policy), so check and Vault cannot disagree.
type roleACL struct {
	role    *config.Role
	acl     *policy.ACL
	missing []string // policies the role names that the config does not define
}

// buildRoles precomputes every role's ACL once; workers share the result read-only.
func buildRoles(cfg *config.Config, mounts []string) map[string]*roleACL {
	policies := make(map[string]*config.Policy, len(cfg.Policies))
	for i := range cfg.Policies {
		policies[cfg.Policies[i].Name] = &cfg.Policies[i]
	}
	out := make(map[string]*roleACL, len(cfg.Roles))
	for i := range cfg.Roles {
		r := &cfg.Roles[i]
		ra := &roleACL{role: r, acl: policy.NewACL()}
		for _, name := range r.Policies {
			p, ok := policies[name]
			if !ok {
				if name != "default" { // Vault's built-in default policy grants no secret paths
					ra.missing = append(ra.missing, name)
				}
				continue
			}
			ra.acl.AddPolicy(*p, mounts)
		}
		out[r.Name] = ra
	}
	return out
}

// boundTo reports whether name matches one of a role's bound names ("*" and globs allowed).
func boundTo(bound []string, name string) bool {
	if len(bound) == 0 {
		return true
	}
	for _, b := range bound {
		if ok, _ := path.Match(b, name); ok || b == "*" {
			return true
		}
	}
	return false
}

// policyMismatch compares the pod's login and reads with the config.
func (fc *fileChecker) policyMismatch(o *object, t podTemplate, ann map[string]annotation, role string, roleNode *yaml.Node, paths []injectedPath, noRoleReported bool) {
	cfg := fc.s.cfg
	if _, ok := ann[annConfigMap]; ok {
		return // the agent config comes from a ConfigMap we cannot see
	}
	if _, ok := ann[annVaultNamespace]; ok {
		return // a Vault Enterprise namespace the config does not describe
	}
	if ap, ok := ann[annAuthPath]; ok {
		want := "auth/" + strings.Trim(cfg.KubernetesAuth.Path, "/")
		if cfg.KubernetesAuth.Path == "" {
			want = "auth/kubernetes"
		}
		if strings.Trim(ap.value, "/") != want {
			return // logs in through another auth mount
		}
	}
	if role == "" {
		if !noRoleReported {
			fc.add(o, RulePolicyMismatch, ann[annInject].k,
				fmt.Sprintf("injection is on but %s names no %s, so the injector refuses the pod", podWhere(o, t), annRole),
				`add vault.hashicorp.com/role: "<role>" with a role from the config`)
		}
		return
	}
	ra := fc.s.roles[role]
	if ra == nil {
		names := make([]string, 0, len(cfg.Roles))
		for _, r := range cfg.Roles {
			names = append(names, r.Name)
		}
		sort.Strings(names)
		known := "the config defines no roles"
		if len(names) > 0 {
			known = "roles in the config: " + strings.Join(names, ", ")
		}
		fc.add(o, RulePolicyMismatch, roleNode,
			fmt.Sprintf("role %q is not in the config (%s); the agent's login fails and the pod stays in Init:0/1", role, known),
			fmt.Sprintf("add role %s to the config's roles, or name an existing role", role))
		return
	}
	sa := fc.w.getStr(t.spec, "serviceAccountName")
	if sa == "" {
		sa = fc.w.getStr(t.spec, "serviceAccount")
	}
	if sa == "" {
		sa = "default"
	}
	if !boundTo(ra.role.ServiceAccounts, sa) {
		fc.add(o, RulePolicyMismatch, roleNode,
			fmt.Sprintf("role %q is bound to service accounts %s but the pod runs as %q; login fails and the pod stays in Init:0/1",
				role, strings.Join(ra.role.ServiceAccounts, ", "), sa),
			fmt.Sprintf("set serviceAccountName to one of %s, or add %s to the role's serviceAccounts", strings.Join(ra.role.ServiceAccounts, ", "), sa))
	}
	if !boundTo(ra.role.Namespaces, o.namespace) {
		fc.add(o, RulePolicyMismatch, roleNode,
			fmt.Sprintf("role %q is bound to namespaces %s but the pod runs in %q; login fails and the pod stays in Init:0/1",
				role, strings.Join(ra.role.Namespaces, ", "), o.namespace),
			fmt.Sprintf("add %s to the role's namespaces, or use a role bound to it", o.namespace))
	}
	for _, p := range paths {
		api := apiPath(fc.s.kvMounts, p.path)
		ok, why := ra.acl.Allows(api, "read")
		if ok {
			continue
		}
		pols := strings.Join(ra.role.Policies, ", ")
		if pols == "" {
			pols = "none"
		}
		msg := fmt.Sprintf("role %q (policies: %s) cannot read %s: %s; the agent gets a 403 and the pod stays in Init:0/1", role, pols, api, why)
		if len(ra.missing) > 0 {
			msg += fmt.Sprintf("; policies not in the config: %s", strings.Join(ra.missing, ", "))
		}
		fc.add(o, RulePolicyMismatch, p.node, msg,
			fmt.Sprintf("give one of the role's policies a rule with path %s and capabilities [read], or correct the annotation", logicalPath(fc.s.kvMounts, api)))
	}
}

// logicalPath turns an API path back into the logical path the config uses, for fix texts.
func logicalPath(mounts []string, api string) string {
	m := config.KVMountOf(mounts, api)
	if m == "" {
		return api
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(api, m), "/")
	return m + "/" + strings.TrimPrefix(rest, "data/")
}
