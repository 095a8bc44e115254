// Command vaultctl-sandbox runs the throwaway local estate that vaultctl's end-to-end tests and
// `make demo` use: Kubernetes, a 3-node Vault, a KMS emulator and PostgreSQL on 127.0.0.1.
//
// It is a binary of its own, never linked into vaultctl: the sandbox's in-cluster runner is this
// binary re-executed, and one of its modes mounts and chroots, which a product binary must not
// be able to do.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/vaultctl/vaultctl/internal/sandbox"
)

func main() {
	// Up re-executes this binary as the runner (and the runner as each pod's setup): those
	// modes take over here, before any flag parsing.
	if sandbox.RunnerMain() {
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// version is stamped by `make build` (-ldflags "-X main.version=...").
var version = "dev"

func binaryVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// Exit codes, as vaultctl's: documented in the root command's help.
const (
	exitOK     = 0 // success
	exitFailed = 1 // a component failed to start, or is down or unhealthy
	exitUsage  = 2 // bad flags or arguments
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
	Output string // text or json

	stdout io.Writer
	stderr io.Writer
}

func run(args []string, stdout, stderr io.Writer) int {
	opts := &rootOptions{stdout: stdout, stderr: stderr}
	cmd := newRootCmd(opts)
	cmd.SetArgs(args)
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
