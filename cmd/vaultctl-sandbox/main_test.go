package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestNoSandbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sb")
	for _, cmd := range [][]string{{"status"}, {"env"}, {"effective", "shop/web-1"}} {
		code, _, stderr := runCLI(t, append(cmd, "--dir", dir)...)
		if code != exitFailed || !strings.Contains(stderr, "no sandbox in "+dir) || !strings.Contains(stderr, "vaultctl-sandbox up") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and how to start one", cmd, code, stderr)
		}
	}
	for _, args := range [][]string{{"down"}, {"down", "--purge"}} {
		code, _, stderr := runCLI(t, append(args, "--dir", dir)...)
		if code != exitOK || !strings.Contains(stderr, "no sandbox in") {
			t.Errorf("%v: exit %d, stderr %q; stopping nothing is fine", args, code, stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"up", "extra"}, {"status", "--no-such-flag"}, {"-v"},
		{"effective"}, {"effective", "web-1"}, {"effective", "shop/"}, {"effective", "a/b/c"}} {
		if code, _, stderr := runCLI(t, args...); code != exitUsage || !strings.Contains(stderr, "Error:") {
			t.Errorf("%v: exit %d, stderr %q; want 2", args, code, stderr)
		}
	}
}

func TestHelpNamesThisBinary(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"up", "--help"}, {"down", "--help"}, {"status", "--help"}, {"env", "--help"}, {"effective", "--help"}} {
		code, stdout, _ := runCLI(t, args...)
		if code != exitOK || !strings.Contains(stdout, "vaultctl-sandbox") || strings.Contains(stdout, "vaultctl sandbox") {
			t.Errorf("%v: exit %d; help must name vaultctl-sandbox, not `vaultctl sandbox`:\n%s", args, code, stdout)
		}
	}
	code, stdout, _ := runCLI(t, "--version")
	if code != exitOK || !strings.HasPrefix(stdout, "vaultctl-sandbox version ") {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
}
