package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/config"
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

Applying the plan (copy, prove, back up, patch, verify, prune, rollback) is not in this vaultctl
yet: without --plan the command refuses and changes nothing.

Exit codes:
  0  nothing to do: no Secret to copy and no workload to switch
  1  error (cluster unreachable, namespace not found, ...)
  2  bad usage, invalid config, or run without --plan
  3  --plan found work to do`

// migrateFlags are migrate namespace's flags.
type migrateFlags struct {
	plan        bool
	workloads   []string
	entrypoints []string
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
	cmd.AddCommand(ns)
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
	if !f.plan {
		return fail(exitUsage, fmt.Errorf("applying a migration is not available in this vaultctl yet (the copy, proof, backup and patch engine is still being built); nothing was changed. Run vaultctl migrate namespace %s --plan to see what it would do", namespace))
	}
	var entrypoints []migrate.Entrypoint
	for _, s := range f.entrypoints {
		e, err := migrate.ParseEntrypoint(s)
		if err != nil {
			return fail(exitUsage, err)
		}
		entrypoints = append(entrypoints, e)
	}
	for _, w := range f.workloads {
		if _, err := migrate.ParseWorkload(w); err != nil {
			return fail(exitUsage, err)
		}
	}

	l, err := loadConfig(cmd, opts)
	cw := configWarnings(l, err)
	res.Warnings = append(res.Warnings, warningStrings(cw)...)
	if opts.Output != "json" {
		printWarnings(opts.stderr, cw)
	}
	if err != nil {
		res.ConfigErrors = configProblems(err)
		return fail(exitUsage, err)
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ac := &action.Configuration{Config: l.Config, Version: vaultctlVersion(), Debug: newDebugLog(opts)}
	out, err := action.MigratePlan(ctx, ac, action.MigratePlanOptions{Namespace: namespace, Workloads: f.workloads, Entrypoints: entrypoints})
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
	_, err := fmt.Fprintln(w, "This is a plan: nothing was changed. Applying it is not available in this vaultctl yet.")
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
