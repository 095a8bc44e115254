package migrate

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/config"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from BuildPlan's output")

var fixtureOptions = PlanOptions{KV: KVLayout{Template: "{mount}/{namespace}/{secret}", Mount: "secret"}, TTL: time.Hour, MaxTTL: 4 * time.Hour}

func marshalPlan(t *testing.T, p *Plan) []byte {
	t.Helper()
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// The plan of a namespace built like a real one, as `-o json` prints it.
func TestPlanGolden(t *testing.T) {
	plan, err := BuildPlan(fixtureInventory(t), fixtureOptions)
	if err != nil {
		t.Fatal(err)
	}
	got := marshalPlan(t, plan)
	golden := filepath.Join("testdata", "plan.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./migrate -run TestPlanGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("plan differs from %s (go test ./migrate -run TestPlanGolden -update, then review the diff):\n%s", golden, got)
	}
	// The same inventory gives the same bytes: a plan is diffable and resumable.
	again, _ := BuildPlan(fixtureInventory(t), fixtureOptions)
	if !bytes.Equal(marshalPlan(t, again), got) {
		t.Error("two plans of one namespace differ")
	}
}

// What users rely on in the fixture's plan, said outright rather than only in the golden file.
func TestPlanDecisions(t *testing.T) {
	plan, err := BuildPlan(fixtureInventory(t), fixtureOptions)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]SecretPlan{}
	for _, s := range plan.Secrets {
		secrets[s.Name] = s
	}
	for _, c := range []struct {
		name   string
		action SecretAction
		reason string // prefix
	}{
		{"db", SecretMigrate, "used by 3 workloads"},
		{"app-config", SecretMigrate, "used by 2 workloads"},
		{"old-token", SecretMigrate, "unused: kept safe in KV"},
		{"regcred", SecretKeep, "image pull Secret: the kubelet pulls images with it (imagePullSecrets of Deployment/web, Pod/debug, ServiceAccount/builder)"},
		{"web-tls", SecretKeep, "TLS Secret of Ingress/web"},
		{"gw-tls", SecretKeep, "TLS Secret of Gateway/public"},
		{"sh.helm.release.v1.shop.v3", SecretKeep, "Helm release record"},
		{"builder-token", SecretKeep, "ServiceAccount token"},
		{"api-cert", SecretKeep, "issued by cert-manager (Certificate/api)"},
		{"sealed-creds", SecretKeep, "unsealed by Sealed Secrets from SealedSecret/sealed-creds"},
		{"eso-creds", SecretKeep, "written by External Secrets"},
		{"vso-creds", SecretKeep, "synced from Vault by the Vault Secrets Operator"},
	} {
		s, ok := secrets[c.name]
		if !ok || s.Action != c.action || !strings.HasPrefix(s.Reason, c.reason) {
			t.Errorf("%s: %s %q, want %s %q...", c.name, s.Action, s.Reason, c.action, c.reason)
		}
		if (s.Action == SecretMigrate) != (s.KVPath != "") {
			t.Errorf("%s: kvPath %q with action %s", c.name, s.KVPath, s.Action)
		}
	}
	if got := secrets["db"].Consumers; !reflect.DeepEqual(got, []string{"CronJob/backup", "Deployment/web", "StatefulSet/postgres"}) {
		t.Errorf("db consumers: %v", got)
	}
	if got := secrets["certs"]; !reflect.DeepEqual(got.Binary, []string{"keystore.p12"}) || !reflect.DeepEqual(got.Keys, []string{"ca.crt", "keystore.p12"}) {
		t.Errorf("certs keys %v binary %v", got.Keys, got.Binary)
	}
	if got := secrets["db"].KVPath; got != "secret/shop/db" {
		t.Errorf("db kvPath %q", got)
	}

	wl := map[string]WorkloadPlan{}
	for _, w := range plan.Workloads {
		wl[w.Kind+"/"+w.Name] = w
	}
	if _, listed := wl["DaemonSet/log-agent"]; listed {
		t.Error("a workload that reads no Secret is not in the plan")
	}
	web := wl["Deployment/web"]
	if web.Action != WorkloadMigrate || web.ServiceAccount != "web" || !web.CreateServiceAccount || web.Role != "shop-deployment-web" || web.Policy != "shop-deployment-web" {
		t.Errorf("web: %+v", web)
	}
	if !reflect.DeepEqual(web.KVPaths, []string{"secret/shop/api-keys", "secret/shop/app-config", "secret/shop/certs", "secret/shop/db"}) {
		t.Errorf("web reads %v", web.KVPaths)
	}
	if !containsPrefix(web.Warnings, "RoleBinding default-view grants ServiceAccount default ClusterRole/view") {
		t.Errorf("web must be told about default's RoleBinding: %v", web.Warnings)
	}
	if !containsPrefix(web.Warnings, "container app env FEATURE reads key on of Secret feature-flags (optional), but the Secret does not exist") {
		t.Errorf("an optional reference to a missing Secret is a warning: %v", web.Warnings)
	}
	pg := wl["StatefulSet/postgres"]
	if pg.ServiceAccount != "postgres" || pg.CreateServiceAccount || containsPrefix(pg.Warnings, "RoleBinding") {
		t.Errorf("postgres keeps its own ServiceAccount and its bindings: %+v", pg)
	}
	if b := wl["CronJob/backup"]; b.ServiceAccount != "backup" || !b.CreateServiceAccount {
		t.Errorf("backup: %+v", b)
	}
	if j := wl["Job/migrate-once"]; j.Action != WorkloadSkip || j.Role != "" {
		t.Errorf("a workload whose only Secret is missing has nothing to migrate: %+v", j)
	}
	if r := wl["Rollout/checkout"]; r.Action != WorkloadSkip || !containsPrefix(r.Warnings, "its pods keep reading Secret api-keys from Kubernetes: copied to KV, but never pruned") {
		t.Errorf("a controller migrate does not rewrite: %+v", r)
	}
	if got := secrets["api-keys"].Consumers; !reflect.DeepEqual(got, []string{"Deployment/web", "Rollout/checkout"}) {
		t.Errorf("api-keys consumers: %v", got)
	}
	if sa := wl["ServiceAccount/builder"]; sa.Action != WorkloadSkip {
		t.Errorf("builder: %+v", sa)
	}
	want := []string{"Job/migrate-once: container migrate env MIGRATIONS_TOKEN reads key token of Secret migrations, but the Secret does not exist, so its pods cannot start: create the Secret, or mark the reference optional: true"}
	if !reflect.DeepEqual(plan.Problems, want) {
		t.Errorf("problems:\n%v\nwant\n%v", plan.Problems, want)
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// No value of any Secret, in any encoding a leak could take, appears in the plan.
func TestPlanHoldsNoSecretValue(t *testing.T) {
	inv := fixtureInventory(t)
	plan, err := BuildPlan(inv, fixtureOptions)
	if err != nil {
		t.Fatal(err)
	}
	out := string(marshalPlan(t, plan))
	// References are left out of JSON but travel in the Plan: check them too.
	for _, w := range plan.Workloads {
		b, _ := json.Marshal(w.References)
		out += string(b)
	}
	checked := 0
	for _, s := range inv.Secrets {
		for k, v := range s.Data {
			if len(v) < 6 {
				continue
			}
			checked++
			for _, enc := range []string{string(v), base64.StdEncoding.EncodeToString(v), base64.RawStdEncoding.EncodeToString(v), hex.EncodeToString(v), strings.Trim(mustJSON(string(v)), `"`)} {
				if strings.Contains(out, enc) {
					t.Errorf("value of %s/%s appears in the plan (as %q)", s.Name, k, enc)
				}
			}
		}
	}
	if checked < len(fixtureValues)-1 {
		t.Fatalf("checked only %d values", checked)
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestPlanSelectedWorkloads(t *testing.T) {
	inv := fixtureInventory(t)
	opts := fixtureOptions
	opts.Workloads = []string{"sts/postgres", "CronJob/backup"}
	plan, err := BuildPlan(inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	var ws, ss []string
	for _, w := range plan.Workloads {
		ws = append(ws, w.Kind+"/"+w.Name)
	}
	for _, s := range plan.Secrets {
		ss = append(ss, s.Name)
	}
	if !reflect.DeepEqual(ws, []string{"StatefulSet/postgres", "CronJob/backup"}) || !reflect.DeepEqual(ss, []string{"db"}) {
		t.Fatalf("workloads %v secrets %v", ws, ss)
	}
	// Its consumers are still all of them: the raw Secret stays until every one is migrated.
	if got := plan.Secrets[0].Consumers; len(got) != 3 {
		t.Errorf("db consumers %v", got)
	}
	if len(plan.Problems) != 0 {
		t.Errorf("another workload's problem is not this run's: %v", plan.Problems)
	}

	// A workload that reads no Secret can be named: it is there, with nothing to do.
	opts.Workloads = []string{"DaemonSet/log-agent"}
	plan, err = BuildPlan(inv, opts)
	if err != nil || len(plan.Workloads) != 1 || plan.Workloads[0].Action != WorkloadSkip || len(plan.Secrets) != 0 {
		t.Fatalf("log-agent: %v %+v", err, plan)
	}
}

func TestPlanUnknownWorkloadIsNamed(t *testing.T) {
	inv := fixtureInventory(t)
	for _, c := range []struct{ arg, want string }{
		{"Deployment/wbe", "--workload Deployment/wbe: namespace shop has no Deployment named wbe: did you mean Deployment/web?"},
		{"Deployment/frontend", "--workload Deployment/frontend: namespace shop has no Deployment named frontend (it has 1 Deployment: web)"},
		{"DaemonSet/x-long-name", "--workload DaemonSet/x-long-name: namespace shop has no DaemonSet named x-long-name (it has 1 DaemonSet: log-agent)"},
		{"Pod/web-5d8f-x1", "--workload Pod/web-5d8f-x1: namespace shop has no Pod named web-5d8f-x1 (it has 1 Pod: debug)"},
		{"Job/backup-29000000", "--workload Job/backup-29000000: namespace shop has no Job named backup-29000000 (it has 1 Job: migrate-once)"},
		{"Service/web", `--workload "Service/web": kind Service is not one migrate rewrites; use Deployment, StatefulSet, DaemonSet, Job, CronJob or Pod`},
		{"web", `--workload "web": want KIND/NAME, e.g. Deployment/web`},
	} {
		opts := fixtureOptions
		opts.Workloads = []string{"Deployment/web", c.arg}
		if _, err := BuildPlan(inv, opts); err == nil || err.Error() != c.want {
			t.Errorf("%s:\n got %v\nwant %s", c.arg, err, c.want)
		}
	}
}

func TestVaultName(t *testing.T) {
	if got := VaultName("Team-A", WorkloadID{KindStatefulSet, "db.primary"}); got != "team-a-statefulset-db.primary" {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("a", 200)
	a, b := VaultName("ns", WorkloadID{KindDeployment, long + "x"}), VaultName("ns", WorkloadID{KindDeployment, long + "y"})
	if len(a) != maxVaultName || a == b || !strings.HasPrefix(a, "ns-deployment-aaa") {
		t.Errorf("long names must stay within %d and apart: %q %q", maxVaultName, a, b)
	}
}

func TestServiceAccountForDefaultWorkloads(t *testing.T) {
	created := corev1.ServiceAccount{}
	created.Name, created.Annotations = "api", map[string]string{WorkloadAnnotation: "Deployment/api"}
	taken := corev1.ServiceAccount{}
	taken.Name = "worker"
	inv := &Inventory{Namespace: ns, ServiceAccounts: []corev1.ServiceAccount{created, taken}}
	n := newServiceAccountNames(inv)
	for _, c := range []struct {
		w    WorkloadID
		want string
	}{
		{WorkloadID{KindDeployment, "web"}, "web"},
		{WorkloadID{KindCronJob, "web"}, "web-cronjob"}, // web is handed out already
		{WorkloadID{KindDeployment, "api"}, "api"},      // made for it by an earlier run
		{WorkloadID{KindJob, "api"}, "api-job"},         // made for another workload
		{WorkloadID{KindDeployment, "worker"}, "worker-deployment"},
		{WorkloadID{KindPod, "default"}, "default-pod"},
	} {
		if got := n.forWorkload(c.w); got != c.want {
			t.Errorf("%s: got %q, want %q", c.w, got, c.want)
		}
	}
}

func TestPlanWarnings(t *testing.T) {
	withSA := func(sa string, automount *bool) Workload {
		w := templateWorkload(KindDeployment, objectMeta("a"), corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: sa, AutomountServiceAccountToken: automount,
			Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{envSecret("X", "s", "k", false)}}}}})
		return w
	}
	s := corev1.Secret{Data: map[string][]byte{"k": []byte("v")}}
	s.Name = "s"
	cases := []struct {
		name  string
		inv   func() *Inventory
		warn  string
		noRef bool
	}{
		{"shared ServiceAccount", func() *Inventory {
			b := withSA("app", nil)
			b.ID.Name = "b"
			return &Inventory{Workloads: []Workload{withSA("app", nil), b}, ServiceAccounts: []corev1.ServiceAccount{{}}}
		}, "ServiceAccount app is also the identity of Deployment/b: their pods can log in with this workload's role", false},
		{"no token", func() *Inventory {
			return &Inventory{Workloads: []Workload{withSA("app", ptr(false))}}
		}, "its pods do not mount a ServiceAccount token (automountServiceAccountToken: false)", false},
		{"no token from the ServiceAccount", func() *Inventory {
			sa := corev1.ServiceAccount{AutomountServiceAccountToken: ptr(false)}
			sa.Name = "app"
			return &Inventory{Workloads: []Workload{withSA("app", nil)}, ServiceAccounts: []corev1.ServiceAccount{sa}}
		}, "its pods do not mount a ServiceAccount token", false},
		{"missing ServiceAccount", func() *Inventory {
			return &Inventory{Workloads: []Workload{withSA("ghost", nil)}}
		}, "ServiceAccount ghost does not exist", false},
		{"Argo CD", func() *Inventory {
			w := withSA("app", nil)
			w.Meta.Annotations = map[string]string{"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/a"}
			return &Inventory{Workloads: []Workload{w}}
		}, "managed by Argo CD (annotation argocd.argoproj.io/tracking-id), which would revert a live patch", false},
		{"a RoleBinding of another ServiceAccount", func() *Inventory {
			return &Inventory{Workloads: []Workload{withSA("", nil)}, RoleBindings: []rbacv1.RoleBinding{{Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: "elsewhere"}}}}}
		}, "RoleBinding", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := c.inv()
			inv.Namespace = ns
			inv.Secrets = []corev1.Secret{s}
			plan, err := BuildPlan(inv, fixtureOptions)
			if err != nil {
				t.Fatal(err)
			}
			if got := containsSubstring(plan.Workloads[0].Warnings, c.warn); got == c.noRef {
				t.Errorf("warning %q present: %v, want %v; warnings: %v", c.warn, got, !c.noRef, plan.Workloads[0].Warnings)
			}
		})
	}
}

func containsSubstring(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestOptionsFromConfig(t *testing.T) {
	c := &config.Config{KV: []config.KVMount{{Path: "apps"}, {Path: "other"}}}
	c.Migration.KVPath = "{mount}/k8s/{namespace}/{secret}"
	c.Migration.Entrypoints = []config.MigrationEntrypoint{
		{Namespace: "ns", Workload: "Deployment/web", Container: "app", Entrypoint: []string{"/web", "serve"}},
		{Namespace: "other", Workload: "Deployment/web", Container: "app", Entrypoint: []string{"/elsewhere"}},
	}
	config.ApplyDefaults(c)
	o, err := OptionsFromConfig(c, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if o.KV.Path("ns", "db") != "apps/k8s/ns/db" || o.TTL != time.Hour || o.MaxTTL != 4*time.Hour || o.AuthPath != "auth/kubernetes" || !slices.Equal(o.KVMounts, []string{"apps", "other"}) {
		t.Fatalf("%+v", o)
	}
	want := []Entrypoint{{Workload: WorkloadID{Kind: KindDeployment, Name: "web"}, Container: "app", Argv: []string{"/web", "serve"}}}
	if !reflect.DeepEqual(o.Entrypoints, want) {
		t.Fatalf("entrypoints of namespace ns: got %+v, want %+v", o.Entrypoints, want)
	}
	if _, err := BuildPlan(&Inventory{Namespace: "ns"}, PlanOptions{}); err == nil || !strings.Contains(err.Error(), "no KV mount for {mount}") {
		t.Fatalf("a plan without a mount for {mount}: %v", err)
	}
}

// A workload moved off default keeps pulling with default's image pull Secrets, and its new
// ServiceAccount mounts the token the agent logs in with, whatever default says.
func TestNewServiceAccountKeepsWhatDefaultGave(t *testing.T) {
	def := corev1.ServiceAccount{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}, AutomountServiceAccountToken: ptr(false)}
	def.Name = "default"
	s := corev1.Secret{Data: map[string][]byte{"k": []byte("v")}}
	s.Name = "s"
	w := templateWorkload(KindDeployment, objectMeta("api"), corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{envSecret("X", "s", "k", false)}}}}})
	addServiceAccountPullSecrets(&w, &def)
	inv := &Inventory{Namespace: ns, Secrets: []corev1.Secret{s}, Workloads: []Workload{w}, ServiceAccounts: []corev1.ServiceAccount{def}}
	plan, err := BuildPlan(inv, fixtureOptions)
	if err != nil {
		t.Fatal(err)
	}
	wp := plan.Workloads[0]
	if !containsPrefix(wp.Changes, "give ServiceAccount api the image pull Secrets of default (regcred), which its pods pull with") {
		t.Errorf("changes: %v", wp.Changes)
	}
	if containsSubstring(wp.Warnings, "do not mount a ServiceAccount token") {
		t.Errorf("default's automount: false does not apply to the new ServiceAccount: %v", wp.Warnings)
	}
	sa := NewServiceAccount(inv, wp)
	if sa == nil || sa.Name != "api" || sa.Namespace != ns || sa.Annotations[WorkloadAnnotation] != "Deployment/api" || sa.Labels[ManagedByLabel] != "vaultctl" ||
		!reflect.DeepEqual(sa.ImagePullSecrets, def.ImagePullSecrets) || sa.AutomountServiceAccountToken != nil {
		t.Errorf("new ServiceAccount: %+v", sa)
	}
	// A second plan, after the ServiceAccount was made but before the workload moved, finds it.
	inv.ServiceAccounts = append(inv.ServiceAccounts, *sa)
	again, _ := BuildPlan(inv, fixtureOptions)
	if w := again.Workloads[0]; w.ServiceAccount != "api" || w.CreateServiceAccount || NewServiceAccount(inv, w) != nil {
		t.Errorf("resumed plan: %+v", w)
	}
}
