package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vaultctl/vaultctl/check"
)

type policyAuditJSON struct {
	OK       bool            `json:"ok"`
	Findings []check.Finding `json:"findings"`
	Objects  int             `json:"objects"`
}

func policyAudit(t *testing.T, args ...string) (policyAuditJSON, cliResult) {
	t.Helper()
	r := vaultctl(t, append([]string{"policies", "audit", "-o", "json"}, args...)...)
	var doc policyAuditJSON
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
		t.Fatalf("policies audit output is not one JSON document: %v\n%s", err, r)
	}
	return doc, r
}

func findingRules(doc policyAuditJSON) []string {
	var out []string
	for _, f := range doc.Findings {
		out = append(out, f.Rule+" "+f.Name)
	}
	slices.Sort(out)
	return out
}

// TestPolicyAudit reviews a Vault vaultctl installed: the example config's policy and role
// pass; a deliberately broad policy is flagged, in JSON and in a SARIF file that points at it
// in the config; with the audit log, the policy nobody used is reported and the one a real
// Kubernetes login used is not.
func TestPolicyAudit(t *testing.T) {
	t.Parallel()
	const vns = "policyaudit-vault"
	e := newMigrateEstate(t, vns)

	doc, r := policyAudit(t, "-c", e.cfg)
	if !doc.OK || r.Code != 0 || len(doc.Findings) != 0 || doc.Objects != 2 {
		t.Fatalf("the example config's policy and role must pass:\n%s", r)
	}

	b, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	const broad = `
  - name: everything-reader
    denyParent: false
    rules:
      - {path: "secret/*", capabilities: [read, list]}`
	wide := strings.Replace(string(b), "\npolicies:", "\npolicies:"+broad, 1)
	widePath := filepath.Join(filepath.Dir(e.cfg), "wide.yaml")
	if err := os.WriteFile(widePath, []byte(wide), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := vaultctl(t, "apply", "-c", widePath, "--only", "policies", "-o", "json"); !parseRun(t, res).OK {
		t.Fatalf("applying the broad policy:\n%s", res)
	}
	sarif := filepath.Join(t.TempDir(), "policies.sarif")
	doc, r = policyAudit(t, "-c", widePath, "--sarif", sarif)
	want := []string{"list-grant everything-reader", "no-explicit-deny everything-reader", "wildcard-grant everything-reader", "wildcard-grant everything-reader"}
	if doc.OK || r.Code != 1 || !slices.Equal(findingRules(doc), want) {
		t.Fatalf("findings %v, want %v (exit 1):\n%s", findingRules(doc), want, r)
	}
	line := strings.Count(wide[:strings.Index(wide, "- name: everything-reader")], "\n") + 1
	for _, f := range doc.Findings {
		if f.Line != line || f.File != widePath {
			t.Errorf("%s is at %s:%d, want %s:%d (the policy in the config)", f.Rule, f.File, f.Line, widePath, line)
		}
	}
	var log struct {
		Version string
		Runs    []struct {
			Tool    struct{ Driver struct{ Name string } }
			Results []struct {
				RuleID    string
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine int }
					}
				}
			}
		}
	}
	sarifBytes, err := os.ReadFile(sarif)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(sarifBytes, &log); err != nil || log.Version != "2.1.0" || len(log.Runs) != 1 {
		t.Fatalf("SARIF file: %v\n%s", err, sarifBytes)
	}
	if run := log.Runs[0]; run.Tool.Driver.Name != "vaultctl policies audit" || len(run.Results) != len(want) ||
		run.Results[0].Locations[0].PhysicalLocation.Region.StartLine != line ||
		!strings.HasSuffix(run.Results[0].Locations[0].PhysicalLocation.ArtifactLocation.URI, "wide.yaml") {
		t.Errorf("SARIF run: %+v", run)
	}
	text := vaultctl(t, "policies", "audit", "-c", widePath)
	if text.Code != 1 || !strings.Contains(text.Stdout, "wildcard-grant") || !strings.Contains(text.Stdout, "fix: ") {
		t.Errorf("text output:\n%s", text)
	}

	t.Run("unused in the audit log", func(t *testing.T) {
		cs := kube(t)
		ensureNamespace(t, cs, "production")
		ensureServiceAccount(t, cs, "production", "webapp-sa")
		vc := vaultClient(t, e.vc.Addrs[0])
		login, err := vc.Logical().WriteWithContext(context.Background(), "auth/kubernetes/login",
			map[string]any{"role": "webapp-production", "jwt": saToken(t, cs, "production", "webapp-sa")})
		if err != nil || login.Auth == nil {
			t.Fatalf("webapp-sa login: %v", err)
		}
		vc.SetToken(login.Auth.ClientToken)
		// A read the policy allows; whether the secret exists does not matter to the audit.
		_, _ = vc.Logical().Read("secret/data/production/db-credentials")
		_ = vc.Auth().Token().RevokeSelf("")
		audit := filepath.Join(e.auditDir, "audit.log")
		doc, r := policyAudit(t, "-c", widePath, "--audit", audit)
		got := findingRules(doc)
		if !slices.Contains(got, "unused-policy everything-reader") {
			t.Errorf("the broad policy nobody used is not reported: %v\n%s", got, r)
		}
		for _, f := range got {
			if strings.HasSuffix(f, " app-db-readonly") || strings.HasSuffix(f, " webapp-production") {
				t.Errorf("the policy and role the login used are reported: %s", f)
			}
		}
	})
}
