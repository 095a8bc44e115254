package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/auditlog"
	"github.com/vaultctl/vaultctl/internal/kube"
)

const auditAnalyzeLong = `Analyze reads Vault audit device logs (JSON lines) and reports what on-call needs:

  failed logins       by auth mount, role, ServiceAccount and namespace, with Vault's error
  secret lists        list operations on KV paths, which suggest enumeration
  off-hours access    requests outside --hours in --tz (audit times are UTC)
  token renewals      tokens renewed more than --renewals times
  denied by policy    "permission denied" answers, with the path and the token's policies
  top paths, clients  and remote addresses

FILE is a log file (gzip-compressed or not, recognised by content) or - for stdin; several
are read in turn. --from-pods streams the logs of the Vault server pods through the
Kubernetes API instead (kubectl logs): that sees an audit device that writes to stdout
(type file, file_path stdout), not a file on the audit volume.

Each request is logged twice by Vault (as it arrives and with its outcome): the rules count
the outcome. A failed login carries no identity: its JWT is HMAC'd and no token was issued,
so its role is shown in clear only when the auth mount lists "role" in
audit_non_hmac_request_keys (the kubernetes-auth phase sets it) and "hmac:..." otherwise; its
ServiceAccount is named only when the other requests from its remote address all came from
one ServiceAccount.

Memory stays bounded whatever the size of the log: each table counts up to --capacity
distinct keys exactly; beyond that its counts are upper bounds and the report says so.

Exit codes: 0 nothing to report, 1 findings, 2 bad usage or an unreadable input.`

const auditAnalyzeExample = `  vaultctl audit analyze /var/log/vault/audit.log
  vaultctl audit analyze audit.log.1.gz audit.log --since 2026-12-01T00:00:00Z
  vaultctl audit analyze --since 24h --hours 08:00-19:00 --tz Europe/Paris audit.log
  kubectl -n vault exec vault-0 -- cat /vault/audit/audit.log | vaultctl audit analyze -
  vaultctl audit analyze --from-pods -n vault -o json`

func newAuditCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Analyse Vault audit logs",
		Args:  noArgsButSubcommands,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newAuditAnalyzeCmd(opts))
	return cmd
}

func newAuditAnalyzeCmd(opts *rootOptions) *cobra.Command {
	var (
		o                     auditlog.Options
		since, until, hours   string
		tz, namespace, contnr string
		fromPods              bool
	)
	cmd := &cobra.Command{
		Use:     "analyze [FILE... | -]",
		Short:   "Report failed logins, enumeration, off-hours use, renewals and denials from audit logs",
		Long:    auditAnalyzeLong,
		Example: auditAnalyzeExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			var err error
			if o.Since, err = parseWhen(since, now, "--since"); err != nil {
				return withCode(exitUsage, err)
			}
			if o.Until, err = parseWhen(until, now, "--until"); err != nil {
				return withCode(exitUsage, err)
			}
			if hours != "" {
				if o.Hours, err = auditlog.ParseHours(hours, tz); err != nil {
					return withCode(exitUsage, fmt.Errorf("--hours/--tz: %w", err))
				}
			} else if cmd.Flags().Changed("tz") {
				return withCode(exitUsage, fmt.Errorf("--tz needs --hours, e.g. --hours 08:00-19:00 --tz %s", tz))
			}
			var (
				inputs []auditlog.Input
				done   func()
			)
			switch {
			case fromPods && len(args) > 0:
				return withCode(exitUsage, fmt.Errorf("give FILE arguments or --from-pods, not both"))
			case fromPods:
				c, err := kube.Connect(opts.Kubeconfig, opts.Context)
				if err != nil {
					return withCode(exitUsage, err)
				}
				if inputs, done, err = action.AuditFromPods(cmd.Context(), c.Client, namespace, contnr); err != nil {
					return withCode(exitFailed, err)
				}
			case len(args) == 0:
				return withCode(exitUsage, fmt.Errorf("no FILE given; for example: vaultctl audit analyze /vault/audit/audit.log (or - for stdin, or --from-pods)"))
			default:
				if inputs, done, err = action.AuditInputs(args, opts.stdin); err != nil {
					return withCode(exitUsage, err)
				}
			}
			defer done()
			rep, err := auditlog.Analyze(cmd.Context(), o, inputs...)
			if err != nil {
				return withCode(exitUsage, err)
			}
			findings := rep.Findings()
			if opts.Output == "json" {
				if err := writeJSON(opts.stdout, auditResult{Command: commandName(cmd), OK: len(findings) == 0, Findings: findings, Report: rep, Warnings: []string{}}); err != nil {
					return err
				}
			} else if err := printAuditReport(opts.stdout, rep, findings); err != nil {
				return err
			}
			if len(findings) > 0 {
				return withCode(exitFailed, nil)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&fromPods, "from-pods", false, "stream the Vault server pods' logs through the Kubernetes API (an audit device writing to stdout)")
	f.StringVarP(&namespace, "namespace", "n", "vault", "namespace of the Vault pods, with --from-pods")
	f.StringVar(&contnr, "container", "vault", "container of the Vault pods whose log holds the audit lines, with --from-pods")
	f.StringVar(&since, "since", "", "only entries at or after this time: RFC 3339 (2026-12-01T08:00:00Z) or a duration back from now (24h)")
	f.StringVar(&until, "until", "", "only entries before this time: RFC 3339 or a duration back from now")
	f.StringVar(&hours, "hours", "", "working hours HH:MM-HH:MM; requests outside them are reported (e.g. 08:00-19:00)")
	f.StringVar(&tz, "tz", "UTC", "IANA time zone of --hours, e.g. Europe/Paris")
	f.IntVar(&o.RenewalThreshold, "renewals", auditlog.DefaultRenewalThreshold, "report tokens renewed more than this many times")
	f.IntVar(&o.Top, "top", 10, "rows per table")
	f.IntVar(&o.Capacity, "capacity", 10_000, "distinct keys each table counts exactly (memory bound)")
	return cmd
}

// auditResult is the JSON document of audit analyze.
type auditResult struct {
	Command  string             `json:"command"`
	OK       bool               `json:"ok"`
	Findings []auditlog.Finding `json:"findings"`
	Report   *auditlog.Report   `json:"report"`
	Warnings []string           `json:"warnings"`
}

// parseWhen reads an RFC 3339 time or a duration back from now; empty is the zero time.
func parseWhen(s string, now time.Time, flag string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time (2026-12-01T08:00:00Z) or a duration such as 24h", flag, s)
}

func printAuditReport(w io.Writer, r *auditlog.Report, findings []auditlog.Finding) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	count := func(n, over int64) string {
		if over > 0 {
			return fmt.Sprintf("≤%d", n)
		}
		return fmt.Sprint(n)
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	st := r.Stats
	span := "no entries"
	if r.First != nil {
		span = ts(*r.First) + " to " + ts(*r.Last)
	}
	fmt.Fprintf(tw, "Read %d lines (%d audit entries, %d responses) from %s: %s\n", st.Lines, st.Entries, st.Responses, strings.Join(r.Inputs, ", "), span)
	if skipped := st.NotJSON + st.Malformed + st.Oversized; skipped > 0 {
		fmt.Fprintf(tw, "Skipped %d lines: %d not JSON, %d malformed, %d over %d MiB\n", skipped, st.NotJSON, st.Malformed, st.Oversized, auditlog.MaxLineBytes>>20)
	}
	if st.OutOfRange > 0 {
		fmt.Fprintf(tw, "%d entries outside --since/--until\n", st.OutOfRange)
	}

	fmt.Fprintf(tw, "\nFailed logins\n")
	if len(r.AuthFailures) == 0 {
		fmt.Fprintln(tw, "  none")
	} else {
		fmt.Fprintln(tw, "  COUNT\tMOUNT\tROLE\tNAMESPACE\tSERVICEACCOUNT\tERROR\tLAST\tFROM")
		for _, f := range r.AuthFailures {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", count(f.Count, f.Overcount), f.Mount, dash(f.Role), dash(f.Namespace), dash(f.ServiceAccount), f.Error, ts(f.Last), strings.Join(f.RemoteAddresses, ","))
		}
		for _, f := range r.AuthFailures {
			if f.RoleHMAC {
				fmt.Fprintln(tw, "  (roles shown as hmac:... are HMAC'd by Vault: list \"role\" in the auth mount's audit_non_hmac_request_keys, as vaultctl's kubernetes-auth phase does)")
				break
			}
		}
	}
	fmt.Fprintf(tw, "\nDenied by policy\n")
	if len(r.Denied) == 0 {
		fmt.Fprintln(tw, "  none")
	} else {
		fmt.Fprintln(tw, "  COUNT\tOPERATION\tPATH\tCLIENT\tPOLICIES\tLAST")
		for _, d := range r.Denied {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", count(d.Count, d.Overcount), d.Operation, d.Path, d.Client, dash(strings.Join(d.Policies, ",")), ts(d.Last))
		}
	}
	fmt.Fprintf(tw, "\nList operations on secret paths\n")
	if len(r.SecretLists) == 0 {
		fmt.Fprintln(tw, "  none")
	} else {
		fmt.Fprintln(tw, "  COUNT\tPATH\tCLIENT\tLAST")
		for _, a := range r.SecretLists {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", count(a.Count, a.Overcount), a.Path, a.Client, ts(a.Last))
		}
	}
	if oh := r.OffHours; oh != nil {
		fmt.Fprintf(tw, "\nOutside working hours (%s): %d requests\n", oh.Window, oh.Total)
		if len(oh.Clients) > 0 {
			fmt.Fprintln(tw, "  COUNT\tCLIENT\tFIRST\tLAST\tE.G. PATH")
			for _, c := range oh.Clients {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", count(c.Count, c.Overcount), c.Client, ts(c.First), ts(c.Last), c.SamplePath)
			}
		}
	}
	fmt.Fprintf(tw, "\nToken renewals: %d, tokens renewed more than %d times: %d\n", r.Renewals.Total, r.Renewals.Threshold, len(r.Renewals.Tokens))
	if len(r.Renewals.Tokens) > 0 {
		fmt.Fprintln(tw, "  COUNT\tACCESSOR\tCLIENT\tFIRST\tLAST")
		for _, t := range r.Renewals.Tokens {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", count(t.Count, t.Overcount), t.Accessor, t.Client, ts(t.First), ts(t.Last))
		}
	}
	for _, tbl := range []struct {
		title string
		rows  []auditlog.Count
	}{{"Top paths", r.TopPaths}, {"Top clients", r.TopClients}, {"Top remote addresses", r.TopAddresses}} {
		fmt.Fprintf(tw, "\n%s\n", tbl.title)
		for _, c := range tbl.rows {
			fmt.Fprintf(tw, "  %s\t%s\n", count(c.Count, c.Overcount), c.Key)
		}
	}
	if len(r.Approximate) > 0 {
		fmt.Fprintf(tw, "\nCounts marked ≤ are upper bounds: %s saw more distinct keys than --capacity\n", strings.Join(r.Approximate, ", "))
	}
	fmt.Fprintln(tw)
	if len(findings) == 0 {
		fmt.Fprintln(tw, "Nothing to report.")
	}
	for _, f := range findings {
		fmt.Fprintf(tw, "%s: %s\n", f.Severity, f.Message)
	}
	return tw.Flush()
}
