package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

// statusResult is the one JSON document status prints with -o json: the envelope plan and
// apply have, the checkpoints and Vault's health.
type statusResult struct {
	Command    string                `json:"command"`
	OK         bool                  `json:"ok"`
	Phases     []statusPhase         `json:"phases"`
	Vault      *phases.ClusterHealth `json:"vault"`
	VaultError string                `json:"vaultError,omitempty"`
	// Keys: when the keys vaultctl rotate rotates were last rotated, and whether they are due.
	Keys     []lifecycle.KeyAge `json:"keys"`
	Error    string             `json:"error,omitempty"`
	Warnings []string           `json:"warnings"`
}

// statusPhase is a phase's checkpoint as the table shows it. The summary is what the phase
// observed when its checkpoint was written (when it last changed), not now: summaryAsOf says
// when, and the table prefixes it with "as of".
type statusPhase struct {
	phases.PhaseStatus
	Summary     string     `json:"summary"`
	SummaryAsOf *time.Time `json:"summaryAsOf,omitempty"`
}

func newStatusCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show applied phases and Vault's health (Raft voters, leader, unsealed nodes)",
		Long: `Status reads the checkpoints in the ConfigMap vaultctl-checkpoints and says, per phase,
when it last converged, with which vaultctl, and whether the config changed since; then it asks
Vault's autopilot for the cluster's health: voters against replicas, the leader, and every node.

A checkpoint is written when a phase changes (or its config or vaultctl version does), so its
summary is what the phase saw then: it is shown "as of" that time. Vault's health below it is
observed now; vaultctl plan observes every phase now.

Exit code 1 when Vault is degraded or unreachable.`,
		Example: "  vaultctl status\n  vaultctl status -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res := statusResult{Command: commandName(cmd), Phases: []statusPhase{}, Warnings: []string{}}
			l, warnings, err := loadConfigWarned(cmd, opts)
			res.Warnings = append(res.Warnings, warnings...)
			if err != nil {
				return withWarnings(exitUsage, err, res.Warnings)
			}
			st, err := action.Status(cmd.Context(), actionConfig(opts, l))
			if st != nil {
				res.Warnings = append(res.Warnings, st.Warnings...)
				if opts.Output != "json" {
					printNotes(opts.stderr, st.Warnings)
				}
			}
			if err != nil {
				err = phases.WithHint(err)
				if opts.Output == "json" {
					res.Error = err.Error()
					if werr := writeJSON(opts.stdout, res); werr != nil {
						return werr
					}
				}
				return withCode(exitFailed, err)
			}
			for _, r := range st.Phases {
				row := statusPhase{PhaseStatus: r}
				if r.Checkpoint != nil {
					t := r.Checkpoint.Time
					row.Summary, row.SummaryAsOf = r.Checkpoint.Summary, &t
				}
				res.Phases = append(res.Phases, row)
			}
			res.Keys = st.Keys
			if res.Keys == nil {
				res.Keys = []lifecycle.KeyAge{}
			}
			for _, k := range st.Keys {
				if w := k.Warning(); w != "" {
					res.Warnings = append(res.Warnings, w)
					if opts.Output != "json" {
						printNotes(opts.stderr, []string{w})
					}
				}
			}
			health, herr := st.Vault, st.VaultErr
			res.Vault = health
			var problem error
			switch {
			case herr != nil:
				res.VaultError = herr.Error()
				problem = fmt.Errorf("vault: %w", herr)
			case health == nil:
				problem = fmt.Errorf("vault: no health reported")
			case !health.Healthy:
				problem = fmt.Errorf("vault is degraded: %s", strings.Join(health.Problems, "; "))
			}
			res.OK = problem == nil
			if opts.Output == "json" {
				if problem != nil {
					res.Error = problem.Error()
				}
				if err := writeJSON(opts.stdout, res); err != nil {
					return err
				}
				if problem != nil {
					return withCode(exitFailed, nil)
				}
				return nil
			}
			if err := printStatus(opts, res); err != nil {
				return err
			}
			switch {
			case herr != nil || health == nil:
				return withCode(exitFailed, problem)
			case !health.Healthy:
				// The DEGRADED line above says why.
				return withCode(exitFailed, nil)
			}
			return nil
		},
	}
}

// printStatus is the text form of status: the checkpoint table, then Vault's health.
func printStatus(opts *rootOptions, res statusResult) error {
	tw := tabwriter.NewWriter(opts.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tSTATE\tAPPLIED\tBY\tSUMMARY")
	for _, r := range res.Phases {
		if !r.Applied {
			state := "not applied"
			if r.Unreadable {
				state = "checkpoint unreadable"
			}
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\n", r.Phase, state)
			continue
		}
		state := "applied"
		if r.Stale {
			state = "config changed since"
		}
		summary := "-"
		if r.Summary != "" {
			summary = fmt.Sprintf("as of %s: %s", r.SummaryAsOf.Local().Format("2006-01-02 15:04"), r.Summary)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Phase, state, r.Checkpoint.Time.Local().Format(time.DateTime), r.Checkpoint.Version, summary)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(opts.stdout)
	health := res.Vault
	if res.VaultError != "" || health == nil {
		return nil
	}
	state := "healthy"
	if !health.Healthy {
		state = "DEGRADED: " + strings.Join(health.Problems, "; ")
	}
	if err := printKeyAges(opts.stdout, res.Keys); err != nil {
		return err
	}
	fmt.Fprintf(opts.stdout, "Vault: %s (%d/%d voters, leader %s, failure tolerance %d)\n", state, health.Voters, health.WantVoters, health.Leader, health.FailureTolerance)
	tw = tabwriter.NewWriter(opts.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tRAFT\tHEALTHY\tSTATUS\tVERSION")
	for _, n := range health.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", n.ID, n.Address, n.Status, n.Healthy, n.Node, n.Version)
	}
	return tw.Flush()
}
