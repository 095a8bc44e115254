package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/manifests"
)

// engineRig is one namespace with a Deployment reading Secret db, a Fake Vault, and a
// Deployment "controller" that rolls out at once (or never, when stuck).
type engineRig struct {
	cs     *fake.Clientset
	v      vault.Client
	e      *Engine
	plan   *Plan
	target corev1.PodTemplateSpec
	orig   corev1.PodTemplateSpec
	secret *corev1.Secret
	stuck  bool
}

func newEngineRig(t *testing.T) *engineRig {
	t.Helper()
	r := &engineRig{}
	r.orig = wlTemplate("default")
	r.orig.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}}}
	r.target = wlTemplate("api")
	r.target.Annotations = map[string]string{"vault.hashicorp.com/agent-inject": "true"}
	r.secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "db", UID: "s-uid", Labels: map[string]string{"tier": "db"}},
		Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"password": []byte(`'"$ x`), "bin": {0xff, 0x00}}}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}
	r.cs = fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}},
		r.secret.DeepCopy(),
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "api"}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: r.orig}},
	)
	r.cs.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.UpdateAction).GetObject().(*appsv1.Deployment)
		if !r.stuck || d.Spec.Template.Annotations["vault.hashicorp.com/agent-inject"] != "true" {
			d.Status = appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1}
		} else {
			d.Status = appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 1, AvailableReplicas: 1}
		}
		return false, nil, nil
	})
	r.v = kvFake(t)
	r.plan = &Plan{Namespace: "team-a",
		Secrets:   []SecretPlan{{Name: "db", Action: SecretMigrate, KVPath: "secret/team-a/db", Keys: []string{"bin", "password"}, Consumers: []string{"Deployment/api"}}},
		Workloads: []WorkloadPlan{{Kind: "Deployment", Name: "api", Action: WorkloadMigrate, ServiceAccount: "api", CreateServiceAccount: true, Role: "team-a-deployment-api", Policy: "team-a-deployment-api", KVPaths: []string{"secret/team-a/db"}}},
	}
	r.e = &Engine{Kube: r.cs, Vault: r.v, Namespace: "team-a", KVMounts: []string{"secret"}, AuthMount: "kubernetes",
		Journal:        JournalStore{Kube: r.cs, Namespace: "team-a"},
		RolloutTimeout: 300 * time.Millisecond, RolloutInterval: 10 * time.Millisecond}
	return r
}

func (r *engineRig) inv(t *testing.T) *Inventory {
	t.Helper()
	inv := &Inventory{Namespace: "team-a"}
	if s, err := r.cs.CoreV1().Secrets("team-a").Get(context.Background(), "db", metav1.GetOptions{}); err == nil {
		inv.Secrets = []corev1.Secret{*s}
	}
	return inv
}

func (r *engineRig) targets() map[WorkloadID]corev1.PodTemplateSpec {
	return map[WorkloadID]corev1.PodTemplateSpec{{Kind: "Deployment", Name: "api"}: r.target}
}

func TestEngineApplyPruneRollback(t *testing.T) {
	ctx := context.Background()
	r := newEngineRig(t)
	var proved int
	r.e.Prove = func(_ context.Context, wp WorkloadPlan) error {
		proved++
		if wp.ServiceAccount != r.target.Spec.ServiceAccountName {
			t.Errorf("proof logs in as %q, want the target template's ServiceAccount %q", wp.ServiceAccount, r.target.Spec.ServiceAccountName)
		}
		return nil
	}

	rep, err := r.e.Apply(ctx, r.plan, r.inv(t), r.targets())
	if err != nil || rep.Failed() {
		t.Fatalf("Apply = %+v, %v", rep, err)
	}
	if rep.Secrets[0].Copy != string(CopyCreated) || rep.Workloads[0].State != WorkloadVerified || !rep.Workloads[0].Changed || proved != 1 {
		t.Fatalf("first Apply = %+v (proved %d)", rep, proved)
	}
	live, _ := ReadTemplate(ctx, r.cs, "team-a", WorkloadID{"Deployment", "api"})
	if live.Spec.ServiceAccountName != "api" {
		t.Fatalf("workload not patched: %+v", live.Spec)
	}

	rep, err = r.e.Apply(ctx, r.plan, r.inv(t), r.targets())
	if err != nil || rep.Secrets[0].Copy != string(CopyUnchanged) || rep.Workloads[0].Changed {
		t.Fatalf("second Apply changed something: %+v, %v", rep, err)
	}

	rep, err = r.e.Prune(ctx, r.plan, r.inv(t))
	if err != nil || len(rep.Pruned) != 1 || !rep.Labelled {
		t.Fatalf("Prune = %+v, %v", rep, err)
	}
	if _, err := r.cs.CoreV1().Secrets("team-a").Get(ctx, "db", metav1.GetOptions{}); err == nil {
		t.Fatal("Secret still there after prune")
	}
	ns, _ := r.cs.CoreV1().Namespaces().Get(ctx, "team-a", metav1.GetOptions{})
	if ns.Labels[manifests.MigratedLabel] != "true" {
		t.Fatalf("namespace labels %v", ns.Labels)
	}
	// After prune a re-run has nothing to copy and changes nothing.
	if rep, err := r.e.Apply(ctx, r.plan, r.inv(t), r.targets()); err != nil || rep.Failed() || rep.Workloads[0].Changed {
		t.Fatalf("Apply after prune = %+v, %v", rep, err)
	}

	if _, err := r.e.Rollback(ctx, false); err != nil {
		t.Fatal(err)
	}
	back, err := r.cs.CoreV1().Secrets("team-a").Get(ctx, "db", metav1.GetOptions{})
	if err != nil || !SecretBackupOf(r.secret).SameSecret(back) {
		t.Fatalf("restored Secret %+v, %v; want the original", back, err)
	}
	live, _ = ReadTemplate(ctx, r.cs, "team-a", WorkloadID{"Deployment", "api"})
	if TemplateHash(*live) != TemplateHash(r.orig) {
		t.Fatalf("template after rollback %+v, want the original", live)
	}
	ns, _ = r.cs.CoreV1().Namespaces().Get(ctx, "team-a", metav1.GetOptions{})
	if _, ok := ns.Labels[manifests.MigratedLabel]; ok {
		t.Fatal("label still set after rollback")
	}
	// Rollback twice is fine, and --purge removes vaultctl's KV entry and journal.
	if _, err := r.e.Rollback(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.v.KVRead(ctx, "secret", "team-a/db"); got != nil {
		t.Fatal("KV copy survived --purge")
	}
	if j, _ := r.e.Journal.Load(ctx); len(j.Secrets)+len(j.Workloads) != 0 {
		t.Fatalf("journal after purge: %+v", j)
	}
}

func TestEngineStopsAWorkloadWhoseProofFails(t *testing.T) {
	ctx := context.Background()
	r := newEngineRig(t)
	r.e.Prove = func(context.Context, WorkloadPlan) error {
		return errors.New("login as team-a/api refused: service account name not authorized")
	}
	rep, err := r.e.Apply(ctx, r.plan, r.inv(t), r.targets())
	if err != nil || !rep.Failed() || !strings.Contains(rep.Workloads[0].Message, "not authorized") {
		t.Fatalf("Apply with a failing proof = %+v, %v", rep, err)
	}
	live, _ := ReadTemplate(ctx, r.cs, "team-a", WorkloadID{"Deployment", "api"})
	if TemplateHash(*live) != TemplateHash(r.orig) {
		t.Fatal("the workload was patched although its proof failed")
	}
	j, _ := r.e.Journal.Load(ctx)
	if j.Workloads["Deployment/api"].State != WorkloadFailed {
		t.Fatalf("journal %+v", j.Workloads)
	}
	if rep, _ := r.e.Prune(ctx, r.plan, r.inv(t)); len(rep.Pruned) != 0 || len(rep.Kept) != 1 {
		t.Fatalf("Prune with an unverified consumer = %+v, want the Secret kept", rep)
	}
}

func TestEngineRollsBackAWorkloadThatDoesNotRollOut(t *testing.T) {
	ctx := context.Background()
	r := newEngineRig(t)
	r.stuck = true
	rep, err := r.e.Apply(ctx, r.plan, r.inv(t), r.targets())
	if err != nil || rep.Workloads[0].State != WorkloadFailed || !strings.Contains(rep.Workloads[0].Message, "rolled back by itself") {
		t.Fatalf("Apply with a stuck rollout = %+v, %v", rep, err)
	}
	live, _ := ReadTemplate(ctx, r.cs, "team-a", WorkloadID{"Deployment", "api"})
	if TemplateHash(*live) != TemplateHash(r.orig) {
		t.Fatal("the stuck workload was not rolled back")
	}
}

func TestEngineRerunWritesNothing(t *testing.T) {
	ctx := context.Background()
	r := newEngineRig(t)
	if _, err := r.e.Apply(ctx, r.plan, r.inv(t), r.targets()); err != nil {
		t.Fatal(err)
	}
	before, _ := r.cs.CoreV1().ConfigMaps("team-a").Get(ctx, JournalConfigMap, metav1.GetOptions{})
	deployBefore, _ := r.cs.AppsV1().Deployments("team-a").Get(ctx, "api", metav1.GetOptions{})
	rep, err := r.e.Apply(ctx, r.plan, r.inv(t), r.targets())
	if err != nil || rep.Workloads[0].State != WorkloadVerified || !strings.Contains(rep.Workloads[0].Message, "already migrated") {
		t.Fatalf("re-run = %+v, %v", rep, err)
	}
	after, _ := r.cs.CoreV1().ConfigMaps("team-a").Get(ctx, JournalConfigMap, metav1.GetOptions{})
	deployAfter, _ := r.cs.AppsV1().Deployments("team-a").Get(ctx, "api", metav1.GetOptions{})
	if before.ResourceVersion != after.ResourceVersion || deployBefore.ResourceVersion != deployAfter.ResourceVersion {
		t.Fatalf("a re-run wrote: journal %s -> %s, Deployment %s -> %s", before.ResourceVersion, after.ResourceVersion, deployBefore.ResourceVersion, deployAfter.ResourceVersion)
	}
}
