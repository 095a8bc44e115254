package e2e

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

	plan := vaultctl(t, "plan", "-c", e.cfg)
	for _, want := range []string{"create database secrets engine at database/", "create database connection database/app-db", "root password of database connection database/app-db", "create database role database/app"} {
		if !strings.Contains(plan.Stdout, want) {
			t.Fatalf("plan lacks %q:\n%s", want, plan)
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

	scanForSecrets(t, vns, []string{pg.bootstrap}, externalVault(e.vc, e.auditDir))
}
