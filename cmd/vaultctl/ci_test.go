package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The snippet is valid YAML, a job of its provider, that checks the config's paths with the
// config and hands its report to the provider in the format it reads.
func TestCISnippet(t *testing.T) {
	dir := t.TempDir()
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "vaultctl.yaml")
	text := strings.Replace(string(example), "paths: [k8s/]", `paths: [k8s/, "deploy/team a/"]`, 1)
	if text == string(example) {
		t.Fatal("test bug: config.example.yaml has no check.paths example")
	}
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ provider, format, report string }{
		{"github", "sarif", "vaultctl-check.sarif"},
		{"gitlab", "junit", "vaultctl-check.xml"},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run([]string{"ci", "snippet", "--provider", tc.provider, "-c", cfg, "--version", "v1.2.3"}, strings.NewReader(""), &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			var doc map[string]any
			if err := yaml.Unmarshal(stdout.Bytes(), &doc); err != nil {
				t.Fatalf("not valid YAML: %v\n%s", err, stdout.String())
			}
			var checkLine string
			var installs bool
			switch tc.provider {
			case "github":
				if doc["on"] == nil || doc["jobs"] == nil {
					t.Fatalf("not a workflow: %v", doc)
				}
				steps := doc["jobs"].(map[string]any)["vaultctl-check"].(map[string]any)["steps"].([]any)
				var uploaded string
				for _, s := range steps {
					step := s.(map[string]any)
					run, _ := step["run"].(string)
					if strings.HasPrefix(run, "vaultctl check") {
						checkLine = run
					}
					installs = installs || strings.Contains(run, "vaultctl/cmd/vaultctl@v1.2.3")
					if step["uses"] == "github/codeql-action/upload-sarif@v3" {
						uploaded, _ = step["with"].(map[string]any)["sarif_file"].(string)
						if step["if"] != "always()" {
							t.Error("the SARIF upload must run when the check fails, or the findings are lost")
						}
					}
				}
				if uploaded != tc.report {
					t.Errorf("SARIF upload of %q, want %s", uploaded, tc.report)
				}
			case "gitlab":
				job := doc["vaultctl-check"].(map[string]any)
				for _, s := range job["script"].([]any) {
					if line := s.(string); strings.HasPrefix(line, "vaultctl check") {
						checkLine = line
					} else if strings.Contains(line, "vaultctl/cmd/vaultctl@v1.2.3") {
						installs = true
					}
				}
				art := job["artifacts"].(map[string]any)
				if art["when"] != "always" || art["reports"].(map[string]any)["junit"] != tc.report {
					t.Errorf("artifacts %v, want the JUnit report %s kept always", art, tc.report)
				}
			}
			if !installs {
				t.Error("the job does not install the pinned vaultctl")
			}
			for _, want := range []string{"-o " + tc.format, "--config " + cfg, " k8s/ ", `'deploy/team a/'`, "> " + tc.report} {
				if !strings.Contains(checkLine, want) {
					t.Errorf("check line %q lacks %q", checkLine, want)
				}
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"ci", "snippet", "--provider", "jenkins", "-c", cfg}, strings.NewReader(""), &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "github or gitlab") {
		t.Errorf("unknown provider: exit %d, %s", code, stderr.String())
	}
}

// Running a wave needs --yes without a terminal, refused before the config is read.
func TestMigrateWaveUsage(t *testing.T) {
	for _, args := range [][]string{{"migrate", "next"}, {"migrate", "wave", "pilot"}, {"migrate", "wave"}} {
		var stdout, stderr bytes.Buffer
		if code := run(append(args, "-c", "/nonexistent/vaultctl.yaml"), strings.NewReader(""), &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, stderr.String())
		}
	}
}
