package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vaultctl/vaultctl/config"
)

// ACL is the merged set of rules a token carries, evaluated the way Vault evaluates them: one
// rule decides a request — the exact path if there is one, else the highest-priority matching
// glob — and a deny in that rule refuses. Rules with the same path in several policies merge.
type ACL struct {
	exact map[string]map[string]bool
	globs map[string]map[string]bool
}

// NewACL returns an empty ACL.
func NewACL() *ACL {
	return &ACL{exact: map[string]map[string]bool{}, globs: map[string]map[string]bool{}}
}

// AddPolicy merges the rules vaultctl writes for p (see Render).
func (a *ACL) AddPolicy(p config.Policy, kvMounts []string) {
	for path, caps := range apiRules(p, kvMounts) {
		a.Add(path, caps)
	}
}

// Add merges one rule.
func (a *ACL) Add(pattern string, caps []string) {
	set := a.exact
	if isGlob(pattern) {
		set = a.globs
	}
	if set[pattern] == nil {
		set[pattern] = map[string]bool{}
	}
	for _, c := range caps {
		set[pattern][strings.ToLower(c)] = true
	}
}

// Allows reports whether capability is granted on the API path p and, when not, why.
func (a *ACL) Allows(p, capability string) (bool, string) {
	decider, caps := p, a.exact[p]
	if caps == nil {
		decider = ""
		for g, c := range a.globs {
			if globMatch(g, p) && (decider == "" || higherPriority(g, decider)) {
				decider, caps = g, c
			}
		}
	}
	switch {
	case caps == nil:
		return false, "no policy rule covers it"
	case caps["deny"]:
		return false, fmt.Sprintf("the rule that decides is %q, which denies it", decider)
	case caps[capability]:
		return true, ""
	}
	list := make([]string, 0, len(caps))
	for c := range caps {
		list = append(list, c)
	}
	sort.Strings(list)
	return false, fmt.Sprintf("the rule that decides is %q, which grants only %s", decider, strings.Join(list, ", "))
}

func isGlob(p string) bool { return strings.HasSuffix(p, "*") || hasPlusSegment(p) }

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
