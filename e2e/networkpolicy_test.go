package e2e

// The networkpolicy package against a real API server. The sandbox has no network plugin, so
// nothing here checks traffic: it checks that the API server accepts the objects, that server-side
// apply converges (a second apply writes nothing), that the live objects are the golden files,
// and that prune removes only what vaultctl owns. Which flows the policies allow is tested with
// the package's evaluator. The same through `vaultctl apply [--prune]` with a networkPolicies
// section: testPruneThroughCLI (prune_test.go).

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/networkpolicy"
)

const npTestdata = "../networkpolicy/testdata"

// npCase reads one of the networkpolicy package's test configs, as its golden test does.
func npCase(t *testing.T, name string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(npTestdata, name+".config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c config.Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	config.ApplyDefaults(&c)
	return &c
}

func npGolden(t *testing.T, name string) []networkingv1.NetworkPolicy {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(npTestdata, name+".golden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []networkingv1.NetworkPolicy
	for _, doc := range strings.Split(string(data), "\n---\n") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" || !strings.Contains(doc, "kind:") {
			continue
		}
		var p networkingv1.NetworkPolicy
		if err := sigsyaml.UnmarshalStrict([]byte(doc), &p); err != nil {
			t.Fatalf("golden %s: %v", name, err)
		}
		out = append(out, p)
	}
	return out
}

func TestNetworkPoliciesApplyConvergeAndPrune(t *testing.T) {
	cs := kube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg := npCase(t, "app-egress")
	vns := cfg.Vault.Namespace
	desired := networkpolicy.Build(cfg)
	namespaces := []string{vns, "kube-system"}
	for _, c := range cfg.NetworkPolicies.AllowedClients {
		namespaces = append(namespaces, c.Namespace)
	}
	slices.Sort(namespaces)
	namespaces = slices.Compact(namespaces)
	for _, ns := range namespaces {
		ensureNamespace(t, cs, ns)
	}
	// Leave the shared sandbox as found: this installation's objects and the hand-made one go.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := networkpolicy.ApplyIn(ctx, cs, vns, nil, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		_ = cs.NetworkingV1().NetworkPolicies("staging").Delete(ctx, "team-own-policy", metav1.DeleteOptions{})
	})

	res, err := networkpolicy.Apply(ctx, cs, desired, true)
	if err != nil {
		t.Fatalf("first apply: %v", err)
	}
	for _, c := range res.Changes {
		t.Logf("%s", c)
	}
	// Created, or (after an interrupted earlier run) updated; never deleted here.
	if len(res.Changes)+res.Unchanged != len(desired) {
		t.Errorf("first apply: %d changes + %d unchanged, want %d objects", len(res.Changes), res.Unchanged, len(desired))
	}

	// Converged: nothing to do, and a second apply writes nothing (resourceVersions stay).
	if d, err := networkpolicy.Diff(ctx, cs, desired, true); err != nil || len(d) != 0 {
		t.Fatalf("Diff after apply = %v, %v; want nothing", d, err)
	}
	before := resourceVersions(t, cs, desired)
	res, err = networkpolicy.Apply(ctx, cs, desired, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 0 || res.Unchanged != len(desired) {
		t.Errorf("second apply = %+v, want no changes", res)
	}
	if after := resourceVersions(t, cs, desired); !slices.Equal(before, after) {
		t.Errorf("second apply changed resourceVersions: %v -> %v", before, after)
	}

	// The live objects are the golden files: what the golden test reviews is what the API
	// server stores (after its defaulting), and the fields are owned by vaultctl's apply.
	golden := npGolden(t, "app-egress")
	if len(golden) != len(desired) {
		t.Fatalf("golden has %d objects, Build %d: regenerate the golden files", len(golden), len(desired))
	}
	for _, g := range golden {
		live, err := cs.NetworkingV1().NetworkPolicies(g.Namespace).Get(ctx, g.Name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s/%s: %v", g.Namespace, g.Name, err)
			continue
		}
		if !apiequality.Semantic.DeepEqual(live.Spec, g.Spec) {
			got, _ := sigsyaml.Marshal(live.Spec)
			want, _ := sigsyaml.Marshal(g.Spec)
			t.Errorf("%s/%s: live spec differs from the golden file:\nlive:\n%s\ngolden:\n%s", g.Namespace, g.Name, got, want)
		}
		for k, v := range g.Labels {
			if live.Labels[k] != v {
				t.Errorf("%s/%s: label %s=%q, want %q", g.Namespace, g.Name, k, live.Labels[k], v)
			}
		}
		for k, v := range g.Annotations {
			if live.Annotations[k] != v {
				t.Errorf("%s/%s: annotation %s=%q, want %q", g.Namespace, g.Name, k, live.Annotations[k], v)
			}
		}
		if !slices.ContainsFunc(live.ManagedFields, func(m metav1.ManagedFieldsEntry) bool {
			return m.Manager == networkpolicy.FieldManager && m.Operation == metav1.ManagedFieldsOperationApply
		}) {
			t.Errorf("%s/%s: not applied by field manager %s: %+v", g.Namespace, g.Name, networkpolicy.FieldManager, live.ManagedFields)
		}
	}

	// A policy the team wrote by hand, in a namespace vaultctl also manages.
	own := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "staging", Name: "team-own-policy"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	if _, err := cs.NetworkingV1().NetworkPolicies("staging").Create(ctx, own, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	// Drop the staging client: its egress policy must go, the Vault side must narrow, the
	// hand-made policy must stay.
	cfg.NetworkPolicies.AllowedClients = slices.DeleteFunc(cfg.NetworkPolicies.AllowedClients,
		func(c config.AllowedClient) bool { return c.Namespace == "staging" })
	reduced := networkpolicy.Build(cfg)
	plan, err := networkpolicy.Diff(ctx, cs, reduced, true)
	if err != nil {
		t.Fatal(err)
	}
	res, err = networkpolicy.Apply(ctx, cs, reduced, true)
	if err != nil {
		t.Fatalf("apply with prune: %v", err)
	}
	if !slices.Equal(plan, res.Changes) {
		t.Errorf("Diff said %v, Apply did %v", plan, res.Changes)
	}
	var deleted, updated []string
	for _, c := range res.Changes {
		switch c.Action {
		case networkpolicy.ActionDelete:
			deleted = append(deleted, c.Object)
		case networkpolicy.ActionUpdate:
			updated = append(updated, c.Object)
		}
	}
	if want := []string{"staging/" + networkpolicy.NameVaultEgress}; !slices.Equal(deleted, want) {
		t.Errorf("pruned %v, want %v", deleted, want)
	}
	if want := []string{vns + "/" + networkpolicy.NameVaultClients}; !slices.Equal(updated, want) {
		t.Errorf("updated %v, want %v", updated, want)
	}
	if _, err := cs.NetworkingV1().NetworkPolicies("staging").Get(ctx, networkpolicy.NameVaultEgress, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("staging/%s after prune: %v, want NotFound", networkpolicy.NameVaultEgress, err)
	}
	if _, err := cs.NetworkingV1().NetworkPolicies("staging").Get(ctx, own.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("the hand-made policy did not survive prune: %v", err)
	}
	if d, err := networkpolicy.Diff(ctx, cs, reduced, true); err != nil || len(d) != 0 {
		t.Errorf("Diff after prune = %v, %v; want nothing", d, err)
	}
}

func resourceVersions(t *testing.T, cs kubernetes.Interface, ps []networkingv1.NetworkPolicy) []string {
	t.Helper()
	var out []string
	for _, p := range ps {
		live, err := cs.NetworkingV1().NetworkPolicies(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Namespace+"/"+p.Name+"@"+live.ResourceVersion)
	}
	return out
}

// Every golden case passes the API server's validation (a server-side dry run stores nothing).
func TestNetworkPolicyGoldenFilesValidate(t *testing.T) {
	cs := kube(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"article", "multi-client", "app-egress"} {
		for _, p := range npGolden(t, name) {
			ensureNamespace(t, cs, p.Namespace)
			_, err := cs.NetworkingV1().NetworkPolicies(p.Namespace).Create(ctx, &p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Errorf("%s: %s/%s rejected: %v", name, p.Namespace, p.Name, err)
			}
		}
	}
	// The control: a dry run does validate.
	bad := npGolden(t, "app-egress")[2]
	bad.Spec.Ingress[0].From[0].IPBlock.CIDR = "not-a-cidr"
	if _, err := cs.NetworkingV1().NetworkPolicies(bad.Namespace).Create(ctx, &bad, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsInvalid(err) {
		t.Errorf("dry run of an invalid ipBlock: %v, want Invalid", err)
	}
}
