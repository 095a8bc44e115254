package config

import (
	"strings"
	"testing"
)

func TestMigrationDefaults(t *testing.T) {
	l, err := Parse("config.yaml", []byte(base), LoadOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	m := l.Migration
	if m.KVPath != "{mount}/{namespace}/{secret}" || m.Defaults.TTL.String() != "1h" || m.Defaults.MaxTTL.String() != "4h" {
		t.Fatalf("migration defaults: %+v", m)
	}
	if got := ExpandKVPath(m.KVPath, l.MigrationKVMount(), "team-a", "db"); got != "secret/team-a/db" {
		t.Fatalf("default template expands to %q", got)
	}
}

// Every mistake in migration.kvPath or migration.defaults names the key and its line.
func TestMigrationKeysValidated(t *testing.T) {
	withKV := strings.Replace(base, "policies:\n", "kv: [{path: secret}, {path: apps/kv}]\npolicies:\n", 1)
	cases := []struct {
		name, migration string
		want            string // "" means valid
	}{
		{"default spelled out", `  kvPath: "{mount}/{namespace}/{secret}"`, ""},
		{"a fixed prefix on the first mount", `  kvPath: "{mount}/k8s/{namespace}/{secret}"`, ""},
		{"a listed mount with a slash", `  kvPath: "apps/kv/{namespace}/{secret}"`, ""},
		{"placeholders inside a segment", `  kvPath: "{mount}/{namespace}-apps/{secret}"`, ""},
		{"no {secret}", `  kvPath: "{mount}/{namespace}"`,
			"config.yaml:28: migration.kvPath: must contain {secret}, or every Secret of a namespace would be written to one KV entry; e.g. {mount}/{namespace}/{secret}"},
		{"misspelt placeholder", `  kvPath: "{mount}/{ns}/{secret}"`,
			"config.yaml:28: migration.kvPath: unknown placeholder {ns}; use {mount}, {namespace} and {secret}"},
		{"unclosed brace", `  kvPath: "{mount}/{namespace/{secret}"`,
			`config.yaml:28: migration.kvPath: has a '{' that is never closed in "{mount}/{namespace/{secret}"; placeholders are {mount}, {namespace} and {secret}`},
		{"stray brace", `  kvPath: "{mount}/namespace}/{secret}"`,
			`config.yaml:28: migration.kvPath: has a '}' without its '{' in "{mount}/namespace}/{secret}"; placeholders are {mount}, {namespace} and {secret}`},
		{"never closed", `  kvPath: "{mount}/{secret}/{namespace"`,
			`config.yaml:28: migration.kvPath: has a '{' that is never closed in "{mount}/{secret}/{namespace"; placeholders are {mount}, {namespace} and {secret}`},
		{"not on a kv mount", `  kvPath: "kv/{namespace}/{secret}"`,
			`config.yaml:28: migration.kvPath: "kv/{namespace}/{secret}" is on no kv mount (kv lists secret, apps/kv): start it with {mount} or a listed mount`},
		{"mount not first", `  kvPath: "secret/{mount}/{secret}"`,
			`config.yaml:28: migration.kvPath: {mount} must be the whole first segment (it stands for the mount), got "secret/{mount}/{secret}"`},
		{"leading slash", `  kvPath: "/{mount}/{secret}"`,
			`config.yaml:28: migration.kvPath: must be a logical path without leading, trailing or doubled '/', got "/{mount}/{secret}"`},
		{"data/ of the API path", `  kvPath: "{mount}/data/{namespace}/{secret}"`,
			`config.yaml:28: migration.kvPath: is a logical path as the vault CLI writes it: leave out data/ (vaultctl adds KV v2's data/ itself), got "{mount}/data/{namespace}/{secret}"`},
		{"spaces", `  kvPath: "{mount}/my apps/{secret}"`,
			`config.yaml:28: migration.kvPath: may hold only letters, digits, '-', '_', '.' and '/' besides placeholders, got "{mount}/my apps/{secret}"`},
		{"dot-dot", `  kvPath: "{mount}/../{secret}"`,
			`config.yaml:28: migration.kvPath: must not hold ".." segments, got "{mount}/../{secret}"`},
		{"maxTTL below ttl", "  defaults:\n    ttl: 2h\n    maxTTL: 1h",
			"config.yaml:30: migration.defaults.maxTTL: must be at least ttl (2h), got 1h"},
		{"maxTTL below the default ttl", "  defaults:\n    maxTTL: 30m",
			"config.yaml:29: migration.defaults.maxTTL: must be at least ttl (1h), got 30m"},
		{"bad duration", "  defaults:\n    ttl: soon",
			`config.yaml:29: migration.defaults.ttl: must be a duration such as 30m or 1h, got "soon"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := withKV + "migration:\n" + tc.migration + "\n"
			_, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestMigrationKVPathWithoutNamespaceWarns(t *testing.T) {
	l, err := Parse("config.yaml", []byte(base+"migration:\n  kvPath: \"{mount}/apps/{secret}\"\n"), LoadOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Warnings) != 1 || !strings.HasPrefix(l.Warnings[0].String(), "config.yaml:27: migration.kvPath: has no {namespace}: Secrets of the same name in two namespaces share one KV entry") {
		t.Fatalf("warnings: %v", l.Warnings)
	}
}

func TestMigrationKVPathFromEnvironment(t *testing.T) {
	_, err := Parse("config.yaml", []byte(base), LoadOptions{Environ: []string{"VAULTCTL_MIGRATION_KVPATH={mount}/{namespace}"}})
	if err == nil || !strings.HasPrefix(err.Error(), "env VAULTCTL_MIGRATION_KVPATH: migration.kvPath: must contain {secret}") {
		t.Fatalf("got %v", err)
	}
}
