package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/phases"
)

const migrateDatabaseLong = `Migrate database switches one workload from a static database password to dynamic
credentials: the files and environment variables it reads keep their names, and their values
come from Vault's database engine (MOUNT/creds/ROLE, .Data.username and .Data.password)
instead of a Kubernetes Secret or a KV entry. The database, its connection and ROLE must be
in the config's databases and applied (vaultctl apply) first.

The source is the Secret the workload reads (mounted as files, or as env through a file the
container sources, like migrate namespace does), or, for a workload migrate namespace already
moved, the KV entry its templates read: only the username and password values are switched, the
entry's other keys (host, port) stay read from KV. --from names the source when the workload
reads several; --username-key and --password-key name its keys when their names do not say.

Dynamic credentials have a pitfall static ones do not (vault-k8s#125): the agent's init
container and its sidecar each read credentials of their own, and the application keeps the
init container's, which Vault revokes when that agent's token expires. migrate database sets
agent-cache-enable, so both share one cache and the sidecar renews the credentials the
application uses. A Job gets agent-pre-populate-only instead (no sidecar).

The workload gets a policy and a Kubernetes-auth role of its own (NS-KIND-NAME-db): read on the
creds path, plus the policies of the role it logged in with, with migration.defaults' ttl and
max_ttl (Vault revokes credentials with their token: keep max_ttl at least the database role's).

Without --plan, under the namespace's migrate lock: the template is backed up in Vault, the
policy and role written, and the proof runs (a TokenRequest token logs in with the role and
reads credentials; a sibling role's are denied; the proof's token and credentials are revoked);
then the workload is patched and its rollout followed, and rolled back by itself if it does
not become Ready. Steps are journaled in ConfigMap vaultctl-migrate-journal (database.KIND.NAME).
--rollback restores the template from before the switch.

Exit codes:
  0  done, or nothing to do
  1  error, or the proof or rollout failed (the workload is left or put back as it was)
  2  bad usage, invalid config, or no --yes without a terminal
  3  --plan found work to do`

type migrateDatabaseFlags struct {
	plan, yes, rollback      bool
	namespace, role, mount   string
	source                   string
	usernameKey, passwordKey string
	entrypoints              []string
	rolloutTimeout, lockWait time.Duration
}

func newMigrateDatabaseCmd(opts *rootOptions) *cobra.Command {
	var f migrateDatabaseFlags
	cmd := &cobra.Command{
		Use:   "database KIND/NAME --role ROLE [-n NS]",
		Short: "Switch a workload from a static database password to dynamic credentials from Vault",
		Long:  migrateDatabaseLong,
		Example: `  vaultctl migrate database Deployment/web --role webapp-role -n production --plan
  vaultctl migrate database Deployment/web --role webapp-role -n production --yes
  vaultctl migrate database deploy/web --role webapp-role -n production --from db-credentials --password-key DB_PASS
  vaultctl migrate database Deployment/web --role webapp-role -n production --rollback --yes`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return withCode(exitUsage, fmt.Errorf("migrate database takes one workload, KIND/NAME, got %d arguments", len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runMigrateDatabase(cmd, opts, args[0], f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.namespace, "namespace", "n", "default", "the workload's namespace")
	fl.StringVar(&f.role, "role", "", "the database role (databases[].roles[].name) whose credentials the workload gets (required)")
	fl.StringVar(&f.mount, "mount", "", "the database engine's mount, when the role name is on several")
	fl.StringVar(&f.source, "from", "", "the Secret (name) or KV entry (logical path, e.g. secret/shop/db) holding the static credentials, when the workload reads several")
	fl.StringVar(&f.usernameKey, "username-key", "", "the source's key holding the username, when its name does not say (user, username, DB_USER...)")
	fl.StringVar(&f.passwordKey, "password-key", "", "the source's key holding the password, when its name does not say (password, DB_PASSWORD...)")
	fl.StringArrayVar(&f.entrypoints, "entrypoint", nil, "the argv of a container that reads the credentials as env and sets no command, "+migrate.EntrypointSyntax+"; repeatable")
	fl.BoolVar(&f.plan, "plan", false, "only observe: print the plan and change nothing (exit 3 when there is work)")
	fl.BoolVar(&f.yes, "yes", false, "do not ask for confirmation (required without a terminal, e.g. in CI)")
	fl.BoolVar(&f.rollback, "rollback", false, "restore the workload's template from before the switch")
	fl.DurationVar(&f.rolloutTimeout, "rollout-timeout", 5*time.Minute, "how long the rollout may take before the workload is rolled back by itself")
	fl.DurationVar(&f.lockWait, "lock-timeout", 0, "wait this long for another run's lock on the namespace instead of failing at once")
	return cmd
}

// migrateDatabaseResult is the one JSON document migrate database prints.
type migrateDatabaseResult struct {
	Command      string                   `json:"command"`
	OK           bool                     `json:"ok"`
	Namespace    string                   `json:"namespace"`
	Workload     string                   `json:"workload"`
	HasWork      bool                     `json:"hasWork"`
	Plan         *migrate.DatabasePlan    `json:"plan,omitempty"`
	Outcome      *migrate.DatabaseOutcome `json:"outcome,omitempty"`
	Declined     bool                     `json:"declined,omitempty"`
	ConfigErrors []config.Problem         `json:"configErrors,omitempty"`
	Error        string                   `json:"error,omitempty"`
	Warnings     []string                 `json:"warnings"`
}

func runMigrateDatabase(cmd *cobra.Command, opts *rootOptions, workload string, f migrateDatabaseFlags) error {
	res := migrateDatabaseResult{Command: commandName(cmd), Namespace: f.namespace, Workload: workload, Warnings: []string{}}
	fail := func(code int, err error) error {
		if opts.Output == "json" {
			res.OK, res.Error = false, err.Error()
			if werr := writeJSON(opts.stdout, res); werr != nil {
				return werr
			}
		}
		return withCode(code, err)
	}
	id, err := migrate.ParseWorkload(workload)
	if err != nil {
		return fail(exitUsage, err)
	}
	res.Workload = id.String()
	if problems := validation.IsDNS1123Label(f.namespace); len(problems) > 0 {
		return fail(exitUsage, fmt.Errorf("-n %q is not a namespace name: %s", f.namespace, strings.Join(problems, "; ")))
	}
	switch {
	case f.role == "" && !f.rollback:
		return fail(exitUsage, errors.New("--role is required: the database role (databases[].roles[].name) whose credentials the workload gets"))
	case f.rollback && f.plan:
		return fail(exitUsage, errors.New("--rollback cannot be combined with --plan"))
	case !f.plan && !f.yes && !(isTerminal(opts.stdin) && opts.Output != "json"):
		return fail(exitUsage, fmt.Errorf("migrate database %s changes the cluster and Vault: pass --yes to run it without a terminal (see the plan first with --plan)", id))
	}
	entrypoints, err := parseEntrypoints(f.entrypoints)
	if err != nil {
		return fail(exitUsage, err)
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
	if opts.Output != "json" && !f.plan {
		ac.Progress = func(line string) { fmt.Fprintln(opts.stderr, line) }
	}
	mo := action.MigrateDatabaseOptions{Namespace: f.namespace, Workload: id, Role: f.role, Mount: f.mount, Source: f.source,
		UsernameKey: f.usernameKey, PasswordKey: f.passwordKey, Entrypoints: entrypoints, Plan: f.plan, Rollback: f.rollback,
		RolloutTimeout: f.rolloutTimeout, LockWait: f.lockWait}
	if !f.yes && !f.plan && !f.rollback {
		in := bufio.NewReader(opts.stdin)
		mo.Confirm = func(p *migrate.DatabasePlan) bool {
			printDatabasePlan(opts.stdout, p)
			fmt.Fprintf(opts.stdout, "Switch %s to %s as planned? [y/N] ", p.Workload, p.CredsPath)
			answer, _ := in.ReadString('\n')
			a := strings.TrimSpace(answer)
			return strings.EqualFold(a, "y") || strings.EqualFold(a, "yes")
		}
	}
	out, err := action.MigrateDatabase(ctx, ac, mo)
	if out != nil {
		res.Warnings = append(res.Warnings, out.Warnings...)
		res.Plan, res.Outcome, res.Declined = out.Plan, out.Outcome, out.Declined
		if out.Plan != nil {
			res.HasWork = !out.Plan.Done
		}
		if opts.Output != "json" {
			printNotes(opts.stderr, out.Warnings)
		}
	}
	if err != nil {
		return fail(exitFailed, phases.WithHint(err))
	}
	failed := res.Outcome != nil && res.Outcome.State == migrate.DBFailed
	res.OK = !failed
	if opts.Output == "json" {
		if err := writeJSON(opts.stdout, res); err != nil {
			return err
		}
	} else {
		if f.plan && res.Plan != nil {
			printDatabasePlan(opts.stdout, res.Plan)
		}
		printDatabaseOutcome(opts.stdout, res)
	}
	switch {
	case failed:
		return withCode(exitFailed, nil)
	case f.plan && res.HasWork:
		return withCode(exitHasDiffs, nil)
	}
	return nil
}

func printDatabasePlan(w io.Writer, p *migrate.DatabasePlan) {
	fmt.Fprintf(w, "%s in %s: %s -> %s, as ServiceAccount %s, role %s\n", p.Workload, p.Namespace, p.From, p.CredsPath, p.ServiceAccount, p.Role)
	for _, k := range slices.Sorted(maps.Keys(p.Keys)) {
		fmt.Fprintf(w, "  key %s -> .Data.%s\n", k, p.Keys[k])
	}
	for _, c := range p.Changes {
		fmt.Fprintln(w, "  change: ", c)
	}
	for _, n := range p.Notes {
		fmt.Fprintln(w, "  note:   ", n)
	}
	for _, x := range p.Warnings {
		fmt.Fprintln(w, "  warning:", x)
	}
	if p.Done {
		fmt.Fprintln(w, "Nothing to do: the workload already reads", p.CredsPath)
	}
}

func printDatabaseOutcome(w io.Writer, r migrateDatabaseResult) {
	switch {
	case r.Declined:
		fmt.Fprintln(w, "Not confirmed: nothing was changed.")
	case r.Outcome != nil:
		fmt.Fprintf(w, "%s: %s (changed: %t)", r.Outcome.Workload, r.Outcome.State, r.Outcome.Changed)
		if r.Outcome.Message != "" {
			fmt.Fprintf(w, ": %s", r.Outcome.Message)
		}
		fmt.Fprintln(w)
	case r.Plan != nil && !r.Plan.Done:
		fmt.Fprintln(w, "This is a plan: nothing was changed.")
	}
}
