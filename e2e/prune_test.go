package e2e

// `vaultctl apply --prune` through the CLI for roles, audit devices and NetworkPolicies (the
// external test covers policies): what vaultctl created and the config dropped is deleted with
// --prune and kept without it; what it did not create survives, even an audit device someone
// listed in the ownership record (it lacks vaultctl's mark in Vault).

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/networkpolicy"
	"github.com/vaultctl/vaultctl/phases"
)

// pruneExtras is what the installation holds beyond the article's setup: a second role, a third
// audit device, and NetworkPolicies with staging among the allowed clients (with appEgress, so
// staging gets its own vaultctl-vault-egress). dropped is the config without them.
func pruneExtras(dropped bool) inClusterExtras {
	np := `networkPolicies:
  enabled: true
  appEgress: true
  allowedClients:
    - namespace: production
      podSelector: {app: webapp}
`
	if dropped {
		return inClusterExtras{Sections: np}
	}
	return inClusterExtras{
		Roles: `  - name: scratch-role
    serviceAccounts: [scratch-sa]
    namespaces: [staging]
    policies: [app-db-readonly]
    ttl: 10m
    maxTTL: 20m
`,
		AuditDevices: `    - {path: file-extra, type: file, options: {file_path: /vault/audit/audit-extra.log}}
`,
		Sections: np + `    - namespace: staging
`,
	}
}

// Hand-made objects: none was created by vaultctl.
const (
	handRole  = "hand-made"
	handAudit = "hand-made"
	handNP    = "team-hand-made"     // a team's own policy in a client namespace
	handNPCp  = "vaultctl-team-copy" // vaultctl's name prefix and managed-by label, no installation label
)

// prepareClientNamespaces creates the client namespaces pruneExtras names and removes, when the
// test ends, the NetworkPolicies put there (the Vault namespace goes as a whole).
func prepareClientNamespaces(t *testing.T, cs kubernetes.Interface, vns string) {
	t.Helper()
	for _, ns := range []string{"production", "staging"} {
		ensureNamespace(t, cs, ns)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, ns := range []string{"production", "staging"} {
			nps := cs.NetworkingV1().NetworkPolicies(ns)
			if err := nps.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: networkpolicy.InstanceLabel + "=" + vns}); err != nil {
				t.Errorf("cleanup of %s's NetworkPolicies in %s: %v", vns, ns, err)
			}
		}
		for _, name := range []string{handNP, handNPCp} {
			if err := cs.NetworkingV1().NetworkPolicies("staging").Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("cleanup of staging/%s: %v", name, err)
			}
		}
	})
}

// testPruneThroughCLI runs on a converged installation of pruneExtras(false) in namespace vns;
// v is a Vault client with rights to create the hand-made objects; writeConfig(true) drops the
// extras from the config file.
func testPruneThroughCLI(t *testing.T, cfgPath, vns string, v *vaultapi.Client, writeConfig func(dropped bool)) {
	cs := kube(t)
	ctx := context.Background()

	if _, err := v.Logical().Write("auth/kubernetes/role/"+handRole, map[string]any{
		"bound_service_account_names": []string{"team-sa"}, "bound_service_account_namespaces": []string{"staging"}, "token_policies": []string{"default"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := v.Sys().EnableAuditWithOptions(handAudit, &vaultapi.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": "/vault/audit/hand-made.log"}}); err != nil {
		t.Fatal(err)
	}
	for _, np := range []networkingv1.NetworkPolicy{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "staging", Name: handNP}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "staging", Name: handNPCp, Labels: map[string]string{networkpolicy.ManagedByLabel: networkpolicy.ManagedByValue}}},
	} {
		np.Spec = networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}
		if _, err := cs.NetworkingV1().NetworkPolicies("staging").Create(ctx, &np, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// What vaultctl made from the extras, and what it made and keeps.
	created := []object{
		{"role", "scratch-role"}, {"audit device", "file-extra"}, {"NetworkPolicy", "staging/" + networkpolicy.NameVaultEgress},
	}
	kept := []object{
		{"role", "webapp-production"}, {"audit device", "file"}, {"audit device", "file-backup"},
		{"NetworkPolicy", "production/" + networkpolicy.NameVaultEgress}, {"NetworkPolicy", vns + "/" + networkpolicy.NameVaultClients},
	}
	handMade := []object{
		{"role", handRole}, {"audit device", handAudit}, {"NetworkPolicy", "staging/" + handNP}, {"NetworkPolicy", "staging/" + handNPCp},
	}
	expectPresent(t, v, cs, true, "before the drop", created, kept, handMade)

	writeConfig(true)
	r := vaultctl(t, "apply", "-c", cfgPath, "-o", "json")
	keep := parseApply(t, r)
	if !keep.OK {
		t.Fatalf("apply without --prune after the drop:\n%s", r)
	}
	if d := keep.deletions(); len(d) != 0 {
		t.Errorf("apply without --prune deleted %v", d)
	}
	for _, p := range []string{"roles", "audit"} {
		if !slices.ContainsFunc(keep.phase(p).Facts, func(f string) bool { return strings.Contains(f, "apply --prune deletes them") }) {
			t.Errorf("%s: no fact says --prune would delete the dropped object: %v", p, keep.phase(p).Facts)
		}
	}
	expectPresent(t, v, cs, true, "after apply without --prune", created, kept, handMade)

	// Someone lists the hand-made audit device as vaultctl's: without vaultctl's mark in Vault
	// it must survive anyway. (Roles have no mark: the record alone decides for them.)
	addOwned(t, cs, vns, "audits", handAudit)

	r = vaultctl(t, "apply", "-c", cfgPath, "--prune", "-o", "json")
	pruned := parseApply(t, r)
	if !pruned.OK {
		t.Fatalf("apply --prune:\n%s", r)
	}
	want := []string{"audit: audit device file-extra", "network-policies: NetworkPolicy staging/" + networkpolicy.NameVaultEgress, "roles: role scratch-role"}
	if got := pruned.deletions(); !slices.Equal(sorted(got), want) {
		t.Errorf("apply --prune deleted %v, want %v", got, want)
	}
	expectPresent(t, v, cs, false, "after apply --prune", created)
	expectPresent(t, v, cs, true, "after apply --prune", kept, handMade)

	if again := parseApply(t, vaultctl(t, "apply", "-c", cfgPath, "--prune", "-o", "json")); !again.OK || again.Changes != 0 {
		t.Errorf("a second apply --prune must change nothing: %+v", again)
	}
}

type object struct{ kind, name string }

// expectPresent checks that every object of the groups exists (present) or does not.
func expectPresent(t *testing.T, v *vaultapi.Client, cs kubernetes.Interface, present bool, when string, groups ...[]object) {
	t.Helper()
	ctx := context.Background()
	audits, err := v.Sys().ListAudit()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		for _, o := range g {
			var exists bool
			switch o.kind {
			case "role":
				s, err := v.Logical().Read("auth/kubernetes/role/" + o.name)
				if err != nil {
					t.Fatal(err)
				}
				exists = s != nil
			case "audit device":
				_, exists = audits[o.name+"/"]
			case "NetworkPolicy":
				ns, name, _ := strings.Cut(o.name, "/")
				_, err := cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil && !apierrors.IsNotFound(err) {
					t.Fatal(err)
				}
				exists = err == nil
			}
			if exists != present {
				t.Errorf("%s: %s %s exists=%v, want %v", when, o.kind, o.name, exists, present)
			}
		}
	}
}

// addOwned lists name as owned by vaultctl under kind in the installation's ownership record,
// as a person editing that ConfigMap would.
func addOwned(t *testing.T, cs kubernetes.Interface, vns, kind, name string) {
	t.Helper()
	ctx := context.Background()
	cms := cs.CoreV1().ConfigMaps(vns)
	cm, err := cms.Get(ctx, phases.OwnershipConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := json.Unmarshal([]byte(cm.Data[kind]), &names); err != nil {
		t.Fatalf("ownership record %s: %v", kind, err)
	}
	b, _ := json.Marshal(append(names, name))
	cm.Data[kind] = string(b)
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
