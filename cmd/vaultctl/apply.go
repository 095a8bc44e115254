package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/phases"
)

// phaseFlags are the selection flags shared by plan and apply.
type phaseFlags struct {
	only, skip []string
	from       string
	prune      bool
}

func (p *phaseFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&p.only, "only", nil, "run only these phases (comma-separated)")
	cmd.Flags().StringSliceVar(&p.skip, "skip", nil, "skip these phases (comma-separated)")
	cmd.Flags().StringVar(&p.from, "from", "", "start at this phase")
	cmd.Flags().BoolVar(&p.prune, "prune", false, "delete policies, roles and audit devices vaultctl created that the config no longer lists")
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
It changes nothing. Exit code 3 means there are changes to apply, 0 means everything is up to date.`,
		Example: "  vaultctl plan\n  vaultctl plan --only preflight,kms\n  vaultctl plan -o json   # exit 3 when apply has work to do",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPhases(cmd, opts, sel, false)
		},
	}
	sel.register(cmd)
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
the message says and run apply again: finished phases are re-observed, not redone.`,
		Example: `  vaultctl apply
  vaultctl apply --from kms
  vaultctl apply phase preflight
  vaultctl apply --non-interactive -o json > result.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPhases(cmd, opts, sel, true)
		},
	}
	sel.register(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:     "phase NAME",
		Short:   "Apply a single phase",
		Example: "  vaultctl apply phase preflight\n  vaultctl apply phase kms",
		Args:    cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return phaseNames(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPhases(cmd, opts, phaseFlags{only: args}, true)
		},
	})
	return cmd
}

func phaseNames() []string {
	var names []string
	for _, p := range phases.All(&phases.Env{Config: &config.Config{}}) {
		names = append(names, p.Name())
	}
	return names
}

// runResult is the one JSON document plan and apply print with -o json.
type runResult struct {
	Command string           `json:"command"`
	OK      bool             `json:"ok"`
	Changes int              `json:"changes"`
	Phases  []phases.Result  `json:"phases"`
	Errors  []config.Problem `json:"configErrors,omitempty"`
}

func runPhases(cmd *cobra.Command, opts *rootOptions, flags phaseFlags, apply bool) error {
	sel := flags.selection()
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
	env, err := phases.Connect(ctx, l.Config)
	if err != nil {
		return withCode(exitFailed, phases.WithHint(err))
	}
	env.Prune = flags.prune
	defer env.Close(context.WithoutCancel(ctx))
	rep := newReporter(opts, apply)
	ctx = phases.WithProgress(ctx, rep.progress)
	runner := &phases.Runner{
		Phases:   phases.All(env),
		Store:    &phases.ConfigMapStore{Client: env.Kube, Namespace: l.Vault.Namespace},
		Reporter: rep,
		Version:  vaultctlVersion(),
	}
	var results []phases.Result
	if apply {
		var unlock func()
		if unlock, err = env.Lock(ctx); err != nil {
			return withCode(exitFailed, phases.WithHint(err))
		}
		defer unlock()
		results, err = runner.Apply(ctx, sel)
	} else {
		results, err = runner.Plan(ctx, sel)
	}
	if err != nil {
		return withCode(exitUsage, err)
	}
	res := runResult{Command: name, OK: true, Phases: results}
	var failure *phases.Error
	for _, r := range results {
		res.Changes += len(r.Changes)
		if r.Status == phases.Failed {
			res.OK, failure = false, r.Error
		}
	}
	if opts.Output == "json" {
		if err := writeJSON(opts.stdout, res); err != nil {
			return err
		}
	} else {
		rep.summary(res)
	}
	switch {
	case failure != nil:
		if opts.Output == "json" {
			return withCode(exitFailed, nil)
		}
		return withCode(exitFailed, failure)
	case !apply && res.Changes > 0:
		return withCode(exitHasDiffs, nil)
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func joinFacts(f []string) string { return strings.Join(f, "; ") }
