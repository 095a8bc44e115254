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
	cmd.Flags().StringSliceVar(&p.only, "only", nil, "run only these phases (comma-separated; preflight runs anyway)")
	cmd.Flags().StringSliceVar(&p.skip, "skip", nil, "skip these phases (comma-separated)")
	cmd.Flags().StringVar(&p.from, "from", "", "start at this phase")
	if apply {
		cmd.Flags().BoolVar(&p.prune, "prune", false, "delete the policies, roles, audit devices and NetworkPolicies vaultctl created, and its database connections and roles, that the config no longer lists")
		cmd.Flags().DurationVar(&p.lockTimeout, "lock-timeout", 0,
			"wait this long for another apply's lock instead of failing at once (a holder whose Lease stays unchanged for 15m by this machine's clock is taken over)")
	} else {
		cmd.Flags().BoolVar(&p.prune, "prune", false, "also list what apply --prune would delete (policies, roles, audit devices and NetworkPolicies vaultctl created, and its database connections and roles, that the config no longer lists); plan deletes nothing")
	}
}

func (p *phaseFlags) selection() phases.Selection {
	return phases.Selection{Only: p.only, Skip: p.skip, From: p.from}
}

// phaseList is the installer's phases, for help texts and errors; it needs no cluster.
func phaseList() string {
	return strings.Join((&action.Configuration{}).PhaseNames(), ", ")
}

func newPlanCmd(opts *rootOptions) *cobra.Command {
	var sel phaseFlags
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change, phase by phase, without changing anything",
		Long: `Plan runs every phase's check against the live estate and lists the differences.
It changes nothing and takes no lock. Preflight runs first, as in apply, whatever --only,
--skip or --from select. With --prune it also lists what apply --prune would delete. Exit code
3 means there are changes to apply, 0 means everything is up to date.

Phases, in order (for --only, --skip, --from):
  ` + phaseList(),
		Example: "  vaultctl plan\n  vaultctl plan --only preflight,kms\n  vaultctl plan --prune   # what apply --prune would delete\n  vaultctl plan -o json   # exit 3 when apply has work to do",
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
naming the holder. Losing the Lease while running stops the run.

Phases, in order (for --only, --skip, --from and apply phase NAME):
  ` + phaseList(),
		Example: `  vaultctl apply
  vaultctl apply --from kms
  vaultctl apply phase preflight
  vaultctl apply --lock-timeout 20m         # wait for a running (or dead) apply's lock
  vaultctl apply --non-interactive -o json > result.json`,
		Args: noArgsButSubcommands,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPhases(cmd, opts, sel, true)
		},
	}
	sel.register(cmd, true)
	cmd.AddCommand(&cobra.Command{
		Use:   "phase NAME",
		Short: "Apply a single phase (after preflight)",
		Long: `Apply one phase, after preflight, as apply --only NAME does.

Phases, in order:
  ` + phaseList(),
		Example: "  vaultctl apply phase preflight\n  vaultctl apply phase kms",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return withCode(exitUsage, fmt.Errorf("apply phase takes one phase name, got %d; phases are: %s", len(args), phaseList()))
			}
			return nil
		},
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
	Error    string           `json:"error,omitempty"` // why ok is false: config, selection, connect, lock, or the failed phase
	Warnings []string         `json:"warnings"`
}

func runPhases(cmd *cobra.Command, opts *rootOptions, flags phaseFlags, apply bool) error {
	name := commandName(cmd)
	res := runResult{Command: name, Phases: []phases.Result{}, Warnings: []string{}}
	l, err := loadConfig(cmd, opts)
	cw := configWarnings(l, err)
	res.Warnings = append(res.Warnings, warningStrings(cw)...)
	if err != nil {
		if opts.Output == "json" {
			res.Errors, res.Error = configProblems(err), err.Error()
			_ = writeJSON(opts.stdout, res)
		} else {
			printWarnings(opts.stderr, cw)
		}
		return withCode(exitUsage, err)
	}
	if opts.Output != "json" {
		printWarnings(opts.stderr, cw)
	}

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
	if out != nil {
		res.OK, res.Changes = out.OK, out.Changes
		res.Warnings = append(res.Warnings, out.Warnings...)
		if out.Phases != nil {
			res.Phases = out.Phases
		}
	}
	if err != nil {
		// A failure outside any phase (selection, connect, lock): no phase block shows it.
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
		} else if out != nil {
			printNotes(opts.stderr, out.Warnings)
		}
		return withCode(code, err)
	}
	if out.Failure != nil {
		res.Error = out.Failure.Error()
	}
	if opts.Output == "json" {
		if err := writeJSON(opts.stdout, res); err != nil {
			return err
		}
	} else {
		printNotes(opts.stderr, out.Warnings)
		rep.summary(res)
	}
	switch {
	case out.Failure != nil:
		// The failed phase's block above already says what failed and what to do: once.
		return withCode(exitFailed, nil)
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

func plural(n int, word string) string { return count(n, word, word+"s") }

// count is plural for words that do not just take an s ("1 policy", "2 policies").
func count(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func joinFacts(f []string) string { return strings.Join(f, "; ") }
