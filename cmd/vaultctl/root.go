package main

import (
	"errors"
	"fmt"
	"io"
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

// rootOptions are the global flags every command sees.
type rootOptions struct {
	ConfigPath     string
	Kubeconfig     string
	Context        string
	Output         string // text or json
	NonInteractive bool
	Verbose        int

	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts := &rootOptions{stdin: stdin, stdout: stdout, stderr: stderr}
	cmd := newRootCmd(opts)
	cmd.SetArgs(args)
	cmd.SetIn(stdin)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "Error:", ee.err)
		}
		return ee.code
	}
	// cobra's own errors (unknown flag, wrong argument count) are usage errors.
	fmt.Fprintln(stderr, "Error:", err)
	return exitUsage
}
