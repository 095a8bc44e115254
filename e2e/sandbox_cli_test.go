package e2e

// The sandbox's own binary, cmd/vaultctl-sandbox, against the shared sandbox; and vaultctl,
// which no longer has a sandbox command.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runSandboxCLI runs the binary on the shared sandbox's directory. Its output is never logged
// whole: `env` prints the PostgreSQL password.
func runSandboxCLI(t *testing.T, args ...string) (code int, stdout []byte, stderr string) {
	t.Helper()
	cmd := exec.Command(buildBinary(t, "./cmd/vaultctl-sandbox"), append(args, "--dir", sb.Dir)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running vaultctl-sandbox %s: %v", strings.Join(args, " "), err)
	}
	return code, out.Bytes(), errb.String()
}

func TestSandboxBinary(t *testing.T) {
	code, out, stderr := runSandboxCLI(t, "status", "-o", "json")
	var st struct {
		Dir        string `json:"dir"`
		Healthy    bool   `json:"healthy"`
		Components []struct {
			Name    string `json:"name"`
			Healthy bool   `json:"healthy"`
		} `json:"components"`
	}
	if err := json.Unmarshal(out, &st); err != nil || (code != 0 && code != 1) {
		t.Fatalf("status: exit %d, %v; stderr: %s", code, err, stderr)
	}
	if (code == 0) != st.Healthy || st.Dir != sb.Dir {
		t.Errorf("status: exit %d with healthy=%t, dir %s (want %s)", code, st.Healthy, st.Dir, sb.Dir)
	}
	apiserver := false
	for _, c := range st.Components {
		apiserver = apiserver || (c.Name == "kube-apiserver" && c.Healthy)
	}
	if !apiserver {
		t.Errorf("status does not show a healthy kube-apiserver: %+v", st.Components)
	}

	code, out, stderr = runSandboxCLI(t, "env", "-o", "json")
	var env map[string]string
	if err := json.Unmarshal(out, &env); err != nil || code != 0 {
		t.Fatalf("env: exit %d, %v; stderr: %s", code, err, stderr)
	}
	if env["KUBECONFIG"] != sb.Kubeconfig || !strings.HasPrefix(env["VAULTCTL_PG_URL"], "postgres://") {
		t.Errorf("env: KUBECONFIG %q (want %q), VAULTCTL_PG_URL set: %t", env["KUBECONFIG"], sb.Kubeconfig, env["VAULTCTL_PG_URL"] != "")
	}

	// `up` reuses a running sandbox only when every component is healthy: wait for that (a probe
	// can time out on a loaded machine), and fail, never skip, when one stays down.
	eventually(t, 90*time.Second, "`vaultctl-sandbox status` healthy before `up`", func() error {
		code, table, _ := runSandboxCLI(t, "status") // the table holds no secret
		if code != 0 {
			return fmt.Errorf("status: exit %d:\n%s", code, table)
		}
		return nil
	})
	code, out, stderr = runSandboxCLI(t, "up", "-o", "json")
	var up struct {
		AlreadyRunning bool `json:"alreadyRunning"`
	}
	if err := json.Unmarshal(out, &up); err != nil || code != 0 || !up.AlreadyRunning {
		t.Errorf("up on a running sandbox: exit %d, alreadyRunning=%t, %v; stderr: %s", code, up.AlreadyRunning, err, stderr)
	}
}

// The sandbox left the product binary: `vaultctl sandbox` is an unknown command.
func TestVaultctlHasNoSandboxCommand(t *testing.T) {
	res := vaultctl(t, "sandbox", "status")
	if res.Code != 2 || !strings.Contains(res.Stderr, `unknown command "sandbox"`) {
		t.Errorf("want exit 2 and unknown command, got %s", res)
	}
}
