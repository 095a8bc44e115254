package e2e

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	// lib/pq is already in go.mod (through Helm's dependencies), so the proof against the
	// sandbox's PostgreSQL adds no module; database/sql is all the tests need of a driver.
	_ "github.com/lib/pq"
)

// pgEstate is a database of its own on the sandbox's PostgreSQL: an admin role that owns it
// (CREATEROLE, so Vault can create and drop users) with a bootstrap password, and one table
// dynamic users are granted on.
type pgEstate struct {
	host      string // 127.0.0.1:PORT
	db        string
	admin     string
	bootstrap string // the admin's password before vaultctl rotates it
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func newPGEstate(t *testing.T) *pgEstate {
	t.Helper()
	if sb.PostgresURL == "" {
		t.Fatal("the sandbox runs no PostgreSQL")
	}
	u, err := url.Parse(sb.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	suffix := randomHex(t, 4)
	e := &pgEstate{host: u.Host, db: "vdb_" + suffix, admin: "vadmin_" + suffix, bootstrap: "boot-" + randomHex(t, 16)}
	super, err := sql.Open("postgres", sb.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	for _, q := range []string{
		fmt.Sprintf(`CREATE ROLE %s WITH LOGIN CREATEROLE PASSWORD '%s'`, e.admin, e.bootstrap),
		fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, e.db, e.admin),
	} {
		if _, err := super.Exec(q); err != nil {
			t.Fatalf("setting up PostgreSQL: %v", err)
		}
	}
	t.Cleanup(func() {
		s, err := sql.Open("postgres", sb.PostgresURL)
		if err != nil {
			return
		}
		defer s.Close()
		_, _ = s.Exec(fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, e.db))
	})
	// The table belongs to the admin, who may therefore grant on it.
	admin, err := e.open(e.admin, e.bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'one')`); err != nil {
		t.Fatalf("creating the table: %v", err)
	}
	return e
}

// open connects as user and proves the login with a query (sql.Open alone connects lazily).
func (e *pgEstate) open(user, password string) (*sql.DB, error) {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: e.host, Path: "/" + e.db, RawQuery: "sslmode=disable&connect_timeout=10"}
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// databasesSection is the config's databases: entry for e, the password read from file.
func (e *pgEstate) databasesSection(passwordFile string) string {
	return fmt.Sprintf(`databases:
  - name: app-db
    mount: database
    connectionURL: postgresql://{{username}}:{{password}}@%s/%s?sslmode=disable
    username: %s
    password:
      file: %s
    maxOpenConnections: 2
    roles:
      - name: app
        defaultTTL: 30m
        maxTTL: 1h
        creationStatements:
          - CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';
          - GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO "{{name}}";
        revocationStatements:
          - REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "{{name}}";
          - DROP ROLE IF EXISTS "{{name}}";
`, e.host, e.db, e.admin, passwordFile)
}

// addDatabases appends e's databases entry to the estate's config; the bootstrap password
// goes to a 0600 file beside it, as an operator would keep it.
func (e *pgEstate) addDatabases(t *testing.T, cfgPath string) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "db-admin-password")
	if err := os.WriteFile(pw, []byte(e.bootstrap+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(e.databasesSection(pw)); err != nil {
		t.Fatal(err)
	}
}

// TestDatabaseDynamicCredentials is week 5 on a real estate: the databases phase takes the
// bootstrap admin password, writes the connection and rotates it, so that password stops
// working; a second apply changes nothing; nothing secret shows anywhere.
func TestDatabaseDynamicCredentials(t *testing.T) {
	t.Parallel()
	const vns = "vault-db"
	e := newMigrateEstate(t, vns)
	pg := newPGEstate(t)
	pg.addDatabases(t, e.cfg)

	dbPlan := vaultctl(t, "plan", "-c", e.cfg)
	for _, want := range []string{"create database secrets engine at database/", "create database connection database/app-db", "root password of database connection database/app-db", "create database role database/app"} {
		if !strings.Contains(dbPlan.Stdout, want) {
			t.Fatalf("plan lacks %q:\n%s", want, dbPlan)
		}
	}
	if res := vaultctl(t, "apply", "-c", e.cfg, "-o", "json"); !parseRun(t, res).OK {
		t.Fatalf("apply with a database failed:\n%s", res)
	}
	if db, err := pg.open(pg.admin, pg.bootstrap); err == nil {
		db.Close()
		t.Fatal("the bootstrap admin password still logs into PostgreSQL after apply")
	} else if !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("logging in with the bootstrap password: %v, want an authentication failure", err)
	}

	second := parseRun(t, vaultctl(t, "apply", "-c", e.cfg, "-o", "json"))
	if !second.OK || second.Changes != 0 {
		t.Fatalf("second apply must change nothing: %+v", second)
	}

	// A workload reading a static login from Secret files is switched to dynamic credentials.
	const app = "db-app"
	cs := kube(t)
	ctx := context.Background()
	e.appNamespace(t, cs, app)
	ensureServiceAccount(t, cs, app, "api")
	static := "static-" + randomHex(t, 12)
	if _, err := cs.CoreV1().Secrets(app).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-static"},
		Data: map[string][]byte{"username": []byte("static_user"), "password": []byte(static)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fileDeployment(t, cs, app, "api", "db-static", "/etc/db")
	runningPod(t, cs, app, "api-", false)

	args := []string{"migrate", "database", "Deployment/api", "--role", "app", "-n", app, "-c", e.cfg, "-o", "json"}
	plan := vaultctl(t, append(args, "--plan")...)
	var planDoc struct {
		Plan struct {
			CredsPath string            `json:"credsPath"`
			Keys      map[string]string `json:"keys"`
			Notes     []string          `json:"notes"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(plan.Stdout), &planDoc); err != nil || plan.Code != 3 {
		t.Fatalf("migrate database --plan: want exit 3 and one JSON document (%v):\n%s", err, plan)
	}
	if planDoc.Plan.CredsPath != "database/creds/app" || planDoc.Plan.Keys["password"] != "password" || !strings.Contains(strings.Join(planDoc.Plan.Notes, " "), "agent-cache-enable") {
		t.Fatalf("plan: %+v", planDoc.Plan)
	}
	type runDoc struct {
		OK      bool `json:"ok"`
		Outcome struct {
			State   string `json:"state"`
			Changed bool   `json:"changed"`
			Message string `json:"message"`
		} `json:"outcome"`
	}
	var run runDoc
	r := vaultctl(t, append(args, "--yes", "--rollout-timeout", "2m")...)
	if err := json.Unmarshal([]byte(r.Stdout), &run); err != nil || !run.OK || run.Outcome.State != "verified" || !run.Outcome.Changed {
		t.Fatalf("migrate database --yes (%v):\n%s\n%s", err, r, describePods(cs, app))
	}

	// The credentials the real agent rendered, where the application read its static ones.
	pod := runningPod(t, cs, app, "api-", true)
	if pod.Annotations["vault.hashicorp.com/agent-cache-enable"] != "true" {
		t.Errorf("the switched pod has no shared agent cache: %v", pod.Annotations)
	}
	var user, pw string
	eventually(t, 2*time.Minute, "the agent renders the credentials", func() error {
		eff, err := sb.Effective(ctx, app, pod.Name, "app")
		if err != nil {
			return err
		}
		user, pw = string(eff.Files["/etc/db/username"]), string(eff.Files["/etc/db/password"])
		if user == "" || pw == "" || pw == static {
			return fmt.Errorf("files /etc/db/username, /etc/db/password hold %d and %d bytes", len(user), len(pw))
		}
		return nil
	})
	db, err := pg.open(user, pw)
	if err != nil {
		t.Fatalf("the rendered credentials do not log into PostgreSQL: %v", err)
	}
	for _, q := range []string{`SELECT count(*) FROM items`, `INSERT INTO items VALUES (2, 'two')`, `UPDATE items SET name = 'uno' WHERE id = 1`} {
		if _, err := db.Exec(q); err != nil {
			t.Errorf("%s as the dynamic user: %v, want it granted", q, err)
		}
	}
	for _, q := range []string{`DELETE FROM items WHERE id = 2`, `CREATE TABLE extra (x int)`, `DROP TABLE items`} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "permission denied") && !strings.Contains(err.Error(), "must be owner") {
			t.Errorf("%s as the dynamic user: %v, want it refused", q, err)
		}
	}
	db.Close()

	// A second run changes nothing; a second apply neither.
	run = runDoc{}
	if r := vaultctl(t, append(args, "--yes")...); json.Unmarshal([]byte(r.Stdout), &run) != nil || !run.OK || run.Outcome.Changed {
		t.Fatalf("second migrate database must change nothing:\n%s", r)
	}
	if again := parseRun(t, vaultctl(t, "apply", "-c", e.cfg, "-o", "json")); !again.OK || again.Changes != 0 {
		t.Fatalf("apply after migrate database must change nothing: %+v", again)
	}

	// Revoking the credentials' lease drops the database user.
	admin := adminClient(t, e.vc.Addrs[0], vns)
	if err := admin.Sys().RevokePrefix("database/creds/app/"); err != nil {
		t.Fatalf("revoking database/creds/app/: %v", err)
	}
	if db, err := pg.open(user, pw); err == nil {
		db.Close()
		t.Fatal("the revoked credentials still log into PostgreSQL")
	}
	super, err := sql.Open("postgres", sb.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	var n int
	if err := super.QueryRow(`SELECT count(*) FROM pg_roles WHERE rolname = $1`, user).Scan(&n); err != nil || n != 0 {
		t.Errorf("role %s after revocation: %d rows (%v), want it dropped", user, n, err)
	}

	// A workload migrate namespace moved to KV: its templates read the KV entry; migrate
	// database switches the username and password only, the host stays read from KV.
	staticKV := "static-kv-" + randomHex(t, 12)
	ensureServiceAccount(t, cs, app, "worker")
	if _, err := cs.CoreV1().Secrets(app).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-kv"},
		Data: map[string][]byte{"host": []byte("db.internal"), "username": []byte("static_kv_user"), "password": []byte(staticKV)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fileDeployment(t, cs, app, "worker", "db-kv", "/etc/dbkv")
	runningPod(t, cs, app, "worker-", false)
	if doc, r := e.migrate(t, app, "--workload", "Deployment/worker", "--yes"); !doc.OK {
		t.Fatalf("migrate namespace of the worker:\n%s", r)
	}
	runningPod(t, cs, app, "worker-", true)
	run = runDoc{}
	kvArgs := []string{"migrate", "database", "Deployment/worker", "--role", "app", "-n", app, "-c", e.cfg, "-o", "json", "--from", "secret/" + app + "/db-kv", "--yes", "--rollout-timeout", "2m"}
	if r := vaultctl(t, kvArgs...); json.Unmarshal([]byte(r.Stdout), &run) != nil || !run.OK || run.Outcome.State != "verified" {
		t.Fatalf("migrate database of the KV-migrated worker:\n%s\n%s", r, describePods(cs, app))
	}
	worker := runningPod(t, cs, app, "worker-", true)
	var kvUser, kvPW string
	eventually(t, 2*time.Minute, "the worker's agent renders credentials and the host", func() error {
		eff, err := sb.Effective(ctx, app, worker.Name, "app")
		if err != nil {
			return err
		}
		if host := string(eff.Files["/etc/dbkv/host"]); host != "db.internal" {
			return fmt.Errorf("/etc/dbkv/host = %q, want the KV value", host)
		}
		kvUser, kvPW = string(eff.Files["/etc/dbkv/username"]), string(eff.Files["/etc/dbkv/password"])
		if kvUser == "" || kvUser == "static_kv_user" || kvPW == "" || kvPW == staticKV {
			return fmt.Errorf("username and password files hold %d and %d bytes, not dynamic credentials yet", len(kvUser), len(kvPW))
		}
		return nil
	})
	if db, err := pg.open(kvUser, kvPW); err != nil {
		t.Errorf("the worker's rendered credentials do not log in: %v", err)
	} else {
		db.Close()
	}

	// Rollback puts the static Secret files back.
	run = runDoc{}
	if r := vaultctl(t, append(args, "--rollback", "--yes")...); json.Unmarshal([]byte(r.Stdout), &run) != nil || !run.OK || run.Outcome.State != "rolled-back" {
		t.Fatalf("migrate database --rollback:\n%s", r)
	}
	back := runningPod(t, cs, app, "api-", false)
	if back.Spec.Volumes[0].Secret == nil || back.Spec.Volumes[0].Secret.SecretName != "db-static" {
		t.Errorf("after rollback the pod reads %+v, want Secret db-static", back.Spec.Volumes)
	}

	scanForSecrets(t, vns, []string{pg.bootstrap, pw, static, kvPW, staticKV}, externalVault(e.vc, e.auditDir), migratedNamespace(app, "db-static", "db-kv"))
}

// runningPod waits for a Running, Ready pod of prefix in ns whose injection is as injected says
// (and, once a workload was switched, that no pod of its old template is left).
func runningPod(t *testing.T, cs kubernetes.Interface, ns, prefix string, injected bool) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, 3*time.Minute, fmt.Sprintf("one Running pod %s* in %s (injected %t)", prefix, ns, injected), func() error {
		pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		var match []*corev1.Pod
		for i := range pods.Items {
			p := &pods.Items[i]
			if !strings.HasPrefix(p.Name, prefix) || p.DeletionTimestamp != nil {
				continue
			}
			if isInjected := p.Annotations["vault.hashicorp.com/agent-inject-status"] == "injected"; isInjected != injected {
				return fmt.Errorf("pod %s (injected %t) still there", p.Name, isInjected)
			}
			if p.Status.Phase == corev1.PodRunning && podReady(p) {
				match = append(match, p)
			}
		}
		if len(match) != 1 {
			return fmt.Errorf("%d ready", len(match))
		}
		pod = match[0]
		return nil
	})
	return pod
}

// describePods says, for a failure message, how each pod of ns stands and what its sandbox
// log ends with.
func describePods(cs kubernetes.Interface, ns string) string {
	pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s: %s\n", p.Name, p.Status.Phase)
		for _, st := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			fmt.Fprintf(&b, "  %s ready=%t restarts=%d state=%+v\n", st.Name, st.Ready, st.RestartCount, st.State)
		}
		logs, _ := filepath.Glob(filepath.Join(sb.Dir, "logs", "*"+p.Name+"*"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			if len(data) > 3000 {
				data = data[len(data)-3000:]
			}
			fmt.Fprintf(&b, "  log %s:\n%s\n", filepath.Base(l), data)
		}
	}
	return b.String()
}

// fileDeployment creates Deployment name in ns, running as ServiceAccount name, with Secret
// secret mounted as files at dir.
func fileDeployment(t *testing.T, cs kubernetes.Interface, ns, name, secret, dir string) {
	t.Helper()
	labels := map[string]string{"app": name}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			ServiceAccountName: name,
			Volumes:            []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}},
			Containers: []corev1.Container{{Name: "app", Image: "shop/" + name + ":1", Command: []string{"/" + name},
				VolumeMounts: []corev1.VolumeMount{{Name: "db", MountPath: dir, ReadOnly: true}}}},
		}},
	}}
	if _, err := cs.AppsV1().Deployments(ns).Create(context.Background(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
