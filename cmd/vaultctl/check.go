package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/check"
)

const checkLong = `Check Kubernetes manifests before they merge: no raw Secrets where Vault is the rule,
every workload injected by the Vault Agent Injector, and injection annotations that will
actually work.

PATH is a file, a directory (walked recursively for .yaml, .yml and .json) or - for stdin.
Every document is parsed: multi-document YAML, JSON and the items of a List. Each finding
names the file, line, kind, namespace, name, rule and a one-line fix.

Rules (vaultctl check --explain RULE for details):
  raw-secret          a v1 Secret in a required namespace (--allow-secret-type exempts a type)
  missing-injection   a pod template without vault.hashicorp.com/agent-inject: "true" and a role
  job-sidecar         a Job or CronJob that injects without agent-pre-populate-only: it never ends
  secret-reference    a container still reading a Secret (secretKeyRef, envFrom, secret volume)
  kv-path             an injected path on a KV v2 mount without data/
  policy-mismatch     with a config: the pod's role or its policies cannot read what it injects
  unknown-annotation  a vault.hashicorp.com/ annotation the injector ignores (a typo)
  parse-error         a file that is not valid YAML or JSON

--namespace (repeatable, globs allowed) names the namespaces where Vault is required; objects
without metadata.namespace are in --default-namespace; with no --namespace (and none in the
config's check.requiredNamespaces) every namespace is checked. Vault's own server, injector
and CSI provider pods (labelled as vaultctl's and the official chart label them, running a
Vault image) never need injection.

The config is --config FILE, else vaultctl.yaml when it exists in the working directory (a
missing vaultctl.yaml is no error; --config '' checks without one). With a config, roles and
policies are checked (policy-mismatch), the summary line and the JSON "config" key name the
file, and its check section supplies defaults: its namespaces unless --namespace is given, and
its allowed Secret types and excludes in addition to the flags.

Helm charts and Kustomize bases are templates, not manifests: check what they render, piped
through -, and exclude their sources. Checked as they stand, their Secrets are still reported,
with the command that renders them: a Secret in a chart's templates/, one whose name or
namespace is an unrendered {{ }} directive, a kustomization's secretGenerator.

An --exclude glob without a slash matches any file or directory name (charts, '*.tpl.yaml');
one with a slash matches the path from the checked directory, ** standing for any number of
directories ('charts/**', 'base/*/secret.yaml').

Exit codes:
  0  no findings
  1  findings
  2  bad usage, or a file that could not be parsed`

const checkExample = `  vaultctl check k8s/
  vaultctl check --namespace production --namespace 'team-*' k8s/ deploy/extra.json
  helm template . | vaultctl check -
  kustomize build overlays/production | vaultctl check --default-namespace production -
  vaultctl check k8s/ --exclude 'charts/**' --exclude '*.tpl.yaml'
  vaultctl check -o sarif k8s/ > results.sarif       # GitHub code scanning
  vaultctl check -o junit k8s/ > check.xml           # CI test report
  vaultctl check --config deploy/vaultctl.yaml k8s/  # roles and policies from another config
  vaultctl check --explain kv-path`

func newCheckCmd(opts *rootOptions) *cobra.Command {
	var (
		copts   check.Options
		output  string
		explain string
	)
	cmd := &cobra.Command{
		Use:     "check [flags] PATH...",
		Short:   "Check manifests for raw Secrets and broken Vault injection (CI guard)",
		Long:    checkLong,
		Example: checkExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			if explain != "" {
				text, err := check.Explain(explain)
				if err != nil {
					return withCode(exitUsage, err)
				}
				_, err = fmt.Fprint(opts.stdout, text)
				return err
			}
			if !validFormat(output) {
				return withCode(exitUsage, fmt.Errorf("--output must be one of %s, not %q", strings.Join(check.Formats, ", "), output))
			}
			if len(args) == 0 {
				return withCode(exitUsage, fmt.Errorf("no PATH given; for example: vaultctl check k8s/ (or - for stdin)"))
			}
			// The default vaultctl.yaml is used when it exists; a named one must exist.
			f := cmd.Flags().Lookup("config")
			cfg, file, err := check.LoadConfig(opts.ConfigPath, f != nil && f.Changed)
			if err != nil {
				return withCode(exitUsage, err)
			}
			copts.Config, copts.ConfigFile = cfg, file
			rep, err := check.Run(cmd.Context(), copts, args, opts.stdin)
			if err != nil {
				return withCode(exitUsage, err)
			}
			rep.ToolVersion = vaultctlVersion()
			if rep.Files == 0 {
				fmt.Fprintf(opts.stderr, "warning: no .yaml, .yml or .json files found in %s\n", strings.Join(args, " "))
			}
			if err := check.Write(opts.stdout, output, rep); err != nil {
				return withCode(exitFailed, err)
			}
			switch rep.ExitCode() {
			case 1:
				return withCode(exitFailed, nil)
			case 2:
				return withCode(exitUsage, nil)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&copts.Namespaces, "namespace", nil, "namespace where Vault injection is required (repeatable, globs allowed); default: all")
	f.StringVar(&copts.DefaultNamespace, "default-namespace", "default", "namespace of objects without metadata.namespace")
	f.StringSliceVar(&copts.AllowSecretTypes, "allow-secret-type", nil, "Secret type that is not a finding, e.g. kubernetes.io/tls (repeatable)")
	f.StringSliceVar(&copts.KVMounts, "kv-mount", nil, "KV version 2 mount path (repeatable); default: the config's kv mounts, else secret")
	f.StringArrayVar(&copts.Exclude, "exclude", nil, "path glob to skip, e.g. 'charts/**' (repeatable)")
	// Shadows the global --output: check has two more formats.
	f.StringVarP(&output, "output", "o", "text", "output format: text, json, sarif or junit")
	f.StringVar(&explain, "explain", "", "describe RULE (what it checks, how to fix it) and exit")
	return cmd
}

func validFormat(s string) bool {
	for _, f := range check.Formats {
		if s == f {
			return true
		}
	}
	return false
}
