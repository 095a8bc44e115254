package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vaultctl/vaultctl/action"
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
			warnings := configWarnings(l, err)
			if opts.Output == "json" {
				out := validateResult{Command: commandName(cmd), OK: err == nil, Valid: err == nil, File: opts.ConfigPath,
					Errors: configProblems(err), Warnings: warnings}
				if err != nil {
					out.Error = err.Error()
				}
				if werr := writeJSON(opts.stdout, out); werr != nil {
					return werr
				}
				if err != nil {
					return withCode(exitUsage, nil)
				}
				return nil
			}
			// Warnings first, errors or not: fixing the errors should not hide them.
			printWarnings(opts.stderr, warnings)
			if err != nil {
				return withCode(exitUsage, err)
			}
			fmt.Fprintf(opts.stdout, "%s is valid (%s, %s, %s)\n", opts.ConfigPath,
				count(len(l.Policies), "policy", "policies"), count(len(l.Roles), "role", "roles"), count(len(l.Migration.Waves), "migration wave", "migration waves"))
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

// validateResult is the JSON document of config validate.
type validateResult struct {
	Command  string           `json:"command"`
	OK       bool             `json:"ok"`
	Valid    bool             `json:"valid"`
	File     string           `json:"file"`
	Error    string           `json:"error,omitempty"`
	Errors   []config.Problem `json:"errors,omitempty"`
	Warnings []config.Problem `json:"warnings"`
}

// configProblems lists the problems of an invalid config; any other error, as one problem.
func configProblems(err error) []config.Problem {
	if err == nil {
		return nil
	}
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		return ve.Problems
	}
	return []config.Problem{{Message: err.Error()}}
}

// configWarnings are the config's warnings whether or not it loaded, never nil (JSON shows an
// array); every command reads them here. config.Load returns them only with a config today:
// once it also returns them with a *config.ValidationError, read them from err here too.
func configWarnings(l *config.Loaded, err error) []config.Problem {
	out := []config.Problem{}
	if l != nil {
		out = append(out, l.Warnings...)
	}
	// An invalid config still carries its warnings: show them beside the errors.
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		out = append(out, ve.Warnings...)
	}
	return out
}

// warningStrings renders config warnings for the "warnings" of a command's JSON document.
func warningStrings(ws []config.Problem) []string {
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.String())
	}
	return out
}

// loadConfigWarned is loadConfig for a command: the config's warnings are printed on stderr
// (not with -o json, whose document carries them) and returned for that document, whether or not
// the config loaded.
func loadConfigWarned(cmd *cobra.Command, opts *rootOptions) (*config.Loaded, []string, error) {
	l, err := loadConfig(cmd, opts)
	cw := configWarnings(l, err)
	if opts.Output != "json" {
		printWarnings(opts.stderr, cw)
	}
	return l, warningStrings(cw), err
}

// actionConfig is what every action of a command is given.
func actionConfig(opts *rootOptions, l *config.Loaded) *action.Configuration {
	return &action.Configuration{Config: l.Config, Version: vaultctlVersion(), Debug: newDebugLog(opts)}
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
