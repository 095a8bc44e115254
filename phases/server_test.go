package phases

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/helmclient"
)

// fakeHelm keeps one release in memory; its "manifest" is the values' JSON. onWrite plays the
// StatefulSet controller.
type fakeHelm struct {
	mu       sync.Mutex
	revision int
	values   string
	writes   int
	failWith error
	onWrite  func(vals map[string]any)
	// lastStatusValues is the JSON of the values the last Status was asked about.
	lastStatusValues string
}

func (f *fakeHelm) Status(_ context.Context, name string, ch *chart.Chart, vals map[string]any) (helmclient.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if (name != charts.ServerRelease && name != charts.InjectorRelease) || ch.Metadata.Name != "vault" {
		return helmclient.Status{}, errors.New("unexpected release or chart")
	}
	j, _ := json.Marshal(vals)
	f.lastStatusValues = string(j)
	if f.revision == 0 {
		return helmclient.Status{Differs: true, Reason: "not installed"}, nil
	}
	st := helmclient.Status{Exists: true, Revision: f.revision, State: "deployed"}
	if string(j) != f.values {
		st.Differs, st.Reason, st.Objects = true, "manifest: ConfigMap/vault/vault-config", []string{"ConfigMap/vault/vault-config"}
	}
	return st, nil
}

func (f *fakeHelm) UpgradeOrInstall(_ context.Context, _ string, _ *chart.Chart, vals map[string]any) (helmclient.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWith != nil {
		return helmclient.Result{}, f.failWith
	}
	j, _ := json.Marshal(vals)
	if f.revision > 0 && string(j) == f.values {
		return helmclient.Result{Revision: f.revision}, nil
	}
	f.revision++
	f.writes++
	f.values = string(j)
	if f.onWrite != nil {
		f.onWrite(vals)
	}
	return helmclient.Result{Changed: true, Installed: f.revision == 1, Revision: f.revision}, nil
}

// The server tests share these: useHelm and fastWait set them, serverOf wires them into the
// phase (production code takes them as the phase's fields).
var (
	testHelm       HelmAPI
	testHelmCalls  int
	testPodTimeout = 5 * time.Second
)

func useHelm(t *testing.T, h HelmAPI) *int {
	t.Helper()
	testHelm, testHelmCalls = h, 0
	t.Cleanup(func() { testHelm = nil })
	return &testHelmCalls
}

func fastWait(t *testing.T, timeout time.Duration) {
	t.Helper()
	testPodTimeout = timeout
	t.Cleanup(func() { testPodTimeout = 5 * time.Second })
}

// phaseNamed builds the phases from env, as a run does, and returns the one named.
func phaseNamed(env *Env, name string) Phase {
	for _, p := range All(env) {
		if p.Name() == name {
			return p
		}
	}
	panic("no phase " + name)
}

func serverOf(env *Env) *Server {
	if env.Helm == nil {
		env.Helm = func(string) (HelmAPI, error) { testHelmCalls++; return testHelm, nil }
	}
	p := phaseNamed(env, "server").(*Server)
	p.PodTimeout, p.PodPoll = testPodTimeout, 5*time.Millisecond
	return p
}

var serverLabels = map[string]string{"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": "vault", "component": "server"}

func tlsSecret() *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vault-server-tls", Namespace: "vault"}, Type: corev1.SecretTypeTLS}
}

// controller creates the StatefulSet and its pods the way Helm and the StatefulSet controller
// would, at revision rev, with the given pod phase.
func controller(kube kubernetes.Interface, cfg *config.Config, rev string, phase corev1.PodPhase) {
	ctx := context.Background()
	ns := cfg.Vault.Namespace
	replicas := int32(cfg.Vault.Replicas)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "vault", Namespace: ns, Generation: 1, Annotations: map[string]string{"meta.helm.sh/release-name": "vault"}},
		Spec: appsv1.StatefulSetSpec{Replicas: &replicas, VolumeClaimTemplates: []corev1.PersistentVolumeClaim{
			{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(cfg.Vault.Storage.DataSize)}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "audit"}, Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(cfg.Vault.Storage.AuditSize)}}}},
		}},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 1, UpdateRevision: rev, CurrentRevision: rev},
	}
	if _, err := kube.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		_, _ = kube.AppsV1().StatefulSets(ns).Update(ctx, sts, metav1.UpdateOptions{})
	}
	for i := range cfg.Vault.Replicas {
		labels := map[string]string{appsv1.ControllerRevisionHashLabelKey: rev}
		for k, v := range serverLabels {
			labels[k] = v
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: charts.PodName(i), Namespace: ns, Labels: labels}, Status: corev1.PodStatus{Phase: phase}}
		if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			_, _ = kube.CoreV1().Pods(ns).Update(ctx, pod, metav1.UpdateOptions{})
		}
	}
}

func TestServerExternalInstallsNothing(t *testing.T) {
	calls := useHelm(t, &fakeHelm{})
	env := &Env{Config: testConfig(func(c *config.Config) { c.Vault.Mode = config.ModeExternal; c.Vault.Address = "https://v.example:8200" })}
	p := serverOf(env)
	d, err := p.Check(context.Background())
	if err != nil || !d.Empty() || d.Facts[0] != "external Vault at https://v.example:8200; no server installed" {
		t.Fatalf("external: %+v %v", d, err)
	}
	if err := p.Apply(context.Background(), d); err != nil || *calls != 0 {
		t.Fatalf("external apply: %v, helm clients %d", err, *calls)
	}
}

func TestServerInstallsWaitsAndIsThenANoOp(t *testing.T) {
	fastWait(t, 5*time.Second)
	cfg := testConfig(nil)
	kube := fake.NewClientset()
	h := &fakeHelm{}
	// Pods appear Pending, then run a little later, as on a real cluster.
	h.onWrite = func(map[string]any) {
		controller(kube, cfg, "rev1", corev1.PodPending)
		go func() {
			time.Sleep(30 * time.Millisecond)
			controller(kube, cfg, "rev1", corev1.PodRunning)
		}()
	}
	useHelm(t, h)
	env := &Env{Config: cfg, Kube: kube}

	// Before the tls phase: plan shows the install, apply refuses with the step to take.
	p := serverOf(env)
	d, err := p.Check(context.Background())
	if err != nil || len(d.Changes) != 1 || d.Changes[0].Action != Create || !strings.Contains(d.Facts[0], "waits for TLS Secret") {
		t.Fatalf("plan before tls: %+v %v", d, err)
	}
	err = p.Apply(context.Background(), d)
	if err == nil || !strings.Contains(asPhaseError("server", err).Hint, "--only tls,server") {
		t.Fatalf("apply without the TLS Secret: %v", err)
	}

	_, _ = kube.CoreV1().Secrets("vault").Create(context.Background(), tlsSecret(), metav1.CreateOptions{})
	var lines []string
	var mu sync.Mutex
	ctx := WithProgress(context.Background(), func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock() })
	r := &Runner{Phases: []Phase{serverOf(env)}}
	res, err := r.Apply(ctx, Selection{})
	if err != nil || res[0].Status != Changed {
		t.Fatalf("first apply: %+v %v", res, err)
	}
	mu.Lock()
	progress := strings.Join(lines, "\n")
	mu.Unlock()
	if !strings.Contains(progress, "helm upgrade --install vault/vault") || !strings.Contains(progress, "waiting for vault-0 (Pending") || !strings.Contains(progress, "3/3 Vault pods Running") {
		t.Errorf("progress lines:\n%s", progress)
	}
	if !strings.Contains(strings.Join(res[0].Facts, "\n"), "3/3 pods Running") {
		t.Errorf("facts: %v", res[0].Facts)
	}

	// Second apply: nothing differs, nothing is written.
	res, err = (&Runner{Phases: []Phase{serverOf(env)}}).Apply(context.Background(), Selection{})
	if err != nil || res[0].Status != UpToDate || h.writes != 1 {
		t.Fatalf("second apply: %+v %v (helm writes %d)", res, err, h.writes)
	}

	// A config change: plan shows an update of the release.
	cfg.Vault.Seal.AWSKMS.Endpoint = "http://127.0.0.1:4599"
	d, err = (serverOf(env)).Check(context.Background())
	if err != nil || len(d.Changes) != 1 || d.Changes[0].Action != Update || !strings.Contains(d.Changes[0].Detail, "vault-config") {
		t.Fatalf("plan after a change: %+v %v", d, err)
	}
}

func TestServerReportsPendingRestartsAsFacts(t *testing.T) {
	cfg := testConfig(nil)
	kube := fake.NewClientset(tlsSecret())
	h := &fakeHelm{}
	useHelm(t, h)
	env := &Env{Config: cfg, Kube: kube}
	controller(kube, cfg, "rev1", corev1.PodRunning)
	if _, err := h.UpgradeOrInstall(context.Background(), "vault", nil, charts.ServerValues(cfg)); err != nil {
		t.Fatal(err)
	}
	// The template changed (an upgrade); with OnDelete, vault-1 and vault-2 still run rev1.
	sts, _ := kube.AppsV1().StatefulSets("vault").Get(context.Background(), "vault", metav1.GetOptions{})
	sts.Generation, sts.Status.ObservedGeneration, sts.Status.UpdateRevision = 2, 2, "rev2"
	_, _ = kube.AppsV1().StatefulSets("vault").Update(context.Background(), sts, metav1.UpdateOptions{})
	pod, _ := kube.CoreV1().Pods("vault").Get(context.Background(), "vault-0", metav1.GetOptions{})
	pod.Labels[appsv1.ControllerRevisionHashLabelKey] = "rev2"
	_, _ = kube.CoreV1().Pods("vault").Update(context.Background(), pod, metav1.UpdateOptions{})

	res, err := (&Runner{Phases: []Phase{serverOf(env)}}).Apply(context.Background(), Selection{})
	if err != nil || res[0].Status != UpToDate {
		t.Fatalf("a pending restart must not fail or dirty apply: %+v %v", res, err)
	}
	facts := strings.Join(res[0].Facts, "\n")
	if !strings.Contains(facts, "restart pending: pod vault-1 runs an older config (revision rev1, StatefulSet wants rev2)") ||
		!strings.Contains(facts, "restart pending: pod vault-2") || strings.Contains(facts, "pod vault-0 runs") {
		t.Fatalf("facts:\n%s", facts)
	}
	changes, err := (serverOf(env)).PendingRestarts(context.Background())
	if err != nil || len(changes) != 2 || changes[0].Action != Restart || changes[0].Object != "pod vault/vault-1" {
		t.Fatalf("PendingRestarts: %+v %v", changes, err)
	}

	// Before the controller has seen the new spec, the config checksum decides.
	sts.Generation, sts.Status.ObservedGeneration = 3, 2
	sts.Spec.Template.Annotations = map[string]string{charts.ConfigHashAnnotation: "new"}
	_, _ = kube.AppsV1().StatefulSets("vault").Update(context.Background(), sts, metav1.UpdateOptions{})
	changes, _ = (serverOf(env)).PendingRestarts(context.Background())
	if len(changes) != 3 || !strings.Contains(changes[0].Detail, "StatefulSet wants new") {
		t.Fatalf("checksum fallback: %+v", changes)
	}
}

func TestServerWaitExplainsUnboundClaims(t *testing.T) {
	fastWait(t, 50*time.Millisecond)
	cfg := testConfig(nil)
	kube := fake.NewClientset(tlsSecret())
	h := &fakeHelm{onWrite: func(map[string]any) {
		controller(kube, cfg, "rev1", corev1.PodPending)
		for i := range 3 {
			pod, _ := kube.CoreV1().Pods("vault").Get(context.Background(), charts.PodName(i), metav1.GetOptions{})
			pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-" + pod.Name}}}}
			pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
				Message: "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."}}
			_, _ = kube.CoreV1().Pods("vault").Update(context.Background(), pod, metav1.UpdateOptions{})
		}
	}}
	useHelm(t, h)
	p := serverOf(&Env{Config: cfg, Kube: kube})
	d, _ := p.Check(context.Background())
	err := p.Apply(context.Background(), d)
	if err == nil {
		t.Fatal("want a timeout")
	}
	pe := asPhaseError("server", err)
	if !strings.Contains(pe.What, "vault-0 (unbound volume claims)") || !strings.Contains(pe.Hint, "claims data-vault-0, data-vault-1, data-vault-2 are not bound") || !strings.Contains(pe.Hint, "vault.storage.storageClass") {
		t.Fatalf("error: %s / hint: %s", pe.What, pe.Hint)
	}
}

func TestServerRefusesImmutableStorageChanges(t *testing.T) {
	cfg := testConfig(nil)
	kube := fake.NewClientset(tlsSecret())
	h := &fakeHelm{}
	useHelm(t, h)
	controller(kube, cfg, "rev1", corev1.PodRunning)
	_, _ = h.UpgradeOrInstall(context.Background(), "vault", nil, charts.ServerValues(cfg))
	cfg.Vault.Storage.DataSize = "20Gi"
	_, err := (serverOf(&Env{Config: cfg, Kube: kube})).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), `volume claim "data"`) || !strings.Contains(asPhaseError("server", err).Hint, "--cascade=orphan") {
		t.Fatalf("want a refusal: %v", err)
	}
}

func TestServerRefusesAStatefulSetOutsideHelm(t *testing.T) {
	cfg := testConfig(nil)
	kube := fake.NewClientset(tlsSecret(), &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "vault", Namespace: "vault"}})
	useHelm(t, &fakeHelm{})
	_, err := (serverOf(&Env{Config: cfg, Kube: kube})).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "belongs to no Helm release") {
		t.Fatalf("want a refusal: %v", err)
	}
}

func TestServerHelmFailureHasAHint(t *testing.T) {
	cfg := testConfig(nil)
	useHelm(t, &fakeHelm{failWith: errors.New("helm install vault: timed out")})
	p := serverOf(&Env{Config: cfg, Kube: fake.NewClientset(tlsSecret())})
	err := p.Apply(context.Background(), Diff{})
	if err == nil || !strings.Contains(asPhaseError("server", err).Hint, "helm history RELEASE -n vault") {
		t.Fatalf("want a hinted failure: %v", err)
	}
}
