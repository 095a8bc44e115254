package lifecycle

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/auditlog"
	"github.com/vaultctl/vaultctl/check"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/policy"
)

// liveAsApplied is what apply writes for cfg: the rendered policies and the role data, with
// numbers as Vault returns them.
func liveAsApplied(cfg *config.Config) ([]LivePolicy, []LiveRole) {
	var mounts []string
	for _, m := range cfg.KV {
		mounts = append(mounts, m.Path)
	}
	var ps []LivePolicy
	for _, p := range cfg.Policies {
		ps = append(ps, LivePolicy{Name: p.Name, HCL: policy.Render(p, mounts), Found: true})
	}
	var rs []LiveRole
	for _, r := range cfg.Roles {
		d := policy.RoleData(r)
		d["token_max_ttl"] = json.Number(itoa(int64(r.MaxTTL.Seconds())))
		rs = append(rs, LiveRole{Name: r.Name, Data: d})
	}
	return ps, rs
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func exampleConfig(t *testing.T) *config.Loaded {
	t.Helper()
	l, err := config.Load(config.LoadOptions{Path: "../config.example.yaml", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func rules(r *check.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Rule+" "+f.Name)
	}
	slices.Sort(out)
	return out
}

func TestPolicyAuditPassesTheExampleConfig(t *testing.T) {
	l := exampleConfig(t)
	ps, rs := liveAsApplied(l.Config)
	rep, err := PolicyAudit(PolicyAuditInput{Config: l.Config, Source: l.Source, ConfigFile: "config.example.yaml", AuthPath: "kubernetes", Policies: ps, Roles: rs})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 || rep.Objects != 2 {
		t.Errorf("findings %v in %d objects, want none in 2", rules(rep), rep.Objects)
	}
}

func TestPolicyAuditFlagsBroadPoliciesAndDriftedRoles(t *testing.T) {
	l := exampleConfig(t)
	cfg := l.Config
	no := false
	cfg.Policies = append(cfg.Policies, config.Policy{Name: "broad", DenyParent: &no, Rules: []config.PolicyRule{
		{Path: "secret/*", Capabilities: []string{"read", "list"}},
		{Path: "sys/mounts", Capabilities: []string{"read", "sudo"}},
	}})
	ps, rs := liveAsApplied(cfg)
	rs[0].Data["token_max_ttl"] = json.Number("86400") // someone raised it by hand
	rs[0].Data["bound_service_account_names"] = []any{"*"}
	rep, err := PolicyAudit(PolicyAuditInput{Config: cfg, Source: l.Source, ConfigFile: "config.example.yaml", AuthPath: "kubernetes", Policies: ps, Roles: rs})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"list-grant broad",
		"max-ttl-exceeded webapp-production",
		"no-explicit-deny broad",
		"sudo-grant broad",
		"wildcard-binding webapp-production",
		"wildcard-grant broad", "wildcard-grant broad", // secret/data/* and secret/metadata/*
	}
	if got := rules(rep); !slices.Equal(got, want) {
		t.Errorf("rules =\n%v\nwant\n%v", got, want)
	}
	for _, f := range rep.Findings {
		if f.Name == "webapp-production" && f.Line == 1 {
			t.Errorf("%s is not located at the role in the config", f.Rule)
		}
	}
	var sarif bytes.Buffer
	if err := check.WriteSARIFFor(&sarif, rep, PolicyAuditTool); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Runs []struct {
			Tool    struct{ Driver struct{ Name string } }
			Results []struct{ RuleID string }
		}
	}
	if err := json.Unmarshal(sarif.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if log.Runs[0].Tool.Driver.Name != "vaultctl policies audit" || len(log.Runs[0].Results) != len(want) {
		t.Errorf("SARIF names %q with %d results", log.Runs[0].Tool.Driver.Name, len(log.Runs[0].Results))
	}
}

func TestPolicyAuditWithAnAuditLogFindsWhatNobodyUsed(t *testing.T) {
	l := exampleConfig(t)
	cfg := l.Config
	cfg.Policies = append(cfg.Policies, config.Policy{Name: "forgotten", Rules: []config.PolicyRule{{Path: "secret/old/thing", Capabilities: []string{"read"}}}})
	ps, rs := liveAsApplied(cfg)
	log := filepath.Join(t.TempDir(), "audit.log")
	lines := []string{
		// app-db-readonly used by a token from webapp-production; the role's login succeeded
		`{"time":"2026-11-20T10:00:00Z","type":"request","auth":{"policies":["app-db-readonly","default"],"metadata":{"role":"webapp-production"}},"request":{"operation":"read","path":"secret/data/production/db-credentials"}}`,
		// forgotten used, but before the window
		`{"time":"2026-01-02T10:00:00Z","type":"request","auth":{"policies":["forgotten"]},"request":{"operation":"read","path":"secret/data/old/thing"}}`,
	}
	if err := os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	since := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	u, err := auditlog.PolicyUsage(t.Context(), since, time.Time{}, auditlog.Input{Name: log, R: f})
	if err != nil {
		t.Fatal(err)
	}
	if u.Stats.Entries != 1 || u.Stats.OutOfRange != 1 {
		t.Errorf("entries %d, out of range %d", u.Stats.Entries, u.Stats.OutOfRange)
	}
	rep, err := PolicyAudit(PolicyAuditInput{Config: cfg, Source: l.Source, ConfigFile: "config.example.yaml", AuthPath: "kubernetes", Policies: ps, Roles: rs, Usage: u, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if got := rules(rep); !slices.Equal(got, []string{"unused-policy forgotten"}) {
		t.Errorf("rules = %v", got)
	}
}

func TestPolicyAuditReportsWhatVaultLacks(t *testing.T) {
	l := exampleConfig(t)
	rep, err := PolicyAudit(PolicyAuditInput{Config: l.Config, ConfigFile: "x.yaml", AuthPath: "kubernetes",
		Policies: []LivePolicy{{Name: "app-db-readonly"}}, Roles: []LiveRole{{Name: "webapp-production"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := rules(rep); !slices.Equal(got, []string{"not-in-vault app-db-readonly", "not-in-vault webapp-production"}) {
		t.Errorf("rules = %v", got)
	}
}
