package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/phases"
)

func newSnapshotCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save and restore Raft snapshots of the whole Vault cluster",
		Long: `A Raft snapshot holds all of Vault's data, encrypted with the cluster's barrier keys. save
writes it to a new file (mode 0600) and a record beside it, FILE.json: the cluster ID, the seal,
the Raft index and the file's checksum (nothing secret). restore refuses a damaged file, and a
snapshot whose record names another cluster: Vault could not open it with this cluster's keys.`,
		Args: noArgsButSubcommands,
	}
	cmd.AddCommand(newSnapshotSaveCmd(opts), newSnapshotRestoreCmd(opts))
	return cmd
}

func newSnapshotSaveCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "save FILE",
		Short:   "Save a Raft snapshot into a new file (and its record FILE.json)",
		Example: "  vaultctl snapshot save /backup/vault-$(date +%F).snap",
		Args:    exactFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSnapshot(cmd, opts, args[0], nil)
		},
	}
}

func newSnapshotRestoreCmd(opts *rootOptions) *cobra.Command {
	var o action.SnapshotRestoreOptions
	var yes bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace all of Vault's data with a Raft snapshot (asks first)",
		Long: `Restore replaces everything Vault holds (secrets, policies, auth, tokens and leases) with the
snapshot's. The file is checked first (a complete Vault snapshot whose checksums match), then its
record FILE.json against the target: a snapshot of another cluster is refused, as Vault would
refuse it; --force sends it anyway (snapshot-force), giving this cluster the other cluster's
data, keys and tokens. Restore asks for confirmation; without a terminal (CI) it needs --yes.
It holds the apply lock while it runs.`,
		Example: "  vaultctl snapshot restore /backup/vault-2026-11-30.snap\n  vaultctl snapshot restore --yes /backup/vault-2026-11-30.snap   # in CI",
		Args:    exactFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes && (opts.NonInteractive || opts.Output == "json" || !isTerminal(opts.stdin)) {
				return withCode(exitUsage, errors.New("snapshot restore replaces all of Vault's data: pass --yes to run it without a terminal (CI, --non-interactive, -o json)"))
			}
			in := bufio.NewReader(opts.stdin)
			o.Confirm = func(notes []string) (bool, error) {
				if yes {
					return true, nil
				}
				fmt.Fprintf(opts.stdout, "Restore %s?\n", args[0])
				for _, n := range notes {
					fmt.Fprintf(opts.stdout, "  - %s\n", n)
				}
				fmt.Fprint(opts.stdout, "Every secret, policy, token and lease written since the snapshot is lost. Type yes to restore: ")
				answer, _ := in.ReadString('\n')
				return strings.EqualFold(strings.TrimSpace(answer), "yes"), nil
			}
			return runSnapshot(cmd, opts, args[0], &o)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation (required without a terminal, e.g. in CI)")
	cmd.Flags().BoolVar(&o.Force, "force", false, "restore a snapshot of another cluster (snapshot-force): its data, keys and tokens replace this cluster's")
	cmd.Flags().DurationVar(&o.LockTimeout, "lock-timeout", 0, "wait this long for another run's apply lock instead of failing at once")
	return cmd
}

func exactFile(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return withCode(exitUsage, fmt.Errorf("%s takes one FILE, got %d arguments", commandName(cmd), len(args)))
	}
	return nil
}

// runSnapshot saves (restore nil) or restores the snapshot at path.
func runSnapshot(cmd *cobra.Command, opts *rootOptions, path string, restore *action.SnapshotRestoreOptions) error {
	ac, _, warnings, err := commandConfiguration(cmd, opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var out *action.SnapshotResult
	if restore == nil {
		out, err = action.SnapshotSave(ctx, ac, path)
	} else {
		out, err = action.SnapshotRestore(ctx, ac, path, *restore)
	}
	if out != nil {
		warnings = append(warnings, out.Warnings...)
	}
	if errors.Is(err, action.ErrNotConfirmed) {
		if opts.Output != "json" {
			fmt.Fprintln(opts.stdout, "Not confirmed: nothing was restored.")
		}
		return withWarnings(exitFailed, err, warnings)
	}
	if err != nil {
		return withWarnings(exitFailed, phases.WithHint(err), warnings)
	}
	if opts.Output == "json" {
		return writeJSON(opts.stdout, map[string]any{"command": commandName(cmd), "ok": true, "result": out, "warnings": warnings})
	}
	printNotes(opts.stderr, warnings)
	r := out.Record
	if restore == nil {
		fmt.Fprintf(opts.stdout, "saved %s (%d bytes, Raft index %d, cluster %s; record %s)\n", path, r.Size, r.Index, r.ClusterID, path+".json")
		return nil
	}
	when := "unknown time (no record)"
	if r != nil {
		when = r.Taken.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(opts.stdout, "restored %s: Vault holds the data of %s\n", path, when)
	return nil
}
