package check

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vaultctl/vaultctl/config"
)

// acl is the set of Vault policy rules a token of one role carries, as vaultctl writes them,
// evaluated the way Vault evaluates them.
type acl struct {
	exact   map[string]*aclEntry
	globs   []*aclEntry
	missing []string // policies the role names that the config does not define
}

type aclEntry struct {
	pattern string
	caps    map[string]bool
}

// roleACL is a config role and what its token may do.
type roleACL struct {
	role *config.Role
	acl  *acl
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
		a := &acl{exact: map[string]*aclEntry{}}
		for _, name := range r.Policies {
			p, ok := policies[name]
			if !ok {
				if name != "default" { // Vault's built-in default policy grants no secret paths
					a.missing = append(a.missing, name)
				}
				continue
			}
			for _, rule := range p.Rules {
				logical := strings.Trim(rule.Path, "/")
				a.add(expandLogical(mounts, logical), rule.Capabilities)
				if p.DenyParentEnabled() && !strings.ContainsAny(logical, "*+") {
					// vaultctl follows each rule with a deny on its parent prefix, so that a broad grant
					// elsewhere cannot be used to enumerate siblings (see the origin article).
					if parent := path.Dir(logical); parent != "." && parent != "/" {
						a.add(expandLogical(mounts, parent+"/*"), []string{"deny"})
					}
				}
			}
		}
		out[r.Name] = &roleACL{role: r, acl: a}
	}
	return out
}

// expandLogical turns a logical path (as the CLI shows it) into the API path that holds the
// values: secret/app becomes secret/data/app on a KV v2 mount.
func expandLogical(mounts []string, logical string) string {
	m := kvMountOf(mounts, logical)
	if m == "" {
		return logical
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(logical, m), "/")
	return m + "/data/" + rest
}

// add merges a rule; rules with the same path in several policies combine their capabilities.
func (a *acl) add(pattern string, caps []string) {
	wild := strings.HasSuffix(pattern, "*") || hasPlusSegment(pattern)
	var e *aclEntry
	if !wild {
		e = a.exact[pattern]
		if e == nil {
			e = &aclEntry{pattern: pattern, caps: map[string]bool{}}
			a.exact[pattern] = e
		}
	} else {
		for _, g := range a.globs {
			if g.pattern == pattern {
				e = g
				break
			}
		}
		if e == nil {
			e = &aclEntry{pattern: pattern, caps: map[string]bool{}}
			a.globs = append(a.globs, e)
		}
	}
	for _, c := range caps {
		e.caps[strings.ToLower(c)] = true
	}
}

// allows reports whether capability is granted on p, and if not, why. Vault picks one rule per
// request: an exact path if there is one, else the highest-priority glob; a deny there refuses.
func (a *acl) allows(p, capability string) (bool, string) {
	e := a.exact[p]
	if e == nil {
		for _, g := range a.globs {
			if globMatch(g.pattern, p) && (e == nil || higherPriority(g.pattern, e.pattern)) {
				e = g
			}
		}
	}
	switch {
	case e == nil:
		return false, "no policy rule covers it"
	case e.caps["deny"]:
		return false, fmt.Sprintf("the rule that decides is %q, which denies it", e.pattern)
	case e.caps[capability]:
		return true, ""
	}
	caps := make([]string, 0, len(e.caps))
	for c := range e.caps {
		caps = append(caps, c)
	}
	sort.Strings(caps)
	return false, fmt.Sprintf("the rule that decides is %q, which grants only %s", e.pattern, strings.Join(caps, ", "))
}

func hasPlusSegment(p string) bool {
	for _, s := range strings.Split(p, "/") {
		if s == "+" {
			return true
		}
	}
	return false
}

// globMatch matches a Vault policy path: a trailing * matches any suffix, a + segment one segment.
func globMatch(pattern, p string) bool {
	prefix := strings.HasSuffix(pattern, "*")
	body := strings.TrimSuffix(pattern, "*")
	if !hasPlusSegment(body) {
		if prefix {
			return strings.HasPrefix(p, body)
		}
		return p == body
	}
	ps, xs := strings.Split(body, "/"), strings.Split(p, "/")
	for i, seg := range ps {
		if i >= len(xs) {
			return false
		}
		if prefix && i == len(ps)-1 {
			if seg == "+" {
				return xs[i] != ""
			}
			return strings.HasPrefix(strings.Join(xs[i:], "/"), seg)
		}
		if seg == "+" {
			if xs[i] == "" {
				return false
			}
			continue
		}
		if seg != xs[i] {
			return false
		}
	}
	return len(xs) == len(ps)
}

// higherPriority orders two matching globs as Vault documents it: the later first wildcard
// wins, then no trailing *, then fewer + segments, then the longer, then the lexically larger.
func higherPriority(a, b string) bool {
	if fa, fb := firstWildcard(a), firstWildcard(b); fa != fb {
		return fa > fb
	}
	if ea, eb := strings.HasSuffix(a, "*"), strings.HasSuffix(b, "*"); ea != eb {
		return !ea
	}
	if pa, pb := strings.Count("/"+a+"/", "/+/"), strings.Count("/"+b+"/", "/+/"); pa != pb {
		return pa < pb
	}
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

func firstWildcard(p string) int {
	i := len(p)
	if j := strings.Index(p, "*"); j >= 0 {
		i = j
	}
	off := 0
	for _, s := range strings.Split(p, "/") {
		if s == "+" {
			return min(i, off)
		}
		off += len(s) + 1
	}
	return i
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
		ok, why := ra.acl.allows(api, "read")
		if ok {
			continue
		}
		pols := strings.Join(ra.role.Policies, ", ")
		if pols == "" {
			pols = "none"
		}
		msg := fmt.Sprintf("role %q (policies: %s) cannot read %s: %s; the agent gets a 403 and the pod stays in Init:0/1", role, pols, api, why)
		if len(ra.acl.missing) > 0 {
			msg += fmt.Sprintf("; policies not in the config: %s", strings.Join(ra.acl.missing, ", "))
		}
		fc.add(o, RulePolicyMismatch, p.node, msg,
			fmt.Sprintf("give one of the role's policies a rule with path %s and capabilities [read], or correct the annotation", logicalPath(fc.s.kvMounts, api)))
	}
}

// logicalPath is the inverse of expandLogical, for fix texts written in config terms.
func logicalPath(mounts []string, api string) string {
	m := kvMountOf(mounts, api)
	if m == "" {
		return api
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(api, m), "/")
	return m + "/" + strings.TrimPrefix(rest, "data/")
}
