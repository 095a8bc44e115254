package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/auditlog"
	"github.com/vaultctl/vaultctl/check"
	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

func newPoliciesCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policies",
		Short: "Review the policies and roles vaultctl manages",
		Args:  noArgsButSubcommands,
	}
	cmd.AddCommand(newPoliciesAuditCmd(opts))
	return cmd
}

// policyAuditDoc is the JSON document of policies audit.
type policyAuditDoc struct {
	Command  string          `json:"command"`
	OK       bool            `json:"ok"`
	Findings []check.Finding `json:"findings"`
	Objects  int             `json:"objects"`
	Summary  map[string]int  `json:"summary"`
	Config   string          `json:"config"`
	Window   *auditWindow    `json:"window,omitempty"`
	SARIF    string          `json:"sarif,omitempty"`
	Warnings []string        `json:"warnings"`
}

type auditWindow struct {
	Since   *time.Time     `json:"since,omitempty"`
	Until   *time.Time     `json:"until,omitempty"`
	Inputs  []string       `json:"inputs"`
	Stats   auditlog.Stats `json:"stats"`
	First   *time.Time     `json:"first,omitempty"`
	Last    *time.Time     `json:"last,omitempty"`
	Entries int64          `json:"entries"`
}

func newPoliciesAuditCmd(opts *rootOptions) *cobra.Command {
	var (
		audits    []string
		window    time.Duration
		sinceFlag string
		sarifFile string
	)
	var rules strings.Builder
	for _, r := range lifecycle.PolicyAuditRules {
		fmt.Fprintf(&rules, "  %-18s %-7s %s\n", r.ID, r.Severity, r.Summary)
	}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The quarterly review: broad, unused or drifted policies and roles",
		Long: `Reviews every policy and Kubernetes auth role in the config as Vault holds it now (so a change
made by hand is seen), and reports what deserves a second look. With --audit FILE (repeatable;
.gz and - for stdin work, as for audit analyze) it also reports policies and roles no audit event
used in the window (--window before now, or from --since). The vaultctl-admin policy is vaultctl's
own and not reviewed here.

Rules:
` + rules.String() + `
Output: text, -o json, and --sarif FILE for code scanning (findings point at the policy or role
in the config file). Exit code 1 when there are findings, 0 when none, 2 on bad usage.`,
		Example: `  vaultctl policies audit
  vaultctl policies audit --audit /vault/audit/audit.log --window 2160h
  vaultctl policies audit -o json --sarif policies.sarif`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, source, warnings, err := commandConfiguration(cmd, opts)
			if err != nil {
				return err
			}
			var since, until time.Time
			switch {
			case sinceFlag != "":
				since, err = time.Parse(time.RFC3339, sinceFlag)
				if err != nil {
					if since, err = time.Parse("2006-01-02", sinceFlag); err != nil {
						return withWarnings(exitUsage, fmt.Errorf("--since %q: want a date (2026-09-01) or an RFC 3339 time", sinceFlag), warnings)
					}
				}
			case window > 0 && len(audits) > 0:
				since = time.Now().Add(-window)
			}
			inputs, closeInputs, err := action.AuditInputs(audits, opts.stdin)
			if err != nil {
				return withWarnings(exitUsage, err, warnings)
			}
			defer closeInputs()
			res, err := action.PolicyAudit(cmd.Context(), c,
				action.PolicyAuditOptions{Source: source, ConfigFile: opts.ConfigPath, Audit: inputs, Since: since, Until: until})
			if res != nil {
				warnings = append(warnings, res.Warnings...)
			}
			if err != nil {
				return withWarnings(exitFailed, phases.WithHint(err), warnings)
			}
			rep := res.Report
			rep.ToolVersion = vaultctlVersion()
			if sarifFile != "" {
				var b bytes.Buffer
				if err := check.WriteSARIFFor(&b, rep, lifecycle.PolicyAuditTool); err != nil {
					return withWarnings(exitFailed, err, warnings)
				}
				if err := os.WriteFile(sarifFile, b.Bytes(), 0o644); err != nil {
					return withWarnings(exitFailed, fmt.Errorf("writing --sarif %s: %w", sarifFile, err), warnings)
				}
			}
			summary := map[string]int{}
			for _, f := range rep.Findings {
				summary[f.Rule]++
			}
			if opts.Output == "json" {
				doc := policyAuditDoc{Command: commandName(cmd), OK: len(rep.Findings) == 0, Findings: rep.Findings, Objects: rep.Objects,
					Summary: summary, Config: rep.Config, SARIF: sarifFile, Warnings: warnings}
				if res.Usage != nil {
					w := &auditWindow{Inputs: audits, Stats: res.Usage.Stats, Entries: res.Usage.Stats.Entries}
					if !since.IsZero() {
						w.Since = &since
					}
					if !res.Usage.First.IsZero() {
						w.First, w.Last = &res.Usage.First, &res.Usage.Last
					}
					doc.Window = w
				}
				if err := writeJSON(opts.stdout, doc); err != nil {
					return err
				}
			} else {
				printNotes(opts.stderr, res.Warnings)
				printPolicyAudit(opts, rep, summary, res.Usage != nil)
			}
			if len(rep.Findings) > 0 {
				return withCode(exitFailed, nil)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&audits, "audit", nil, "audit log to find unused policies and roles in (repeatable; .gz and - for stdin work)")
	f.DurationVar(&window, "window", lifecycle.DefaultReviewWindow, "with --audit: the review window, ending now")
	f.StringVar(&sinceFlag, "since", "", "with --audit: the window starts here instead (2026-09-01 or RFC 3339)")
	f.StringVar(&sarifFile, "sarif", "", "also write the findings as a SARIF 2.1.0 file for code scanning")
	return cmd
}

func printPolicyAudit(opts *rootOptions, rep *check.Report, summary map[string]int, withAudit bool) {
	w := opts.stdout
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "%s:%d: %s %s: %s %s/%s: %s\n    fix: %s\n", f.File, f.Line, f.Severity, f.Rule, f.Kind, f.Namespace, f.Name, f.Message, f.Fix)
	}
	note := ""
	if !withAudit {
		note = "; pass --audit FILE to also find unused ones"
	}
	if len(rep.Findings) == 0 {
		fmt.Fprintf(w, "no findings in %d policies and roles%s\n", rep.Objects, note)
		return
	}
	var parts []string
	for r, n := range summary {
		parts = append(parts, fmt.Sprintf("%s %d", r, n))
	}
	sort.Strings(parts)
	fmt.Fprintf(w, "%s in %d policies and roles: %s%s\n", plural(len(rep.Findings), "finding"), rep.Objects, strings.Join(parts, ", "), note)
}
