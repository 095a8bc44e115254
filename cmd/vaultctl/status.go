package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/phases"
)

type phaseStatus struct {
	Phase      string             `json:"phase"`
	Applied    bool               `json:"applied"`
	Stale      bool               `json:"inputsChanged"`
	Checkpoint *phases.Checkpoint `json:"checkpoint,omitempty"`
}

func newStatusCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show which phases have been applied, from the in-cluster checkpoints",
		Long: `Status reads the checkpoints in the ConfigMap vaultctl-checkpoints and says, per phase,
when it last converged, with which vaultctl, and whether the config changed since. It does not
observe the live estate; run plan for that.`,
		Example: "  vaultctl status\n  vaultctl status -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := loadConfig(cmd, opts)
			if err != nil {
				return withCode(exitUsage, err)
			}
			env, err := phases.Connect(cmd.Context(), l.Config)
			if err != nil {
				return withCode(exitFailed, err)
			}
			store := &phases.ConfigMapStore{Client: env.Kube, Namespace: l.Vault.Namespace}
			cps, err := store.Get(cmd.Context())
			if err != nil {
				return withCode(exitFailed, fmt.Errorf("reading checkpoints from %s/%s: %w", l.Vault.Namespace, phases.CheckpointConfigMap, err))
			}
			var rows []phaseStatus
			for _, p := range phases.All(env) {
				row := phaseStatus{Phase: p.Name()}
				if cp, ok := cps[p.Name()]; ok {
					row.Applied, row.Checkpoint = true, &cp
					row.Stale = cp.InputHash != phases.InputHash(p.Inputs())
				}
				rows = append(rows, row)
			}
			if opts.Output == "json" {
				return writeJSON(opts.stdout, map[string]any{"phases": rows})
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
			return tw.Flush()
		},
	}
}
