package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/vaultctl/vaultctl/config"
)

const ciSnippetLong = `Print a ready CI job that runs vaultctl check on every change: the CI guard of the migration
plan's second week, so that no new raw Secret is merged.

The job checks the paths of the config's check.paths (the whole repository when empty) with
the config itself (-c, as given: a path from the repository root), so that its
requiredNamespaces, allowSecretTypes and exclude apply, and its roles and policies are checked
too (policy-mismatch). The job fails on any finding.

  --provider github  a GitHub Actions workflow (.github/workflows/vaultctl-check.yml) that
                     uploads the findings as SARIF to GitHub code scanning, so they show on the
                     pull request's lines
  --provider gitlab  a .gitlab-ci.yml job whose findings are a JUnit report, shown in the merge
                     request's test summary

vaultctl is installed with go install at this binary's version; pin another with --version.`

type ciSnippet struct {
	Provider, Config, Version string
	Paths                     []string
}

func newCICmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ci",
		Short: "Set up the CI guard: jobs that run vaultctl check",
	}
	var provider, ver string
	snippet := &cobra.Command{
		Use:   "snippet --provider github|gitlab",
		Short: "Print a CI job running vaultctl check with SARIF (GitHub) or JUnit (GitLab) reports",
		Long:  ciSnippetLong,
		Example: `  vaultctl ci snippet --provider github > .github/workflows/vaultctl-check.yml
  vaultctl ci snippet --provider gitlab >> .gitlab-ci.yml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if provider != "github" && provider != "gitlab" {
				return withCode(exitUsage, fmt.Errorf("--provider must be github or gitlab, got %q", provider))
			}
			l, err := loadConfig(cmd, opts)
			if err != nil {
				return withCode(exitUsage, err)
			}
			printWarnings(opts.stderr, configWarnings(l, err))
			if ver == "" {
				ver = vaultctlVersion()
				if ver == "dev" {
					ver = "latest"
					fmt.Fprintln(opts.stderr, "note: this vaultctl is a development build; the job installs vaultctl@latest (pin one with --version)")
				}
			}
			s := ciSnippet{Provider: provider, Config: opts.ConfigPath, Version: ver, Paths: ciPaths(l.Config)}
			return s.write(opts.stdout)
		},
	}
	snippet.Flags().StringVar(&provider, "provider", "", "github or gitlab")
	snippet.Flags().StringVar(&ver, "version", "", "the vaultctl version the job installs (default: this binary's)")
	cmd.AddCommand(snippet)
	return cmd
}

func ciPaths(cfg *config.Config) []string {
	if len(cfg.Check.Paths) == 0 {
		return []string{"."}
	}
	return cfg.Check.Paths
}

// shellQuote quotes s for sh when it holds anything but plain path characters.
func shellQuote(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@", r)) {
			plain = false
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// checkCommand is the job's vaultctl check line, its report going to out.
func (s ciSnippet) checkCommand(format, out string) string {
	args := []string{"vaultctl", "check", "--config", shellQuote(s.Config), "-o", format}
	for _, p := range s.Paths {
		args = append(args, shellQuote(p))
	}
	return strings.Join(args, " ") + " > " + out
}

func (s ciSnippet) install() string {
	return "go install github.com/vaultctl/vaultctl/cmd/vaultctl@" + s.Version
}

// The jobs are built as data and marshalled, so the YAML is valid whatever the paths hold.
type ghWorkflow struct {
	Name        string            `yaml:"name"`
	On          map[string]any    `yaml:"on"`
	Permissions map[string]string `yaml:"permissions"`
	Jobs        map[string]ghJob  `yaml:"jobs"`
}

type ghJob struct {
	RunsOn string   `yaml:"runs-on"`
	Steps  []ghStep `yaml:"steps"`
}

type ghStep struct {
	Name string         `yaml:"name,omitempty"`
	Uses string         `yaml:"uses,omitempty"`
	If   string         `yaml:"if,omitempty"`
	With map[string]any `yaml:"with,omitempty"`
	Run  string         `yaml:"run,omitempty"`
}

type glJob struct {
	Stage     string     `yaml:"stage"`
	Image     string     `yaml:"image"`
	Script    []string   `yaml:"script"`
	Artifacts glArtifact `yaml:"artifacts"`
}

type glArtifact struct {
	When    string            `yaml:"when"`
	Reports map[string]string `yaml:"reports"`
}

func (s ciSnippet) write(w io.Writer) error {
	var doc any
	var header string
	switch s.Provider {
	case "github":
		header = "# .github/workflows/vaultctl-check.yml: the CI guard (vaultctl ci snippet --provider github).\n" +
			"# Findings fail the job and show in code scanning; the upload runs even then.\n"
		doc = ghWorkflow{
			Name:        "vaultctl check",
			On:          map[string]any{"pull_request": nil, "push": map[string]any{"branches": []string{"main"}}},
			Permissions: map[string]string{"contents": "read", "security-events": "write"},
			Jobs: map[string]ghJob{"vaultctl-check": {RunsOn: "ubuntu-latest", Steps: []ghStep{
				{Uses: "actions/checkout@v4"},
				{Uses: "actions/setup-go@v5", With: map[string]any{"go-version": "stable"}},
				{Name: "Install vaultctl", Run: s.install()},
				{Name: "vaultctl check", Run: s.checkCommand("sarif", "vaultctl-check.sarif")},
				{Name: "Upload findings to code scanning", Uses: "github/codeql-action/upload-sarif@v3", If: "always()",
					With: map[string]any{"sarif_file": "vaultctl-check.sarif", "category": "vaultctl-check"}},
			}}},
		}
	case "gitlab":
		header = "# .gitlab-ci.yml job: the CI guard (vaultctl ci snippet --provider gitlab).\n" +
			"# Findings fail the job and show in the merge request's test summary.\n"
		doc = map[string]glJob{"vaultctl-check": {
			Stage: "test", Image: "golang:1",
			Script:    []string{s.install(), `export PATH="$PATH:$(go env GOPATH)/bin"`, s.checkCommand("junit", "vaultctl-check.xml")},
			Artifacts: glArtifact{When: "always", Reports: map[string]string{"junit": "vaultctl-check.xml"}},
		}}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := io.WriteString(w, header+buf.String())
	return err
}
