package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/wizard"
)

const initLong = `init asks a few questions and writes a commented vaultctl.yaml that passes
` + "`vaultctl config validate`" + `. Every answer is checked as it is typed, by the same code as
config validate. Nothing is written until you confirm, and Ctrl-C leaves nothing behind.

The questions:
  1. the kube context, listed from the kubeconfig
  2. Vault mode: in-cluster HA Raft (then: how many servers) or external (then: its address)
  3. the KMS unseal key: region, key ID or alias, whether vaultctl may create it, and the
     IRSA role for Vault's ServiceAccount (optional)
  4. the namespaces to migrate, in weekly waves: pilot, staging, production (listed from the
     cluster with their Secret counts when it is reachable)
  5. which namespaces may reach Vault (NetworkPolicies)
  6. the audit devices
  7. where the recovery keys go: a KMS-wrapped file, or PGP keys (then: how many are needed)

On a terminal the questions are huh forms. With --accessible, or when stdin is not a
terminal, they are plain numbered prompts that read one answer per line. With
--non-interactive nothing is asked: answers come from --set key=value, and a missing
required answer is an error naming the --set key to pass. Without --non-interactive, --set
answers become the defaults of the questions.

The file is --file, else --config (default vaultctl.yaml). An existing file is kept unless
--force is given.

--set keys:
`

func newInitCmd(opts *rootOptions) *cobra.Command {
	var (
		file       string
		force      bool
		accessible bool
		sets       []string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Answer a few questions, get a commented vaultctl.yaml that validates",
		Long:  initLong + wizard.SetHelp(),
		Example: `  vaultctl init                               # on a terminal
  vaultctl init --accessible                  # plain prompts, for screen readers
  vaultctl init -f prod.yaml --force          # write prod.yaml, replacing it
  vaultctl init --non-interactive \
    --set vault.seal.awskms.region=eu-west-1 \
    --set waves.pilot=internal-tools --set waves.production=payments,shop`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				file = opts.ConfigPath
			}
			if file == "" {
				file = "vaultctl.yaml"
			}
			return runInit(cmd.Context(), opts, initRequest{file: file, force: force, accessible: accessible, sets: sets})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "file to write (default: --config, vaultctl.yaml)")
	f.BoolVar(&force, "force", false, "overwrite the file if it exists")
	f.BoolVar(&accessible, "accessible", false, "plain numbered prompts read line by line (automatic when stdin is not a terminal)")
	f.StringArrayVar(&sets, "set", nil, "answer a question with key=value (repeatable; keys below)")
	return cmd
}

type initRequest struct {
	file       string
	force      bool
	accessible bool
	sets       []string
}

func runInit(ctx context.Context, opts *rootOptions, req initRequest) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// Ctrl-C (or a TERM) cancels the questions and any write still in flight; nothing is left.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := wizard.CheckWritable(req.file, req.force); err != nil {
		return withCode(exitUsage, err)
	}

	base := wizard.Defaults()
	base.Context = opts.Context
	base.Region = firstEnv("AWS_REGION", "AWS_DEFAULT_REGION")

	var answers wizard.Answers
	if opts.NonInteractive {
		a, err := wizard.FromSet(base, req.sets)
		if err != nil {
			return withCode(exitUsage, err)
		}
		answers = a
	} else {
		if _, err := wizard.ApplySet(&base, req.sets); err != nil {
			return withCode(exitUsage, err)
		}
		accessible := req.accessible || !isTerminal(opts.stdin) || os.Getenv("TERM") == "dumb"
		// The forms draw on stderr, as huh does by default, so stdout can be redirected; the
		// accessible prompts are plain text and go to stdout.
		out := opts.stderr
		if accessible {
			out = opts.stdout
		}
		a, err := wizard.Run(ctx, wizard.Options{
			In:         opts.stdin,
			Out:        out,
			Accessible: accessible,
			Discovery:  wizard.Kube{Kubeconfig: opts.Kubeconfig},
			File:       req.file,
			Answers:    base,
		})
		if err != nil {
			if errors.Is(err, wizard.ErrAborted) {
				return withCode(exitFailed, err)
			}
			return withCode(exitUsage, err)
		}
		answers = a
	}

	data, err := wizard.Render(answers)
	if err != nil {
		return withCode(exitFailed, err)
	}
	// The same check as `vaultctl config validate`, on the very bytes about to be written.
	loaded, err := config.Parse(req.file, data, config.LoadOptions{Environ: []string{}})
	if err != nil {
		return withCode(exitFailed, fmt.Errorf("the rendered config does not validate (a bug in vaultctl init):\n%w", err))
	}
	if err := wizard.WriteFile(ctx, req.file, data, req.force); err != nil {
		var exists *wizard.ExistsError
		if errors.As(err, &exists) {
			return withCode(exitUsage, err)
		}
		return withCode(exitFailed, err)
	}

	next := []string{
		"vaultctl config validate -c " + req.file,
		"vaultctl plan -c " + req.file,
		"vaultctl apply -c " + req.file,
	}
	if opts.Output == "json" {
		enc := json.NewEncoder(opts.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"file": req.file, "warnings": loaded.Warnings, "next": next})
	}
	for _, w := range loaded.Warnings {
		fmt.Fprintln(opts.stderr, "warning:", w)
	}
	fmt.Fprintf(opts.stdout, "Wrote %s. Next:\n", req.file)
	width := len(next[0])
	for i, why := range []string{"check it (init already did)", "see what vaultctl would change", "make the changes; safe to re-run"} {
		fmt.Fprintf(opts.stdout, "  %-*s  # %s\n", width, next[i], why)
	}
	return nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// isTerminal reports whether r is a terminal; huh's forms need one, the accessible mode does not.
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
