package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

func newUpgradeCmd(opts *rootOptions) *cobra.Command {
	var (
		plan        bool
		lockTimeout time.Duration
		waitTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Apply a changed Vault server config or image and restart the pods, without an outage",
		Long: `Upgrade brings the in-cluster Vault to the config and restarts the server pods whose template
changed (the StatefulSet is OnDelete, so apply only reports "restart pending"):

  1. a Raft snapshot into vault.snapshots.dir (a 0600 file and its .json record);
  2. the server phase (Helm upgrade of the chart), when the config changed it;
  3. each outdated standby, one at a time: deleted, then waited for until it is back, unsealed,
     a Raft voter and healthy by autopilot;
  4. the leader steps down; upgrade waits for a new leader and for the active Service's label
     to move to it;
  5. the old leader is restarted and waited for like a standby.

Upgrade holds the apply lock, starts only from a healthy cluster, and stops at the first
problem with the state and the next command; running it again resumes (only pods still on the
old template are restarted). A second run does nothing. --plan shows the order and changes
nothing (exit 3 when there is work).`,
		Example: "  vaultctl upgrade --plan\n  vaultctl upgrade\n  vaultctl upgrade -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ac, _, warnings, err := commandConfiguration(cmd, opts)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if opts.Output != "json" {
				rep := newReporter(opts, true)
				ac.Reporter, ac.Progress = rep, func(line string) { fmt.Fprintf(opts.stderr, "    ... %s\n", line) }
			}
			out, err := action.Upgrade(ctx, ac, action.UpgradeOptions{Plan: plan, LockTimeout: lockTimeout, WaitTimeout: waitTimeout})
			if out != nil {
				warnings = append(warnings, out.Warnings...)
			}
			if opts.Output == "json" {
				doc := map[string]any{"command": "upgrade", "ok": err == nil, "warnings": warnings}
				if out != nil {
					doc["result"] = out
				}
				if err != nil {
					doc["error"] = phases.WithHint(err).Error()
				}
				if werr := writeJSON(opts.stdout, doc); werr != nil {
					return werr
				}
			} else {
				printNotes(opts.stderr, warnings)
				if out != nil {
					printUpgrade(opts.stdout, out)
				}
			}
			if err != nil {
				var stopped *lifecycle.StepError
				if errors.As(err, &stopped) || (out != nil && out.Failure != nil) {
					// printUpgrade said what failed, the state and the next command.
					if opts.Output == "json" {
						return withCode(exitFailed, nil)
					}
					return withCode(exitFailed, errors.New("upgrade stopped"))
				}
				if opts.Output == "json" {
					return withCode(exitFailed, nil)
				}
				return withWarnings(exitFailed, phases.WithHint(err), warnings)
			}
			if plan && !out.NothingToDo {
				return withCode(exitHasDiffs, nil)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&plan, "plan", false, "show what upgrade would do, in order, and change nothing (exit 3 when there is work)")
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", 0, "wait this long for another run's apply lock instead of failing at once")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 5*time.Minute, "how long each wait (a pod rejoining, a new leader) may take before upgrade stops")
	return cmd
}

func printUpgrade(w io.Writer, out *action.UpgradeResult) {
	if out.NothingToDo {
		fmt.Fprintln(w, "Nothing to do: the server chart is current and every Vault pod runs the StatefulSet's template.")
		printUpgradeHealth(w, out.Health)
		return
	}
	if out.Plan {
		fmt.Fprintln(w, "Upgrade plan (nothing was changed):")
		fmt.Fprintln(w, "  1. take a Raft snapshot into vault.snapshots.dir")
		n := 2
		for _, c := range out.ChartChanges {
			fmt.Fprintf(w, "  %d. server: %s\n", n, c)
			n++
		}
		if len(out.ChartChanges) > 0 && len(out.Steps) > 0 {
			fmt.Fprintln(w, "     (the restarts below assume the new chart changes every pod's template; upgrade restarts only the pods it does change)")
		}
		for _, s := range out.Steps {
			fmt.Fprintf(w, "  %d. %s\n", n, s.Step)
			n++
		}
		return
	}
	if out.SnapshotPath != "" {
		fmt.Fprintf(w, "snapshot: %s (Raft index %d, %d bytes)\n", out.SnapshotPath, out.Snapshot.Index, out.Snapshot.Size)
	}
	if out.Server != nil {
		fmt.Fprintf(w, "server: %s\n", out.Server.Status)
	}
	for _, s := range out.Steps {
		line := fmt.Sprintf("%-8s %s", s.Status, s.Step)
		if s.Status != lifecycle.StepNotRun {
			line += fmt.Sprintf(" [%s]", s.Duration.Round(100*time.Millisecond))
		}
		if s.Detail != "" {
			line += ": " + s.Detail
		}
		fmt.Fprintln(w, line)
	}
	if f := out.Failure; f != nil {
		fmt.Fprintf(w, "\nError: %s\n  state: %s\n  next:  %s\n", f.Error(), f.State, f.Next)
	}
	printUpgradeHealth(w, out.Health)
}

func printUpgradeHealth(w io.Writer, h *phases.ClusterHealth) {
	if h == nil {
		return
	}
	state := "healthy"
	if !h.Healthy {
		state = "DEGRADED: " + joinFacts(h.Problems)
	}
	fmt.Fprintf(w, "Vault: %s (%d/%d voters, leader %s)\n", state, h.Voters, h.WantVoters, h.Leader)
}
