package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/internal/sandbox"
	"github.com/vaultctl/vaultctl/leases"
)

// leasesDoc is `vaultctl leases -o json`.
type leasesDoc struct {
	OK       bool                `json:"ok"`
	Root     string              `json:"root"`
	Total    int                 `json:"total"`
	Prefixes []leases.Prefix     `json:"prefixes"`
	Orphans  *leases.Orphans     `json:"orphans"`
	Revoked  []leases.Revocation `json:"revocations"`
}

func (e *migrateEstate) leases(t *testing.T, args ...string) (leasesDoc, cliResult) {
	t.Helper()
	r := vaultctl(t, append([]string{"leases", "-c", e.cfg, "-o", "json"}, args...)...)
	var doc leasesDoc
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
		t.Fatalf("leases output is not one JSON document: %v\n%s", err, r)
	}
	return doc, r
}

// pgRoles counts the PostgreSQL roles whose name starts with prefix.
func pgRoles(t *testing.T, prefix string) int {
	t.Helper()
	u, err := url.Parse(sb.PostgresURL)
	if err != nil || u.User == nil {
		t.Fatalf("bad PostgreSQL URL (not printed): %v", err)
	}
	pw, _ := u.User.Password()
	cmd := exec.Command(filepath.Join(sandbox.DefaultPGBinDir, "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
		"-h", u.Hostname(), "-p", u.Port(), "-U", u.User.Username(), "-d", "postgres",
		"-c", "select count(*) from pg_roles where rolname like '"+prefix+"%'")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pw, "PGCONNECT_TIMEOUT=10", "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v: %s", err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("psql count: %q", out)
	}
	return n
}

// dbSetupClient gives the test a token that may configure the database engine: the estate's
// admin identity writes a policy and a role for a test ServiceAccount (test setup only; the
// databases phase is another issue's).
func dbSetupClient(t *testing.T, e *migrateEstate, admin *vaultapi.Client) *vaultapi.Client {
	t.Helper()
	const name = "e2e-db-setup"
	if err := admin.Sys().PutPolicy(name, `
path "sys/mounts/database" { capabilities = ["create", "read", "update"] }
path "database/*" { capabilities = ["create", "read", "update", "delete", "list"] }`); err != nil {
		t.Fatal(err)
	}
	cs := kube(t)
	ensureServiceAccount(t, cs, e.vns, name)
	if _, err := admin.Logical().Write("auth/kubernetes/role/"+name, map[string]any{
		"bound_service_account_names": name, "bound_service_account_namespaces": e.vns, "token_policies": name, "token_ttl": "30m",
	}); err != nil {
		t.Fatal(err)
	}
	c := vaultClient(t, e.vc.Addrs[0])
	s, err := c.Logical().Write("auth/kubernetes/login", map[string]any{"role": name, "jwt": saToken(t, cs, e.vns, name)})
	if err != nil {
		t.Fatalf("db setup login: %v", err)
	}
	c.SetToken(s.Auth.ClientToken)
	return c
}

// Issue 13's "Done when": after 50 pod restarts of a workload with dynamic credentials,
// leases counts the leases under database/creds/ROLE; --revoke-prefix with --yes empties it
// and the PostgreSQL roles are gone. Then the workload's ServiceAccount is deleted and
// --orphaned finds its agents' tokens, which --revoke-orphaned revokes.
func TestLeasesCountAndRevokeDynamicCredentials(t *testing.T) {
	t.Parallel()
	e := newMigrateEstate(t, "leases-vault")
	cs := kube(t)
	ctx := context.Background()
	admin := adminClient(t, e.vc.Addrs[0], e.vns)
	setup := dbSetupClient(t, e, admin)

	// Test setup: the database engine on the sandbox's PostgreSQL, a role issuing 1h users.
	const userPrefix = "e2e-leases-"
	u, err := url.Parse(sb.PostgresURL)
	if err != nil || u.User == nil {
		t.Fatal("bad PostgreSQL URL")
	}
	pw, _ := u.User.Password()
	if err := setup.Sys().Mount("database", &vaultapi.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Logical().Write("database/config/pg", map[string]any{
		"plugin_name": "postgresql-database-plugin", "allowed_roles": "app",
		"connection_url": "postgresql://{{username}}:{{password}}@" + u.Host + u.Path + "?" + u.RawQuery,
		"username":       u.User.Username(), "password": pw,
		"username_template": userPrefix + "{{random 12 | lowercase}}",
	}); err != nil {
		t.Fatalf("database connection: %v", err)
	}
	if _, err := setup.Logical().Write("database/roles/app", map[string]any{
		"db_name": "pg", "default_ttl": "1h", "max_ttl": "2h",
		"creation_statements": []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`},
	}); err != nil {
		t.Fatalf("database role: %v", err)
	}

	const ns = "leases-app"
	e.appNamespace(t, cs, ns)
	ensureServiceAccount(t, cs, ns, "app")
	if err := admin.Sys().PutPolicy("leases-app", `path "database/creds/app" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Logical().Write("auth/kubernetes/role/leases-app", map[string]any{
		"bound_service_account_names": "app", "bound_service_account_namespaces": ns, "token_policies": "leases-app", "token_ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "dbapp"}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "dbapp"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
				"vault.hashicorp.com/agent-inject":           "true",
				"vault.hashicorp.com/role":                   "leases-app",
				"vault.hashicorp.com/agent-inject-secret-db": "database/creds/app",
				// One agent per pod start: each start issues one set of credentials.
				"vault.hashicorp.com/agent-pre-populate-only": "true",
			}},
			Spec: corev1.PodSpec{ServiceAccountName: "app", TerminationGracePeriodSeconds: ptr(int64(1)),
				Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/dbapp:1", Command: []string{"/app"}}}},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// runningPod waits for the Deployment's one Running pod other than old and returns it.
	runningPod := func(old string) string {
		var name string
		eventually(t, 2*time.Minute, "a new Running dbapp pod", func() error {
			list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=dbapp"})
			if err != nil {
				return err
			}
			for _, p := range list.Items {
				if p.Name != old && p.DeletionTimestamp == nil && podDisplayStatus(&p) == "Running" && podReady(&p) {
					name = p.Name
					return nil
				}
			}
			return fmt.Errorf("%d pods, none new and Running", len(list.Items))
		})
		return name
	}
	const starts = 51 // the first start and 50 restarts
	pod := runningPod("")
	for i := 1; i < starts; i++ {
		if err := cs.CoreV1().Pods(ns).Delete(ctx, pod, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		pod = runningPod(pod)
	}

	doc, r := e.leases(t, "database/creds/app")
	roles := pgRoles(t, userPrefix)
	if doc.Total < starts || doc.Total != roles {
		t.Fatalf("leases under database/creds/app: %d, PostgreSQL roles %d; want one per pod start (%d), equal\n%s", doc.Total, roles, starts, r)
	}
	if len(doc.Prefixes) != 1 || doc.Prefixes[0].Prefix != "database/creds/app/" || doc.Prefixes[0].OldestIssue.IsZero() || doc.Prefixes[0].LastExpiry.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("rows: %+v", doc.Prefixes)
	}
	all, r := e.leases(t)
	found := map[string]int{}
	for _, p := range all.Prefixes {
		found[p.Prefix] = p.Count
	}
	if found["database/creds/app/"] != doc.Total || found["auth/kubernetes/login/"] < starts {
		t.Errorf("the whole count lacks the credentials or the agents' logins: %v\n%s", found, r)
	}

	// Without a terminal, a revocation needs --yes, and nothing is revoked.
	if _, r := e.leases(t, "--revoke-prefix", "database/creds/app"); r.Code != 2 || !strings.Contains(r.Stderr, "--yes") {
		t.Errorf("revoke without --yes: exit %d, want 2 naming --yes\n%s", r.Code, r)
	}
	if n := pgRoles(t, userPrefix); n != roles {
		t.Fatalf("PostgreSQL roles changed without --yes: %d, were %d", n, roles)
	}
	doc, r = e.leases(t, "database/creds/app", "--revoke-prefix", "database/creds/app", "--yes")
	if r.Code != 0 || len(doc.Revoked) != 1 || !doc.Revoked[0].Done || doc.Revoked[0].Count != roles {
		t.Fatalf("revoke-prefix --yes: exit %d, %+v; want %d revoked\n%s", r.Code, doc.Revoked, roles, r)
	}
	if doc.Total != 0 {
		t.Errorf("leases under database/creds/app after revoking: %d", doc.Total)
	}
	if n := pgRoles(t, userPrefix); n != 0 {
		t.Errorf("%d PostgreSQL roles left after revoking their leases", n)
	}

	// The agents' tokens outlive their pods; once the ServiceAccount is gone they are orphans.
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, "dbapp", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ServiceAccounts(ns).Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	doc, r = e.leases(t, "auth/kubernetes/login", "--orphaned")
	if r.Code != 1 || doc.Orphans == nil || len(doc.Orphans.Tokens) < starts {
		t.Fatalf("--orphaned after deleting the ServiceAccount: exit %d, want 1 and at least %d tokens\n%s", r.Code, starts, r)
	}
	for _, o := range doc.Orphans.Tokens {
		if o.ServiceAccount != ns+"/app" || o.Role != "leases-app" || o.Reason != "ServiceAccount deleted" {
			t.Errorf("orphan %+v: want %s/app, role leases-app, deleted", o, ns)
			break
		}
	}
	before := doc.Total
	doc, r = e.leases(t, "auth/kubernetes/login", "--revoke-orphaned", "--yes")
	if r.Code != 0 || len(doc.Revoked) != 1 || !doc.Revoked[0].Done || doc.Revoked[0].Count < starts {
		t.Fatalf("--revoke-orphaned --yes: exit %d %+v\n%s", r.Code, doc.Revoked, r)
	}
	if doc.Total != before-doc.Revoked[0].Count {
		t.Errorf("login leases: %d before, %d revoked, %d after", before, doc.Revoked[0].Count, doc.Total)
	}
	if doc, _ := e.leases(t, "--orphaned"); doc.Orphans == nil || len(doc.Orphans.Tokens) != 0 {
		t.Errorf("orphans left: %+v", doc.Orphans)
	}
	scanForSecrets(t, e.vns, []string{pw, admin.Token(), setup.Token()}, externalVault(e.vc, e.auditDir))
}
