package policy

import (
	"strings"
	"testing"

	"github.com/vaultctl/vaultctl/config"
)

var article = config.Policy{Name: "app-db-readonly", Rules: []config.PolicyRule{
	{Path: "secret/production/db-credentials", Capabilities: []string{"read"}},
	{Path: "secret/production/api-keys", Capabilities: []string{"read"}},
}}

func TestRenderArticlePolicy(t *testing.T) {
	got := Render(article, []string{"secret"})
	want := Header + `
path "secret/data/production/*" {
  capabilities = ["deny"]
}

path "secret/data/production/api-keys" {
  capabilities = ["read"]
}

path "secret/data/production/db-credentials" {
  capabilities = ["read"]
}

path "secret/metadata/production" {
  capabilities = ["deny"]
}

path "secret/metadata/production/*" {
  capabilities = ["deny"]
}
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestGrantsFollowsVaultMatching(t *testing.T) {
	m := []string{"secret"}
	for _, tc := range []struct {
		path, capability string
		want             bool
	}{
		{"secret/data/production/db-credentials", "read", true},
		{"secret/data/production/api-keys", "read", true},
		{"secret/data/production/other", "read", false},
		{"secret/production/db-credentials", "read", false}, // the CLI path is not the API path
		{"secret/data/production/db-credentials", "update", false},
		{"secret/metadata/production/", "list", false},
		{"secret/data/staging/x", "read", false},
	} {
		if got := Grants(article, m, tc.path, tc.capability); got != tc.want {
			t.Errorf("Grants(%s, %s) = %v, want %v", tc.path, tc.capability, got, tc.want)
		}
	}
}

func TestRenderListAndNonKVAndDenyParentOff(t *testing.T) {
	off := false
	p := config.Policy{Name: "x", DenyParent: &off, Rules: []config.PolicyRule{
		{Path: "secret/team/*", Capabilities: []string{"read", "list"}},
		{Path: "database/creds/webapp-role", Capabilities: []string{"read"}},
	}}
	got := Render(p, []string{"secret"})
	for _, want := range []string{`path "secret/data/team/*"`, `path "secret/metadata/team/*" {` + "\n  capabilities = [\"list\"]", `path "database/creds/webapp-role"`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
	if strings.Contains(got, "deny") {
		t.Errorf("denyParent: false must add no deny:\n%s", got)
	}
	if Render(p, []string{"secret"}) != got {
		t.Error("not deterministic")
	}
}
