// Package e2e holds every end-to-end test of vaultctl. They share one sandbox, started once by
// TestMain: keep all e2e tests in this one package, because `go test ./...` runs packages in
// parallel and each package's TestMain would start its own sandbox on a 2-core runner.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/internal/sandbox"
)

// sb is the sandbox every test uses: Kubernetes (3 fake nodes), an uninitialized 3-node Vault
// with KMS auto-unseal, the KMS emulator and PostgreSQL.
var sb *sandbox.Sandbox

// keepEnv keeps the sandbox directory (logs, data) after the run for debugging.
const keepEnv = "VAULTCTL_E2E_KEEP"

func TestMain(m *testing.M) {
	// The sandbox's in-cluster runner is this binary, re-executed by sandbox.Up.
	if sandbox.RunnerMain() {
		return
	}
	os.Exit(runE2E(m))
}

func runE2E(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipping the whole package under -short: it starts a real sandbox (Kubernetes, Vault, KMS, PostgreSQL)")
		return 0
	}
	// Never skip silently: a missing toolchain is a failure, with the fix in the message.
	if os.Getenv(sandbox.ToolsDirEnv) == "" {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %s is not set. Run `make tools` and `export %s=$(hack/tools/build.sh --dir)`, "+
			"or run `go test -short` to leave out the e2e package.\n", sandbox.ToolsDirEnv, sandbox.ToolsDirEnv)
		return 1
	}
	// The developer's shell may point VAULT_* at a real Vault (address, token, namespace, agent);
	// the Vault API client reads them, so none may leak into these tests.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "VAULT_") {
			os.Unsetenv(k)
		}
	}

	dir, err := os.MkdirTemp("", "vaultctl-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", err)
		return 1
	}
	keep := os.Getenv(keepEnv) == "1"

	var once sync.Once
	teardown := func() {
		once.Do(func() {
			if sb != nil {
				if err := sb.Down(context.Background()); err != nil {
					fmt.Fprintf(os.Stderr, "e2e: tearing down the sandbox: %v\n", err)
				}
			}
			if keep {
				fmt.Fprintf(os.Stderr, "e2e: %s=1: sandbox directory kept: %s\n", keepEnv, dir)
				return
			}
			os.RemoveAll(dir)
		})
	}
	defer teardown()

	// Ctrl-C or a kill: tear down, then exit. A crash or SIGKILL of this binary is covered by
	// StopWithParent (every sandbox process gets SIGKILL when we die).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "e2e: %v: tearing down the sandbox\n", s)
		teardown()
		os.Exit(1)
	}()
	// `go test -timeout` panics from a timer goroutine and deferred calls never run: tear down
	// just before that.
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 0 {
			margin := min(30*time.Second, d/10)
			time.AfterFunc(d-margin, func() {
				fmt.Fprintf(os.Stderr, "e2e: FAIL: test timeout (%s) about to expire: tearing down the sandbox\n", d)
				teardown()
				os.Exit(1)
			})
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	s, err := sandbox.Up(ctx, sandbox.Options{
		Dir:            dir,
		WithVault:      true,
		WithPostgres:   true,
		Log:            os.Stderr,
		StopWithParent: true,
	})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: starting the sandbox: %v\n", err)
		return 1
	}
	sb = s
	return m.Run()
}
