package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Placeholders of migration.kvPath.
const (
	KVPathMount     = "{mount}"
	KVPathNamespace = "{namespace}"
	KVPathSecret    = "{secret}"
)

// kvPathLiteral is what a template may hold between placeholders: the characters of KV paths
// and of Kubernetes names, so an expanded path never needs escaping.
var kvPathLiteral = regexp.MustCompile(`^[A-Za-z0-9_./-]*$`)

// MigrationKVMount is the mount {mount} stands for in migration.kvPath: the first kv mount.
func (c *Config) MigrationKVMount() string {
	if len(c.KV) == 0 {
		return ""
	}
	return c.KV[0].Path
}

// ExpandKVPath fills a migration.kvPath template in. The result is a logical path with its mount,
// as the vault CLI writes it ("secret/team-a/db"), without KV v2's data/.
func ExpandKVPath(template, mount, namespace, secret string) string {
	return strings.NewReplacer(KVPathMount, mount, KVPathNamespace, namespace, KVPathSecret, secret).Replace(template)
}

// kvPathTemplateProblem says what is wrong with a migration.kvPath template, or "" when it
// works; warning is for one that works but files namespaces' Secrets on top of each other.
func kvPathTemplateProblem(template string, kvMounts []string) (problem, warning string) {
	const example = "e.g. {mount}/{namespace}/{secret}"
	if strings.TrimSpace(template) == "" {
		return "is empty; give a template, " + example, ""
	}
	// Walk the placeholders so that a misspelt one ({secrets}, {ns}) is named.
	rest, literal := template, strings.Builder{}
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			literal.WriteString(rest)
			break
		}
		if rest[open] == '}' {
			return fmt.Sprintf("has a '}' without its '{' in %q; placeholders are %s, %s and %s", template, KVPathMount, KVPathNamespace, KVPathSecret), ""
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 || strings.IndexByte(rest[open+1:open+end], '{') >= 0 {
			return fmt.Sprintf("has a '{' that is never closed in %q; placeholders are %s, %s and %s", template, KVPathMount, KVPathNamespace, KVPathSecret), ""
		}
		ph := rest[open : open+end+1]
		switch ph {
		case KVPathMount, KVPathNamespace, KVPathSecret:
		default:
			return fmt.Sprintf("unknown placeholder %s; use %s, %s and %s", ph, KVPathMount, KVPathNamespace, KVPathSecret), ""
		}
		literal.WriteString(rest[:open])
		literal.WriteString("x") // stands for the placeholder's value in the checks below
		rest = rest[open+end+1:]
	}
	if !kvPathLiteral.MatchString(literal.String()) {
		return fmt.Sprintf("may hold only letters, digits, '-', '_', '.' and '/' besides placeholders, got %q", template), ""
	}
	if !strings.Contains(template, KVPathSecret) {
		return "must contain " + KVPathSecret + ", or every Secret of a namespace would be written to one KV entry; " + example, ""
	}
	if strings.HasPrefix(template, "/") || strings.HasSuffix(template, "/") || strings.Contains(template, "//") {
		return fmt.Sprintf("must be a logical path without leading, trailing or doubled '/', got %q", template), ""
	}
	segments := strings.Split(template, "/")
	for i, s := range segments {
		if strings.Contains(s, KVPathMount) && (i != 0 || s != KVPathMount) {
			return fmt.Sprintf("%s must be the whole first segment (it stands for the mount), got %q", KVPathMount, template), ""
		}
		if s == "." || s == ".." {
			return fmt.Sprintf("must not hold %q segments, got %q", s, template), ""
		}
	}
	mount := KVPathMount
	if segments[0] != KVPathMount {
		sample := ExpandKVPath(template, "", "ns", "name")
		mount = KVMountOf(kvMounts, sample)
		if mount == "" {
			return fmt.Sprintf("%q is on no kv mount (kv lists %s): start it with %s or a listed mount", template, strings.Join(kvMounts, ", "), KVPathMount), ""
		}
	}
	// The logical path is what the vault CLI takes; data/ is the API's, added by vaultctl.
	after := strings.TrimPrefix(strings.TrimPrefix(template, mount), "/")
	if first, _, _ := strings.Cut(after, "/"); first == "data" || first == "metadata" {
		return fmt.Sprintf("is a logical path as the vault CLI writes it: leave out %s/ (vaultctl adds KV v2's data/ itself), got %q", first, template), ""
	}
	if !strings.Contains(template, KVPathNamespace) {
		return "", "has no " + KVPathNamespace + ": Secrets of the same name in two namespaces share one KV entry, and the second migration is refused as a conflict"
	}
	return "", ""
}
