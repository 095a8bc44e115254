package migrate

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

var namespaceOptions = func() PlanOptions {
	o := fixtureOptions
	o.KVMounts, o.AuthPath = []string{"secret"}, "auth/k8s-shop"
	return o
}()

// completeFixture plans the fixture namespace with extra objects added.
func completeFixture(t *testing.T, opts PlanOptions, extra ...runtime.Object) *NamespacePlan {
	t.Helper()
	kube, dyn := fixtureObjects()
	np, err := PlanNamespace(context.Background(), fake.NewClientset(append(kube, extra...)...), dynamicClient(dyn...), ns, opts)
	if err != nil {
		t.Fatal(err)
	}
	return np
}

func workloadPlan(t *testing.T, p *Plan, kind, name string) WorkloadPlan {
	t.Helper()
	for _, w := range p.Workloads {
		if w.Kind == kind && w.Name == name {
			return w
		}
	}
	t.Fatalf("no %s/%s in the plan", kind, name)
	return WorkloadPlan{}
}

func hasLine(lines []string, parts ...string) bool {
	return slices.ContainsFunc(lines, func(l string) bool {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				return false
			}
		}
		return true
	})
}

// noCommand is a Deployment whose container reads env from a migrated Secret and sets no
// command: its image's entrypoint is unknown.
func noCommand(meta ...func(*metav1.ObjectMeta)) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: ns}, Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
		Spec: corev1.PodSpec{ServiceAccountName: "postgres", Containers: []corev1.Container{{Name: "run", Image: "registry.example/worker:2", Args: []string{"--queue", "jobs"},
			Env: []corev1.EnvVar{envSecret("DB_PASSWORD", "db", "password", false)}}}},
	}}}
	for _, m := range meta {
		m(&d.ObjectMeta)
	}
	return d
}

func TestCompletePlanRewritesWhatItMigrates(t *testing.T) {
	np := completeFixture(t, namespaceOptions)
	pgPlan := workloadPlan(t, np.Plan, KindStatefulSet, "postgres")
	if pgPlan.Action != WorkloadMigrate {
		t.Fatalf("postgres: %+v", pgPlan)
	}
	// BuildPlan's identity lines first, then what the rewrite does to the pod template.
	if !hasLine(pgPlan.Changes, "create policy") || !hasLine(pgPlan.Changes, "container init-db", "now set by sourcing") {
		t.Errorf("postgres changes:\n%s", strings.Join(pgPlan.Changes, "\n"))
	}
	pg, ok := np.Rewrites[WorkloadID{Kind: KindStatefulSet, Name: "postgres"}]
	if !ok || pg.Template.Annotations["vault.hashicorp.com/role"] != pgPlan.Role || pg.Template.Annotations["vault.hashicorp.com/auth-path"] != "auth/k8s-shop" {
		t.Fatalf("postgres's rewritten template: %+v", pg.Template.Annotations)
	}
	// The pods run as the ServiceAccount the role is bound to, a new one for those that ran
	// as default.
	created := 0
	for id, rw := range np.Rewrites {
		wp := workloadPlan(t, np.Plan, id.Kind, id.Name)
		if rw.Template.Spec.ServiceAccountName != wp.ServiceAccount || wp.ServiceAccount == DefaultServiceAccount {
			t.Errorf("%s's template runs as %q, its plan's ServiceAccount is %q", id, rw.Template.Spec.ServiceAccountName, wp.ServiceAccount)
		}
		if wp.CreateServiceAccount {
			created++
		}
	}
	if created == 0 {
		t.Error("the fixture has no migrated workload that ran as default: the check above proves little")
	}
	// The init container's reader gets the agent first.
	if pg.Template.Annotations["vault.hashicorp.com/agent-init-first"] != "true" {
		t.Errorf("StatefulSet/postgres annotations %v", pg.Template.Annotations)
	}
	// The CronJob pre-populates only.
	backup := np.Rewrites[WorkloadID{Kind: KindCronJob, Name: "backup"}]
	if backup.Template.Annotations["vault.hashicorp.com/agent-pre-populate-only"] != "true" {
		t.Errorf("CronJob/backup annotations %v", backup.Template.Annotations)
	}
	// What the injector cannot reproduce is manual, with Rewrite's reason, and nothing created.
	web := workloadPlan(t, np.Plan, KindDeployment, "web")
	if web.Action != WorkloadManual || !hasLine(web.Manual, "projected volume bundle") || web.Role != "" || web.ServiceAccount != "default" || web.CreateServiceAccount {
		t.Errorf("web: %+v", web)
	}
	if hasLine(web.Warnings, "RoleBinding default-view") {
		t.Errorf("web keeps default: no warning about what its new ServiceAccount lacks: %v", web.Warnings)
	}
	for id := range np.Rewrites {
		if w := workloadPlan(t, np.Plan, id.Kind, id.Name); w.Action != WorkloadMigrate {
			t.Errorf("%s has a rewrite but is %s", id, w.Action)
		}
	}
	if !np.Plan.HasWork() {
		t.Error("the fixture has work")
	}
}

func TestCompletePlanContainerWithoutCommand(t *testing.T) {
	np := completeFixture(t, namespaceOptions, noCommand())
	w := workloadPlan(t, np.Plan, KindDeployment, "worker")
	if w.Action != WorkloadManual || !hasLine(w.Manual, "container run", "no command", `--entrypoint Deployment/worker:run='["PROGRAM","ARG"]'`, "migration.entrypoints") {
		t.Fatalf("worker: %+v", w)
	}
	if w.Role != "" || w.Policy != "" || len(w.KVPaths) != 0 || !hasLine(w.Changes, "nothing is changed") {
		t.Errorf("a manual workload gets nothing created: %+v", w)
	}
	if _, ok := np.Rewrites[WorkloadID{Kind: KindDeployment, Name: "worker"}]; ok {
		t.Error("a manual workload has no rewrite")
	}

	// Given its entrypoint, it migrates and keeps its args after it.
	opts := namespaceOptions
	opts.Entrypoints = []Entrypoint{
		{Workload: WorkloadID{Kind: KindDeployment, Name: "worker"}, Container: "run", Argv: []string{"/stale"}},
		{Workload: WorkloadID{Kind: KindDeployment, Name: "worker"}, Container: "run", Argv: []string{"/usr/bin/worker"}}, // the flag's, after the config's
	}
	np = completeFixture(t, opts, noCommand())
	if w := workloadPlan(t, np.Plan, KindDeployment, "worker"); w.Action != WorkloadMigrate {
		t.Fatalf("worker with its entrypoint: %+v", w)
	}
	c := np.Rewrites[WorkloadID{Kind: KindDeployment, Name: "worker"}].Template.Spec.Containers[0]
	if want := []string{"/usr/bin/worker", "--queue", "jobs"}; !reflect.DeepEqual(c.Args, want) {
		t.Errorf("args %q, want %q after the env-file shell", c.Args, want)
	}
}

func TestCompletePlanGitOpsWorkloadIsNotPatchedLive(t *testing.T) {
	argo := func(m *metav1.ObjectMeta) { m.Labels = map[string]string{"argocd.argoproj.io/instance": "shop"} }
	cmd := func(d *appsv1.Deployment) *appsv1.Deployment {
		d.Spec.Template.Spec.Containers[0].Command = []string{"/usr/bin/worker"}
		return d
	}
	np := completeFixture(t, namespaceOptions, cmd(noCommand(argo)))
	w := workloadPlan(t, np.Plan, KindDeployment, "worker")
	if w.Action != WorkloadManual || !hasLine(w.Manual, "Argo CD", "not patch it live") || !hasLine(w.Changes, "not patched live") || !hasLine(w.Changes, "now set by sourcing") {
		t.Fatalf("GitOps worker: %+v", w)
	}
	if hasLine(w.Warnings, "managed by") {
		t.Errorf("the manual reason says it once: %v", w.Warnings)
	}
	if _, ok := np.Rewrites[WorkloadID{Kind: KindDeployment, Name: "worker"}]; !ok {
		t.Error("the changes to commit need the rewritten template")
	}

	opts := namespaceOptions
	opts.PatchGitOps = true
	np = completeFixture(t, opts, cmd(noCommand(argo)))
	if w := workloadPlan(t, np.Plan, KindDeployment, "worker"); w.Action != WorkloadMigrate || !hasLine(w.Warnings, "managed by Argo CD") {
		t.Fatalf("forced GitOps worker: %+v", w)
	}
}

func TestHasWork(t *testing.T) {
	// Only Secrets the cluster reads, and a workload that reads just those: done.
	kube := []runtime.Object{
		secret("regcred", corev1.SecretTypeDockerConfigJson),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}},
		}}},
	}
	np, err := PlanNamespace(context.Background(), fake.NewClientset(kube...), nil, ns, namespaceOptions)
	if err != nil {
		t.Fatal(err)
	}
	if np.Plan.HasWork() {
		t.Errorf("nothing to migrate, yet work: %+v", np.Plan)
	}
	// An unused Secret is work: it is kept safe in KV.
	np, err = PlanNamespace(context.Background(), fake.NewClientset(append(kube, secret("old-token", corev1.SecretTypeOpaque))...), nil, ns, namespaceOptions)
	if err != nil || !np.Plan.HasWork() {
		t.Errorf("an unused Secret to copy: %v %+v", err, np.Plan)
	}
	if (&Plan{}).HasWork() {
		t.Error("an empty namespace has no work")
	}
}

func TestCompletePlanHoldsNoSecretValue(t *testing.T) {
	np := completeFixture(t, namespaceOptions, noCommand())
	out, err := json.Marshal(np.Plan)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range np.Rewrites {
		b, _ := json.Marshal(r)
		out = append(out, b...)
	}
	for _, s := range np.Inventory.Secrets {
		for k, v := range s.Data {
			if len(v) < 6 {
				continue
			}
			for _, enc := range []string{string(v), base64.StdEncoding.EncodeToString(v), strings.Trim(mustJSON(string(v)), `"`)} {
				if strings.Contains(string(out), enc) {
					t.Errorf("value of %s/%s appears in the plan or a rewritten template", s.Name, k)
				}
			}
		}
	}
}

func TestParseEntrypoint(t *testing.T) {
	got, err := ParseEntrypoint(`deploy/web:app=["/bin/web","--name=a b","it's"]`)
	want := Entrypoint{Workload: WorkloadID{Kind: KindDeployment, Name: "web"}, Container: "app", Argv: []string{"/bin/web", "--name=a b", "it's"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for in, msg := range map[string]string{
		"Deployment/web:app":             "want KIND/NAME:CONTAINER=",
		`Deployment/web=["/x"]`:          "name the container",
		`Deployment/web:=["/x"]`:         "name the container",
		`Rollout/web:app=["/x"]`:         "kind Rollout is not one migrate rewrites",
		`Deployment/web:app=/bin/web`:    "must be a JSON list of strings",
		`Deployment/web:app=[]`:          "the argv is empty",
		`Deployment/web:app=[""]`:        "the argv is empty",
		`Deployment/web:app=["/x", 1]`:   "must be a JSON list of strings",
		`web:app=["/x"]`:                 "want KIND/NAME",
		`Deployment/a/b:app=["/x"]`:      "want KIND/NAME",
		`Deployment/web:app=["/x"] junk`: "must be a JSON list",
	} {
		if _, err := ParseEntrypoint(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: got %v, want %q", in, err, msg)
		}
	}
}
