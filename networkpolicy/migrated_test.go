package networkpolicy

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vaultctl/vaultctl/config"
)

// A namespace migrate switched to Vault is admitted beside the configured clients: its labelled
// pods reach the servers on 8200 (and, with appEgress, only Vault and DNS), its other pods
// stay out, and the config's clients are unaffected.
func TestBuildMigratedAdmitsOnlyLabelledPods(t *testing.T) {
	cfg := loadCase(t, "app-egress")
	ps := append(Build(cfg), BuildMigrated(cfg, "team-a")...)
	migrated := pod("team-a", "10.1.5.10", "app", "api", VaultClientLabel, VaultClientValue)
	notYet := pod("team-a", "10.1.5.11", "app", "batch")
	elsewhere := pod("team-b", "10.1.6.10", VaultClientLabel, VaultClientValue)
	v0 := vaultPod(cfg, 0)
	checkFlows(t, ps, []flow{
		{"a migrated pod reaches Vault", migrated, v0, 8200, "", true},
		{"a migrated pod reaches DNS (appEgress)", migrated, dnsPod, 53, corev1.ProtocolUDP, true},
		{"a migrated pod is egress-isolated like a configured client", migrated, internet, 443, "", false},
		{"a migrated pod does not get the cluster port", migrated, v0, 8201, "", false},
		{"a pod of the namespace not migrated stays out", notYet, v0, 8200, "", false},
		{"a pod not migrated keeps its egress", notYet, internet, 443, "", true},
		{"the label in a namespace not migrated admits nothing", elsewhere, v0, 8200, "", false},
		{"configured clients still reach Vault", pod("production", "10.1.0.10", "app", "webapp"), v0, 8200, "", true},
	})
	for _, p := range BuildMigrated(cfg, "team-a") {
		if p.Labels[MigratedNamespaceLabel] != "team-a" || !owned(&p, cfg.Vault.Namespace) {
			t.Errorf("%s/%s labels %v: want the installation's and %s=team-a", p.Namespace, p.Name, p.Labels, MigratedNamespaceLabel)
		}
	}
}

func TestBuildMigratedNothingWithoutServerPolicies(t *testing.T) {
	cfg := loadCase(t, "app-egress")
	cfg.NetworkPolicies.Enabled = false
	if ps := BuildMigrated(cfg, "team-a"); ps != nil {
		t.Errorf("policies disabled: got %d policies", len(ps))
	}
	cfg = loadCase(t, "app-egress")
	cfg.Vault.Mode = config.ModeExternal
	if ps := BuildMigrated(cfg, "team-a"); ps != nil {
		t.Errorf("external Vault: got %d policies", len(ps))
	}
	cfg = loadCase(t, "article")
	got := BuildMigrated(cfg, "team-a")
	if len(got) != 1 || got[0].Name != MigratedClientsName("team-a") || got[0].Namespace != cfg.Vault.Namespace {
		t.Errorf("no appEgress: want only %s in the Vault namespace, got %v", MigratedClientsName("team-a"), got)
	}
}

// The network-policies phase prunes what the config no longer lists, never what migrate added.
func TestPruneLeavesMigratePolicies(t *testing.T) {
	ctx := context.Background()
	cfg := loadCase(t, "app-egress")
	cs := fake.NewClientset()
	mustApply(t, cs, BuildMigrated(cfg, "team-a"), false)
	res := mustApply(t, cs, Build(cfg), true)
	if del := changesOf(res.Changes, ActionDelete); len(del) != 0 {
		t.Fatalf("apply --prune deleted %v", del)
	}
	for _, p := range BuildMigrated(cfg, "team-a") {
		if _, err := cs.NetworkingV1().NetworkPolicies(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s/%s: %v", p.Namespace, p.Name, err)
		}
	}
	names := []string{}
	for _, p := range BuildMigrated(cfg, "team-a") {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	if want := []string{cfg.Vault.Namespace + "/" + MigratedClientsName("team-a"), "team-a/" + NameMigratedEgress}; !slices.Equal(names, want) {
		t.Errorf("BuildMigrated = %v, want %v", names, want)
	}
}
