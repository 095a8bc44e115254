package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/phases"
)

func newRecoveryKeysCmd(opts *rootOptions) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "recovery-keys --out FILE",
		Short: "Decrypt the recovery keys from custody into a new 0600 file",
		Long: `vaultctl keeps the recovery keys from operator init KMS-envelope-encrypted in the Secret
vault-recovery-keys in the Vault namespace. This command opens them with KMS (your AWS identity
needs kms:Decrypt on the seal key) and writes them, as JSON, to a new file with mode 0600. It
never prints them. Use them for 'vault operator generate-root' or a seal migration, then delete
the file. With vault.init.pgpKeys the keys are still PGP-encrypted, one per key holder.`,
		Example: "  vaultctl recovery-keys --out /secure/recovery.json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return withCode(exitUsage, fmt.Errorf("--out FILE is required; the keys are never printed"))
			}
			l, warnings, err := loadConfigWarned(cmd, opts)
			if err != nil {
				return withWarnings(exitUsage, err, warnings)
			}
			keys, err := action.RecoveryKeys(cmd.Context(), actionConfig(opts, l))
			if err != nil {
				return withWarnings(exitFailed, phases.WithHint(err), warnings)
			}
			b, err := json.MarshalIndent(keys, "", "  ")
			if err != nil {
				return withWarnings(exitFailed, err, warnings)
			}
			err = writeNewFile(openNew, out, append(b, '\n'))
			clear(b)
			if err != nil {
				return withWarnings(exitFailed, err, warnings)
			}
			if opts.Output == "json" {
				// Where they went and how many, never the keys.
				return writeJSON(opts.stdout, map[string]any{"command": commandName(cmd), "ok": true, "file": out, "keys": len(keys.Keys), "threshold": keys.Threshold, "warnings": warnings})
			}
			fmt.Fprintf(opts.stdout, "wrote %d recovery keys (threshold %d) to %s (mode 0600); delete it when done\n", len(keys.Keys), keys.Threshold, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to create (mode 0600); must not exist")
	return cmd
}

// syncFile is the part of *os.File that writeNewFile needs; tests make each step fail.
type syncFile interface {
	io.Writer
	Sync() error
	Close() error
}

func openNew(path string) (syncFile, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// writeNewFile creates path (it must not exist), writes data, flushes it to disk and closes it,
// checking every step: a full disk often shows only at fsync or close, and a truncated key file
// that looks written is worse than none. On any failure the partial file is removed.
func writeNewFile(open func(string) (syncFile, error), path string, data []byte) error {
	f, err := open(path)
	if err != nil {
		return fmt.Errorf("%v (the file must not exist yet)", err)
	}
	_, werr := f.Write(data)
	var serr error
	if werr == nil {
		serr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return fmt.Errorf("writing %s: %w; removing the partial file also failed, delete it by hand: %v", path, err, rerr)
		}
		return fmt.Errorf("writing %s: %w (the partial file was removed; fix the cause, e.g. disk space, and run again)", path, err)
	}
	return nil
}
