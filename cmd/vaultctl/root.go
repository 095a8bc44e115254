package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/config"
)

// Exit codes, documented in the README and in `vaultctl --help`.
const (
	exitOK       = 0 // success; for check: no findings
	exitFailed   = 1 // a phase failed; for check: findings
	exitUsage    = 2 // bad flags, bad config, unparsable input
	exitHasDiffs = 3 // plan found changes to make
)

// exitError carries an exit code through cobra; commands return it to choose the code.
type exitError struct {
	code int
	err  error
	// warnings go into the JSON failure document run prints for a command that printed none.
	warnings []string
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// withCode wraps err so that run exits with code; a nil err with a code exits silently.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// withWarnings is withCode for a failure that also has warnings to report.
func withWarnings(code int, err error, warnings []string) error {
	return &exitError{code: code, err: err, warnings: warnings}
}

// rootOptions are the global flags every command sees.
type rootOptions struct {
	ConfigPath     string
	Kubeconfig     string
	Context        string
	Output         string // text or json
	NonInteractive bool
	Verbose        int

	stdin  io.Reader
	stdout io.Writer // counts what it writes: see run
	stderr io.Writer
	// terminal is the stdout given to run, to ask whether it is a terminal.
	terminal io.Writer
}

// countingWriter tells run whether a command printed anything on stdout.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// run executes vaultctl and returns its exit code. An error is printed on stderr as text; with
// -o json, a command that failed without printing its JSON document gets the failure document
// ({"command", "ok": false, "error", "warnings"}) on stdout, so that stdout always holds exactly
// one JSON document, whatever failed: flags, config, connecting, or the command itself.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	out := &countingWriter{w: stdout}
	opts := &rootOptions{stdin: stdin, stdout: out, stderr: stderr, terminal: stdout}
	cmd := newRootCmd(opts)
	cmd.SetArgs(args)
	cmd.SetIn(stdin)
	cmd.SetOut(out)
	cmd.SetErr(stderr)
	c, err := cmd.ExecuteC()
	if err == nil {
		return exitOK
	}
	// cobra's own errors (unknown flag, wrong argument count) are usage errors.
	code, shown := exitUsage, err
	var ee *exitError
	if errors.As(err, &ee) {
		code, shown = ee.code, ee.err
	}
	if out.n == 0 && wantsJSON(c, args) {
		_ = writeJSON(out, failureDoc(commandName(c), err))
	}
	if shown != nil {
		fmt.Fprintln(stderr, "Error:", shown)
	}
	return code
}

// failure is the JSON document of a command that failed before it had anything else to say.
type failure struct {
	Command      string           `json:"command"`
	OK           bool             `json:"ok"`
	Error        string           `json:"error"`
	ConfigErrors []config.Problem `json:"configErrors,omitempty"`
	Warnings     []string         `json:"warnings"`
}

// failureDoc describes err for -o json; an invalid config also lists its problems.
func failureDoc(command string, err error) failure {
	f := failure{Command: command, Error: err.Error(), Warnings: []string{}}
	var ee *exitError
	if errors.As(err, &ee) && ee.warnings != nil {
		f.Warnings = ee.warnings
	}
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		f.ConfigErrors = ve.Problems
	}
	return f
}

// commandName is how JSON documents name the command: its path below vaultctl ("config
// validate", "apply phase"), or "vaultctl" when no subcommand was found.
func commandName(c *cobra.Command) string {
	if c == nil || !c.HasParent() {
		return "vaultctl"
	}
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
}

// wantsJSON says whether the user asked for -o json: from the parsed flag of the command that
// ran (check has its own --output), else from the arguments, for errors cobra found before it
// parsed the flags (an unknown command or flag).
func wantsJSON(c *cobra.Command, args []string) bool {
	if c != nil {
		if f := c.Flags().Lookup("output"); f != nil && f.Changed {
			return f.Value.String() == "json"
		}
	}
	return outputArg(args) == "json"
}

// outputArg finds -o/--output in raw arguments; the last one wins, as with flags.
func outputArg(args []string) string {
	var v string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return v
		case a == "-o" || a == "--output":
			if i+1 < len(args) {
				v = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "--output="):
			v = strings.TrimPrefix(a, "--output=")
		case strings.HasPrefix(a, "-o="):
			v = strings.TrimPrefix(a, "-o=")
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			v = strings.TrimPrefix(a, "-o")
		}
	}
	return v
}

// outputFormats are what the global -o accepts; check has its own flag with more.
var outputFormats = []string{"text", "json"}

func checkOutput(opts *rootOptions) error {
	for _, f := range outputFormats {
		if opts.Output == f {
			return nil
		}
	}
	return withCode(exitUsage, fmt.Errorf("--output must be %s, not %q", strings.Join(outputFormats, " or "), opts.Output))
}

// unknownSubcommand is the RunE of a command that only groups others: without arguments it
// shows its help, and a typo is a usage error with suggestions, as cobra says at the top level
// (left to cobra, a group prints its help and exits 0, so a CI step with a typo would pass).
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return unknownCommandError(cmd, args[0])
}

func unknownCommandError(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, set only when cobra itself suggests
	}
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	if cmd.HasAvailableSubCommands() {
		msg += fmt.Sprintf("\n\nRun '%s --help' for its commands.", cmd.CommandPath())
	}
	return withCode(exitUsage, errors.New(msg))
}

// noArgsButSubcommands is NoArgs for a command that runs and has subcommands (apply): an
// argument is most likely a mistyped subcommand.
func noArgsButSubcommands(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return unknownCommandError(cmd, args[0])
	}
	return nil
}

// refuseUnknownSubcommands gives every group below the root the RunE above; the root is left
// to cobra, which already refuses an unknown command.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		if c.HasSubCommands() && !c.Runnable() {
			c.Args, c.RunE = cobra.ArbitraryArgs, unknownSubcommand
		}
		refuseUnknownSubcommands(c)
	}
}
