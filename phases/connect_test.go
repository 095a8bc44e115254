package phases

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/config"
)

// A kubeconfig Connect can read without contacting anything.
const offlineKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`

func TestConnectTakesVaultAddrWhereTheConfigIsSilent(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(offlineKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_ADDR", "https://vault.from-env:8200")
	cfg := testConfig(func(c *config.Config) { c.Vault.Mode = config.ModeExternal; c.Cluster.Kubeconfig = kc })
	env, err := Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close(context.Background())
	ep, err := env.Vault.Endpoint(context.Background())
	if err != nil || ep.Address != "https://vault.from-env:8200" {
		t.Fatalf("session endpoint %+v %v", ep, err)
	}
	// The phases that hand the address on see it too: the injector's externalVaultAddr.
	if in := phaseNamed(env, "injector").Inputs().(InjectorInputs); in.Address != "https://vault.from-env:8200" {
		t.Fatalf("injector inputs address %q", in.Address)
	}
}

func TestPendingGraceIsShortOnlyAfterADeadRun(t *testing.T) {
	if g := pendingGrace(&Env{}); g != time.Minute {
		t.Errorf("grace after a live or unknown run = %s, want 1m (a helm command run by hand)", g)
	}
	if g := pendingGrace(&Env{PreviousRunDied: true}); g <= 0 || g >= time.Second {
		t.Errorf("grace after a dead local run = %s, want at once (and not 0, which means the Helm timeout)", g)
	}
}
