package check

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// sampleReport has findings of every rule (the whole testdata tree, with a config), plus one
// from stdin whose name is not a valid URI as is.
func sampleReport(t *testing.T) *Report {
	t.Helper()
	rep := run(t, Options{Config: policyConfig(), KVMounts: []string{"kv-team"}}, "testdata")
	rep.Findings = append(rep.Findings, Finding{File: StdinName, Line: 3, Column: 1, Kind: "Secret",
		Namespace: "default", Name: "piped & <odd>", Rule: RuleRawSecret, Severity: SeverityError,
		Message: "control \x01 char and \"quotes\"", Fix: "x"})
	rep.ToolVersion = "v0.0.0-test"
	rules := map[string]bool{}
	for _, f := range rep.Findings {
		rules[f.Rule] = true
	}
	if len(rules) != len(Rules()) {
		t.Fatalf("sample report covers %d of %d rules", len(rules), len(Rules()))
	}
	return rep
}

func sarifSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/schema/sarif-2.1.0-subset.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const id = "https://vaultctl.io/schemas/sarif-2.1.0-subset.json"
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func TestSARIFMatchesSchema(t *testing.T) {
	rep := sampleReport(t)
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, rep); err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	sch := sarifSchema(t)
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("SARIF does not validate: %v", err)
	}

	// What code scanning shows: each result on its rule, file and line.
	var log struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Rules []struct{ ID string } `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	res := log.Runs[0].Results
	if len(res) != len(rep.Findings) {
		t.Fatalf("%d results for %d findings", len(res), len(rep.Findings))
	}
	for i, r := range res {
		f := rep.Findings[i]
		if log.Runs[0].Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID || r.RuleID != f.Rule {
			t.Errorf("result %d: ruleIndex %d does not point at %s", i, r.RuleIndex, r.RuleID)
		}
		loc := r.Locations[0].PhysicalLocation
		if loc.Region.StartLine != f.Line {
			t.Errorf("result %d: line %d, finding line %d", i, loc.Region.StartLine, f.Line)
		}
		if f.File != StdinName && loc.ArtifactLocation.URI != f.File {
			t.Errorf("result %d: uri %q for file %q", i, loc.ArtifactLocation.URI, f.File)
		}
	}

	// The schema check can fail: break the output in ways code scanning rejects.
	for _, breakIt := range []func(m map[string]any){
		func(m map[string]any) { m["version"] = "2.0.0" },
		func(m map[string]any) { result0(m)["locations"] = []any{} },
		func(m map[string]any) { region0(m)["startLine"] = 0 },
		func(m map[string]any) { result0(m)["level"] = "fatal" },
		func(m map[string]any) { result0(m)["invented"] = true },
	} {
		var m map[string]any
		json.Unmarshal(buf.Bytes(), &m)
		breakIt(m)
		raw, _ := json.Marshal(m)
		inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if sch.Validate(inst) == nil {
			t.Errorf("schema accepted broken SARIF: %.200s", raw)
		}
	}
}

func result0(m map[string]any) map[string]any {
	return m["runs"].([]any)[0].(map[string]any)["results"].([]any)[0].(map[string]any)
}

func region0(m map[string]any) map[string]any {
	loc := result0(m)["locations"].([]any)[0].(map[string]any)
	return loc["physicalLocation"].(map[string]any)["region"].(map[string]any)
}

func TestJUnitMatchesXSD(t *testing.T) {
	xsd, err := loadXSD("testdata/schema/junit.xsd")
	if err != nil {
		t.Fatal(err)
	}
	rep := sampleReport(t)
	rep.Files += 3 // clean files are summed up in one passing case
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, rep); err != nil {
		t.Fatal(err)
	}
	if err := xsd.validate(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("JUnit does not validate: %v\n%s", err, buf.String())
	}
	// Viewers show the totals; they must add up.
	var suites junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &suites); err != nil {
		t.Fatal(err)
	}
	tests, failures, errs := 0, 0, 0
	for _, s := range suites.Suites {
		f, e := 0, 0
		for _, c := range s.Cases {
			if c.Failure != nil {
				f++
			}
			if c.Error != nil {
				e++
			}
		}
		if s.Tests != len(s.Cases) || s.Failures != f || s.Errors != e {
			t.Errorf("suite %s: tests %d failures %d errors %d, counted %d %d %d", s.Name, s.Tests, s.Failures, s.Errors, len(s.Cases), f, e)
		}
		tests, failures, errs = tests+s.Tests, failures+f, errs+e
	}
	if suites.Tests != tests || suites.Failures != failures || suites.Errors != errs {
		t.Errorf("totals %d/%d/%d, counted %d/%d/%d", suites.Tests, suites.Failures, suites.Errors, tests, failures, errs)
	}
	if failures+errs != len(rep.Findings) || tests != len(rep.Findings)+1 {
		t.Errorf("%d failing and %d total cases for %d findings and 3 clean files", failures+errs, tests, len(rep.Findings))
	}

	// The validator can fail: a testcase without classname, a count that is not a number.
	for _, bad := range []string{
		strings.Replace(buf.String(), `classname=`, `klass=`, 1),
		strings.Replace(buf.String(), `tests="`, `tests="x`, 1),
		strings.Replace(buf.String(), `</failure>`, `</failure><failure message="again"></failure>`, 1),
	} {
		if xsd.validate(strings.NewReader(bad)) == nil {
			t.Errorf("XSD accepted broken JUnit:\n%.400s", bad)
		}
	}
}

func TestJSONOutput(t *testing.T) {
	rep := run(t, Options{}, "testdata/traps/list.yaml")
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Findings []map[string]any `json:"findings"`
		Files    int              `json:"files"`
		Objects  int              `json:"objects"`
		Summary  map[string]int   `json:"summary"`
		ExitCode int              `json:"exitCode"`
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Files != 1 || out.Objects != 3 || len(out.Findings) != 2 || out.Summary[RuleRawSecret] != 1 || out.ExitCode != 1 {
		t.Fatalf("json output %s", buf.String())
	}
	for _, k := range []string{"file", "line", "kind", "namespace", "name", "rule", "severity", "message", "fix"} {
		if _, ok := out.Findings[0][k]; !ok {
			t.Errorf("finding lacks %q: %v", k, out.Findings[0])
		}
	}
	// No findings is an empty list, not null.
	buf.Reset()
	WriteJSON(&buf, &Report{})
	if !strings.Contains(buf.String(), `"findings": []`) {
		t.Errorf("empty report: %s", buf.String())
	}
}

func TestTextOutput(t *testing.T) {
	rep := run(t, Options{}, "testdata/traps/list.yaml")
	var buf bytes.Buffer
	WriteText(&buf, rep)
	out := buf.String()
	for _, s := range []string{
		"testdata/traps/list.yaml:10:5: error raw-secret: Secret production/in-a-list:",
		"testdata/traps/list.yaml:22:9: error missing-injection: Deployment production/listed:",
		"    fix: ",
		"2 findings in 1 file (3 objects): raw-secret 1, missing-injection 1",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("text output lacks %q:\n%s", s, out)
		}
	}
	buf.Reset()
	WriteText(&buf, &Report{Files: 2, Objects: 5})
	if strings.TrimSpace(buf.String()) != "no findings in 2 files (5 objects)" {
		t.Errorf("clean summary %q", buf.String())
	}
	if err := Write(&buf, "yaml", rep); err == nil {
		t.Error("unknown format accepted")
	}
}

// SARIF URIs are relative to the working directory with no "..", absolute file URIs outside it,
// and stdin is a real URI with a description; they used to be "../m/secret.yaml" and
// "%3Cstdin%3E" resolved against the checkout.
func TestSARIFURIs(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n")
	for _, p := range []string{"work/sub/secret.yaml", "work/two words.yaml", "m/secret.yaml"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), secret, 0o644)
	}
	sch := sarifSchema(t)
	t.Chdir(filepath.Join(dir, "work"))
	cwd, _ := os.Getwd()
	rep, err := Run(context.Background(), Options{},
		[]string{"./sub", filepath.Join(cwd, "two words.yaml"), "../m/secret.yaml", "-"}, bytes.NewReader(secret))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, rep); err != nil {
		t.Fatal(err)
	}
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("SARIF does not validate: %v", err)
	}
	type loc struct {
		URI         string `json:"uri"`
		URIBaseID   string `json:"uriBaseId"`
		Description *struct {
			Text string `json:"text"`
		} `json:"description"`
	}
	var log struct {
		Runs []struct {
			OriginalURIBaseIDs map[string]loc `json:"originalUriBaseIds"`
			Results            []struct {
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation loc `json:"artifactLocation"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	got := map[string]loc{}
	for _, r := range log.Runs[0].Results {
		l := r.Locations[0].PhysicalLocation.ArtifactLocation
		got[l.URI] = l
	}
	for uri, base := range map[string]string{
		"sub/secret.yaml":  "%SRCROOT%",
		"two%20words.yaml": "%SRCROOT%",
		fileURI(filepath.Join(dir, "m/secret.yaml")): "",
		"file:///dev/stdin":                          "",
	} {
		l, ok := got[uri]
		if !ok {
			t.Errorf("no result with uri %q; got %v", uri, got)
			continue
		}
		if l.URIBaseID != base {
			t.Errorf("uri %q: uriBaseId %q, want %q", uri, l.URIBaseID, base)
		}
	}
	if l := got["file:///dev/stdin"]; l.Description == nil || !strings.Contains(l.Description.Text, "standard input") {
		t.Errorf("stdin location does not say what it is: %+v", l)
	}
	root := log.Runs[0].OriginalURIBaseIDs["%SRCROOT%"]
	if root.URI != fileURI(cwd)+"/" {
		t.Errorf("%%SRCROOT%% is %q, want %q", root.URI, fileURI(cwd)+"/")
	}
	for uri := range got {
		if strings.Contains(uri, "..") || strings.Contains(uri, "%3C") {
			t.Errorf("uri %q", uri)
		}
	}
}
