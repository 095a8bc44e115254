package phases

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestAnUnreadableCheckpointIsReportedAndRewritten(t *testing.T) {
	kube := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vault"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: CheckpointConfigMap, Namespace: "vault"}, Data: map[string]string{"a": "{not json"}})
	store := &ConfigMapStore{Client: kube, Namespace: "vault"}
	if _, err := store.Get(context.Background()); !errors.As(err, new(*CorruptCheckpointsError)) {
		t.Fatalf("Get must name the unreadable checkpoint, got %v", err)
	}
	res, err := (&Runner{Phases: []Phase{&fakePhase{name: "a", inSync: true}}, Store: store, Version: "v1"}).Apply(context.Background(), Selection{})
	if err != nil || !strings.Contains(strings.Join(res[0].Facts, "\n"), "checkpoint in ConfigMap vaultctl-checkpoints was unreadable") {
		t.Fatalf("the phase must say its checkpoint was unreadable: %+v %v", res, err)
	}
	if cps, err := store.Get(context.Background()); err != nil || cps["a"].InputHash == "" {
		t.Fatalf("the checkpoint must be rewritten: %+v %v", cps, err)
	}
}

func TestInClusterVaultIsNotYetOnlyWhenNothingIsThere(t *testing.T) {
	cfg := testConfig(nil)
	kube := fake.NewClientset()
	locate := inClusterVault(context.Background(), &Env{Config: cfg, Kube: kube})
	if _, err := locate(context.Background()); !errors.Is(err, ErrNotYet) {
		t.Fatalf("no Vault pod yet must wait: %v", err)
	}
	kube.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New(`pods is forbidden: User "ci" cannot list resource "pods"`)
	})
	_, err := locate(context.Background())
	if err == nil || errors.Is(err, ErrNotYet) || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("a denied list is a failure, not a wait: %v", err)
	}
}
