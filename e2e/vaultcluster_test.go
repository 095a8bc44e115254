package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/vaultctl/vaultctl/internal/sandbox"
)

// startVaultCluster gives a test its own fresh, uninitialized 3-node Vault on the sandbox KMS,
// stopped when the test ends.
func startVaultCluster(t *testing.T) *sandbox.VaultCluster {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 20 {
		name = name[len(name)-20:]
	}
	name = strings.Trim(name, "-")
	vc, err := sb.StartVaultCluster(context.Background(), name)
	if err != nil {
		t.Fatalf("starting a Vault cluster: %v", err)
	}
	t.Cleanup(func() { vc.Stop() })
	return vc
}
