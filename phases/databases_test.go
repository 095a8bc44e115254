package phases

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/config"
)

const bootstrapPW = "bootstrap-pw-7f3a91"

func withDatabase(c *config.Config) {
	c.Databases = []config.Database{{
		Name: "app-db", Mount: "database", Plugin: "postgresql-database-plugin",
		ConnectionURL: "postgresql://{{username}}:{{password}}@db:5432/app", Username: "vault_admin",
		Password: config.SecretRef{Env: "TEST_DB_ADMIN_PW"},
		Roles: []config.DatabaseRole{{Name: "app", DefaultTTL: config.Duration{Duration: 30 * time.Minute}, MaxTTL: config.Duration{Duration: time.Hour},
			CreationStatements:   []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`},
			RevocationStatements: []string{`DROP ROLE IF EXISTS "{{name}}";`}}},
	}}
}

// noPassword fails the test when any text vaultctl shows holds the bootstrap password.
func noPassword(t *testing.T, what string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, bootstrapPW) {
			t.Fatalf("%s shows the admin password: %s", what, s)
		}
	}
}

func TestDatabasesWriteRotateOnceAndNeverSendTheBootstrapPasswordAgain(t *testing.T) {
	t.Setenv("TEST_DB_ADMIN_PW", bootstrapPW)
	r := newRig(t, withDatabase)
	r.bootstrapped()
	d := r.check("databases")
	want := "create database secrets engine at database/\n" +
		"create database connection database/app-db (postgresql-database-plugin, 1 allowed role, verify_connection)\n" +
		"update ownership record database-connections\n" +
		"update root password of database connection database/app-db (rotate-root once: the bootstrap password stops working and only Vault knows the new one)\n" +
		"create database role database/app (credentials for 1800s, at most 3600s)\n" +
		"update ownership record database-roles"
	if got := changesOf(d); got != want {
		t.Fatalf("plan:\n%s\nwant:\n%s", got, want)
	}
	res := r.apply("databases")
	// The checkpoint summary is made of the facts.
	noPassword(t, "the result", strings.Join(res[0].Facts, "; "), changesOf(Diff{Changes: res[0].Changes}))
	if n := r.vault.DBRootRotations("database", "app-db"); n != 1 {
		t.Fatalf("root rotations = %d, want 1", n)
	}
	if pw := r.vault.DBConnectionPassword("database", "app-db"); pw == "" || pw == bootstrapPW {
		t.Fatalf("after rotation Vault must hold a password of its own, not the bootstrap one")
	}
	if got := r.ownership(rotatedDBRoots); got != `["database/app-db"]` {
		t.Fatalf("rotation record: %s", got)
	}
	role, _ := r.vault.RootClient().ReadDBRole(context.Background(), "database", "app")
	if role["db_name"] != "app-db" || !strings.Contains(r.ownership(ownedDBRoles), "database/app") {
		t.Fatalf("role %v, ownership %s", role, r.ownership(ownedDBRoles))
	}

	// The second run changes nothing, and does not need the password any more.
	t.Setenv("TEST_DB_ADMIN_PW", "")
	if d := r.check("databases"); !d.Empty() {
		t.Fatalf("second plan: %s", changesOf(d))
	}

	// Drift in a role is repaired; a changed connection is written without a password, so
	// Vault keeps the rotated one.
	ctx := context.Background()
	_ = r.vault.RootClient().WriteDBRole(ctx, "database", "app", map[string]any{"default_ttl": "24h"})
	r.cfg.Databases[0].Roles = append(r.cfg.Databases[0].Roles, config.DatabaseRole{Name: "reporting",
		DefaultTTL: config.Duration{Duration: time.Minute}, MaxTTL: config.Duration{Duration: time.Minute}, CreationStatements: []string{`CREATE ROLE "{{name}}"`}})
	rotated := r.vault.DBConnectionPassword("database", "app-db")
	d = r.check("databases")
	got := changesOf(d)
	for _, w := range []string{"update database connection database/app-db (allowed_roles)", "update database role database/app (default_ttl)", "create database role database/reporting"} {
		if !strings.Contains(got, w) {
			t.Errorf("plan lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "root password") {
		t.Errorf("a rotated connection is rotated again:\n%s", got)
	}
	r.apply("databases")
	if pw := r.vault.DBConnectionPassword("database", "app-db"); pw != rotated {
		t.Fatal("the update replaced the rotated password")
	}
	if d := r.check("databases"); !d.Empty() {
		t.Fatalf("after repair: %s", changesOf(d))
	}
}

func TestDatabasesPasswordFromASecretAndARotationThatFails(t *testing.T) {
	r := newRig(t, func(c *config.Config) {
		withDatabase(c)
		c.Databases[0].Password = config.SecretRef{Secret: &config.KubeSecretKey{Namespace: "dbs", Name: "admin", Key: "password"}}
	})
	r.bootstrapped()
	ctx := context.Background()

	// The Secret is missing: the error names it and says how to create it.
	err := r.phase("databases").Apply(ctx, Diff{})
	if err == nil || !strings.Contains(err.Error(), "Secret dbs/admin does not exist") {
		t.Fatalf("want the missing Secret named: %v", err)
	}
	_, _ = r.kube.CoreV1().Secrets("dbs").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "dbs", Name: "admin"},
		Data: map[string][]byte{"password": []byte(bootstrapPW)}}, metav1.CreateOptions{})

	r.vault.Fail("RotateDBRoot", errors.New("connection refused"))
	err = r.phase("databases").Apply(ctx, Diff{})
	if err == nil || !strings.Contains(err.Error(), "rotating the root password of database connection database/app-db") {
		t.Fatalf("want the rotation named: %v", err)
	}
	if r.vault.DBConnectionPassword("database", "app-db") != bootstrapPW || r.ownership(rotatedDBRoots) != "" {
		t.Fatal("the connection must hold the Secret's password and no rotation be recorded")
	}
	// The re-run rotates without writing the connection again.
	r.vault.Fail("RotateDBRoot", nil)
	if got := changesOf(r.check("databases")); strings.Contains(got, "create database connection") || strings.Contains(got, "update database connection") || !strings.Contains(got, "root password") {
		t.Fatalf("re-run plan:\n%s", got)
	}
	r.apply("databases")
	if r.vault.DBRootRotations("database", "app-db") != 1 || r.vault.DBConnectionPassword("database", "app-db") == bootstrapPW {
		t.Fatal("not rotated")
	}
}

func TestDatabasesErrorsNeverShowThePassword(t *testing.T) {
	t.Setenv("TEST_DB_ADMIN_PW", bootstrapPW)
	r := newRig(t, withDatabase)
	r.bootstrapped()
	r.vault.Fail("WriteDBConnection", errors.New(`pq: password authentication failed for user "vault_admin" using `+bootstrapPW))
	err := r.phase("databases").Apply(context.Background(), Diff{})
	if err == nil || !strings.Contains(err.Error(), "writing database connection database/app-db") {
		t.Fatalf("want the connection named: %v", err)
	}
	noPassword(t, "the error", err.Error())

	t.Setenv("TEST_DB_ADMIN_PW", "")
	r.vault.Fail("WriteDBConnection", nil)
	err = r.phase("databases").Apply(context.Background(), Diff{})
	if err == nil || !strings.Contains(err.Error(), "the admin password from environment variable TEST_DB_ADMIN_PW is empty or missing") {
		t.Fatalf("want the variable named: %v", err)
	}
}

func TestDatabasesPruneDeletesOnlyVaultctlsRolesAndConnections(t *testing.T) {
	t.Setenv("TEST_DB_ADMIN_PW", bootstrapPW)
	r := newRig(t, withDatabase)
	r.bootstrapped()
	r.apply("databases")
	ctx := context.Background()
	root := r.vault.RootClient()
	// A role a person made on the same mount is never vaultctl's.
	_ = root.WriteDBRole(ctx, "database", "by-hand", map[string]any{"db_name": "app-db", "creation_statements": []string{"x"}})

	r.cfg.Databases = nil
	d := r.check("databases")
	if len(d.Changes) != 0 || !strings.Contains(strings.Join(d.Facts, "\n"), "apply --prune deletes them") {
		t.Fatalf("without --prune: %s / %v", changesOf(d), d.Facts)
	}
	r.env.Prune = true
	got := changesOf(r.check("databases"))
	if !strings.Contains(got, "delete database connection database/app-db") || !strings.Contains(got, "delete database role database/app") || strings.Contains(got, "by-hand") {
		t.Fatalf("prune plan:\n%s", got)
	}
	r.apply("databases")
	if c, _ := root.ReadDBConnection(ctx, "database", "app-db"); c != nil {
		t.Error("connection not pruned")
	}
	if rr, _ := root.ReadDBRole(ctx, "database", "by-hand"); rr == nil {
		t.Error("a hand-made role was pruned")
	}
	if got := r.ownership(rotatedDBRoots); got != "[]" {
		t.Errorf("rotation record after prune: %s", got)
	}
}
