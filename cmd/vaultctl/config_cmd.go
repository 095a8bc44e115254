package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vaultctl/vaultctl/config"
)

func newConfigCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Validate the config or print its JSON Schema",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Check the config and report every problem with file:line and key path",
		Long: `Validate loads the config the way plan and apply do (file, then VAULTCTL_* environment
variables, then flags), and reports every problem at once, each naming the file, line and key.`,
		Example: "  vaultctl config validate -c vaultctl.yaml\n  vaultctl config validate -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := loadConfig(cmd, opts)
			if opts.Output == "json" {
				out := map[string]any{"valid": err == nil, "file": opts.ConfigPath}
				var ve *config.ValidationError
				if errors.As(err, &ve) {
					out["errors"] = ve.Problems
				} else if err != nil {
					out["errors"] = []config.Problem{{Message: err.Error()}}
				}
				if l != nil {
					out["warnings"] = l.Warnings
				}
				if werr := writeJSON(opts.stdout, out); werr != nil {
					return werr
				}
				if err != nil {
					return withCode(exitUsage, nil)
				}
				return nil
			}
			if err != nil {
				return withCode(exitUsage, err)
			}
			printWarnings(opts.stderr, l.Warnings)
			fmt.Fprintf(opts.stdout, "%s is valid (%d policies, %d roles, %d migration waves)\n", opts.ConfigPath, len(l.Policies), len(l.Roles), len(l.Migration.Waves))
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "schema",
		Short: "Print the config's JSON Schema, for editors",
		Example: `  vaultctl config schema > vaultctl.schema.json
  # then, first line of vaultctl.yaml:
  # yaml-language-server: $schema=./vaultctl.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := config.JSONSchema()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(opts.stdout, string(b))
			return err
		},
	})
	return cmd
}

// loadConfig loads opts.ConfigPath with env and flag overrides.
func loadConfig(cmd *cobra.Command, opts *rootOptions) (*config.Loaded, error) {
	flags := map[string]*pflag.Flag{
		"cluster.kubeconfig": cmd.Flags().Lookup("kubeconfig"),
		"cluster.context":    cmd.Flags().Lookup("context"),
	}
	return config.Load(config.LoadOptions{Path: opts.ConfigPath, Environ: os.Environ(), Flags: flags, CheckFiles: true})
}

func printWarnings(w io.Writer, ws []config.Problem) {
	for _, p := range ws {
		fmt.Fprintln(w, "warning:", p)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
