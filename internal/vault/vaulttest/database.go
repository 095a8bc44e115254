package vaulttest

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/internal/vault"
)

// Database runs the database secrets engine's part of the contract. pgURL is a PostgreSQL
// superuser URL (postgres://user:password@host:port/db?sslmode=disable) that the server
// behind dial can reach; the Fake never connects to it.
func Database(t *testing.T, dial DialFunc, pgURL string) {
	u, err := url.Parse(pgURL)
	if err != nil || u.User == nil {
		t.Fatalf("Database: a PostgreSQL URL with credentials is needed: %v", err)
	}
	pw, _ := u.User.Password()
	c, _ := dial(t)
	ctx := ctx(t)
	mount := unique("ct-db")
	must(t, "EnableMount database", c.EnableMount(ctx, mount, vault.MountInfo{Type: "database"}))

	if conn, err := c.ReadDBConnection(ctx, mount, "pg"); err != nil || conn != nil {
		t.Fatalf("ReadDBConnection of a missing connection = %v, %v; want nil, nil", conn, err)
	}
	connURL := "postgresql://{{username}}:{{password}}@" + u.Host + u.Path + "?" + u.RawQuery
	must(t, "WriteDBConnection", c.WriteDBConnection(ctx, mount, "pg", map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": connURL,
		"username":       u.User.Username(),
		"password":       pw,
		"allowed_roles":  "app,limited",
	}))
	conn, err := c.ReadDBConnection(ctx, mount, "pg")
	must(t, "ReadDBConnection", err)
	details, _ := conn["connection_details"].(map[string]any)
	if conn["plugin_name"] != "postgresql-database-plugin" || details["username"] != u.User.Username() || details["connection_url"] != connURL {
		t.Fatalf("ReadDBConnection = %v; want the plugin, and username and URL under connection_details", conn)
	}
	wantStrings(t, "allowed_roles", conn["allowed_roles"], "app", "limited")
	if strings.Contains(fmtJSON(conn), pw) {
		t.Fatalf("ReadDBConnection returns the password: %v", conn)
	}

	if r, err := c.ReadDBRole(ctx, mount, "app"); err != nil || r != nil {
		t.Fatalf("ReadDBRole of a missing role = %v, %v; want nil, nil", r, err)
	}
	create := `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`
	must(t, "WriteDBRole", c.WriteDBRole(ctx, mount, "app", map[string]any{
		"db_name": "pg", "creation_statements": []string{create}, "default_ttl": "1h", "max_ttl": 86400,
	}))
	r, err := c.ReadDBRole(ctx, mount, "app")
	must(t, "ReadDBRole", err)
	wantNumber(t, "default_ttl", r["default_ttl"], "3600")
	wantNumber(t, "max_ttl", r["max_ttl"], "86400")
	wantStrings(t, "creation_statements", r["creation_statements"], create)
	wantStrings(t, "revocation_statements", r["revocation_statements"])
	if r["db_name"] != "pg" || r["credential_type"] != "password" {
		t.Fatalf("ReadDBRole = %v; want db_name pg, credential_type password", r)
	}
	wantStatus(t, "WriteDBRole without db_name", c.WriteDBRole(ctx, mount, "bad", map[string]any{"creation_statements": []string{create}}), 400)

	cr, err := c.GenerateDBCredentials(ctx, mount, "app")
	must(t, "GenerateDBCredentials", err)
	user, _ := cr.Data["username"].(string)
	pass, _ := cr.Data["password"].(string)
	prefix := mount + "/creds/app/"
	if user == "" || pass == "" || !strings.HasPrefix(cr.LeaseID, prefix) || cr.Duration != time.Hour {
		t.Fatalf("GenerateDBCredentials = %+v; want a username, a password, a lease under %s lasting 1h", cr, prefix)
	}
	ids, err := c.ListLeases(ctx, prefix)
	must(t, "ListLeases", err)
	if !reflect.DeepEqual(ids, []string{strings.TrimPrefix(cr.LeaseID, prefix)}) {
		t.Fatalf("ListLeases(%s) = %q, want the credentials' lease %s", prefix, ids, cr.LeaseID)
	}
	l, err := c.LookupLease(ctx, cr.LeaseID)
	must(t, "LookupLease", err)
	if l.ID != cr.LeaseID || !l.Renewable || l.ExpireTime.Sub(l.IssueTime) > time.Hour+time.Minute {
		t.Fatalf("LookupLease = %+v", l)
	}
	// Rotation on a connection of its own, whose user is the credentials just issued (a user
	// may change its own password), so the superuser the other tests use keeps its password.
	must(t, "WriteDBConnection rot", c.WriteDBConnection(ctx, mount, "rot", map[string]any{
		"plugin_name": "postgresql-database-plugin", "connection_url": connURL,
		"username": user, "password": pass, "allowed_roles": "x", "verify_connection": true,
	}))
	must(t, "RotateDBRoot", c.RotateDBRoot(ctx, mount, "rot"))
	// An update without the password keeps the rotated one: verify_connection would fail
	// with any other.
	must(t, "WriteDBConnection rot without password after rotation", c.WriteDBConnection(ctx, mount, "rot", map[string]any{
		"plugin_name": "postgresql-database-plugin", "connection_url": connURL,
		"username": user, "allowed_roles": "x,y", "verify_connection": true,
	}))
	if conn, err := c.ReadDBConnection(ctx, mount, "rot"); err != nil || strings.Contains(fmtJSON(conn), pass) {
		t.Fatalf("ReadDBConnection after rotation = %v, %v; want it without any password", conn, err)
	}
	must(t, "DeleteDBConnection", c.DeleteDBConnection(ctx, mount, "rot"))
	if conn, err := c.ReadDBConnection(ctx, mount, "rot"); err != nil || conn != nil {
		t.Fatalf("ReadDBConnection after delete = %v, %v; want nil, nil", conn, err)
	}
	if err := c.RotateDBRoot(ctx, mount, "rot"); err == nil {
		t.Fatal("RotateDBRoot of a deleted connection succeeded")
	}
	must(t, "RevokePrefix", c.RevokePrefix(ctx, prefix))
	if ids, err := c.ListLeases(ctx, prefix); err != nil || len(ids) != 0 {
		t.Fatalf("ListLeases after RevokePrefix = %q, %v; want none", ids, err)
	}

	must(t, "WriteDBRole not allowed", c.WriteDBRole(ctx, mount, "other", map[string]any{"db_name": "pg", "creation_statements": []string{create}}))
	_, err = c.GenerateDBCredentials(ctx, mount, "other")
	wantStatus(t, "GenerateDBCredentials for a role the connection does not allow", err, 500) // sic: Vault answers 500
	must(t, "DeleteDBRole", c.DeleteDBRole(ctx, mount, "app"))
	if r, err := c.ReadDBRole(ctx, mount, "app"); err != nil || r != nil {
		t.Fatalf("ReadDBRole after delete = %v, %v; want nil, nil", r, err)
	}
	_, err = c.GenerateDBCredentials(ctx, mount, "app")
	wantStatus(t, "GenerateDBCredentials for a deleted role", err, 400)
}
