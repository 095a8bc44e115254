package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// unitConfig writes a config whose cluster and KMS are at addr, and returns its path.
func unitConfig(t *testing.T, addr string) string {
	t.Helper()
	return unitConfigAt(t, "https://"+addr, "http://"+addr, "")
}

// unitConfigAt writes a config whose API server is server (its certificate not verified), whose
// KMS is kmsEndpoint, with extra appended to the vault section; it returns the config's path.
func unitConfigAt(t *testing.T, server, kmsEndpoint, extraVault string) string {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL_KMS", "")
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: not-a-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, server)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "vaultctl.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`apiVersion: vaultctl.io/v1alpha1
kind: Platform
cluster: {kubeconfig: %s}
vault:
  namespace: vault-unit
  seal: {awskms: {region: us-east-1, kmsKeyId: alias/does-not-exist, endpoint: "%s"}}
%s
audit:
  devices:
    - {path: file, type: file, options: {file_path: /tmp/audit.log}}
    - {path: file-stdout, type: file, options: {file_path: stdout}}
`, kc, kmsEndpoint, extraVault)), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUnknownPhaseExitsTwoWithoutContactingTheCluster(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var contacts atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			contacts.Add(1)
			c.Close()
		}
	}()
	cfg := unitConfig(t, l.Addr().String())
	for _, args := range [][]string{
		{"apply", "phase", "NOSUCH", "-c", cfg},
		{"plan", "--only", "nosuch", "-c", cfg},
		{"apply", "--from", "nosuch", "-c", cfg, "-o", "json"},
	} {
		code, stdout, stderr := runCLI(args...)
		if code != 2 || !strings.Contains(stdout+stderr, "phases are: preflight, kms, tls") {
			t.Errorf("%v: want exit 2 and the list of phases, got %d\n%s%s", args, code, stdout, stderr)
		}
	}
	if n := contacts.Load(); n != 0 {
		t.Fatalf("a bad selection contacted the cluster or KMS %d times", n)
	}
}

func TestVerboseLogsEachStepOnStderr(t *testing.T) {
	cfg := unitConfig(t, "127.0.0.1:1") // nothing listens: preflight fails fast

	code, stdout, stderr := runCLI("-v", "apply", "-c", cfg, "-o", "json")
	if code != 1 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	var doc struct {
		OK     bool `json:"ok"`
		Phases []struct{ Phase, Status string }
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || doc.OK || doc.Phases[0].Status != "failed" || doc.Phases[1].Status != "not run" {
		t.Fatalf("-v must leave stdout one JSON document: %v\n%s", err, stdout)
	}
	for _, want := range []string{"vaultctl: apply: connecting", "vaultctl: preflight: before anything is written", "vaultctl: phase preflight: failed", "vaultctl: phase kms: not run"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	code, stdout, stderr = runCLI("apply", "-c", cfg)
	if code != 1 || strings.Contains(stderr, "vaultctl: ") || !strings.Contains(stdout, "preflight") {
		t.Fatalf("without -v: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}
