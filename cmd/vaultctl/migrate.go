package main

import (
	"bufio"
	"context"
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
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/manifests"
	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/phases"
)

const migrateNamespaceLong = `Migrate moves a namespace off raw Kubernetes Secrets: each Secret a workload reads is copied
into Vault KV, and each workload is switched to read it through the Vault Agent Injector, with
a ServiceAccount, a policy and a Kubernetes-auth role of its own. --plan shows what that does,
Secret by Secret and workload by workload, and changes nothing; it needs only read access to
the namespace through the Kubernetes API (not Vault).

Migrated: every Secret workloads read through env, envFrom, Secret volumes and projected
volumes, and Secrets no workload reads (kept safe in KV, marked unused). Each goes to the KV
path migration.kvPath gives (default {mount}/{namespace}/{secret} on the first kv mount), one
KV key per Secret key; a value that is not UTF-8 is stored base64 and decoded by the template.

Kept as Kubernetes Secrets, each with its reason in the plan, are the ones the cluster itself
reads: image pull Secrets, TLS Secrets of an Ingress or Gateway, ServiceAccount tokens, Helm
release records, bootstrap tokens, Secrets pod volume plugins mount, and Secrets a controller
owns (an ownerReference, cert-manager, External Secrets, Sealed Secrets, VSO).

Workloads (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, bare Pods) that read a
migrated Secret are "migrate" when the agent can give every container exactly what it saw: each
file with its path and mode, and env variables through a file the container sources before
exec'ing its original command and args. A container that sets no command has an entrypoint the
pod spec does not show: give it with --entrypoint or migration.entrypoints, or the workload is
"manual", with the reason. A workload Argo CD, Flux or Helm manages is "manual" too: a live
patch would be reverted by its next sync, so the plan lists the changes to commit instead.
Workloads that read no migrated Secret are "skip".

--entrypoint KIND/NAME:CONTAINER=ARGV gives a container's argv as a JSON list, as
docker inspect -f '{{json .Config.Entrypoint}}' IMAGE prints it; add the image's CMD when the
container sets no args (its args are appended). It overrides migration.entrypoints.

Without --plan the plan is shown and, in a terminal, confirmed (--yes skips the question;
in CI, where there is no terminal, --yes is required). Then, under the namespace's lock
(Lease vaultctl-migrate-NS in the Vault namespace):
  1. every migrated Secret is backed up in Vault (MOUNT/vaultctl/backup/NS/...), copied to KV
     with cas=0 and read back; an entry with other values is refused unless --overwrite;
  2. per workload: its pod template is backed up, its ServiceAccount, policy and role are
     written, and the proof runs: a TokenRequest token logs in with the role, reads every value
     back and sees a sibling path denied. A failed proof stops that workload untouched;
  3. the workload is patched (field manager vaultctl-migrate) and its rollout followed; one that
     does not become Ready is rolled back by itself, with the reason;
  4. with --prune, a raw Secret is deleted only when every reader is migrated and verified and
     its KV copy still equals it; then the namespace is labelled vaultctl.io/migrated=true,
     which the admission policy honours.
Every step is recorded in the ConfigMap vaultctl-migrate-journal (names, versions, hashes;
never a value): a run killed anywhere is finished by the next one, and a second run changes
nothing. --rollback restores every Secret byte for byte (recreating pruned ones) and every
workload's original template, and removes the label; --purge also deletes what migrate created
(KV entries, backups, policies, roles, ServiceAccounts, the journal).

Exit codes:
  0  nothing to do, or the run succeeded
  1  error, or a workload failed (its proof or rollout; the report says why)
  2  bad usage, invalid config, or no --yes without a terminal
  3  --plan found work to do`

// migrateFlags are migrate namespace's flags.
type migrateFlags struct {
	plan        bool
	workloads   []string
	entrypoints []string

	yes, prune, rollback, purge, overwrite, patchGitOps, writeConfig bool
	keepServiceAccount, copyRoleBindings                             bool
	gitopsOut                                                        string
	rolloutTimeout, lockTimeout                                      time.Duration
}

func newMigrateCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Move workloads off raw Kubernetes Secrets onto Vault KV and the Agent Injector",
	}
	var f migrateFlags
	ns := &cobra.Command{
		Use:   "namespace NS",
		Short: "Plan moving one namespace's Secrets into Vault KV and its workloads onto the Vault Agent",
		Long:  migrateNamespaceLong,
		Example: `  vaultctl migrate namespace shop --plan
  vaultctl migrate namespace shop --plan --workload Deployment/web --workload sts/postgres
  vaultctl migrate namespace shop --plan --entrypoint 'Deployment/web:app=["/usr/local/bin/web","serve"]'
  vaultctl migrate namespace shop --plan -o json   # exit 3 while there is work to do`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return withCode(exitUsage, fmt.Errorf("migrate namespace takes one namespace, got %d arguments", len(args)))
			}
			if problems := validation.IsDNS1123Label(args[0]); len(problems) > 0 {
				return withCode(exitUsage, fmt.Errorf("%q is not a namespace name: %s", args[0], strings.Join(problems, "; ")))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMigrateNamespace(cmd, opts, args[0], f)
		},
	}
	fl := ns.Flags()
	fl.BoolVar(&f.plan, "plan", false, "only observe: print the plan and change nothing (exit 3 when there is work, 0 when the namespace is migrated)")
	fl.StringSliceVar(&f.workloads, "workload", nil, "limit the plan to these workloads, KIND/NAME (Deployment/web, sts/db), and the Secrets they read; repeatable")
	// StringArray, not StringSlice: the JSON argv has commas.
	fl.StringArrayVar(&f.entrypoints, "entrypoint", nil, "the argv of a container that sets no command, "+migrate.EntrypointSyntax+" (a JSON list); repeatable; overrides migration.entrypoints")
	fl.BoolVar(&f.keepServiceAccount, "keep-service-account", false, "keep workloads that run as ServiceAccount default on it (their roles are bound to default, so every pod of the namespace that runs as default can read their Secrets); without it each gets a ServiceAccount of its own")
	fl.BoolVar(&f.copyRoleBindings, "copy-role-bindings", false, "copy the RoleBindings that grant ServiceAccount default something to each new ServiceAccount (the plan lists them)")
	fl.BoolVar(&f.yes, "yes", false, "do not ask for confirmation (required without a terminal, e.g. in CI)")
	fl.BoolVar(&f.prune, "prune", false, "after migrating, delete the raw Secrets whose every reader is migrated and verified, then label the namespace vaultctl.io/migrated=true")
	fl.BoolVar(&f.rollback, "rollback", false, "restore every Secret and workload from the backups and remove the label")
	fl.BoolVar(&f.purge, "purge", false, "with --rollback: also delete the KV entries, backups, policies, roles and ServiceAccounts migrate created")
	fl.BoolVar(&f.overwrite, "overwrite", false, "replace a KV entry that holds different values than the Secret")
	fl.StringVar(&f.gitopsOut, "gitops-out", "", "write the patches of GitOps-managed workloads (Argo CD, Flux, Helm) into this directory, to commit")
	fl.BoolVar(&f.patchGitOps, "patch-gitops", false, "patch GitOps-managed workloads live anyway (their controller may revert it)")
	fl.BoolVar(&f.writeConfig, "write-config", false, "print the migrated workloads' policies and roles as config entries and change nothing")
	fl.DurationVar(&f.rolloutTimeout, "rollout-timeout", 5*time.Minute, "how long a workload may take to roll out before it is rolled back by itself")
	fl.DurationVar(&f.lockTimeout, "lock-timeout", 0, "wait this long for another run's lock on the namespace instead of failing at once")
	cmd.AddCommand(ns)
	cmd.AddCommand(newMigrateWavesCmds(opts)...)
	cmd.AddCommand(newMigrateDatabaseCmd(opts))
	return cmd
}

// migratePlanResult is the one JSON document migrate namespace --plan prints: the envelope
// every command has, and the plan (names only: no value ever enters a plan).
type migratePlanResult struct {
	Command      string                 `json:"command"`
	OK           bool                   `json:"ok"`
	Namespace    string                 `json:"namespace"`
	HasWork      bool                   `json:"hasWork"`
	Secrets      []migrate.SecretPlan   `json:"secrets"`
	Workloads    []migrate.WorkloadPlan `json:"workloads"`
	Problems     []string               `json:"problems"`
	ConfigErrors []config.Problem       `json:"configErrors,omitempty"`
	Error        string                 `json:"error,omitempty"`
	Warnings     []string               `json:"warnings"`
}

func runMigrateNamespace(cmd *cobra.Command, opts *rootOptions, namespace string, f migrateFlags) error {
	res := migratePlanResult{Command: commandName(cmd), Namespace: namespace, Secrets: []migrate.SecretPlan{}, Workloads: []migrate.WorkloadPlan{}, Problems: []string{}, Warnings: []string{}}
	fail := func(code int, err error) error {
		if opts.Output == "json" {
			res.OK, res.Error = false, err.Error()
			if werr := writeJSON(opts.stdout, res); werr != nil {
				return werr
			}
		}
		return withCode(code, err)
	}
	if f.purge && !f.rollback {
		return fail(exitUsage, errors.New("--purge goes with --rollback"))
	}
	if f.rollback && (f.plan || f.prune) {
		return fail(exitUsage, errors.New("--rollback cannot be combined with --plan or --prune"))
	}
	if !f.plan && !f.writeConfig && !f.yes && !(isTerminal(opts.stdin) && opts.Output != "json") {
		return fail(exitUsage, fmt.Errorf("migrate namespace %s changes the cluster and Vault: pass --yes to run it without a terminal (see the plan first with --plan)", namespace))
	}
	entrypoints, err := parseEntrypoints(f.entrypoints)
	if err != nil {
		return fail(exitUsage, err)
	}
	for _, w := range f.workloads {
		if _, err := migrate.ParseWorkload(w); err != nil {
			return fail(exitUsage, err)
		}
	}

	l, warnings, err := loadConfigWarned(cmd, opts)
	res.Warnings = append(res.Warnings, warnings...)
	if err != nil {
		res.ConfigErrors = configProblems(err)
		return fail(exitUsage, err)
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ac := actionConfig(opts, l)
	if !f.plan && !f.writeConfig {
		return runMigrateApply(ctx, cmd, opts, ac, l.Config, namespace, f, entrypoints, res)
	}
	out, err := action.MigratePlan(ctx, ac, action.MigratePlanOptions{Namespace: namespace, Workloads: f.workloads, Entrypoints: entrypoints, KeepServiceAccount: f.keepServiceAccount, CopyRoleBindings: f.copyRoleBindings})
	if out != nil {
		res.Warnings = append(res.Warnings, out.Warnings...)
		if opts.Output != "json" {
			printNotes(opts.stderr, out.Warnings)
		}
	}
	if err != nil {
		return fail(exitFailed, phases.WithHint(err))
	}
	plan := out.Plan
	if f.writeConfig {
		b, err := migrate.WriteConfig(plan, l.Config.Migration.Defaults)
		if err != nil {
			return fail(exitFailed, err)
		}
		_, err = opts.stdout.Write(b)
		return err
	}
	res.OK, res.HasWork = true, plan.HasWork()
	res.Secrets, res.Workloads, res.Problems = plan.Secrets, plan.Workloads, plan.Problems
	if opts.Output == "json" {
		if err := writeJSON(opts.stdout, res); err != nil {
			return err
		}
	} else if err := printMigratePlan(opts.stdout, plan); err != nil {
		return err
	}
	if res.HasWork {
		return withCode(exitHasDiffs, nil)
	}
	return nil
}

// printMigratePlan is the text form of the plan: a table of Secrets, a table of workloads, then
// each workload's changes, warnings and manual reasons, and the problems.
func printMigratePlan(w io.Writer, p *migrate.Plan) error {
	secretsBy, workloadsBy := map[migrate.SecretAction]int{}, map[migrate.WorkloadAction]int{}
	for _, s := range p.Secrets {
		secretsBy[s.Action]++
	}
	for _, wl := range p.Workloads {
		workloadsBy[wl.Action]++
	}
	fmt.Fprintf(w, "Namespace %s: %s (%d to migrate, %d kept), %s (%d to migrate, %d manual, %d to skip)\n\n",
		p.Namespace, plural(len(p.Secrets), "Secret"), secretsBy[migrate.SecretMigrate], secretsBy[migrate.SecretKeep],
		plural(len(p.Workloads), "workload"), workloadsBy[migrate.WorkloadMigrate], workloadsBy[migrate.WorkloadManual], workloadsBy[migrate.WorkloadSkip])

	if len(p.Secrets) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SECRET\tACTION\tKV PATH\tKEYS\tCONSUMERS\tREASON")
		for _, s := range p.Secrets {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.Action, dash(s.KVPath), len(s.Keys), dash(strings.Join(s.Consumers, ", ")), s.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}

	if len(p.Workloads) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKLOAD\tACTION\tSERVICE ACCOUNT\tROLE\tCHANGES\tWARNINGS")
		for _, wl := range p.Workloads {
			sa := wl.ServiceAccount
			if wl.CreateServiceAccount {
				sa += " (new)"
			}
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%d\t%d\n", wl.Kind, wl.Name, wl.Action, dash(sa), dash(wl.Role), len(wl.Changes), len(wl.Warnings))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, wl := range p.Workloads {
			fmt.Fprintf(w, "\n%s/%s (%s)\n", wl.Kind, wl.Name, wl.Action)
			for _, m := range wl.Manual {
				fmt.Fprintln(w, "  manual:  ", m)
			}
			for _, c := range wl.Changes {
				fmt.Fprintln(w, "  change:  ", c)
			}
			for _, x := range wl.Warnings {
				fmt.Fprintln(w, "  warning: ", x)
			}
		}
		fmt.Fprintln(w)
	}

	for _, pr := range p.Problems {
		fmt.Fprintln(w, "problem:", pr)
	}
	if !p.HasWork() {
		_, err := fmt.Fprintf(w, "Nothing to do: no Secret in namespace %s is left to copy into KV and no workload to switch.\n", p.Namespace)
		return err
	}
	_, err := fmt.Fprintln(w, "This is a plan: nothing was changed.")
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// migrateRunResult is the one JSON document a migrate run prints.
type migrateRunResult struct {
	migratePlanResult
	Report   *migrate.Report `json:"report,omitempty"`
	GitOps   []string        `json:"gitopsFiles,omitempty"`
	Declined bool            `json:"declined,omitempty"`
}

func runMigrateApply(ctx context.Context, cmd *cobra.Command, opts *rootOptions, ac *action.Configuration, cfg *config.Config, namespace string, f migrateFlags, entrypoints []migrate.Entrypoint, base migratePlanResult) error {
	res := migrateRunResult{migratePlanResult: base}
	fail := func(code int, err error) error {
		if opts.Output == "json" {
			res.OK, res.Error = false, err.Error()
			if werr := writeJSON(opts.stdout, res); werr != nil {
				return werr
			}
		}
		return withCode(code, err)
	}
	if opts.Output != "json" {
		ac.Progress = func(line string) { fmt.Fprintln(opts.stderr, line) }
	}
	mo := action.MigrateOptions{
		MigratePlanOptions: action.MigratePlanOptions{Namespace: namespace, Workloads: f.workloads, Entrypoints: entrypoints, KeepServiceAccount: f.keepServiceAccount, CopyRoleBindings: f.copyRoleBindings},
		Prune:              f.prune, Rollback: f.rollback, Purge: f.purge, Overwrite: f.overwrite,
		GitOpsOut: f.gitopsOut, PatchGitOps: f.patchGitOps, RolloutTimeout: f.rolloutTimeout, LockWait: f.lockTimeout,
	}
	if !f.yes {
		in := bufio.NewReader(opts.stdin)
		mo.Confirm = func(p *migrate.Plan) bool {
			if err := printMigratePlan(opts.stdout, p); err != nil {
				return false
			}
			fmt.Fprintf(opts.stdout, "Migrate namespace %s as planned? [y/N] ", namespace)
			answer, _ := in.ReadString('\n')
			return strings.EqualFold(strings.TrimSpace(answer), "y") || strings.EqualFold(strings.TrimSpace(answer), "yes")
		}
	}
	out, err := action.Migrate(ctx, ac, mo)
	if out != nil {
		res.Warnings = append(res.Warnings, out.Warnings...)
		if out.Plan != nil {
			res.HasWork, res.Secrets, res.Workloads, res.Problems = out.Plan.HasWork(), out.Plan.Secrets, out.Plan.Workloads, out.Plan.Problems
		}
		res.Report, res.GitOps, res.Declined = out.Report, out.GitOps, out.Declined
		if opts.Output != "json" {
			printNotes(opts.stderr, out.Warnings)
		}
	}
	if err != nil {
		if out != nil && out.Report != nil && opts.Output != "json" {
			printMigrateReport(opts.stdout, namespace, out)
		}
		return fail(exitFailed, phases.WithHint(err))
	}
	failed := out.Report != nil && out.Report.Failed()
	res.OK = !failed
	if opts.Output == "json" {
		if err := writeJSON(opts.stdout, res); err != nil {
			return err
		}
	} else {
		printMigrateReport(opts.stdout, namespace, out)
	}
	if failed {
		return withCode(exitFailed, nil)
	}
	return nil
}

// printMigrateReport says what the run did, Secret by Secret and workload by workload.
func printMigrateReport(w io.Writer, ns string, out *action.MigrateResult) {
	switch {
	case out.Declined:
		fmt.Fprintln(w, "Not confirmed: nothing was changed.")
		return
	case out.NothingTo:
		fmt.Fprintf(w, "Nothing to do: namespace %s is migrated (run with --prune to delete the raw Secrets it no longer reads).\n", ns)
		return
	case out.Report == nil:
		return
	}
	r := out.Report
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(r.Secrets) > 0 {
		fmt.Fprintln(tw, "SECRET\tKV PATH\tCOPY\tBACKUP\tRESULT")
		for _, s := range r.Secrets {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, dash(s.KVPath), dash(s.Copy), dash(s.Backup), dash(s.Error))
		}
		fmt.Fprintln(tw)
	}
	if len(r.Workloads) > 0 {
		fmt.Fprintln(tw, "WORKLOAD\tSTATE\tCHANGED\tDETAIL")
		for _, wl := range r.Workloads {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", wl.Workload, wl.State, wl.Changed, dash(wl.Message))
		}
	}
	_ = tw.Flush()
	for _, p := range r.Pruned {
		fmt.Fprintln(w, "pruned:", p)
	}
	for _, k := range r.Kept {
		fmt.Fprintln(w, "kept for now:", k)
	}
	if r.Labelled {
		fmt.Fprintf(w, "namespace %s labelled %s=true: the admission policy now denies new raw Secrets there\n", ns, manifests.MigratedLabel)
	}
	for _, f := range out.GitOps {
		fmt.Fprintln(w, "wrote:", f)
	}
}

// parseEntrypoints reads the --entrypoint values of migrate namespace and migrate database.
func parseEntrypoints(flags []string) ([]migrate.Entrypoint, error) {
	var out []migrate.Entrypoint
	for _, s := range flags {
		e, err := migrate.ParseEntrypoint(s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
