package main

import (
	"context"
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

// initResult is the one JSON document `init -o json` prints, whether the file was written or not.
type initResult struct {
	Command string `json:"command"`
	OK      bool   `json:"ok"`
	File    string `json:"file"`
	// Error is the human message, as on stderr; Problems are the same answers' problems, each
	// with the --set key that fixes it, for a CI job to read.
	Error    string           `json:"error,omitempty"`
	Problems []wizard.Problem `json:"problems,omitempty"`
	Warnings []config.Problem `json:"warnings"`
	Next     []string         `json:"next,omitempty"`
}

func runInit(ctx context.Context, opts *rootOptions, req initRequest) error {
	loaded, err := writeInit(ctx, opts, req)
	next := []string{
		"vaultctl config validate -c " + req.file,
		"vaultctl plan -c " + req.file,
		"vaultctl apply -c " + req.file,
	}
	if opts.Output == "json" {
		res := initResult{Command: "init", OK: err == nil, File: req.file, Warnings: []config.Problem{}}
		if err != nil {
			res.Error = err.Error()
			var ae *wizard.AnswerError
			if errors.As(err, &ae) {
				res.Problems = ae.Problems
			}
		} else {
			res.Next = next
			if loaded.Warnings != nil {
				res.Warnings = loaded.Warnings
			}
		}
		if werr := writeJSON(opts.stdout, res); werr != nil && err == nil {
			return werr
		}
		// The error itself still goes to stderr, as human text, with its exit code.
		return err
	}
	if err != nil {
		return err
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

// writeInit gets the answers (from --set, or by asking), renders them, checks the result as
// `config validate` would and writes the file. Errors carry their exit code.
func writeInit(ctx context.Context, opts *rootOptions, req initRequest) (*config.Loaded, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	// Ctrl-C (or a TERM) cancels the questions and any write still in flight; nothing is left.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := wizard.CheckWritable(req.file, req.force); err != nil {
		return nil, withCode(exitUsage, err)
	}

	base := wizard.Defaults()
	base.Context = opts.Context
	base.Region = firstEnv("AWS_REGION", "AWS_DEFAULT_REGION")

	var answers wizard.Answers
	if opts.NonInteractive {
		a, err := wizard.FromSet(base, req.sets)
		if err != nil {
			return nil, withCode(exitUsage, err)
		}
		answers = a
	} else {
		if _, err := wizard.ApplySet(&base, req.sets); err != nil {
			return nil, withCode(exitUsage, err)
		}
		accessible := req.accessible || !isTerminal(opts.stdin) || os.Getenv("TERM") == "dumb"
		// The forms draw on stderr, as huh does by default, so stdout can be redirected; the
		// accessible prompts are plain text and go to stdout, unless stdout is for the one JSON
		// document.
		out := opts.stderr
		if accessible && opts.Output != "json" {
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
				return nil, withCode(exitFailed, err)
			}
			return nil, withCode(exitUsage, err)
		}
		answers = a
	}

	data, err := wizard.Render(answers)
	if err != nil {
		return nil, withCode(exitFailed, err)
	}
	// The same check as `vaultctl config validate`, on the very bytes about to be written.
	loaded, err := config.Parse(req.file, data, config.LoadOptions{Environ: []string{}})
	if err != nil {
		return nil, withCode(exitFailed, fmt.Errorf("the rendered config does not validate (a bug in vaultctl init):\n%w", err))
	}
	if err := wizard.WriteFile(ctx, req.file, data, req.force); err != nil {
		var exists *wizard.ExistsError
		if errors.As(err, &exists) {
			return nil, withCode(exitUsage, err)
		}
		return nil, withCode(exitFailed, err)
	}
	return loaded, nil
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
