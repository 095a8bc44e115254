package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// upgrade and snapshot keep the CLI's contract: with -o json a failure is one JSON document
// with command, ok false, error and a warnings array; usage errors exit 2.
func TestUpgradeAndSnapshotFailuresPrintOneJSONDocument(t *testing.T) {
	unreachable := unitConfig(t, refusedAddr(t))
	dir := t.TempDir()
	snap := filepath.Join(dir, "vault.snap")
	if err := os.WriteFile(snap, []byte("not a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		command string
		code    int
		want    string
	}{
		{[]string{"upgrade", "-c", unreachable}, "upgrade", 1, ""},
		{[]string{"upgrade", "--plan", "-c", unreachable}, "upgrade", 1, ""},
		{[]string{"snapshot", "save", "-c", unreachable}, "snapshot save", 2, "one FILE"},
		{[]string{"snapshot", "save", filepath.Join(dir, "new.snap"), "-c", unreachable}, "snapshot save", 1, ""},
		{[]string{"snapshot", "restore", snap, "-c", unreachable}, "snapshot restore", 2, "--yes"},
		{[]string{"snapshot", "restore", "--yes", snap, "-c", unreachable}, "snapshot restore", 1, "not a complete Vault Raft snapshot"},
	} {
		args := append(append([]string{}, tc.args...), "-o", "json")
		code, stdout, stderr := runCLI(args...)
		doc, err := oneJSONDocument(stdout)
		if err != nil {
			t.Errorf("%v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout, stderr)
			continue
		}
		msg, _ := doc["error"].(string)
		warnings, isList := doc["warnings"].([]any)
		if code != tc.code || doc["command"] != tc.command || doc["ok"] != false || msg == "" || !isList || warnings == nil || !strings.Contains(msg, tc.want) {
			t.Errorf("%v: exit %d (want %d), command %v (want %q), ok %v, error %q (want %q in it), warnings %#v",
				args, code, tc.code, doc["command"], tc.command, doc["ok"], msg, tc.want, doc["warnings"])
		}
		if err := humanText(stderr); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func TestUpgradeRefusesAnExternalVault(t *testing.T) {
	cfg := unitConfigAt(t, "https://"+refusedAddr(t), "http://"+refusedAddr(t), "  mode: external\n  address: https://vault.example.com:8200")
	code, _, stderr := runCLI("upgrade", "-c", cfg)
	if code != 1 || !strings.Contains(stderr, "vault.mode is external") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
}
