package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/doctor"
	"github.com/vaultctl/vaultctl/phases"
)

const doctorLong = `Doctor diagnoses pods that ask for Vault Agent injection and, for each problem, prints the
cause in words, the evidence (the field and value compared, the agent's log line) and the
exact fix (a command, or the config key to change). It only reads.

With no argument it checks every pod asking for injection (in -n NAMESPACE, or in every
namespace); POD or KIND/NAME (deployment, statefulset, daemonset, replicaset, job) checks one.

It covers: a pod in Init:0/1 (the vault-agent-init log, read through the Kubernetes API, mapped
to Vault's error); the ServiceAccount or namespace not bound to the role, or no such role; the
JWT audience against the role's; a stale cluster CA in the auth config or a dead reviewer JWT;
the policy path against the annotation path (KV v2 data/, the mount), evaluated on the role's
live policies; Vault sealed, unreachable or without a leader; NetworkPolicies blocking port
8200 (as an enforcing network plugin would; the vaultctl sandbox does not enforce them);
injection not happening (no webhook selects the namespace, an invalid caBundle, no available
injector pod, failurePolicy Ignore hiding it, no ServiceAccount token mount); a Job whose
sidecar never exits; secrets that cannot follow a rotation.

Exit codes: 0 no problem found (info notes may be printed), 1 problems, 2 bad usage.`

const doctorExample = `  vaultctl doctor -n production                   # every injected pod in production
  vaultctl doctor -n production webapp-7d4b9-x2x   # one pod
  vaultctl doctor -n production deployment/webapp  # a workload's pods (or its template)
  vaultctl doctor -o json                          # all namespaces, structured findings`

type doctorResult struct {
	Command  string           `json:"command"`
	OK       bool             `json:"ok"`
	Pods     []string         `json:"pods"`
	Findings []doctor.Finding `json:"findings"`
	Warnings []string         `json:"warnings"`
}

func newDoctorCmd(opts *rootOptions) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:     "doctor [POD | KIND/NAME]",
		Short:   "Diagnose pods stuck on Vault Agent injection: cause, evidence, fix (read-only)",
		Long:    doctorLong,
		Example: doctorExample,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
				if namespace == "" {
					namespace = "default"
				}
			}
			target, err := doctor.ParseTarget(namespace, arg)
			if err != nil {
				return withCode(exitUsage, err)
			}
			res := doctorResult{Command: commandName(cmd), Pods: []string{}, Findings: []doctor.Finding{}, Warnings: []string{}}
			l, warnings, err := loadConfigWarned(cmd, opts)
			res.Warnings = append(res.Warnings, warnings...)
			if err != nil {
				return withWarnings(exitUsage, err, res.Warnings)
			}
			out, err := action.Doctor(cmd.Context(), actionConfig(opts, l), target)
			if out != nil {
				res.Warnings = append(res.Warnings, out.Warnings...)
				if opts.Output != "json" {
					printNotes(opts.stderr, out.Warnings)
				}
			}
			if err != nil {
				if errors.Is(err, doctor.ErrNotFound) {
					return withWarnings(exitUsage, err, res.Warnings)
				}
				return withWarnings(exitFailed, phases.WithHint(err), res.Warnings)
			}
			res.Pods, res.Findings = out.Pods, out.Findings
			res.OK = out.Problems() == 0
			if opts.Output == "json" {
				if err := writeJSON(opts.stdout, res); err != nil {
					return err
				}
			} else if err := printDoctor(opts.stdout, out.Report); err != nil {
				return err
			}
			if !res.OK {
				return withCode(exitFailed, nil)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the pods (default: every namespace; \"default\" when POD or KIND/NAME is given)")
	return cmd
}

// printDoctor is the text form: one block per finding, then a summary line.
func printDoctor(w io.Writer, r *doctor.Report) error {
	marks := map[doctor.Severity]string{doctor.Error: "✗", doctor.Warning: "!", doctor.Info: "i"}
	for _, f := range r.Findings {
		fmt.Fprintf(w, "%s %s [%s] %s\n", marks[f.Severity], f.Object, f.Code, f.Message)
		for _, e := range f.Evidence {
			fmt.Fprintf(w, "    evidence: %s\n", e)
		}
		fmt.Fprintf(w, "    fix:      %s\n\n", f.Fix)
	}
	n := r.Problems()
	what := "no problem found"
	if n > 0 {
		what = fmt.Sprintf("%d problem(s) found", n)
	}
	pods := fmt.Sprintf("%d pod(s)", len(r.Pods))
	if len(r.Pods) > 0 && len(r.Pods) <= 3 {
		pods += " (" + strings.Join(r.Pods, ", ") + ")"
	}
	_, err := fmt.Fprintf(w, "doctor: %s in %s\n", what, pods)
	return err
}
