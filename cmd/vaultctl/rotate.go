package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

func newRotateCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate Vault's encryption key or its recovery keys",
		Long: `The day-2 key rotations, each holding the apply Lease (vaultctl-apply) so that no apply
changes Vault at the same moment. vaultctl status shows when each key was last rotated and warns
once vault.rotation.maxAge (default 90 days) has passed. The KMS key that auto-unseals Vault is
rotated by AWS itself: the kms phase keeps its automatic rotation on.`,
		Args: noArgsButSubcommands,
	}
	var lockTimeout time.Duration
	cmd.PersistentFlags().DurationVar(&lockTimeout, "lock-timeout", 0, "wait this long for a running apply's lock instead of failing at once")
	cmd.AddCommand(&cobra.Command{
		Use:   "encryption-key",
		Short: "Rotate the barrier encryption key (sys/rotate) and report the term before and after",
		Long: `Adds a new term of Vault's barrier encryption key (sys/rotate): new writes use it, older terms
stay to read what they encrypted. No restart, no outage. Needs update+sudo on sys/rotate, which
the vaultctl-admin policy grants (run vaultctl apply --only bootstrap after upgrading vaultctl).`,
		Example: "  vaultctl rotate encryption-key\n  vaultctl rotate encryption-key -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, warnings, err := commandConfiguration(cmd, opts)
			if err != nil {
				return err
			}
			res, err := action.RotateEncryptionKey(cmd.Context(), c, action.RotateOptions{LockTimeout: lockTimeout})
			warnings = append(warnings, res.Warnings...)
			if err != nil {
				return withWarnings(exitFailed, phases.WithHint(err), warnings)
			}
			r := res.Rotation
			if opts.Output == "json" {
				return writeJSON(opts.stdout, map[string]any{"command": commandName(cmd), "ok": true, "termBefore": r.TermBefore, "termAfter": r.TermAfter,
					"installedBefore": r.InstalledBefore, "installedAfter": r.InstalledAfter, "warnings": warnings})
			}
			printNotes(opts.stderr, res.Warnings)
			fmt.Fprintf(opts.stdout, "encryption key rotated: term %d (installed %s) -> term %d (installed %s)\n",
				r.TermBefore, r.InstalledBefore.Format(time.RFC3339), r.TermAfter, r.InstalledAfter.Format(time.RFC3339))
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "recovery-keys",
		Short: "Rekey the recovery shares with the ones in custody and re-wrap the new ones with KMS",
		Long: `Rekeys the recovery keys (vault operator rekey -target=recovery) with the shares vaultctl keeps
KMS-encrypted in the Secret vault-recovery-keys, to vault.init.recoveryShares shares with
threshold vault.init.recoveryThreshold. Vault is asked to verify the new shares before it
switches to them; they are KMS-sealed into custody before that, so a run killed at any point
loses no key (re-run to finish). Afterwards sys/generate-root is shown to refuse the old shares.
No key is ever printed or logged. Needs kms:GenerateDataKey and kms:Decrypt on the seal key.
Recovery keys PGP-encrypted to holders (vault.init.pgpKeys) are theirs to rekey.`,
		Example: "  vaultctl rotate recovery-keys\n  vaultctl recovery-keys --out /secure/new.json   # the new shares, when a holder needs them",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, warnings, err := commandConfiguration(cmd, opts)
			if err != nil {
				return err
			}
			res, err := action.RotateRecoveryKeys(cmd.Context(), c, action.RotateOptions{LockTimeout: lockTimeout})
			warnings = append(warnings, res.Warnings...)
			if err != nil {
				return withWarnings(exitFailed, phases.WithHint(err), warnings)
			}
			r := res.Rotation
			if r.ProofSkipped != "" {
				warnings = append(warnings, "old recovery keys not tried: "+r.ProofSkipped)
			}
			if opts.Output == "json" {
				return writeJSON(opts.stdout, map[string]any{"command": commandName(cmd), "ok": true, "rotation": r, "warnings": warnings})
			}
			printNotes(opts.stderr, warnings)
			fmt.Fprintf(opts.stdout, "recovery keys rotated: %d shares (threshold %d) -> %d shares (threshold %d), KMS-encrypted in Secret %s/%s\n",
				r.SharesBefore, r.ThresholdBefore, r.Shares, r.Threshold, c.Config.Vault.Namespace, phases.CustodySecret)
			if r.Resumed {
				fmt.Fprintln(opts.stdout, "  finished the rotation an earlier run had started first")
			}
			fmt.Fprintf(opts.stdout, "  new keys verified by Vault before the switch: %v\n  old keys refused by sys/generate-root: %v\n", r.NewKeysVerified, r.OldKeysRefused)
			return nil
		},
	})
	return cmd
}

// commandConfiguration loads the config for a command that runs one action, printing its
// warnings in text mode; the error is ready to return.
func commandConfiguration(cmd *cobra.Command, opts *rootOptions) (*action.Configuration, *config.Source, []string, error) {
	l, warnings, err := loadConfigWarned(cmd, opts)
	if err != nil {
		return nil, nil, nil, withWarnings(exitUsage, err, warnings)
	}
	return actionConfig(opts, l), l.Source, warnings, nil
}

// printKeyAges is status's table of key ages, before Vault's health.
func printKeyAges(w io.Writer, keys []lifecycle.KeyAge) error {
	if len(keys) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tLAST ROTATED\tAGE\tSTATE")
	for _, k := range keys {
		if k.Since == nil {
			fmt.Fprintf(tw, "%s\t-\t-\tunknown: %s\n", k.Key, k.Unknown)
			continue
		}
		state := "ok"
		if k.Due {
			state = fmt.Sprintf("DUE (older than %s): vaultctl rotate %s", lifecycle.Days(k.MaxAge), k.Key)
		}
		when := k.Since.Local().Format(time.DateTime)
		if k.Term > 0 {
			when += fmt.Sprintf(" (term %d)", k.Term)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Key, when, lifecycle.Days(k.Age), state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}
