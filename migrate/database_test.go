package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
)

var dbOpts = DatabaseOptions{Namespace: "shop", Workload: WorkloadID{Kind: "Deployment", Name: "api"}, Mount: "database", Role: "app",
	AuthMount: "kubernetes", KVMounts: []string{"secret"},
	Defaults: config.MigrationDefaults{TTL: config.Duration{Duration: time.Hour}, MaxTTL: config.Duration{Duration: 4 * time.Hour}}}

// dbRig is a Deployment that reads its database login from files of Secret db, a Fake Vault
// with the database engine, and a Deployment "controller" that rolls out at once (or never).
type dbRig struct {
	cs    *fake.Clientset
	vs    *vault.FakeServer
	v     vault.Client
	stuck bool
}

func newDBRig(t *testing.T, tmpl corev1.PodTemplateSpec, secretData map[string][]byte) *dbRig {
	t.Helper()
	r := &dbRig{}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}
	r.cs = fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"}, Data: secretData},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: tmpl}},
	)
	r.cs.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.UpdateAction).GetObject().(*appsv1.Deployment)
		if r.stuck && d.Spec.Template.Annotations[annCacheEnable] == "true" {
			d.Status = appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 1, AvailableReplicas: 1}
		} else {
			d.Status = appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1}
		}
		return false, nil, nil
	})
	r.cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{Token: "jwt-shop-api"}}, nil
	})
	r.vs = vault.NewFakeServer()
	r.v = r.vs.RootClient()
	ctx := context.Background()
	for _, m := range []vault.MountInfo{{Type: "kv-v2"}, {Type: "database"}} {
		path := map[string]string{"kv-v2": "secret", "database": "database"}[m.Type]
		if err := r.v.EnableMount(ctx, path, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.v.EnableAuthMethod(ctx, "kubernetes", vault.MountInfo{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if err := r.v.WriteAuthConfig(ctx, "kubernetes", map[string]any{"kubernetes_host": "https://127.0.0.1:6443"}); err != nil {
		t.Fatal(err)
	}
	_ = r.v.WriteDBConnection(ctx, "database", "pg", map[string]any{"plugin_name": "postgresql-database-plugin", "allowed_roles": "app,other", "connection_url": "postgresql://{{username}}:{{password}}@db/app"})
	_ = r.v.WriteDBRole(ctx, "database", "app", map[string]any{"db_name": "pg", "creation_statements": []string{"CREATE ROLE x"}})
	return r
}

func fileTemplateReading(secret string) corev1.PodTemplateSpec {
	t := wlTemplate("api")
	t.Spec.Volumes = []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}}
	t.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "db", MountPath: "/etc/db", ReadOnly: true}}
	return t
}

func (r *dbRig) sw() *DatabaseSwitch {
	return &DatabaseSwitch{Kube: r.cs, Vault: r.v, BackupMount: "secret", Journal: JournalStore{Kube: r.cs, Namespace: "shop"},
		RolloutTimeout: 300 * time.Millisecond, RolloutInterval: 10 * time.Millisecond}
}

func TestPlanDatabaseFromASecretKeepsTheFilesAndReadsTheCredentials(t *testing.T) {
	ctx := context.Background()
	r := newDBRig(t, fileTemplateReading("db"), map[string][]byte{"username": []byte("static"), "password": []byte("static-pw")})
	p, err := PlanDatabase(ctx, r.cs, r.v, dbOpts)
	if err != nil {
		t.Fatal(err)
	}
	ann := p.Target.Annotations
	var templates []string
	for k, v := range ann {
		if strings.HasPrefix(k, annTemplate) {
			templates = append(templates, v)
			file := ann[annFile+strings.TrimPrefix(k, annTemplate)]
			dir := ann[annVolumePath+strings.TrimPrefix(k, annTemplate)]
			field := map[string]string{"username": ".Data.username", "password": ".Data.password"}[file]
			if dir != "/etc/db" || field == "" || v != `{{ with secret "database/creds/app" }}{{ `+field+` }}{{ end }}` {
				t.Errorf("file %s/%s renders %q", dir, file, v)
			}
			if ann[annSecret+strings.TrimPrefix(k, annTemplate)] != "database/creds/app" {
				t.Errorf("agent-inject-secret of %s = %q", file, ann[annSecret+strings.TrimPrefix(k, annTemplate)])
			}
		}
	}
	// The agent logs in at auth/kubernetes, the injector's default: no auth-path annotation.
	if len(templates) != 2 || ann[annCacheEnable] != "true" || ann[annRole] != "shop-deployment-api-db" || ann[annInject] != "true" || ann[annAuthPath] != "" {
		t.Fatalf("annotations: %v", ann)
	}
	if p.From != "Secret db" || p.Keys["username"] != "username" || p.Keys["password"] != "password" {
		t.Errorf("plan: from %q keys %v", p.From, p.Keys)
	}
	if !strings.Contains(strings.Join(p.Notes, "\n"), "vault-k8s#125") && !strings.Contains(strings.Join(p.Changes, "\n"), "vault-k8s#125") {
		t.Errorf("the plan does not explain init versus sidecar: %v %v", p.Notes, p.Changes)
	}
	if !strings.Contains(p.PolicyHCL, `path "database/creds/app"`) || strings.Contains(p.PolicyHCL, "static-pw") {
		t.Errorf("policy:\n%s", p.PolicyHCL)
	}
	for _, s := range append(append(p.Changes, p.Notes...), p.Warnings...) {
		if strings.Contains(s, "static-pw") {
			t.Fatalf("the plan shows the static password: %s", s)
		}
	}
}

func TestPlanDatabaseRefusesWhatItCannotKeep(t *testing.T) {
	ctx := context.Background()
	r := newDBRig(t, fileTemplateReading("db"), map[string][]byte{"username": []byte("u"), "password": []byte("p"), "host": []byte("db")})
	if _, err := PlanDatabase(ctx, r.cs, r.v, dbOpts); err == nil || !strings.Contains(err.Error(), "Secret db holds host besides the username and password") {
		t.Errorf("a Secret with other keys: %v", err)
	}
	r = newDBRig(t, fileTemplateReading("db"), map[string][]byte{"login-name": []byte("u"), "secret": []byte("p")})
	if _, err := PlanDatabase(ctx, r.cs, r.v, dbOpts); err == nil || !strings.Contains(err.Error(), "--from") {
		t.Errorf("keys it cannot tell: %v", err)
	}
	o := dbOpts
	o.UsernameKey, o.PasswordKey = "login-name", "secret"
	if _, err := PlanDatabase(ctx, r.cs, r.v, o); err != nil {
		t.Errorf("keys named by flags: %v", err)
	}
	tmpl := fileTemplateReading("db")
	tmpl.Spec.ServiceAccountName = ""
	r = newDBRig(t, tmpl, map[string][]byte{"username": []byte("u"), "password": []byte("p")})
	if _, err := PlanDatabase(ctx, r.cs, r.v, dbOpts); err == nil || !strings.Contains(err.Error(), "ServiceAccount default") {
		t.Errorf("a workload on default: %v", err)
	}
}

// A workload the namespace migration moved to KV: the env file's password and user come from
// the creds path, its host stays read from KV, and the old role's policy is kept.
func TestPlanDatabaseFromKVTemplatesKeepsOtherKeys(t *testing.T) {
	ctx := context.Background()
	tmpl := wlTemplate("api")
	env := `{{ with secret "secret/data/shop/db" }}export DB_HOST='{{ index .Data.data "host" | replaceAll "'" "'\''" }}'` + "\n" +
		`export DB_PASSWORD='{{ index .Data.data "password" | replaceAll "'" "'\''" }}'` + "\n" +
		`export DB_USER='{{ index .Data.data "user" | replaceAll "'" "'\''" }}'` + "\n{{ end }}" +
		`{{ with secret "secret/data/shop/other" }}export OTHER_PASSWORD='{{ index .Data.data "password" }}'` + "\n{{ end }}"
	tmpl.Annotations = map[string]string{annInject: "true", annRole: "shop-deployment-api", annTemplate + "env-app": env, annSecret + "env-app": "secret/data/shop/db"}
	r := newDBRig(t, tmpl, nil)
	if err := r.v.WriteRole(ctx, "kubernetes", "shop-deployment-api", map[string]any{"token_policies": []string{"shop-deployment-api"}, "bound_service_account_names": []string{"api"}, "bound_service_account_namespaces": []string{"shop"}}); err != nil {
		t.Fatal(err)
	}
	o := dbOpts
	o.Source = "secret/shop/db"
	p, err := PlanDatabase(ctx, r.cs, r.v, o)
	if err != nil {
		t.Fatal(err)
	}
	got := p.Target.Annotations[annTemplate+"env-app"]
	want := `{{ with secret "secret/data/shop/db" }}export DB_HOST='{{ index .Data.data "host" | replaceAll "'" "'\''" }}'` + "\n" +
		`export DB_PASSWORD='{{ with secret "database/creds/app" }}{{ .Data.password | replaceAll "'" "'\''" }}{{ end }}'` + "\n" +
		`export DB_USER='{{ with secret "database/creds/app" }}{{ .Data.username | replaceAll "'" "'\''" }}{{ end }}'` + "\n{{ end }}" +
		`{{ with secret "secret/data/shop/other" }}export OTHER_PASSWORD='{{ index .Data.data "password" }}'` + "\n{{ end }}"
	if got != want {
		t.Fatalf("env template:\n%s\nwant:\n%s", got, want)
	}
	if strings.Join(p.Policies, ",") != "shop-deployment-api-db,shop-deployment-api" {
		t.Errorf("policies: %v", p.Policies)
	}
}

func TestDatabaseSwitchApplyProvesPatchesAndRollsBack(t *testing.T) {
	ctx := context.Background()
	orig := fileTemplateReading("db")
	r := newDBRig(t, orig, map[string][]byte{"username": []byte("u"), "password": []byte("p")})
	p, err := PlanDatabase(ctx, r.cs, r.v, dbOpts)
	if err != nil {
		t.Fatal(err)
	}
	r.vs.AllowLogin("kubernetes", p.Role, "jwt-shop-api")
	sw := r.sw()
	sw.Prove = func(ctx context.Context) error {
		return ProveDatabase(ctx, r.cs, func() (DatabaseProofClient, error) { return r.vs.Client(""), nil }, p, "database", "app")
	}
	out, err := sw.Apply(ctx, dbOpts.Workload, p)
	if err != nil || out.State != DBVerified || !out.Changed {
		t.Fatalf("Apply = %+v, %v", out, err)
	}
	if len(r.vs.Leases()) != 0 {
		t.Errorf("the proof left leases behind: %v", r.vs.Leases())
	}
	live, _ := ReadTemplate(ctx, r.cs, "shop", dbOpts.Workload)
	if live.Annotations[annRole] != p.Role {
		t.Fatalf("not patched: %v", live.Annotations)
	}
	if hcl, found, _ := r.v.ReadPolicy(ctx, p.Policy); !found || hcl != p.PolicyHCL {
		t.Fatal("policy not written")
	}
	// A second run plans nothing more and changes nothing.
	p2, err := PlanDatabase(ctx, r.cs, r.v, dbOpts)
	if err != nil || !p2.Done {
		t.Fatalf("second plan: done=%v, %v", p2 != nil && p2.Done, err)
	}
	if out, err := sw.Apply(ctx, dbOpts.Workload, p2); err != nil || out.Changed || out.State != DBVerified {
		t.Fatalf("second Apply = %+v, %v", out, err)
	}

	out, err = sw.Rollback(ctx, "shop", dbOpts.Workload)
	if err != nil || out.State != DBRolledBack {
		t.Fatalf("Rollback = %+v, %v", out, err)
	}
	live, _ = ReadTemplate(ctx, r.cs, "shop", dbOpts.Workload)
	if TemplateHash(*live) != TemplateHash(orig) {
		t.Fatal("rollback did not restore the original template")
	}
	if rec, _ := sw.Journal.Database(ctx, dbOpts.Workload); rec == nil || rec.State != DBRolledBack {
		t.Fatalf("journal: %+v", rec)
	}
	if all, err := sw.Journal.Databases(ctx); err != nil || len(all) != 1 || all["Deployment/api"].CredsPath != "database/creds/app" {
		t.Fatalf("Databases = %+v, %v", all, err)
	}
	// The namespace migration's journal reader is not confused by the database records.
	if j, err := sw.Journal.Load(ctx); err != nil || len(j.Unreadable) != 0 || len(j.Workloads) != 0 {
		t.Fatalf("Load = %+v, %v", j, err)
	}
}

func TestDatabaseSwitchStopsOnAFailedProofAndRollsBackAStuckRollout(t *testing.T) {
	ctx := context.Background()
	orig := fileTemplateReading("db")
	r := newDBRig(t, orig, map[string][]byte{"username": []byte("u"), "password": []byte("p")})
	p, _ := PlanDatabase(ctx, r.cs, r.v, dbOpts)
	sw := r.sw()
	// No login allowed: the proof fails at login and the workload is not touched.
	sw.Prove = func(ctx context.Context) error {
		return ProveDatabase(ctx, r.cs, func() (DatabaseProofClient, error) { return r.vs.Client(""), nil }, p, "database", "app")
	}
	out, err := sw.Apply(ctx, dbOpts.Workload, p)
	if err != nil || out.State != DBFailed || !strings.Contains(out.Message, "proof") || strings.Contains(out.Message, "jwt-shop-api") {
		t.Fatalf("Apply with a failing proof = %+v, %v", out, err)
	}
	live, _ := ReadTemplate(ctx, r.cs, "shop", dbOpts.Workload)
	if TemplateHash(*live) != TemplateHash(orig) {
		t.Fatal("a workload whose proof failed was patched")
	}
	sw.Prove = func(context.Context) error { return nil }
	r.stuck = true
	out, _ = sw.Apply(ctx, dbOpts.Workload, p)
	if out.State != DBFailed || !strings.Contains(out.Message, "rolled back by itself") {
		t.Fatalf("Apply with a stuck rollout = %+v", out)
	}
	live, _ = ReadTemplate(ctx, r.cs, "shop", dbOpts.Workload)
	if TemplateHash(*live) != TemplateHash(orig) {
		t.Fatal("the stuck workload was not rolled back")
	}
	_ = errors.New
}

// A container that reads the login as env from a Secret is started through the agent's env
// file, as migrate namespace does; its variables keep their names and read the credentials.
func TestPlanDatabaseFromSecretEnvKeepsTheVariables(t *testing.T) {
	ctx := context.Background()
	tmpl := wlTemplate("api")
	tmpl.Spec.Containers[0].Command = []string{"/api", "serve"}
	tmpl.Spec.Containers[0].Env = []corev1.EnvVar{envSecret("DB_USER", "db", "user", false), envSecret("DB_PASSWORD", "db", "pass", false)}
	r := newDBRig(t, tmpl, map[string][]byte{"user": []byte("u"), "pass": []byte("p")})
	p, err := PlanDatabase(ctx, r.cs, r.v, dbOpts)
	if err != nil {
		t.Fatal(err)
	}
	var env string
	for k, v := range p.Target.Annotations {
		if strings.HasPrefix(k, annTemplate) {
			env = v
		}
	}
	for _, want := range []string{`{{ with secret "database/creds/app" }}`, `export DB_USER='{{ .Data.username | replaceAll`, `export DB_PASSWORD='{{ .Data.password | replaceAll`} {
		if !strings.Contains(env, want) {
			t.Errorf("env template lacks %q:\n%s", want, env)
		}
	}
	if strings.Contains(env, ".Data.data") || strings.Contains(env, "placeholder") {
		t.Errorf("env template still reads KV:\n%s", env)
	}
	c := p.Target.Spec.Containers[0]
	if len(c.Env) != 0 || len(c.Command) == 0 || !strings.Contains(strings.Join(c.Args, " ")+strings.Join(c.Command, " "), "/api") {
		t.Errorf("container: command %q args %q env %v", c.Command, c.Args, c.Env)
	}
}
