package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is stamped by `make build` (-ldflags "-X main.version=...").
var version = "dev"

func vaultctlVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

const rootLong = `vaultctl takes a Kubernetes estate from "Secrets are base64 in etcd" to "secrets live in
HashiCorp Vault, short-lived and audited", and keeps it there.

One declarative config file (vaultctl.yaml; see config.example.yaml) drives a phased,
idempotent installer: preflight, kms, vault server, initialize, injector, kubernetes auth,
policies and roles, network policies, audit. Every phase observes the live state first and
changes only what differs, so re-running is always safe.

Exit codes:
  0  success (check: no findings)
  1  a phase or check failed (check: findings)
  2  bad usage, invalid config or unparsable input
  3  plan found changes to make (for CI gating)`

func newRootCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:           "vaultctl",
		Short:         "Move Kubernetes secrets into HashiCorp Vault, and keep them there",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		Example: `  vaultctl init                      # answer a few questions, get vaultctl.yaml
  vaultctl config validate           # check the config, every problem with file:line
  vaultctl plan                      # what would change, phase by phase
  vaultctl apply                     # make it so; safe to re-run
  vaultctl apply --non-interactive -o json   # in CI
  vaultctl check k8s/                # CI guard against raw Secrets`,
		PersistentPreRunE: func(*cobra.Command, []string) error { return checkOutput(opts) },
	}
	f := cmd.PersistentFlags()
	f.StringVarP(&opts.ConfigPath, "config", "c", "vaultctl.yaml", "config file")
	f.StringVar(&opts.Kubeconfig, "kubeconfig", "", "kubeconfig file (overrides cluster.kubeconfig)")
	f.StringVar(&opts.Context, "context", "", "kubeconfig context (overrides cluster.context)")
	f.StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	f.BoolVar(&opts.NonInteractive, "non-interactive", false, "never prompt; fail instead (for CI)")
	f.CountVarP(&opts.Verbose, "verbose", "v", "log each step on stderr with a timestamp: connect, preflight, lock taken/renewed/released, phase outcomes, progress")

	cmd.AddCommand(
		newVersionCmd(opts),
		newConfigCmd(opts),
		newPlanCmd(opts),
		newApplyCmd(opts),
		newStatusCmd(opts),
		newRecoveryKeysCmd(opts),
		newRotateCmd(opts),
		newImagesCmd(opts),
		newPoliciesCmd(opts),
		newCheckCmd(opts),
		newInitCmd(opts),
		newMigrateCmd(opts),
		newAuditCmd(opts),
		newCICmd(opts),
		newDoctorCmd(opts),
		newLeasesCmd(opts),
		newUpgradeCmd(opts), newSnapshotCmd(opts),
	)
	// Added now rather than when cobra runs, so that it refuses a mistyped shell like the
	// other groups do.
	cmd.InitDefaultCompletionCmd()
	refuseUnknownSubcommands(cmd)
	return cmd
}

func newVersionCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the vaultctl version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Output == "json" {
				return writeJSON(opts.stdout, map[string]any{"command": "version", "ok": true, "version": vaultctlVersion()})
			}
			_, err := fmt.Fprintln(opts.stdout, "vaultctl", vaultctlVersion())
			return err
		},
	}
}
