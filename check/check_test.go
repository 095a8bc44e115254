package check

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vaultctl/vaultctl/config"
)

// Fixtures mark each expected finding with a "# want: RULE" comment on the line it must be
// reported at; any finding without such a mark, or a mark without a finding, fails the test.
var wantRE = regexp.MustCompile(`#\s*want:\s*([a-z-]+(?:\s*,\s*[a-z-]+)*)`)

type findingKey struct {
	file string
	line int
	rule string
}

func wantsIn(t *testing.T, paths ...string) map[findingKey]int {
	t.Helper()
	want := map[findingKey]int{}
	for _, root := range paths {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if d.IsDir() {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			for line := 1; sc.Scan(); line++ {
				if m := wantRE.FindStringSubmatch(sc.Text()); m != nil {
					for _, r := range strings.Split(m[1], ",") {
						want[findingKey{p, line, strings.TrimSpace(r)}]++
					}
				}
			}
			return nil
		})
	}
	return want
}

func got(rep *Report) map[findingKey]int {
	m := map[findingKey]int{}
	for _, f := range rep.Findings {
		m[findingKey{f.File, f.Line, f.Rule}]++
	}
	return m
}

func diffFindings(t *testing.T, rep *Report, want map[findingKey]int) {
	t.Helper()
	g := got(rep)
	var problems []string
	for k, n := range want {
		if g[k] != n {
			problems = append(problems, fmt.Sprintf("missing: %s:%d %s (want %d, got %d)", k.file, k.line, k.rule, n, g[k]))
		}
	}
	for _, f := range rep.Findings {
		k := findingKey{f.File, f.Line, f.Rule}
		if want[k] == 0 {
			problems = append(problems, fmt.Sprintf("unexpected: %s:%d %s: %s", f.File, f.Line, f.Rule, f.Message))
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

func run(t *testing.T, opts Options, paths ...string) *Report {
	t.Helper()
	rep, err := Run(context.Background(), opts, paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func boolp(b bool) *bool { return &b }

// policyConfig is the config rules/policy.yaml is checked against.
func policyConfig() *config.Config {
	return &config.Config{
		KV: []config.KVMount{{Path: "secret"}},
		Policies: []config.Policy{
			{Name: "web-db", Rules: []config.PolicyRule{{Path: "secret/production/web/db", Capabilities: []string{"read"}}}},
			{Name: "db-dynamic", Rules: []config.PolicyRule{{Path: "database/creds/web", Capabilities: []string{"read"}}}},
			{Name: "broad", Rules: []config.PolicyRule{{Path: "secret/production/*", Capabilities: []string{"read", "list"}}}},
			{Name: "no-admin", DenyParent: boolp(false), Rules: []config.PolicyRule{{Path: "secret/production/admin", Capabilities: []string{"deny"}}}},
			{Name: "list-only", DenyParent: boolp(false), Rules: []config.PolicyRule{{Path: "secret/production/listed", Capabilities: []string{"list"}}}},
			{Name: "reports", Rules: []config.PolicyRule{{Path: "secret/production/reports/+/q1", Capabilities: []string{"read"}}}},
		},
		Roles: []config.Role{
			{Name: "web", ServiceAccounts: []string{"web"}, Namespaces: []string{"production"}, Policies: []string{"web-db", "db-dynamic"}},
			{Name: "broad", ServiceAccounts: []string{"app-*"}, Namespaces: []string{"production"}, Policies: []string{"broad", "no-admin"}},
			{Name: "mixed", ServiceAccounts: []string{"mixed"}, Namespaces: []string{"prod*"}, Policies: []string{"broad", "web-db"}},
			{Name: "lister", ServiceAccounts: []string{"lister"}, Namespaces: []string{"production"}, Policies: []string{"list-only"}},
			{Name: "reports", ServiceAccounts: []string{"app-reports"}, Namespaces: []string{"production"}, Policies: []string{"reports", "default"}},
		},
	}
}

// TestFixtures runs each fixture with the options it is written for and compares every finding
// with the file's "# want:" marks.
func TestFixtures(t *testing.T) {
	cases := []struct {
		name  string
		paths []string
		opts  Options
	}{
		{"lookalikes, comments and empty documents", []string{"testdata/traps/lookalikes.yaml"}, Options{}},
		{"List holding a Secret", []string{"testdata/traps/list.yaml"}, Options{}},
		{"annotations on the Deployment's own metadata", []string{"testdata/traps/misplaced.yaml"}, Options{}},
		{"agent-inject read as a boolean", []string{"testdata/traps/inject-values.yaml"}, Options{}},
		{"anchors, aliases and merge keys", []string{"testdata/traps/anchors.yaml"}, Options{}},
		{"jobs and cronjobs", []string{"testdata/rules/jobs.yaml"}, Options{}},
		{"secret references", []string{"testdata/rules/secret-reference.yaml"},
			Options{Namespaces: []string{"production"}, AllowSecretTypes: []string{"kubernetes.io/tls"}}},
		{"kv paths", []string{"testdata/rules/kv-path.yaml"}, Options{KVMounts: []string{"secret", "kv-team/"}}},
		{"unknown annotations", []string{"testdata/rules/unknown.yaml"}, Options{}},
		{"namespace globs and the default namespace", []string{"testdata/rules/namespaces.yaml"},
			Options{Namespaces: []string{"production", "team-*"}, DefaultNamespace: "production", AllowSecretTypes: []string{"kubernetes.io/tls"}}},
		{"duplicate keys", []string{"testdata/rules/duplicate.yaml"}, Options{}},
		{"policy mismatch", []string{"testdata/rules/policy.yaml"}, Options{Config: policyConfig()}},
		{"Vault's own components", []string{"testdata/rules/vault-own.yaml"}, Options{}},
		{"unrendered templates", []string{"testdata/templates/unrendered.yaml"}, Options{Namespaces: []string{"production"}}},
		{"Helm chart templates", []string{"testdata/templates/chart"}, Options{Namespaces: []string{"production"}}},
		{"kustomization secretGenerator", []string{"testdata/templates/kustomize"},
			Options{Namespaces: []string{"production"}, AllowSecretTypes: []string{"kubernetes.io/tls"}}},
		{"directory walk: .yml, subdirectories, excluded chart", []string{"testdata/tree"},
			Options{Exclude: []string{"charts"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := run(t, c.opts, c.paths...)
			want := wantsIn(t, c.paths...)
			if c.paths[0] == "testdata/tree" {
				want[findingKey{"testdata/tree/apps/nested/list.json", 4, RuleRawSecret}]++ // JSON has no comments
			}
			diffFindings(t, rep, want)
		})
	}
}

// Cases whose expected line cannot carry a comment: JSON, syntax errors.
func TestFindingsWithoutMarks(t *testing.T) {
	cases := []struct {
		name  string
		paths []string
		opts  Options
		want  []findingKey
	}{
		{"JSON Secret", []string{"testdata/traps/secret.json"}, Options{},
			[]findingKey{{"testdata/traps/secret.json", 3, RuleRawSecret}}},
		{"JSON List in a subdirectory", []string{"testdata/tree/apps/nested/list.json"}, Options{},
			[]findingKey{{"testdata/tree/apps/nested/list.json", 4, RuleRawSecret}}},
		{"syntax error after a valid document", []string{"testdata/rules/broken.yaml"}, Options{},
			[]findingKey{{"testdata/rules/broken.yaml", 2, RuleRawSecret}, {"testdata/rules/broken.yaml", 10, RuleParseError}}},
		{"Helm template source is not YAML", []string{"testdata/tree/charts"}, Options{},
			[]findingKey{{"testdata/tree/charts/web/templates/secret.yaml", 3, RuleParseError},
				{"testdata/tree/charts/web/templates/secret.yaml", 2, RuleRawSecret}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := run(t, c.opts, c.paths...)
			want := map[findingKey]int{}
			for _, k := range c.want {
				want[k]++
			}
			diffFindings(t, rep, want)
		})
	}
}

func TestEveryRuleIsCoveredByAFixture(t *testing.T) {
	all := wantsIn(t, "testdata")
	seen := map[string]bool{}
	for k := range all {
		seen[k.rule] = true
	}
	for _, r := range Rules() {
		if !seen[r.ID] {
			t.Errorf("no fixture marks a finding of rule %s", r.ID)
		}
	}
	for rule := range seen {
		if _, ok := LookupRule(rule); !ok {
			t.Errorf("fixture marks unknown rule %q", rule)
		}
	}
}

func TestFindingFields(t *testing.T) {
	rep := run(t, Options{}, "testdata/traps/misplaced.yaml")
	var mi *Finding
	for i := range rep.Findings {
		if rep.Findings[i].Rule == RuleMissingInjection {
			mi = &rep.Findings[i]
		}
	}
	if mi == nil {
		t.Fatal("no missing-injection finding")
	}
	if mi.Kind != "Deployment" || mi.Namespace != "production" || mi.Name != "misplaced" || mi.Column == 0 {
		t.Errorf("finding identifies %s %s/%s col %d", mi.Kind, mi.Namespace, mi.Name, mi.Column)
	}
	// The message must send the user to the line where the annotation sits now.
	if !strings.Contains(mi.Message, "own metadata at line 8") || mi.Fix == "" || mi.Severity != SeverityError {
		t.Errorf("message %q fix %q severity %s", mi.Message, mi.Fix, mi.Severity)
	}
	rep = run(t, Options{}, "testdata/rules/unknown.yaml")
	var fixes []string
	for _, f := range rep.Findings {
		fixes = append(fixes, f.Fix)
	}
	joined := strings.Join(fixes, "\n")
	for _, s := range []string{"vault.hashicorp.com/agent-inject-secret-db", "vault.hashicorp.com/agent-limits-mem"} {
		if !strings.Contains(joined, "did you mean "+s+"?") {
			t.Errorf("no suggestion %s in fixes:\n%s", s, joined)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		path string
		code int
	}{
		{"testdata/traps/lookalikes.yaml", 1},
		{"testdata/rules/broken.yaml", 2},
		{"testdata/rules/duplicate.yaml", 2},
	} {
		if got := run(t, Options{}, c.path).ExitCode(); got != c.code {
			t.Errorf("%s: exit code %d, want %d", c.path, got, c.code)
		}
	}
	clean := filepath.Join(t.TempDir(), "clean.yaml")
	os.WriteFile(clean, []byte(benchManifest(1)), 0o644)
	if rep := run(t, Options{}, clean); rep.ExitCode() != 0 || len(rep.Findings) != 0 || rep.Objects != 2 {
		t.Errorf("clean manifest: exit %d, %d findings, %d objects", rep.ExitCode(), len(rep.Findings), rep.Objects)
	}
}

func TestStdin(t *testing.T) {
	in := strings.NewReader("apiVersion: v1\nkind: Secret\nmetadata:\n  name: piped\n")
	rep, err := Run(context.Background(), Options{}, []string{"-"}, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].File != StdinName || rep.Findings[0].Line != 2 ||
		rep.Findings[0].Namespace != "default" || rep.Files != 1 {
		t.Fatalf("findings %+v", rep.Findings)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		opts  Options
		paths []string
	}{
		{"missing path", Options{}, []string{"testdata/does-not-exist"}},
		{"no paths", Options{}, nil},
		{"stdin twice", Options{}, []string{"-", "-"}},
		{"bad namespace glob", Options{Namespaces: []string{"prod["}}, []string{"testdata/traps"}},
		{"bad exclude glob", Options{Exclude: []string{"a/[b"}}, []string{"testdata/traps"}},
	} {
		_, err := Run(context.Background(), c.opts, c.paths, strings.NewReader(""))
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%s: error %v, want a UsageError", c.name, err)
		}
	}
}

func TestExclude(t *testing.T) {
	for _, c := range []struct {
		globs []string
		files int
	}{
		{nil, 5},
		{[]string{"charts"}, 3},
		{[]string{"charts/**"}, 3},
		{[]string{"testdata/tree/charts"}, 3},
		{[]string{"./charts/"}, 3},
		{[]string{"**/templates"}, 4},
		{[]string{"*.json"}, 4},
		{[]string{"nested"}, 3},
		{[]string{"apps/nested/*.yaml", "charts"}, 2},
	} {
		rep := run(t, Options{Exclude: c.globs}, "testdata/tree")
		if rep.Files != c.files {
			t.Errorf("--exclude %v: %d files checked, want %d", c.globs, rep.Files, c.files)
		}
	}
}

// Output must not depend on worker scheduling.
func TestDeterministic(t *testing.T) {
	var first []Finding
	for _, workers := range []int{1, 2, 8} {
		rep := run(t, Options{Workers: workers}, "testdata")
		if first == nil {
			first = rep.Findings
			continue
		}
		if fmt.Sprint(rep.Findings) != fmt.Sprint(first) {
			t.Fatalf("workers=%d gave a different report", workers)
		}
	}
	for i := 1; i < len(first); i++ {
		a, b := first[i-1], first[i]
		if a.File > b.File || (a.File == b.File && a.Line > b.Line) {
			t.Fatalf("findings not sorted by file and line: %s:%d before %s:%d", a.File, a.Line, b.File, b.Line)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := &config.Config{Check: config.Check{
		RequiredNamespaces: []string{"team-*"},
		AllowSecretTypes:   []string{"Opaque"},
	}}
	rep := run(t, Options{Config: cfg}, "testdata/rules/namespaces.yaml")
	// Only team-payments is required, and Opaque is allowed there: nothing to report.
	if len(rep.Findings) != 0 {
		t.Errorf("config defaults ignored: %v", rep.Findings)
	}
	// A --namespace flag replaces the config's namespaces.
	rep = run(t, Options{Config: cfg, Namespaces: []string{"staging"}, AllowSecretTypes: []string{"x"}}, "testdata/rules/namespaces.yaml")
	if len(rep.Findings) != 1 || rep.Findings[0].Name != "staging-app" {
		t.Errorf("--namespace staging: %v", rep.Findings)
	}
}

func TestExplain(t *testing.T) {
	for _, r := range Rules() {
		text, err := Explain(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, r.ID) || !strings.Contains(text, "What it checks") || !strings.Contains(text, "How to fix") {
			t.Errorf("explain %s:\n%s", r.ID, text)
		}
	}
	if _, err := Explain("no-such-rule"); err == nil || !strings.Contains(err.Error(), "raw-secret") {
		t.Errorf("unknown rule error %v should list the rules", err)
	}
	if text, _ := Explain(RuleJobSidecar); !strings.Contains(text, "agent-pre-populate-only") {
		t.Errorf("job-sidecar explanation does not name the fix:\n%s", text)
	}
}

// Aliases can make a small file describe billions of objects; the check must stop, not hang.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: List\nx0: &l0 {apiVersion: v1, kind: Secret, metadata: {name: s}}\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "x%d: &l%d {kind: List, items: [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("items: [*l9]\n")
	f := filepath.Join(t.TempDir(), "laughs.yaml")
	os.WriteFile(f, []byte(b.String()), 0o644)
	rep := run(t, Options{}, f)
	if rep.ExitCode() != 2 || len(rep.Findings) != 1 || !strings.Contains(rep.Findings[0].Message, "aliases") {
		t.Errorf("alias bomb: exit %d, %d findings, first %v", rep.ExitCode(), len(rep.Findings), rep.Findings[:min(1, len(rep.Findings))])
	}
}

// A finding's fix is one whole line: the parse-error fix used to be the first line of the rule's
// paragraph, cut off at "exclude it and check".
func TestFixesAreWholeSentences(t *testing.T) {
	rep := run(t, Options{Config: policyConfig(), KVMounts: []string{"kv-team"}}, "testdata")
	for _, f := range rep.Findings {
		fix := strings.TrimSpace(f.Fix)
		bad := fix == "" || strings.Contains(fix, "\n") || strings.HasSuffix(fix, ":") || strings.HasSuffix(fix, ",")
		for _, w := range []string{"and", "or", "the", "check", "to", "a"} {
			bad = bad || strings.HasSuffix(fix, " "+w)
		}
		if bad {
			t.Errorf("%s:%d %s: fix is not a whole line: %q", f.File, f.Line, f.Rule, f.Fix)
		}
	}
	rep = run(t, Options{}, "testdata/rules/broken.yaml")
	const want = "fix the syntax at the reported line; if the file is a Helm or Kustomize source, check the rendered output instead (helm template . | vaultctl check -) and --exclude the sources"
	for _, f := range rep.Findings {
		if f.Rule == RuleParseError && f.Fix != want {
			t.Errorf("parse-error fix %q, want %q", f.Fix, want)
		}
	}
}

// An unrendered name: {{ .Values.name }} used to read as an empty name ("Secret: ", with the
// suggestion secret/default/); it is reported as a template, pointing at the rendered output.
func TestUnrenderedTemplate(t *testing.T) {
	rep := run(t, Options{Namespaces: []string{"production"}}, "testdata/templates/unrendered.yaml")
	var buf bytes.Buffer
	WriteText(&buf, rep)
	out := buf.String()
	for _, want := range []string{
		"testdata/templates/unrendered.yaml:5:1: error raw-secret: Secret production/{{ .Values.name }}: unrendered template (metadata.name is {{ .Values.name }}): rendered, this is a Secret of type Opaque, whose values belong in Vault",
		"    fix: check the rendered output (helm template . | vaultctl check -), and move",
		"Secret {{ .Release.Namespace }}/{{ .Release.Name }}-db: unrendered template (metadata.name is {{ .Release.Name }}-db, metadata.namespace is {{ .Release.Namespace }})",
		"; then check the rendered output (helm template . | vaultctl check -)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret/default/") || strings.Contains(out, "Secret: ") {
		t.Errorf("template reported as an empty name:\n%s", out)
	}
}

// With no --namespace every namespace is required, and Vault's own server and injector used to be
// flagged for missing injection (and the server for mounting its TLS Secret). vaultctl's chart,
// as it renders, must pass.
func TestVaultsOwnChartPasses(t *testing.T) {
	golden, _ := filepath.Glob("../charts/testdata/*.golden.yaml")
	if len(golden) == 0 {
		t.Fatal("no rendered charts in ../charts/testdata")
	}
	for _, g := range golden {
		rep := run(t, Options{}, g)
		for _, f := range rep.Findings {
			t.Errorf("%s:%d: %s %s/%s: %s: %s", g, f.Line, f.Kind, f.Namespace, f.Name, f.Rule, f.Message)
		}
		if rep.Objects == 0 {
			t.Errorf("%s: no objects checked", g)
		}
	}
}

// A kustomization's secretGenerator and a chart's templates/ used to pass silently although
// both produce raw Secrets: they are reported where they stand, with the command that renders
// them.
func TestTemplateSourcesPointAtRenderedOutput(t *testing.T) {
	for _, c := range []struct {
		path string
		want []string
	}{
		{"testdata/templates/kustomize", []string{
			"testdata/templates/kustomize/kustomization.yaml:11:5: error raw-secret: Secret production/db: secretGenerator db: when the kustomization is built, this is a Secret of type Opaque, whose values belong in Vault",
			"    fix: check the rendered output (kustomize build testdata/templates/kustomize | vaultctl check -), and move the values to Vault",
		}},
		{"testdata/templates/chart", []string{
			"testdata/templates/chart/templates/secret.yaml:3:1: error raw-secret: Secret production/web-db: template of Helm chart testdata/templates/chart: rendered, this is a Secret of type Opaque, whose values belong in Vault",
			"testdata/templates/chart/templates/optional-secret.yaml:3:1: error raw-secret: Secret {{ .Release.Namespace }}/{{ include \"web.fullname\" . }}-db: template of Helm chart testdata/templates/chart (not YAML until rendered): rendered, this is a Secret of type Opaque",
			"    fix: check the rendered output (helm template testdata/templates/chart | vaultctl check -), and move",
			"    fix: check the rendered output instead (helm template testdata/templates/chart | vaultctl check -) and --exclude the template sources",
			"; then check the rendered output (helm template testdata/templates/chart | vaultctl check -)",
		}},
	} {
		rep := run(t, Options{Namespaces: []string{"production"}, AllowSecretTypes: []string{"kubernetes.io/tls"}}, c.path)
		var buf bytes.Buffer
		WriteText(&buf, rep)
		for _, w := range c.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", c.path, w, buf.String())
			}
		}
	}
}
