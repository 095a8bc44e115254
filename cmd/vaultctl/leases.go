package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/leases"
	"github.com/vaultctl/vaultctl/phases"
)

const leasesLong = `Leases counts Vault's leases by prefix, recursing LIST sys/leases/lookup/PREFIX one level at a
time (Vault's listing is not recursive), and shows per prefix the count, the oldest lease's
issue time and the expiry range, flagging prefixes beyond leases.warnCount and leases.warnAge
from the config. PREFIX narrows it (auth/kubernetes/login, database/creds/app).

--orphaned lists the Kubernetes-auth tokens whose ServiceAccount is gone (deleted, or
recreated with a new UID), attributed through what the auth method records in each token's
metadata (service_account_namespace, _name, _uid); it cannot name a pod, which the method does
not record. --revoke-orphaned revokes those tokens, and with them the leases they obtained
(database credentials). --revoke-prefix P revokes every lease under P (sys/leases/revoke-prefix).
A revocation shows the count first and asks; without a terminal (CI) it needs --yes.

Vault requires sudo for listing leases (sys/leases/lookup/*), revoking by prefix
(sys/leases/revoke-prefix/*) and listing token accessors (auth/token/accessors): the
vaultctl-admin policy grants exactly those.

Exit codes: 0 nothing beyond a threshold and nothing orphaned, 1 a prefix beyond a threshold,
orphans found, or a failure, 2 bad usage (or a revocation without --yes and without a terminal).`

const leasesExample = `  vaultctl leases
  vaultctl leases database/creds/ -o json
  vaultctl leases --orphaned
  vaultctl leases --revoke-prefix database/creds/app --yes`

type leasesResult struct {
	Command  string              `json:"command"`
	OK       bool                `json:"ok"`
	Root     string              `json:"root"`
	Total    int                 `json:"total"`
	Prefixes []leases.Prefix     `json:"prefixes"`
	Orphans  *leases.Orphans     `json:"orphans,omitempty"`
	Revoked  []leases.Revocation `json:"revocations"`
	Warnings []string            `json:"warnings"`
}

func newLeasesCmd(opts *rootOptions) *cobra.Command {
	var (
		o   action.LeasesOptions
		yes bool
	)
	cmd := &cobra.Command{
		Use:     "leases [PREFIX]",
		Short:   "Count Vault leases by prefix; find and revoke orphaned ones",
		Long:    leasesLong,
		Example: leasesExample,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Prefix = args[0]
			}
			revoking := o.RevokePrefix != "" || o.RevokeOrphaned
			interactive := isTerminal(opts.stdin) && opts.Output != "json" && !opts.NonInteractive
			if revoking && !yes && !interactive {
				return withCode(exitUsage, fmt.Errorf("revoking needs --yes without a terminal: run without --revoke-* first to see the counts"))
			}
			if o.RevokePrefix != "" && leases.NormalizePrefix(o.RevokePrefix) == "" {
				return withCode(exitUsage, fmt.Errorf("--revoke-prefix needs a prefix, e.g. database/creds/ROLE: revoking every lease is not offered"))
			}
			res := leasesResult{Command: commandName(cmd), Prefixes: []leases.Prefix{}, Revoked: []leases.Revocation{}, Warnings: []string{}}
			l, warnings, err := loadConfigWarned(cmd, opts)
			res.Warnings = append(res.Warnings, warnings...)
			if err != nil {
				return withWarnings(exitUsage, err, res.Warnings)
			}
			in := bufio.NewReader(opts.stdin)
			o.Confirm = func(what string, n int) bool {
				if opts.Output != "json" {
					fmt.Fprintf(opts.stdout, "%d to revoke: %s\n", n, what)
				}
				if yes {
					return true
				}
				fmt.Fprintf(opts.stdout, "Revoke them? [y/N] ")
				line, _ := in.ReadString('\n')
				a := strings.ToLower(strings.TrimSpace(line))
				return a == "y" || a == "yes"
			}
			out, err := action.Leases(cmd.Context(), actionConfig(opts, l), o)
			if out != nil {
				res.Warnings = append(res.Warnings, out.Warnings...)
				if opts.Output != "json" {
					printNotes(opts.stderr, out.Warnings)
				}
			}
			if err != nil {
				return withWarnings(exitFailed, phases.WithHint(err), res.Warnings)
			}
			res.Root, res.Total, res.Prefixes, res.Orphans = out.Count.Root, out.Count.Total, out.Count.Prefixes, out.Orphans
			if out.Revoked != nil {
				res.Revoked = out.Revoked
			}
			res.OK = out.Count.Warned() == 0 && (out.Orphans == nil || len(out.Orphans.Tokens) == 0 || o.RevokeOrphaned && revokedAll(out.Revoked))
			if opts.Output == "json" {
				if err := writeJSON(opts.stdout, res); err != nil {
					return err
				}
			} else if err := printLeases(opts.stdout, res, time.Now()); err != nil {
				return err
			}
			if !res.OK {
				return withCode(exitFailed, nil)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Orphaned, "orphaned", false, "list Kubernetes-auth tokens whose ServiceAccount is gone")
	f.BoolVar(&o.RevokeOrphaned, "revoke-orphaned", false, "revoke the orphaned tokens and the leases they obtained (asks; --yes in CI)")
	f.StringVar(&o.RevokePrefix, "revoke-prefix", "", "revoke every lease under this prefix (asks; --yes in CI)")
	f.BoolVar(&yes, "yes", false, "revoke without asking")
	return cmd
}

func revokedAll(rs []leases.Revocation) bool {
	for _, r := range rs {
		if !r.Done && r.Count > 0 {
			return false
		}
	}
	return true
}

func printLeases(w io.Writer, res leasesResult, now time.Time) error {
	for _, r := range res.Revoked {
		state := "revoked"
		if !r.Done {
			state = "not revoked"
		}
		fmt.Fprintf(w, "%s: %d, %s\n", r.What, r.Count, state)
	}
	if res.Orphans != nil {
		fmt.Fprintf(w, "orphaned tokens: %d of %d Kubernetes-auth tokens (%d name no ServiceAccount)\n", len(res.Orphans.Tokens), res.Orphans.Checked, res.Orphans.Unattributed)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if len(res.Orphans.Tokens) > 0 {
			fmt.Fprintln(tw, "SERVICEACCOUNT\tROLE\tACCESSOR\tEXPIRES\tWHY")
		}
		for _, o := range res.Orphans.Tokens {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.ServiceAccount, o.Role, o.Accessor, o.ExpireTime, o.Reason)
		}
		tw.Flush()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tCOUNT\tOLDEST ISSUED\tEXPIRES\tWARNING")
	for _, p := range res.Prefixes {
		age, exp := "-", "-"
		if !p.OldestIssue.IsZero() {
			age = now.Sub(p.OldestIssue).Round(time.Second).String() + " ago"
			exp = "in " + p.NextExpiry.Sub(now).Round(time.Second).String() + " to " + p.LastExpiry.Sub(now).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", p.Prefix, p.Count, age, exp, strings.Join(p.Warnings, "; "))
	}
	tw.Flush()
	root := res.Root
	if root == "" {
		root = "all prefixes"
	}
	_, err := fmt.Fprintf(w, "%d leases under %s\n", res.Total, root)
	return err
}
