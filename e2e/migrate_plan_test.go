package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/migrate"
)

// migratePlanDoc is `vaultctl migrate namespace NS --plan -o json`, as a user's script reads it.
type migratePlanDoc struct {
	Command   string                 `json:"command"`
	OK        bool                   `json:"ok"`
	Namespace string                 `json:"namespace"`
	HasWork   bool                   `json:"hasWork"`
	Secrets   []migrate.SecretPlan   `json:"secrets"`
	Workloads []migrate.WorkloadPlan `json:"workloads"`
	Problems  []string               `json:"problems"`
	Error     string                 `json:"error"`
}

// Values of the namespace's Secrets: none may reach the CLI's output in any form. Each is long
// and unlike any name, so that finding one (or a base64 run of one) is never a coincidence.
var migratePlanValues = map[string]map[string][]byte{
	"app-env": {
		"LOG_LEVEL": []byte("loglevel-7c41e9b2-value"),
		"API_TOKEN": []byte("apitoken-d93a0f6e51-value"),
	},
	"db": {
		"username": []byte("dbuser-5e8f2c10-value"),
		"password": []byte(`p'a"ss $w0rd with space-4b7e`),
	},
	"certs": {
		"ca.crt":       []byte("-----BEGIN CERTIFICATE-----\nMIIBcafe-e2e-ca-3a9d\n-----END CERTIFICATE-----\n"),
		"keystore.p12": {0x30, 0x82, 0xff, 0xfe, 0x00, 0x01, 0xc3, 0x9a, 0x11, 0xfa, 0xfb, 0x07, 0x80, 0x81, 0xf0, 0xee},
	},
	"worker-env": {"QUEUE_SECRET": []byte("queuesecret-81be3d77-value")},
	"old-unused": {"token": []byte("legacy-token-0f6c2a95-value")},
	"regcred":    {".dockerconfigjson": []byte(`{"auths":{"registry.example":{"auth":"cmVnY3JlZC1lMmUtNzE0Yg=="}}}`)},
	"web-tls":    {"tls.crt": []byte("webtls-cert-6d2e90ab-value"), "tls.key": []byte("webtls-key-1c8f47de-value")},
}

// userSecretLabel marks the Secrets a test creates as a user would: they hold the values by
// design, so the secret scan searches everywhere but them.
const userSecretLabel = "e2e.vaultctl.io/user-secret"

func migrateSecret(ns, name string, typ corev1.SecretType) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{userSecretLabel: "true"}}, Type: typ, Data: migratePlanValues[name]}
}

func secretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}}
}

func secretEnvFrom(secret string) corev1.EnvFromSource {
	return corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}}
}

// migrateNamespaceObjects is a namespace built like a real one (issue 18's "Done when"): a
// Deployment with envFrom, a keyed env ref and a volume whose keys are not env names; a Secret
// (db) shared by three workloads, with a password holding ' " $ and a space; a binary value; a
// container without command; a CronJob; a StatefulSet whose init container reads a Secret; an
// image pull Secret; an Ingress TLS Secret; a Helm release record; an unused Secret.
func migrateNamespaceObjects(t *testing.T, ns string) []runtime.Object {
	labels := map[string]string{"app": "web"}
	return []runtime.Object{
		migrateSecret(ns, "app-env", corev1.SecretTypeOpaque),
		migrateSecret(ns, "db", corev1.SecretTypeOpaque),
		migrateSecret(ns, "certs", corev1.SecretTypeOpaque),
		migrateSecret(ns, "worker-env", corev1.SecretTypeOpaque),
		migrateSecret(ns, "old-unused", corev1.SecretTypeOpaque),
		migrateSecret(ns, "regcred", corev1.SecretTypeDockerConfigJson),
		migrateSecret(ns, "web-tls", corev1.SecretTypeTLS),
		func() *corev1.Secret {
			s := helmReleaseSecret(t, "shop", []byte(`{"name":"shop","config":{"image":"web"}}`))
			s.Namespace = ns
			return s
		}(),

		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{
					Name: "app", Image: "registry.example/web:1", Command: []string{"/web"}, Args: []string{"--listen", ":8080"},
					EnvFrom:      []corev1.EnvFromSource{secretEnvFrom("app-env")},
					Env:          []corev1.EnvVar{secretEnv("DB_PASSWORD", "db", "password")},
					VolumeMounts: []corev1.VolumeMount{{Name: "certs", MountPath: "/etc/certs", ReadOnly: true}},
				}},
				Volumes:          []corev1.Volume{{Name: "certs", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "certs"}}}},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
			}},
		}},
		// No command: its image's entrypoint is unknown, so the env file cannot be sourced first.
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: ns}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "worker"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "worker"}}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "run", Image: "registry.example/worker:2", Args: []string{"--queue", "jobs"},
					EnvFrom: []corev1.EnvFromSource{secretEnvFrom("worker-env")}}},
			}},
		}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "postgres", Namespace: ns}, Spec: appsv1.StatefulSetSpec{
			ServiceName: "postgres",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "postgres"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "postgres"}}, Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "init-db", Image: "postgres:17", Command: []string{"/init.sh"}, EnvFrom: []corev1.EnvFromSource{secretEnvFrom("db")}}},
				Containers:     []corev1.Container{{Name: "postgres", Image: "postgres:17", Command: []string{"postgres"}}},
			}},
		}},
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "backup", Namespace: ns}, Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyOnFailure,
				Containers: []corev1.Container{{Name: "dump", Image: "postgres:17", Command: []string{"/backup.sh"},
					VolumeMounts: []corev1.VolumeMount{{Name: "db", MountPath: "/creds", ReadOnly: true}}}},
				Volumes: []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: "db", Items: []corev1.KeyToPath{{Key: "password", Path: "pw"}, {Key: "username", Path: "user"}},
				}}}},
			}},
		}}}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: networkingv1.IngressSpec{
			TLS: []networkingv1.IngressTLS{{Hosts: []string{"shop.example"}, SecretName: "web-tls"}},
			DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
				Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}},
		}},
	}
}

// createObjects creates objs in the sandbox.
func createObjects(t *testing.T, cs kubernetes.Interface, objs []runtime.Object) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.Secret:
			_, err = cs.CoreV1().Secrets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.Deployment:
			_, err = cs.AppsV1().Deployments(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.StatefulSet:
			_, err = cs.AppsV1().StatefulSets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *batchv1.CronJob:
			_, err = cs.BatchV1().CronJobs(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *networkingv1.Ingress:
			_, err = cs.NetworkingV1().Ingresses(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("createObjects: add a case for %T", o)
		}
		if err != nil {
			t.Fatalf("creating %T: %v", o, err)
		}
	}
}

// migratePlan runs the real binary's plan with -o json and decodes its one document.
func migratePlan(t *testing.T, cfg, ns string, extra ...string) (migratePlanDoc, cliResult) {
	t.Helper()
	r := vaultctl(t, append([]string{"migrate", "namespace", ns, "--plan", "-c", cfg, "-o", "json"}, extra...)...)
	var doc migratePlanDoc
	dec := json.NewDecoder(strings.NewReader(r.Stdout))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("stdout is not a JSON document: %v\n%s", err, r)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON document:\n%s", r)
	}
	return doc, r
}

func secretOf(t *testing.T, doc migratePlanDoc, name string) migrate.SecretPlan {
	t.Helper()
	for _, s := range doc.Secrets {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("Secret %s is not in the plan: %+v", name, doc.Secrets)
	return migrate.SecretPlan{}
}

func workloadOf(t *testing.T, doc migratePlanDoc, kind, name string) migrate.WorkloadPlan {
	t.Helper()
	for _, w := range doc.Workloads {
		if w.Kind == kind && w.Name == name {
			return w
		}
	}
	t.Fatalf("%s/%s is not in the plan: %+v", kind, name, doc.Workloads)
	return migrate.WorkloadPlan{}
}

func anyContains(lines []string, parts ...string) bool {
	return slices.ContainsFunc(lines, func(l string) bool {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				return false
			}
		}
		return true
	})
}

// assertNoMigrateValue fails when any Secret value of the namespace appears in out: as is,
// JSON-escaped, hex, percent-encoded, or base64 at any offset inside a larger blob.
func assertNoMigrateValue(t *testing.T, what, out string) {
	t.Helper()
	for secret, data := range migratePlanValues {
		for key, v := range data {
			escaped, _ := json.Marshal(string(v))
			forms := append(encodings(string(v)), encoded{"JSON-escaped", []byte(strings.Trim(string(escaped), `"`))})
			for _, f := range forms {
				if len(f.text) >= 8 && strings.Contains(out, string(f.text)) {
					t.Errorf("%s: value of Secret %s key %s appears (%s)", what, secret, key, f.form)
				}
			}
		}
	}
}

func TestMigratePlanNamespaceBuiltLikeARealOne(t *testing.T) {
	cs := kube(t)
	ns := "mplan-shop"
	ensureNamespace(t, cs, ns)
	createObjects(t, cs, migrateNamespaceObjects(t, ns))
	cfg := sandboxConfig(t, "vault-mplan", sb.KMSEndpoint, sb.KMSKeyAlias, false)

	doc, r := migratePlan(t, cfg, ns)
	if r.Code != 3 || !doc.OK || !doc.HasWork || doc.Command != "migrate namespace" || doc.Namespace != ns {
		t.Fatalf("want exit 3 (work to do) and an ok plan:\n%s", r)
	}
	assertNoMigrateValue(t, "-o json", r.Stdout+r.Stderr)

	// Kept: what the cluster reads, each with its reason.
	for name, reason := range map[string]string{
		"regcred":                    "image pull",
		"web-tls":                    "Ingress/web",
		"sh.helm.release.v1.shop.v1": "Helm release",
	} {
		s := secretOf(t, doc, name)
		if s.Action != migrate.SecretKeep || !strings.Contains(s.Reason, reason) || s.KVPath != "" {
			t.Errorf("Secret %s: want kept because %q, got %s %q (kvPath %q)", name, reason, s.Action, s.Reason, s.KVPath)
		}
	}
	// Migrated: every Secret a workload reads, and the unused one, kept safe in KV.
	for _, name := range []string{"app-env", "db", "certs", "worker-env", "old-unused"} {
		s := secretOf(t, doc, name)
		if s.Action != migrate.SecretMigrate || s.KVPath != "secret/"+ns+"/"+name {
			t.Errorf("Secret %s: want migrate to secret/%s/%s, got %+v", name, ns, name, s)
		}
	}
	if s := secretOf(t, doc, "old-unused"); !strings.Contains(s.Reason, "unused") || len(s.Consumers) != 0 {
		t.Errorf("old-unused: %+v", s)
	}
	db := secretOf(t, doc, "db")
	if want := []string{"CronJob/backup", "Deployment/web", "StatefulSet/postgres"}; !slices.Equal(db.Consumers, want) || !slices.Equal(db.Keys, []string{"password", "username"}) {
		t.Errorf("db is shared by three workloads: consumers %v keys %v", db.Consumers, db.Keys)
	}
	if certs := secretOf(t, doc, "certs"); !slices.Equal(certs.Binary, []string{"keystore.p12"}) || !slices.Equal(certs.Keys, []string{"ca.crt", "keystore.p12"}) {
		t.Errorf("certs: the binary key is stored base64: %+v", certs)
	}

	// Workloads: the one without command is manual with the reason and the way to fix it.
	worker := workloadOf(t, doc, "Deployment", "worker")
	if worker.Action != migrate.WorkloadManual || !anyContains(worker.Manual, "container run", "no command", "--entrypoint Deployment/worker:run=", "migration.entrypoints") {
		t.Errorf("Deployment/worker: want manual with the reason, got %+v", worker)
	}
	web := workloadOf(t, doc, "Deployment", "web")
	if web.Action != migrate.WorkloadMigrate || web.ServiceAccount == "default" || !web.CreateServiceAccount || web.Role == "" || web.Policy == "" ||
		!anyContains(web.Changes, "container app", "sourcing") || !anyContains(web.Changes, "keep reading Secret regcred") ||
		!slices.Equal(web.KVPaths, []string{"secret/" + ns + "/app-env", "secret/" + ns + "/certs", "secret/" + ns + "/db"}) {
		t.Errorf("Deployment/web: %+v", web)
	}
	if pg := workloadOf(t, doc, "StatefulSet", "postgres"); pg.Action != migrate.WorkloadMigrate || !anyContains(pg.Changes, "container init-db") {
		t.Errorf("StatefulSet/postgres: %+v", pg)
	}
	if backup := workloadOf(t, doc, "CronJob", "backup"); backup.Action != migrate.WorkloadMigrate || !slices.Equal(backup.KVPaths, []string{"secret/" + ns + "/db"}) {
		t.Errorf("CronJob/backup: %+v", backup)
	}
	if len(doc.Problems) != 0 {
		t.Errorf("problems: %v", doc.Problems)
	}

	// The text form: the same decisions as tables, and no value either.
	text := vaultctl(t, "migrate", "namespace", ns, "--plan", "-c", cfg)
	if text.Code != 3 || !strings.Contains(text.Stdout, "SECRET") || !strings.Contains(text.Stdout, "WORKLOAD") ||
		!strings.Contains(text.Stdout, "Deployment/worker (manual)") || !strings.Contains(text.Stdout, "nothing was changed") {
		t.Errorf("text plan:\n%s", text)
	}
	assertNoMigrateValue(t, "text plan", text.Stdout+text.Stderr)

	// Given its entrypoint by flag, the worker migrates; --workload limits the plan to it and
	// the Secrets it reads.
	doc, r = migratePlan(t, cfg, ns, "--workload", "deploy/worker", "--entrypoint", `Deployment/worker:run=["/usr/bin/worker"]`)
	if r.Code != 3 || len(doc.Workloads) != 1 || doc.Workloads[0].Action != migrate.WorkloadMigrate || len(doc.Secrets) != 1 || doc.Secrets[0].Name != "worker-env" {
		t.Errorf("worker with --entrypoint:\n%s", r)
	}

	// The same from migration.entrypoints in the config file.
	withEntrypoint := cfg + ".entrypoints.yaml"
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	extra := "migration:\n  entrypoints:\n    - {namespace: " + ns + ", workload: Deployment/worker, container: run, entrypoint: [/usr/bin/worker]}\n"
	if err := os.WriteFile(withEntrypoint, append(base, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	doc, r = migratePlan(t, withEntrypoint, ns)
	if w := workloadOf(t, doc, "Deployment", "worker"); r.Code != 3 || w.Action != migrate.WorkloadMigrate {
		t.Errorf("worker with migration.entrypoints: %+v\n%s", w, r)
	}

	// Without --plan, and without a terminal to confirm in, it refuses unless --yes.
	apply := vaultctl(t, "migrate", "namespace", ns, "-c", cfg)
	if apply.Code != 2 || !strings.Contains(apply.Stderr, "pass --yes") {
		t.Errorf("migrate without --plan or --yes:\n%s", apply)
	}
}

func TestMigratePlanNothingToDo(t *testing.T) {
	cs := kube(t)
	ns := "mplan-done"
	ensureNamespace(t, cs, ns)
	// Only Secrets the cluster reads: an image pull Secret and an Ingress's TLS Secret.
	objs := []runtime.Object{migrateSecret(ns, "regcred", corev1.SecretTypeDockerConfigJson), migrateSecret(ns, "web-tls", corev1.SecretTypeTLS)}
	for _, o := range migrateNamespaceObjects(t, ns) {
		if ing, ok := o.(*networkingv1.Ingress); ok {
			objs = append(objs, ing)
		}
	}
	objs = append(objs, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{
			Containers:       []corev1.Container{{Name: "app", Image: "registry.example/web:1"}},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
		}},
	}})
	createObjects(t, cs, objs)
	cfg := sandboxConfig(t, "vault-mplan", sb.KMSEndpoint, sb.KMSKeyAlias, false)

	doc, r := migratePlan(t, cfg, ns)
	if r.Code != 0 || !doc.OK || doc.HasWork {
		t.Fatalf("want exit 0 (nothing to migrate):\n%s", r)
	}
	if w := workloadOf(t, doc, "Deployment", "web"); w.Action != migrate.WorkloadSkip {
		t.Errorf("Deployment/web reads only a kept Secret: %+v", w)
	}
	assertNoMigrateValue(t, "-o json", r.Stdout+r.Stderr)
	if tp := vaultctl(t, "migrate", "namespace", ns, "--plan", "-c", cfg); tp.Code != 0 || !strings.Contains(tp.Stdout, "Nothing to do") {
		t.Errorf("text plan:\n%s", tp)
	}

	// A plan reads Kubernetes only: with KMS and Vault unreachable it is the same.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	deadCfg := sandboxConfig(t, "vault-mplan", "http://"+dead, sb.KMSKeyAlias, false)
	text, err := os.ReadFile(deadCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(deadCfg, []byte(strings.Replace(string(text), sb.VaultAddrs[0], "https://"+dead, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if doc, r := migratePlan(t, deadCfg, ns); r.Code != 0 || doc.HasWork {
		t.Errorf("with Vault and KMS unreachable:\n%s", r)
	}

	// A namespace the cluster does not have is an error, not "nothing to do".
	if r := vaultctl(t, "migrate", "namespace", "mplan-nope", "--plan", "-c", cfg); r.Code != 1 || !strings.Contains(r.Stderr, "no namespace mplan-nope") {
		t.Errorf("missing namespace:\n%s", r)
	}
}
