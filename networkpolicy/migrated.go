package networkpolicy

import (
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/vaultctl/vaultctl/config"
)

// What `migrate namespace` adds to the installation's policies: its workloads did not read Vault
// when the config listed the allowed clients, and without these vaultctl's own default-deny
// would block the workloads it just migrated.
const (
	// VaultClientLabel marks the pods of workloads migrate switched to Vault: the policies below
	// admit exactly those.
	VaultClientLabel = "vaultctl.io/vault-client"
	VaultClientValue = "true"
	// MigratedNamespaceLabel names the namespace whose migration created the object. The
	// network-policies phase never prunes such an object: it is migrate's, not the config's, and
	// `migrate namespace --rollback --purge` removes it.
	MigratedNamespaceLabel = "vaultctl.io/migrated-namespace"

	migratedPrefix = namePrefix + "migrated-"
	// NameMigratedEgress is the egress policy in a migrated namespace (networkPolicies.appEgress).
	NameMigratedEgress = migratedPrefix + "vault-egress"
)

// MigratedClientsName is the policy in the Vault namespace that admits ns's migrated pods.
func MigratedClientsName(ns string) string { return migratedPrefix + ns }

// BuildMigrated returns the policies that let the migrated pods of namespace ns reach Vault,
// shaped like Build's for a listed client: ingress to the servers on 8200 and, with
// networkPolicies.appEgress, egress from those pods to Vault and DNS. It returns nil when Build
// emits no server policies (policies disabled, or an external Vault).
func BuildMigrated(cfg *config.Config, ns string) []networkingv1.NetworkPolicy {
	if !cfg.NetworkPolicies.Enabled || cfg.External() {
		return nil
	}
	vns := cfg.Vault.Namespace
	groups := []clientGroup{{namespace: ns, selectors: []clientSelector{{labels: map[string]string{VaultClientLabel: VaultClientValue}}}}}
	key := "migrate namespace " + ns
	in := vaultClients(vns, groups)
	in.Name = MigratedClientsName(ns)
	in.Annotations[ConfigKeyAnnotation] = key
	in.Annotations[DescriptionAnnotation] = "Vault servers accept 8200 from the pods of " + ns + " that `vaultctl migrate namespace` switched to Vault (label " + VaultClientLabel + "=" + VaultClientValue + ")."
	out := []networkingv1.NetworkPolicy{in}
	if cfg.NetworkPolicies.AppEgress {
		for _, eg := range appEgress(vns, groups) {
			eg.Name = NameMigratedEgress
			eg.Annotations[ConfigKeyAnnotation] = key + ", networkPolicies.appEgress"
			out = append(out, eg)
		}
	}
	for i := range out {
		out[i].Labels[MigratedNamespaceLabel] = ns
	}
	return out
}

// migrateOwned reports whether live was created by a namespace's migration.
func migrateOwned(p *networkingv1.NetworkPolicy) bool { return p.Labels[MigratedNamespaceLabel] != "" }
