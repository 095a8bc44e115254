package networkpolicy

import (
	"context"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vaultctl/vaultctl/config"
)

// fake.NewClientset (not NewSimpleClientset) tracks managed fields and supports apply patches,
// so Apply itself runs here; the e2e test repeats this against a real API server.

func changesOf(cs []Change, action string) []string {
	var out []string
	for _, c := range cs {
		if c.Action == action {
			out = append(out, c.Object)
		}
	}
	return out
}

func mustApply(t *testing.T, cs *fake.Clientset, desired []networkingv1.NetworkPolicy, prune bool) Result {
	t.Helper()
	res, err := Apply(context.Background(), cs, desired, prune)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func mustDiffEmpty(t *testing.T, cs *fake.Clientset, desired []networkingv1.NetworkPolicy) {
	t.Helper()
	d, err := Diff(context.Background(), cs, desired, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 0 {
		t.Errorf("Diff after apply = %v, want none", d)
	}
}

func TestApplyCreatesThenChangesNothing(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	desired := Build(loadCase(t, "app-egress"))

	d, err := Diff(ctx, cs, desired, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := changesOf(d, ActionCreate); !slices.Equal(got, names(desired)) || len(d) != len(desired) {
		t.Fatalf("Diff on an empty cluster = %v, want a create per object in order", d)
	}
	if !strings.Contains(d[0].Detail, "ingress 8201/TCP,8200/TCP from same-namespace pods") {
		t.Errorf("create detail = %q", d[0].Detail)
	}

	res := mustApply(t, cs, desired, true)
	if len(res.Changes) != len(desired) {
		t.Errorf("first Apply = %v", res.Changes)
	}
	for _, want := range desired {
		live, err := cs.NetworkingV1().NetworkPolicies(want.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diffs := differences(live, &want); len(diffs) > 0 {
			t.Errorf("%s/%s after apply differs in %v", want.Namespace, want.Name, diffs)
		}
		if !slices.ContainsFunc(live.ManagedFields, func(m metav1.ManagedFieldsEntry) bool {
			return m.Manager == FieldManager && m.Operation == metav1.ManagedFieldsOperationApply
		}) {
			t.Errorf("%s/%s: no Apply entry for manager %s in %+v", want.Namespace, want.Name, FieldManager, live.ManagedFields)
		}
	}

	mustDiffEmpty(t, cs, desired)
	cs.ClearActions()
	res = mustApply(t, cs, desired, true)
	if len(res.Changes) != 0 || res.Unchanged != len(desired) {
		t.Errorf("second Apply = %+v, want no changes", res)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() != "get" && a.GetVerb() != "list" {
			t.Errorf("second Apply wrote: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

func TestApplyRevertsDriftButIgnoresOthersLabels(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	desired := Build(loadCase(t, "article"))
	mustApply(t, cs, desired, true)

	// Someone widens the clients policy by hand and adds a label of their own.
	np := cs.NetworkingV1().NetworkPolicies("vault")
	live, err := np.Get(ctx, NameVaultClients, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	live.Spec.Ingress[0].From = nil // from anywhere
	live.Labels["team"] = "platform"
	if _, err := np.Update(ctx, live, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	d, err := Diff(ctx, cs, desired, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 || d[0].Action != ActionUpdate || d[0].Object != "vault/"+NameVaultClients || d[0].Detail != "differs in spec.ingress" {
		t.Fatalf("Diff after a hand edit = %v", d)
	}
	mustApply(t, cs, desired, true)
	mustDiffEmpty(t, cs, desired)
	live, _ = np.Get(ctx, NameVaultClients, metav1.GetOptions{})
	if len(live.Spec.Ingress[0].From) != 1 {
		t.Errorf("apply did not restore the clients: %+v", live.Spec.Ingress)
	}
	if live.Labels["team"] != "platform" {
		t.Errorf("apply dropped another manager's label: %v", live.Labels)
	}
}

func handMade(ns, name string, labels map[string]string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
}

func TestPruneDeletesOnlyOwnedAndUndesired(t *testing.T) {
	ctx := context.Background()
	owned := map[string]string{ManagedByLabel: ManagedByValue, InstanceLabel: "vault"}
	otherInstall := map[string]string{ManagedByLabel: ManagedByValue, InstanceLabel: "vault-2"}
	cs := fake.NewClientset(
		handMade("staging", "vaultctl-vault-egress-0f0f0f0f", otherInstall),          // another installation's
		handMade("staging", "team-policy", nil),                                      // hand-made, same namespace
		handMade("staging", "vaultctl-lookalike", map[string]string{"app": "x"}),     // our prefix, not our label
		handMade("staging", "helm-thing", map[string]string{ManagedByLabel: "Helm"}), // someone else's label
		handMade("staging", "labelled-but-not-ours", owned),                          // our labels, not our prefix
		handMade("retired", "vaultctl-vault-egress", owned),                          // a namespace dropped from the config
	)
	cfg := loadCase(t, "app-egress")
	full := Build(cfg)
	mustApply(t, cs, full, false)

	// Drop staging from the clients.
	cfg.NetworkPolicies.AllowedClients = slices.DeleteFunc(cfg.NetworkPolicies.AllowedClients, func(c config.AllowedClient) bool { return c.Namespace == "staging" })
	desired := Build(cfg)

	// Without prune nothing is deleted.
	d, err := Diff(ctx, cs, desired, false)
	if err != nil {
		t.Fatal(err)
	}
	if del := changesOf(d, ActionDelete); len(del) != 0 {
		t.Errorf("prune=false lists deletions %v", del)
	}

	res := mustApply(t, cs, desired, true)
	if got, want := changesOf(res.Changes, ActionDelete), []string{"retired/vaultctl-vault-egress", "staging/vaultctl-vault-egress"}; !slices.Equal(got, want) {
		t.Errorf("pruned %v, want %v", got, want)
	}
	if got := changesOf(res.Changes, ActionUpdate); !slices.Equal(got, []string{"vault/" + NameVaultClients}) {
		t.Errorf("updated %v, want only the clients policy", got)
	}
	// Deletions come after every apply.
	seenDelete := false
	for _, c := range res.Changes {
		if c.Action == ActionDelete {
			seenDelete = true
		} else if seenDelete {
			t.Errorf("%s after a delete: %v", c.Action, res.Changes)
		}
	}
	for _, keep := range []string{"staging/vaultctl-vault-egress-0f0f0f0f", "staging/team-policy", "staging/vaultctl-lookalike", "staging/helm-thing", "staging/labelled-but-not-ours"} {
		ns, name, _ := strings.Cut(keep, "/")
		if _, err := cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s should survive prune: %v", keep, err)
		}
	}
	if _, err := cs.NetworkingV1().NetworkPolicies("staging").Get(ctx, NameVaultEgress, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("staging/%s still there: %v", NameVaultEgress, err)
	}
	mustDiffEmpty(t, cs, desired)

	// networkPolicies turned off: Build returns nothing, so the installation must be named.
	if _, err := Apply(ctx, cs, nil, true); err == nil {
		t.Error("Apply(nil, prune) guessed an installation")
	}
	res, err = ApplyIn(ctx, cs, "vault", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(changesOf(res.Changes, ActionDelete)) != len(desired) {
		t.Errorf("disabling pruned %v, want the %d owned objects", res.Changes, len(desired))
	}
	left, _ := cs.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if len(left.Items) != 5 {
		t.Errorf("%d objects left, want the 5 not owned", len(left.Items))
	}
}

func TestPruneFallsBackToDesiredNamespacesWhenForbidden(t *testing.T) {
	owned := map[string]string{ManagedByLabel: ManagedByValue, InstanceLabel: "vault"}
	cs := fake.NewClientset(
		handMade("vault", "vaultctl-old", owned),
		handMade("elsewhere", "vaultctl-old", owned),
	)
	cs.PrependReactor("list", "networkpolicies", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() == "" {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "networking.k8s.io", Resource: "networkpolicies"}, "", nil)
		}
		return false, nil, nil
	})
	res := mustApply(t, cs, Build(loadCase(t, "article")), true)
	if got := changesOf(res.Changes, ActionDelete); !slices.Equal(got, []string{"vault/vaultctl-old"}) {
		t.Errorf("pruned %v, want only the one in a desired namespace", got)
	}
}

func TestApplyRejectsBadDesired(t *testing.T) {
	ctx := context.Background()
	good := Build(loadCase(t, "article"))
	unlabelled := slices.Clone(good)
	unlabelled[0].Labels = nil
	dup := append(slices.Clone(good), good[0])
	noPrefix := slices.Clone(good)
	noPrefix[1].Name = "clients"
	mixed := slices.Clone(good)
	mixed[2].Labels = map[string]string{ManagedByLabel: ManagedByValue, InstanceLabel: "elsewhere"}
	for name, d := range map[string][]networkingv1.NetworkPolicy{"unlabelled": unlabelled, "duplicate": dup, "no prefix": noPrefix, "two installations": mixed} {
		cs := fake.NewClientset()
		if _, err := Apply(ctx, cs, d, true); err == nil {
			t.Errorf("%s: Apply accepted it", name)
		}
		if len(cs.Actions()) != 0 {
			t.Errorf("%s: Apply talked to the cluster before rejecting: %v", name, cs.Actions())
		}
	}
}

func TestApplyReportsPartialProgress(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("patch", "networkpolicies", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.PatchAction).GetName() == NameInjectorWebhook {
			return true, nil, apierrors.NewBadRequest("boom")
		}
		return false, nil, nil
	})
	res, err := Apply(context.Background(), cs, Build(loadCase(t, "article")), true)
	if err == nil || !strings.Contains(err.Error(), NameInjectorWebhook) {
		t.Fatalf("err = %v", err)
	}
	if got := changesOf(res.Changes, ActionCreate); !slices.Equal(got, []string{"vault/" + NameVaultPeers, "vault/" + NameVaultClients}) {
		t.Errorf("done before the error: %v", got)
	}
}
