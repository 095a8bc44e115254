package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/phases"
)

// phaseFlags are the selection flags shared by plan and apply.
type phaseFlags struct {
	only, skip  []string
	from        string
	prune       bool
	lockTimeout time.Duration
}

func (p *phaseFlags) register(cmd *cobra.Command, apply bool) {
	cmd.Flags().StringSliceVar(&p.only, "only", nil, "run only these phases (comma-separated)")
	cmd.Flags().StringSliceVar(&p.skip, "skip", nil, "skip these phases (comma-separated)")
	cmd.Flags().StringVar(&p.from, "from", "", "start at this phase")
	cmd.Flags().BoolVar(&p.prune, "prune", false, "delete policies, roles and audit devices vaultctl created that the config no longer lists")
	if apply {
		cmd.Flags().DurationVar(&p.lockTimeout, "lock-timeout", 0,
			"wait this long for another apply's lock instead of failing at once (a holder whose Lease stays unchanged for 15m by this machine's clock is taken over)")
	}
}

func (p *phaseFlags) selection() phases.Selection {
	return phases.Selection{Only: p.only, Skip: p.skip, From: p.from}
}

func newPlanCmd(opts *rootOptions) *cobra.Command {
	var sel phaseFlags
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change, phase by phase, without changing anything",
		Long: `Plan runs every phase's check against the live estate and lists the differences.
It changes nothing and takes no lock. Exit code 3 means there are changes to apply, 0 means
everything is up to date.`,
		Example: "  vaultctl plan\n  vaultctl plan --only preflight,kms\n  vaultctl plan -o json   # exit 3 when apply has work to do",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPhases(cmd, opts, sel, false)
		},
	}
	sel.register(cmd, false)
	return cmd
}

func newApplyCmd(opts *rootOptions) *cobra.Command {
	var sel phaseFlags
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Bring the estate to the config, phase by phase; safe to re-run",
		Long: `Apply checks each phase against the live estate, applies only what differs, checks again
to verify, and records a checkpoint in the ConfigMap vaultctl-checkpoints in the Vault namespace.
A second apply reports every phase "up to date" and changes nothing. After a failure, fix what
the message says and run apply again: finished phases are re-observed, not redone.

Preflight always runs first, whatever --only, --skip or --from select, and nothing is written
before it passes. Then apply takes the Lease vaultctl-apply in the Vault namespace, so two
applies never overlap; if another run holds it, apply fails at once (or waits --lock-timeout),
naming the holder. Losing the Lease while running stops the run.`,
		Example: `  vaultctl apply
  vaultctl apply --from kms
  vaultctl apply phase preflight
  vaultctl apply --lock-timeout 20m         # wait for a running (or dead) apply's lock
  vaultctl apply --non-interactive -o json > result.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPhases(cmd, opts, sel, true)
		},
	}
	sel.register(cmd, true)
	cmd.AddCommand(&cobra.Command{
		Use:     "phase NAME",
		Short:   "Apply a single phase (after preflight)",
		Example: "  vaultctl apply phase preflight\n  vaultctl apply phase kms",
		Args:    cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return (&action.Configuration{}).PhaseNames(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPhases(cmd, opts, phaseFlags{only: args}, true)
		},
	})
	return cmd
}

// runResult is the one JSON document plan and apply print with -o json.
type runResult struct {
	Command  string           `json:"command"`
	OK       bool             `json:"ok"`
	Changes  int              `json:"changes"`
	Phases   []phases.Result  `json:"phases"`
	Errors   []config.Problem `json:"configErrors,omitempty"`
	Error    string           `json:"error,omitempty"` // a failure outside any phase (selection, connect, lock)
	Warnings []string         `json:"warnings,omitempty"`
}

func runPhases(cmd *cobra.Command, opts *rootOptions, flags phaseFlags, apply bool) error {
	name := map[bool]string{true: "apply", false: "plan"}[apply]
	l, err := loadConfig(cmd, opts)
	if err != nil {
		if opts.Output == "json" {
			var ve *config.ValidationError
			res := runResult{Command: name}
			if errors.As(err, &ve) {
				res.Errors = ve.Problems
			} else {
				res.Errors = []config.Problem{{Message: err.Error()}}
			}
			_ = writeJSON(opts.stdout, res)
			return withCode(exitUsage, nil)
		}
		return withCode(exitUsage, err)
	}
	printWarnings(opts.stderr, l.Warnings)

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := newReporter(opts, apply)
	ac := &action.Configuration{
		Config:   l.Config,
		Version:  vaultctlVersion(),
		Reporter: rep,
		Progress: rep.progress,
		Debug:    newDebugLog(opts),
	}
	var out *action.RunResult
	if apply {
		out, err = action.Apply(ctx, ac, action.ApplyOptions{Selection: flags.selection(), Prune: flags.prune, LockTimeout: flags.lockTimeout})
	} else {
		out, err = action.Plan(ctx, ac, action.PlanOptions{Selection: flags.selection(), Prune: flags.prune})
	}
	res := runResult{Command: name, Phases: []phases.Result{}}
	if out != nil {
		res.OK, res.Changes, res.Warnings = out.OK, out.Changes, out.Warnings
		if out.Phases != nil {
			res.Phases = out.Phases
		}
	}
	if err != nil {
		code := exitFailed
		if errors.Is(err, action.ErrInvalidSelection) {
			code = exitUsage
		}
		err = phases.WithHint(err)
		if opts.Output == "json" {
			res.OK, res.Error = false, err.Error()
			if werr := writeJSON(opts.stdout, res); werr != nil {
				return werr
			}
		} else {
			printNotes(opts.stderr, res.Warnings)
		}
		return withCode(code, err)
	}
	if opts.Output == "json" {
		if err := writeJSON(opts.stdout, res); err != nil {
			return err
		}
	} else {
		printNotes(opts.stderr, res.Warnings)
		rep.summary(res)
	}
	switch {
	case out.Failure != nil:
		if opts.Output == "json" {
			return withCode(exitFailed, nil)
		}
		return withCode(exitFailed, out.Failure)
	case !apply && res.Changes > 0:
		return withCode(exitHasDiffs, nil)
	}
	return nil
}

// printNotes shows what went wrong without changing the outcome (a lock not released).
func printNotes(w io.Writer, notes []string) {
	for _, n := range notes {
		fmt.Fprintln(w, "warning:", n)
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func joinFacts(f []string) string { return strings.Join(f, "; ") }
