package config

import (
	"strings"
	"testing"
)

func TestGrantsPath(t *testing.T) {
	for _, tc := range []struct {
		rule, path string
		want       bool
	}{
		{"database/creds/app", "database/creds/app", true},
		{"database/creds/app", "database/creds/app2", false},
		{"database/creds/*", "database/creds/app", true},
		{"database/creds/a*", "database/creds/app", true},
		{"database/creds/b*", "database/creds/app", false},
		{"database/+/app", "database/creds/app", true},
		{"database/+", "database/creds/app", false},
		{"database/*", "database/creds/app", true},
		{"secret/creds/app", "database/creds/app", false},
	} {
		if got := GrantsPath(tc.rule, tc.path); got != tc.want {
			t.Errorf("GrantsPath(%q, %q) = %v, want %v", tc.rule, tc.path, got, tc.want)
		}
	}
}

// A database role whose credentials outlive the token that reads them is warned about (Vault
// revokes them with the token), naming both roles; one within the token's lifetime is not.
func TestDatabaseMaxTTLLongerThanReadingRole(t *testing.T) {
	text := strings.Replace(base, "        capabilities: [read]\n", "        capabilities: [read]\n      - {path: database/creds/r, capabilities: [read]}\n", 1)
	long := strings.Replace(dbWithPasswordEnv("DB_PASSWORD"), "maxTTL: 1h", "maxTTL: 8h", 1)
	l, err := Parse("config.yaml", []byte(strings.Replace(text, "roles:\n", long+"roles:\n", 1)), LoadOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range l.Warnings {
		got = append(got, w.String())
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{
		"databases[0].roles[0].maxTTL: credentials of database/creds/r may live 8h, but the Kubernetes auth role webapp-production that reads them issues tokens with max_ttl 4h",
		"migration.defaults.maxTTL 4h",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("no warning %q; got:\n%s", want, joined)
		}
	}

	l, err = Parse("config.yaml", []byte(strings.Replace(text, "roles:\n", dbWithPasswordEnv("DB_PASSWORD")+"roles:\n", 1)), LoadOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range l.Warnings {
		t.Errorf("a 1h database role read by a 4h token: unexpected warning %s", w)
	}
}

func TestDatabasePoolLimitsMustNotBeNegative(t *testing.T) {
	db := strings.Replace(dbWithPasswordEnv("DB_PASSWORD"), "    roles:", "    maxOpenConnections: -1\n    roles:", 1)
	_, err := Parse("config.yaml", []byte(strings.Replace(base, "roles:\n", db+"roles:\n", 1)), LoadOptions{Environ: []string{}})
	if err == nil || !strings.Contains(err.Error(), "databases[0].maxOpenConnections: must be 0 (Vault's default) or more, got -1") {
		t.Fatalf("want the pool limit refused, got %v", err)
	}
}
