// Package policy renders Vault ACL policies from vaultctl's config. Users write logical KV paths,
// as `vault kv get` shows them; Vault's ACLs match API paths, where KV version 2 puts data under
// data/ and listings under metadata/. Getting that wrong is the 403 that leaves pods stuck in
// Init:0/1, so the translation lives in one place.
package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/vaultctl/vaultctl/config"
)

// Header marks policies vaultctl wrote, for humans reading `vault policy read`.
const Header = "# Managed by vaultctl from the config; edits here are overwritten.\n"

// dataCaps are the capabilities that act on a secret's data.
var dataCaps = []string{"create", "read", "update", "patch", "delete"}

// apiRules translates a policy's logical rules to API paths and capabilities, with the
// explicit parent denies; Render writes them and ACL evaluates them.
func apiRules(p config.Policy, kvMounts []string) map[string][]string {
	rules := map[string][]string{} // API path -> capabilities
	add := func(path string, caps ...string) {
		for _, c := range caps {
			if !slices.Contains(rules[path], c) {
				rules[path] = append(rules[path], c)
			}
		}
	}
	denies := map[string]bool{}
	for _, r := range p.Rules {
		mount := config.KVMountOf(kvMounts, r.Path)
		if mount == "" {
			add(r.Path, r.Capabilities...)
			continue
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(r.Path, mount), "/")
		for _, c := range r.Capabilities {
			switch {
			case c == "deny":
				add(mount+"/data/"+rest, "deny")
				add(mount+"/metadata/"+rest, "deny")
			case slices.Contains(dataCaps, c):
				add(mount+"/data/"+rest, c)
			case c == "list":
				add(mount+"/metadata/"+rest, "list")
			default: // sudo, subscribe, recover: no KV v2 meaning beyond the data path
				add(mount+"/data/"+rest, c)
			}
		}
		if p.DenyParentEnabled() && !slices.Contains(r.Capabilities, "deny") {
			parent := ""
			if i := strings.LastIndex(strings.TrimSuffix(rest, "*"), "/"); i >= 0 {
				parent = rest[:i+1]
			}
			// The exact paths above are more specific than these globs, so they still win; any
			// other policy's grant on the same or a broader glob loses to deny.
			denies[mount+"/data/"+parent+"*"] = true
			denies[mount+"/metadata/"+parent+"*"] = true
			denies[mount+"/metadata/"+strings.TrimSuffix(parent, "/")] = true
		}
	}
	for d := range denies {
		if _, granted := rules[d]; !granted {
			rules[d] = []string{"deny"}
		}
	}
	return rules
}

// Render returns the policy's HCL: deterministic, so an unchanged config never rewrites it.
func Render(p config.Policy, kvMounts []string) string {
	return renderRules(apiRules(p, kvMounts))
}

// renderRules writes API-path rules as HCL after Header, paths sorted and capabilities in a
// fixed order; a deny stands alone.
func renderRules(rules map[string][]string) string {
	paths := make([]string, 0, len(rules))
	for p := range rules {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	b.WriteString(Header)
	for _, path := range paths {
		caps := slices.Clone(rules[path])
		if slices.Contains(caps, "deny") {
			caps = []string{"deny"}
		}
		sort.Slice(caps, func(i, j int) bool { return capOrder(caps[i]) < capOrder(caps[j]) })
		quoted := make([]string, len(caps))
		for i, c := range caps {
			quoted[i] = fmt.Sprintf("%q", c)
		}
		fmt.Fprintf(&b, "\npath %q {\n  capabilities = [%s]\n}\n", path, strings.Join(quoted, ", "))
	}
	return b.String()
}

func capOrder(c string) int {
	order := []string{"create", "read", "update", "patch", "delete", "list", "sudo", "subscribe", "recover", "deny"}
	if i := slices.Index(order, c); i >= 0 {
		return i
	}
	return len(order)
}

// Grants reports whether the rules vaultctl writes for p give capability on the API path.
func Grants(p config.Policy, kvMounts []string, apiPath, capability string) bool {
	a := NewACL()
	a.AddPolicy(p, kvMounts)
	ok, _ := a.Allows(apiPath, capability)
	return ok
}
