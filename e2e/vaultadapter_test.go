package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/internal/sandbox"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/internal/vault/vaulttest"
)

// TestVaultAdapterContract holds the real client (vault.HTTPDialer) to the contract the Fake
// is held to in unit tests, against a real Vault: where they disagree, the Fake is wrong.
// The server is a dev server of the tools' Vault binary over TLS (so the pinned-CA path is
// the one exercised), shared by the subtests; the sandbox provides what a dev server lacks:
// PostgreSQL for the database engine, and a raft cluster for autopilot.
func TestVaultAdapterContract(t *testing.T) {
	ep, root := startVaultDev(t)
	dialer := vaulttest.FixedEndpoint(vault.HTTPDialer{Timeout: 30 * time.Second}, ep)
	dial := func(t *testing.T) (vault.Client, vault.Dialer) {
		c, err := dialer.Dial(ep)
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(root)
		return c, dialer
	}
	vaulttest.Contract(t, dial)
	// The sandbox's PostgreSQL gives the database engine a real database to manage.
	t.Run("Database", func(t *testing.T) { vaulttest.Database(t, dial, sb.PostgresURL) })

	t.Run("RaftOnSandboxCluster", func(t *testing.T) {
		ca, err := os.ReadFile(sb.VaultCACert)
		if err != nil {
			t.Fatal(err)
		}
		token := vaultRoot(t, sb.VaultAddrs[0]).Token()
		c, err := vault.HTTPDialer{}.Dial(vault.Endpoint{Address: sb.VaultAddrs[0], CAPEM: ca})
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(token)
		ctx := context.Background()
		// The same key and value initVault writes: other tests see no change.
		if err := c.WriteAutopilotConfig(ctx, map[string]any{"server_stabilization_time": "1s"}); err != nil {
			t.Fatalf("WriteAutopilotConfig: %v", err)
		}
		cfg, err := c.AutopilotConfig(ctx)
		if err != nil || cfg == nil || cfg.ServerStabilizationTime != time.Second {
			t.Fatalf("AutopilotConfig = %+v, %v; want server_stabilization_time 1s", cfg, err)
		}
		// Community Edition refuses the Enterprise-only key, as the Fake does.
		if err := c.WriteAutopilotConfig(ctx, map[string]any{"disable_upgrade_migration": true}); vault.StatusCode(err) != 400 {
			t.Fatalf("WriteAutopilotConfig with disable_upgrade_migration = %v, want a 400", err)
		}
		if err := c.WriteAutopilotConfig(ctx, map[string]any{"cleanup_dead_servers": true, "min_quorum": 2}); vault.StatusCode(err) != 400 {
			t.Fatalf("WriteAutopilotConfig with cleanup_dead_servers and min_quorum 2 = %v, want a 400", err)
		}
		eventually(t, time.Minute, "autopilot healthy through the adapter", func() error {
			st, err := c.AutopilotState(ctx)
			if err != nil {
				return err
			}
			if st == nil || !st.Healthy || len(st.Voters) == 0 || st.Servers[st.Leader] == nil {
				return fmt.Errorf("autopilot state %+v", st)
			}
			return nil
		})
		st, err := c.SealStatus(ctx)
		if err != nil || !st.Initialized || st.Sealed || !st.RecoverySeal {
			t.Fatalf("SealStatus = %+v, %v; want an initialized, unsealed, auto-unsealed Vault", st, err)
		}
	})
}

// startVaultDev starts `vault server -dev -dev-tls` on a free loopback port, waits until it
// answers, and stops it when the test ends. It returns the endpoint (with the dev CA) and the
// root token.
func startVaultDev(t *testing.T) (vault.Endpoint, string) {
	t.Helper()
	bin := filepath.Join(os.Getenv(sandbox.ToolsDirEnv), "vault")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no Vault binary: %v (run `make tools`; %s must point at `hack/tools/build.sh --dir`)", err, sandbox.ToolsDirEnv)
	}
	port := freePortPair(t)
	dir := t.TempDir()
	b := make([]byte, 12)
	rand.Read(b)
	root := "contract-root-" + hex.EncodeToString(b) // Vault reserves the hvs. prefix

	logPath := filepath.Join(dir, "vault.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "server", "-dev", "-dev-tls", "-dev-tls-cert-dir="+dir,
		"-dev-listen-address=127.0.0.1:"+strconv.Itoa(port), "-dev-root-token-id="+root, "-dev-no-store-token")
	// Only what the server needs: no VAULT_* of the developer's, no ~/.vault-token.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	tail := func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return string(bytes.TrimSpace(b))
	}

	addr := "https://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("vault dev server exited: %v\n--- %s:\n%s", waitErr, logPath, tail())
		default:
		}
		if ca, err := os.ReadFile(filepath.Join(dir, "vault-ca.pem")); err == nil {
			ep := vault.Endpoint{Address: addr, CAPEM: ca}
			if c, err := (vault.HTTPDialer{Timeout: 2 * time.Second, MaxRetries: -1}).Dial(ep); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				h, err := c.Health(ctx)
				cancel()
				if err == nil && h.Initialized && !h.Sealed {
					return ep, root
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault dev server not ready at %s after 60s\n--- %s:\n%s", addr, logPath, tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// freePortPair returns a loopback port p with p+1 also free: a dev server's cluster listener
// takes the port after its API port.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no free pair of loopback ports")
	return 0
}
