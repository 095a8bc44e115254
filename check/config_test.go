package check

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// minimalConfig is a valid vaultctl.yaml with one role, for the default-config cases.
const minimalConfig = `apiVersion: vaultctl.io/v1alpha1
kind: Platform
vault:
  seal:
    awskms:
      region: us-east-1
      kmsKeyId: alias/vault
audit:
  devices:
    - {path: file, type: file, options: {file_path: /vault/audit/audit.log}}
    - {path: file-stdout, type: file, options: {file_path: stdout}}
kv:
  - path: secret
roles:
  - name: web
    serviceAccounts: [web]
    namespaces: [production]
    policies: [web]
    ttl: 1h
    maxTTL: 4h
policies:
  - name: web
    rules:
      - path: secret/production/web
        capabilities: [read]
`

const podWithUnknownRole = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: production
  annotations:
    vault.hashicorp.com/agent-inject: "true"
    vault.hashicorp.com/role: nosuch
spec:
  serviceAccountName: web
  containers: [{name: web, image: web}]
`

// The -c default (vaultctl.yaml) is used when it exists, so policy-mismatch runs without an
// explicit --config; it used to be ignored unless --config was given.
func TestDefaultConfig(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.WriteFile("pod.yaml", []byte(podWithUnknownRole), 0o644)

	// No vaultctl.yaml: no config, no error.
	cfg, file, err := LoadConfig("vaultctl.yaml", false)
	if cfg != nil || file != "" || err != nil {
		t.Fatalf("missing default: %v %q %v", cfg, file, err)
	}
	// A named file must exist.
	if _, _, err := LoadConfig("other.yaml", true); !isUsage(err) || !strings.Contains(err.Error(), "other.yaml") {
		t.Errorf("missing --config: %v", err)
	}

	os.WriteFile("vaultctl.yaml", []byte(minimalConfig), 0o644)
	cfg, file, err = LoadConfig("vaultctl.yaml", false)
	if err != nil || cfg == nil || file != "vaultctl.yaml" {
		t.Fatalf("default config: %v %q %v", cfg, file, err)
	}
	rep := run(t, Options{Config: cfg, ConfigFile: file}, "pod.yaml")
	if len(rep.Findings) != 1 || rep.Findings[0].Rule != RulePolicyMismatch || !strings.Contains(rep.Findings[0].Message, `role "nosuch" is not in the config`) {
		t.Fatalf("findings with the default config: %+v", rep.Findings)
	}
	var text, js bytes.Buffer
	WriteText(&text, rep)
	WriteJSON(&js, rep)
	if !strings.Contains(text.String(), "1 finding in 1 file (1 object); roles and policies checked against vaultctl.yaml:") {
		t.Errorf("text does not name the config:\n%s", text.String())
	}
	if !strings.Contains(js.String(), `"config": "vaultctl.yaml"`) {
		t.Errorf("JSON does not name the config:\n%s", js.String())
	}
	// --config '' turns the config off even when vaultctl.yaml exists.
	if cfg, _, err := LoadConfig("", true); cfg != nil || err != nil {
		t.Errorf("--config '': %v %v", cfg, err)
	}

	// A broken default file is an error that says why it was read.
	os.WriteFile("vaultctl.yaml", []byte("vault:\n  replicas: 2\n"), 0o644)
	_, _, err = LoadConfig("vaultctl.yaml", false)
	if !isUsage(err) || !strings.Contains(err.Error(), "vault.replicas") || !strings.Contains(err.Error(), "read by default") {
		t.Errorf("broken default config: %v", err)
	}
}

func isUsage(err error) bool {
	var ue *UsageError
	return errors.As(err, &ue)
}
