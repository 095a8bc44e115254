package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/phases"
	"github.com/vaultctl/vaultctl/waves"
)

const migrateWavesLong = `The migration plan is migration.waves in the config: one wave a week, each with gates that
must hold before it starts. Its state is observed from the estate every time, never kept by
hand: each namespace's migrate journal and plan, the vaultctl.io/migrated label, the admission
policy, the injector, and Vault. A ConfigMap vaultctl-migration-waves in the Vault namespace
records when each wave finished.

A wave with namespaces (or workloads, NS/KIND/NAME) runs migrate namespace NS --yes on each.
A wave without namespaces whose gates name admission-policy is the CI guard wave: it installs
the admission policy (manifests/admission/deny-raw-secrets.yaml) with its binding, and labels
the namespaces of the waves before it vaultctl.io/migrated=true, so the API server denies new
raw Secrets there; later waves label their namespaces as they finish. Any other wave without
namespaces is complete when its gates hold.

Gates:
  injector-healthy        the injector Deployment available, its webhook's caBundle valid,
                          failurePolicy as configured
  previous-wave-complete  the wave before is complete
  check-passing           vaultctl check's rules pass over the live objects of the namespaces
                          earlier waves migrated, and over --manifests DIR
  admission-policy        the policy and binding installed, completed waves' namespaces labelled
  healthy-for: DURATION   the previous wave's workloads verified that long ago, unchanged, Ready
  dynamic-db-credentials  every databases[] connection and role in Vault, and a Kubernetes-auth
                          role allowed to read MOUNT/creds/ROLE`

type wavesFlags struct {
	plan, yes      bool
	manifests      string
	rolloutTimeout time.Duration
	lockTimeout    time.Duration
}

// newMigrateWavesCmds are migrate status, migrate next and migrate wave NAME.
func newMigrateWavesCmds(opts *rootOptions) []*cobra.Command {
	var sf wavesFlags
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the migration waves: each namespace's state and each gate with its evidence",
		Long:  migrateWavesLong,
		Example: `  vaultctl migrate status
  vaultctl migrate status -o json                # one document, for dashboards
  vaultctl migrate status --manifests k8s/       # check-passing also checks the repository`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runMigrateStatus(cmd, opts, sf) },
	}
	status.Flags().StringVar(&sf.manifests, "manifests", "", "a directory of manifests the check-passing gate also checks")

	var nf wavesFlags
	next := &cobra.Command{
		Use:   "next",
		Short: "Run the first incomplete migration wave, if its gates pass",
		Long: migrateWavesLong + `

Exit codes:
  0  the wave ran and is complete, or every wave is complete
  1  a gate fails (each is listed with what to do), or the wave failed
  2  bad usage, invalid config, or no --yes without a terminal
  3  --plan: the wave would run`,
		Example: `  vaultctl migrate next --plan
  vaultctl migrate next --yes --manifests k8s/   # in CI`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runMigrateWave(cmd, opts, "", nf) },
	}
	var wf wavesFlags
	wave := &cobra.Command{
		Use:   "wave NAME",
		Short: "Run one migration wave by name, if its gates pass",
		Long:  "Runs the named wave of migration.waves, as migrate next runs the first incomplete one; running a complete wave again changes nothing.\n\n" + migrateWavesLong,
		Example: `  vaultctl migrate wave ci-guard --plan
  vaultctl migrate wave staging --yes`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return withCode(exitUsage, fmt.Errorf("migrate wave takes one wave name, got %d arguments", len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runMigrateWave(cmd, opts, args[0], wf) },
	}
	for _, c := range []struct {
		cmd *cobra.Command
		f   *wavesFlags
	}{{next, &nf}, {wave, &wf}} {
		fl := c.cmd.Flags()
		fl.BoolVar(&c.f.plan, "plan", false, "only say what the wave would do, and which gates block it; change nothing (exit 3 when it would run)")
		fl.BoolVar(&c.f.yes, "yes", false, "do not ask for confirmation (required without a terminal, e.g. in CI)")
		fl.StringVar(&c.f.manifests, "manifests", "", "a directory of manifests the check-passing gate also checks")
		fl.DurationVar(&c.f.rolloutTimeout, "rollout-timeout", 5*time.Minute, "how long each workload may take to roll out before it is rolled back by itself")
		fl.DurationVar(&c.f.lockTimeout, "lock-timeout", 0, "wait this long for another run's lock instead of failing at once")
	}
	return []*cobra.Command{status, next, wave}
}

// migrateStatusResult is the one JSON document migrate status prints.
type migrateStatusResult struct {
	Command      string             `json:"command"`
	OK           bool               `json:"ok"`
	Waves        []waves.WaveStatus `json:"waves"`
	Next         string             `json:"next"`
	ConfigErrors []config.Problem   `json:"configErrors,omitempty"`
	Error        string             `json:"error,omitempty"`
	Warnings     []string           `json:"warnings"`
}

func runMigrateStatus(cmd *cobra.Command, opts *rootOptions, f wavesFlags) error {
	res := migrateStatusResult{Command: commandName(cmd), Waves: []waves.WaveStatus{}, Warnings: []string{}}
	fail := func(code int, err error) error {
		if opts.Output == "json" {
			res.OK, res.Error = false, err.Error()
			if werr := writeJSON(opts.stdout, res); werr != nil {
				return werr
			}
		}
		return withCode(code, err)
	}
	l, err := loadWavesConfig(cmd, opts, &res.Warnings, &res.ConfigErrors)
	if err != nil {
		return fail(exitUsage, err)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ac := actionConfig(opts, l)
	out, err := action.WavesStatus(ctx, ac, action.WavesOptions{Manifests: f.manifests})
	if out != nil {
		res.Warnings = append(res.Warnings, out.Warnings...)
		if opts.Output != "json" {
			printNotes(opts.stderr, out.Warnings)
		}
	}
	if err != nil {
		return fail(exitFailed, phases.WithHint(err))
	}
	res.OK, res.Waves, res.Next = true, out.Waves, out.Next
	if opts.Output == "json" {
		return writeJSON(opts.stdout, res)
	}
	return printWavesStatus(opts.stdout, out.Status)
}

// printWavesStatus is the table of waves, then each wave's namespaces and gates.
func printWavesStatus(w io.Writer, st *waves.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WEEK\tWAVE\tSCOPE\tSTATE\tGATES")
	for _, ws := range st.Waves {
		ok := 0
		for _, g := range ws.Gates {
			if g.OK {
				ok++
			}
		}
		state := "incomplete"
		if ws.Complete {
			state = "complete"
			if ws.Finished != nil {
				state += " " + ws.Finished.Format("2006-01-02")
			}
		} else if ws.Name == st.Next {
			state = "next"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d/%d pass\n", ws.Week, ws.Name, waveScope(ws), state, ok, len(ws.Gates))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, ws := range st.Waves {
		fmt.Fprintf(w, "\nweek %d %s (%s)\n", ws.Week, ws.Name, ws.Kind)
		for _, s := range ws.States {
			label := ""
			if s.Labelled {
				label = ", labelled"
			}
			fmt.Fprintf(w, "  namespace %s: %s%s%s\n", s.Namespace, s.State, label, suffix(s.Detail))
		}
		for _, g := range ws.Gates {
			mark := "fail"
			switch {
			case g.OK:
				mark = "pass"
			case g.Outcome:
				mark = "todo" // the wave establishes it
			}
			fmt.Fprintf(w, "  gate %s: %s: %s\n", g.Gate, mark, g.Evidence)
			if !g.OK && g.Fix != "" {
				fmt.Fprintf(w, "    fix: %s\n", g.Fix)
			}
		}
		if !ws.Complete && ws.Detail != "" {
			fmt.Fprintf(w, "  incomplete: %s\n", ws.Detail)
		}
	}
	if st.Next == "" {
		_, err := fmt.Fprintln(w, "\nEvery wave is complete.")
		return err
	}
	_, err := fmt.Fprintf(w, "\nNext: %s (vaultctl migrate next --plan shows what it does)\n", st.Next)
	return err
}

func waveScope(ws waves.WaveStatus) string {
	switch {
	case len(ws.Workloads) > 0:
		return strings.Join(ws.Workloads, ",")
	case len(ws.Namespaces) > 0:
		return strings.Join(ws.Namespaces, ",")
	}
	return "-"
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// migrateWaveResult is the one JSON document migrate next and migrate wave print.
type migrateWaveResult struct {
	Command string `json:"command"`
	OK      bool   `json:"ok"`
	*waves.RunResult
	ConfigErrors []config.Problem `json:"configErrors,omitempty"`
	Error        string           `json:"error,omitempty"`
	Warnings     []string         `json:"warnings"`
}

func runMigrateWave(cmd *cobra.Command, opts *rootOptions, name string, f wavesFlags) error {
	res := migrateWaveResult{Command: commandName(cmd), Warnings: []string{}}
	fail := func(code int, err error) error {
		if opts.Output == "json" {
			res.OK, res.Error = false, err.Error()
			if werr := writeJSON(opts.stdout, res); werr != nil {
				return werr
			}
		}
		return withCode(code, err)
	}
	interactive := isTerminal(opts.stdin) && opts.Output != "json"
	if !f.plan && !f.yes && !interactive {
		what := "the next wave"
		if name != "" {
			what = "wave " + name
		}
		return fail(exitUsage, fmt.Errorf("running %s changes the cluster and Vault: pass --yes to run it without a terminal (see the plan first with --plan)", what))
	}
	l, err := loadWavesConfig(cmd, opts, &res.Warnings, &res.ConfigErrors)
	if err != nil {
		return fail(exitUsage, err)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ac := actionConfig(opts, l)
	if opts.Output != "json" {
		ac.Progress = func(line string) { fmt.Fprintln(opts.stderr, line) }
	}
	wo := action.WavesOptions{Manifests: f.manifests, Wave: name, Plan: true, RolloutTimeout: f.rolloutTimeout, LockWait: f.lockTimeout}
	// The plan first, always: it is what --plan prints and what a terminal user confirms.
	plan, err := action.WavesRun(ctx, ac, wo)
	if plan != nil {
		res.RunResult = plan.RunResult
		res.Warnings = append(res.Warnings, plan.Warnings...)
	}
	if err != nil {
		code := exitFailed
		if errors.Is(err, waves.ErrUnknownWave) {
			code = exitUsage
		}
		return fail(code, phases.WithHint(err))
	}
	rr := plan.RunResult
	blocked := len(rr.Blocked) > 0
	if f.plan || blocked || rr.Wave == "" {
		res.OK = !blocked
		if blocked {
			res.Error = fmt.Sprintf("wave %s cannot start: failing gates: %s", rr.Wave, blockedNames(rr.Blocked))
		}
		if opts.Output == "json" {
			if err := writeJSON(opts.stdout, res); err != nil {
				return err
			}
		} else {
			printWaveRun(opts.stdout, rr)
		}
		switch {
		case blocked:
			return withCode(exitFailed, nil)
		case f.plan && rr.Wave != "":
			return withCode(exitHasDiffs, nil)
		}
		return nil
	}
	if !f.yes {
		printWaveRun(opts.stdout, rr)
		if !confirm(opts, fmt.Sprintf("Run wave %s as planned? [y/N] ", rr.Wave)) {
			fmt.Fprintln(opts.stdout, "Not confirmed: nothing was changed.")
			return nil
		}
	}
	// Run the wave the plan showed, even if another became first meanwhile.
	wo.Plan, wo.Wave = false, rr.Wave
	out, err := action.WavesRun(ctx, ac, wo)
	if out != nil {
		res.RunResult = out.RunResult
		res.Warnings = append(res.Warnings, out.Warnings...)
		if opts.Output != "json" {
			printNotes(opts.stderr, out.Warnings)
		}
	}
	if err != nil {
		if opts.Output != "json" && out != nil && out.RunResult != nil {
			printWaveRun(opts.stdout, out.RunResult)
		}
		return fail(exitFailed, phases.WithHint(err))
	}
	res.OK = true
	if opts.Output == "json" {
		return writeJSON(opts.stdout, res)
	}
	printWaveRun(opts.stdout, out.RunResult)
	return nil
}

func confirm(opts *rootOptions, question string) bool {
	fmt.Fprint(opts.stdout, question)
	var answer string
	fmt.Fscanln(opts.stdin, &answer)
	a := strings.ToLower(strings.TrimSpace(answer))
	return a == "y" || a == "yes"
}

// printWaveRun says which wave, what blocks it or what it does (did), and where it stands.
func printWaveRun(w io.Writer, rr *waves.RunResult) {
	if rr.Wave == "" {
		fmt.Fprintln(w, "Every wave is complete: nothing to run.")
		return
	}
	if len(rr.Blocked) > 0 {
		fmt.Fprintf(w, "Wave %s cannot start: %s failing.\n", rr.Wave, plural(len(rr.Blocked), "gate"))
		for _, g := range rr.Blocked {
			fmt.Fprintf(w, "  gate %s: %s\n", g.Gate, g.Evidence)
			if g.Fix != "" {
				fmt.Fprintf(w, "    fix: %s\n", g.Fix)
			}
		}
		return
	}
	verb := "Wave %s will:\n"
	if !rr.Planned {
		verb = "Wave %s:\n"
	}
	fmt.Fprintf(w, verb, rr.Wave)
	for _, s := range rr.Steps {
		done := ""
		if !rr.Planned {
			done = " (unchanged)"
			if s.Done != "" {
				done = " (" + s.Done + ")"
			}
		}
		fmt.Fprintf(w, "  - %s%s\n", s.What, done)
	}
	switch {
	case rr.Planned:
		fmt.Fprintln(w, "This is a plan: nothing was changed.")
	case rr.After != nil && rr.After.Complete:
		fmt.Fprintf(w, "Wave %s is complete.\n", rr.Wave)
	}
}

func blockedNames(gs []waves.GateResult) string {
	names := make([]string, 0, len(gs))
	for _, g := range gs {
		names = append(names, g.Gate)
	}
	return strings.Join(names, ", ")
}

// loadWavesConfig loads the config for the wave commands, which need migration.waves; its
// warnings and problems go into the command's JSON document.
func loadWavesConfig(cmd *cobra.Command, opts *rootOptions, warnings *[]string, problems *[]config.Problem) (*config.Loaded, error) {
	l, ws, err := loadConfigWarned(cmd, opts)
	*warnings = append(*warnings, ws...)
	if err != nil {
		*problems = configProblems(err)
		return nil, err
	}
	if len(l.Config.Migration.Waves) == 0 {
		return nil, errors.New("the config has no migration.waves: add the plan (see config.example.yaml)")
	}
	return l, nil
}
