package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/phases"
)

func newStatusCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show applied phases and Vault's health (Raft voters, leader, unsealed nodes)",
		Long: `Status reads the checkpoints in the ConfigMap vaultctl-checkpoints and says, per phase,
when it last converged, with which vaultctl, and whether the config changed since; then it asks
Vault's autopilot for the cluster's health: voters against replicas, the leader, and every node.
Exit code 1 when Vault is degraded or unreachable.`,
		Example: "  vaultctl status\n  vaultctl status -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := loadConfig(cmd, opts)
			if err != nil {
				return withCode(exitUsage, err)
			}
			st, err := action.Status(cmd.Context(), &action.Configuration{Config: l.Config, Version: vaultctlVersion(), Debug: newDebugLog(opts)})
			if err != nil {
				return withCode(exitFailed, phases.WithHint(err))
			}
			rows, health, herr := st.Phases, st.Vault, st.VaultErr
			if opts.Output == "json" {
				out := map[string]any{"phases": rows, "vault": health}
				if herr != nil {
					out["vaultError"] = herr.Error()
				}
				if err := writeJSON(opts.stdout, out); err != nil {
					return err
				}
				if herr != nil || !health.Healthy {
					return withCode(exitFailed, nil)
				}
				return nil
			}
			tw := tabwriter.NewWriter(opts.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PHASE\tSTATE\tAPPLIED\tBY\tSUMMARY")
			for _, r := range rows {
				if !r.Applied {
					fmt.Fprintf(tw, "%s\tnot applied\t-\t-\t-\n", r.Phase)
					continue
				}
				state := "applied"
				if r.Stale {
					state = "config changed since"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Phase, state, r.Checkpoint.Time.Local().Format(time.DateTime), r.Checkpoint.Version, r.Checkpoint.Summary)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(opts.stdout)
			if herr != nil {
				return withCode(exitFailed, fmt.Errorf("vault: %w", herr))
			}
			state := "healthy"
			if !health.Healthy {
				state = "DEGRADED: " + strings.Join(health.Problems, "; ")
			}
			fmt.Fprintf(opts.stdout, "Vault: %s (%d/%d voters, leader %s, failure tolerance %d)\n", state, health.Voters, health.WantVoters, health.Leader, health.FailureTolerance)
			tw = tabwriter.NewWriter(opts.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tADDRESS\tRAFT\tHEALTHY\tSTATUS\tVERSION")
			for _, n := range health.Nodes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", n.ID, n.Address, n.Status, n.Healthy, n.Node, n.Version)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if !health.Healthy {
				return withCode(exitFailed, nil)
			}
			return nil
		},
	}
}
