package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	buildsMu sync.Mutex
	builds   = map[string]func() (string, error){}
)

// buildBinary builds the main package pkg (relative to the module root) once per test run and
// returns the binary's path.
func buildBinary(t *testing.T, pkg string) string {
	t.Helper()
	buildsMu.Lock()
	build, ok := builds[pkg]
	if !ok {
		build = sync.OnceValues(func() (string, error) {
			_, here, _, _ := runtime.Caller(0)
			dir, err := os.MkdirTemp("", "vaultctl-e2e-bin")
			if err != nil {
				return "", err
			}
			bin := filepath.Join(dir, filepath.Base(pkg))
			cmd := exec.Command("go", "build", "-o", bin, pkg)
			cmd.Dir = filepath.Dir(filepath.Dir(here))
			if out, err := cmd.CombinedOutput(); err != nil {
				return "", errors.New(string(out))
			}
			return bin, nil
		})
		builds[pkg] = build
	}
	buildsMu.Unlock()
	bin, err := build()
	if err != nil {
		t.Fatalf("building %s: %v", pkg, err)
	}
	return bin
}

// vaultctlBinary builds the real binary once per test run, so end-to-end tests exercise exactly
// what users run: flag parsing, config loading, exit codes and output.
func vaultctlBinary(t *testing.T) string { return buildBinary(t, "./cmd/vaultctl") }

// cliResult is one run of the binary.
type cliResult struct {
	Code           int
	Stdout, Stderr string
}

func (r cliResult) String() string {
	return "exit " + strconv.Itoa(r.Code) + "\nstdout:\n" + r.Stdout + "\nstderr:\n" + r.Stderr
}

// vaultctl runs the binary with the sandbox's environment (KMS endpoint, dummy AWS credentials).
func vaultctl(t *testing.T, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(vaultctlBinary(t), args...)
	cmd.Env = append(os.Environ(), sb.Env()...)
	cmd.Env = append(cmd.Env, "CI=true")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running vaultctl %s: %v", strings.Join(args, " "), err)
	}
	recordOutput(res.Stdout + res.Stderr)
	return res
}

var (
	outputsMu sync.Mutex
	outputs   []string
)

// recordOutput keeps every CLI output so secret-scanning tests can search all of it.
func recordOutput(s string) {
	outputsMu.Lock()
	defer outputsMu.Unlock()
	outputs = append(outputs, s)
}
