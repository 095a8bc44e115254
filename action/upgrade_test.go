package action

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

func TestUpgradeOrdersTheServerPhasesPendingRestarts(t *testing.T) {
	pending := []phases.Change{
		{Action: phases.Restart, Object: "pod vault/vault-2"},
		{Action: phases.Restart, Object: "pod vault/vault-0"},
	}
	pods := []corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "vault-0", UID: "u0"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "vault-1", UID: "u1"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "vault-2", UID: "u2"}},
	}
	steps := lifecycle.PlanRestarts(nodesOf(pods, podsOf(pending), "vault-0"))
	var got []string
	for _, s := range steps {
		got = append(got, string(s.Kind)+" "+s.Pod+" "+s.UID)
	}
	want := []string{"restart vault-2 u2", "step-down vault-0 u0", "restart vault-0 u0"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestDeletePodNeverDeletesASuccessor(t *testing.T) {
	cs := fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "vault-1", Namespace: "vault", UID: "new"}})
	// The fake ignores preconditions; the API server answers a UID mismatch with 409.
	cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteAction)
		pre := d.GetDeleteOptions().Preconditions
		if pre == nil || pre.UID == nil {
			t.Error("pod deleted without a UID precondition")
			return false, nil, nil
		}
		cur, err := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), d.GetNamespace(), d.GetName())
		if err == nil && cur.(*corev1.Pod).UID != *pre.UID {
			return true, nil, apierrors.NewConflict(corev1.Resource("pods"), d.GetName(), errors.New("the UID in the precondition does not match"))
		}
		return false, nil, nil
	})
	p := &podCluster{kube: cs, namespace: "vault"}
	ctx := context.Background()
	// The pod planned for restart (UID "old") is gone and a successor runs: nothing to delete.
	if err := p.DeletePod(ctx, "vault-1", "old"); err != nil {
		t.Fatal(err)
	}
	if got, err := cs.CoreV1().Pods("vault").Get(ctx, "vault-1", metav1.GetOptions{}); err != nil || got.UID != types.UID("new") {
		t.Fatalf("the successor was deleted: %v %v", got, err)
	}
	if err := p.DeletePod(ctx, "vault-1", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("vault").Get(ctx, "vault-1", metav1.GetOptions{}); err == nil {
		t.Fatal("the planned pod was not deleted")
	}
	if err := p.DeletePod(ctx, "vault-1", "new"); err != nil {
		t.Fatalf("deleting a pod already gone: %v", err)
	}
}
