package migrate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sourceEnvFile runs `/bin/sh -ec '. FILE && env -0'` on a rendered env file in an empty
// environment and returns the variables the shell then has.
func sourceEnvFile(t *testing.T, rendered string) map[string]string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(file, []byte(rendered), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-ec", ". "+file+" && env -0")
	cmd.Env = []string{}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sourcing the env file: %v: %s", err, stderr.String())
	}
	return parseEnv0(out)
}

// parseEnv0 reads `env -0` output.
func parseEnv0(out []byte) map[string]string {
	vars := map[string]string{}
	for _, kv := range strings.Split(string(out), "\x00") {
		if name, value, ok := strings.Cut(kv, "="); ok {
			vars[name] = value
		}
	}
	return vars
}
