// Package testreq decides what a test does when something it needs is missing (a binary, a
// pseudo-terminal, root): it skips when run by hand, and fails under `make test`, which sets
// MustRunEnv, so that a suite reported green has run every test it was asked to run.
package testreq

import (
	"fmt"
	"os"
	"testing"
)

// MustRunEnv, when non-empty, turns every Missing into a failure. The Makefile exports it.
const MustRunEnv = "VAULTCTL_TEST_MUST_RUN"

// MustRun reports whether tests must run rather than skip.
func MustRun() bool { return os.Getenv(MustRunEnv) != "" }

// Missing ends t for want of a prerequisite: t.Skip normally, t.Fatal under MustRunEnv.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if MustRun() {
		t.Fatalf("%s (%s is set, as under `make test`: this test must run, not skip)", msg, MustRunEnv)
		return
	}
	t.Skip(msg)
}
