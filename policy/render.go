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

// Render returns the policy's HCL: deterministic, so an unchanged config never rewrites it.
func Render(p config.Policy, kvMounts []string) string {
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
	paths := make([]string, 0, len(rules))
	for p := range rules {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	b.WriteString(Header)
	for _, path := range paths {
		caps := rules[path]
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

// Grants reports whether the rendered rules of a policy give capability c on the API path
// (Vault's matching: exact path over the longest glob prefix; deny wins). check uses it to
// catch at merge time the 403 a pod would hit at run time.
func Grants(p config.Policy, kvMounts []string, apiPath, capability string) bool {
	rules := parse(Render(p, kvMounts))
	best, bestLen, exact := "", -1, false
	for path := range rules {
		switch {
		case path == apiPath:
			best, exact = path, true
		case !exact && strings.HasSuffix(path, "*") && strings.HasPrefix(apiPath, strings.TrimSuffix(path, "*")) && len(path) > bestLen:
			best, bestLen = path, len(path)
		case !exact && strings.Contains(path, "+") && segmentMatch(path, apiPath) && len(path) > bestLen:
			best, bestLen = path, len(path)
		}
	}
	if best == "" {
		return false
	}
	caps := rules[best]
	return !slices.Contains(caps, "deny") && slices.Contains(caps, capability)
}

func segmentMatch(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	for i, p := range ps {
		if p == "*" && i == len(ps)-1 {
			return true
		}
		if i >= len(xs) || (p != "+" && p != xs[i] && !(strings.HasSuffix(p, "*") && i == len(ps)-1 && strings.HasPrefix(xs[i], strings.TrimSuffix(p, "*")))) {
			return false
		}
	}
	return len(ps) == len(xs)
}

// parse reads back what Render wrote (it is not a general HCL parser).
func parse(hcl string) map[string][]string {
	out := map[string][]string{}
	var cur string
	for _, line := range strings.Split(hcl, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "path "):
			cur = strings.Trim(strings.TrimSuffix(strings.TrimPrefix(line, "path "), " {"), `"`)
		case strings.HasPrefix(line, "capabilities = ["):
			inner := strings.TrimSuffix(strings.TrimPrefix(line, "capabilities = ["), "]")
			for _, c := range strings.Split(inner, ",") {
				out[cur] = append(out[cur], strings.Trim(strings.TrimSpace(c), `"`))
			}
		}
	}
	return out
}
