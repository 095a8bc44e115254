// Package vaulttest holds the contract every vault.Client must meet: one suite, run against
// the in-memory Fake in unit tests and against a real Vault dev server in e2e, so that the
// Fake every unit test relies on is proven to behave like Vault where vaultctl depends on it.
package vaulttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/vaultctl/vaultctl/internal/vault"
)

// DialFunc gives a subtest a root-authenticated client of an initialized, unsealed Vault and
// a Dialer for more clients of the same server. The suite dials vault.Endpoint{}: a real
// dialer must be wrapped with FixedEndpoint. Servers may be shared between subtests: every
// name the suite creates is unique.
type DialFunc func(t *testing.T) (root vault.Client, d vault.Dialer)

// FixedEndpoint returns a Dialer that dials ep whatever Endpoint it is asked for.
func FixedEndpoint(d vault.Dialer, ep vault.Endpoint) vault.Dialer {
	return fixed{d, ep}
}

type fixed struct {
	d  vault.Dialer
	ep vault.Endpoint
}

func (f fixed) Dial(vault.Endpoint) (vault.Client, error) { return f.d.Dial(f.ep) }

// Contract runs the suite as subtests of t.
func Contract(t *testing.T, dial DialFunc) {
	for _, c := range []struct {
		name string
		f    func(*testing.T, vault.Client, vault.Dialer)
	}{
		{"Policies", policies},
		{"AuthMethods", authMethods},
		{"AuthTune", authTune},
		{"ApproleRoles", approleRoles},
		{"KubernetesRolesAndConfig", kubernetesRoles},
		{"Mounts", mounts},
		{"KV", kv},
		{"Audit", audit},
		{"LoginLeasesAndRevokePrefix", loginLeases},
		{"RevokedToken", revokedToken},
		{"CapabilitiesSelf", capabilitiesSelf},
		{"Unauthenticated", unauthenticated},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, d := dial(t)
			c.f(t, root, d)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// unique names what a subtest creates, so servers can be shared.
func unique(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantStatus fails unless err carries a Vault answer with this status.
func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want a %d from Vault", what, status)
	}
	var re *vaultapi.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("%s: %v (%T): not a *vaultapi.ResponseError", what, err, err)
	}
	if got := vault.StatusCode(err); got != status {
		t.Fatalf("%s: status %d, want %d: %v", what, got, status, err)
	}
}

func dialAnother(t *testing.T, d vault.Dialer) vault.Client {
	t.Helper()
	c, err := d.Dial(vault.Endpoint{})
	must(t, "dialing a second client", err)
	if c.Token() != "" {
		t.Fatalf("a freshly dialed client holds token %q, want none", c.Token())
	}
	return c
}

func policies(t *testing.T, c vault.Client, _ vault.Dialer) {
	ctx := ctx(t)
	name := unique("ct-policy")
	hcl := "path \"secret/data/" + name + "\" {\n  capabilities = [\"read\"]\n}\n"

	if _, found, err := c.ReadPolicy(ctx, name); err != nil || found {
		t.Fatalf("ReadPolicy of a missing policy: found=%v err=%v, want found=false, no error", found, err)
	}
	must(t, "WritePolicy", c.WritePolicy(ctx, name, hcl))
	got, found, err := c.ReadPolicy(ctx, name)
	must(t, "ReadPolicy", err)
	if !found || got != hcl {
		t.Fatalf("ReadPolicy = %q, found=%v; want the HCL as written", got, found)
	}
	list, err := c.ListPolicies(ctx)
	must(t, "ListPolicies", err)
	for _, want := range []string{name, "default", "root"} {
		if !slices.Contains(list, want) {
			t.Fatalf("ListPolicies = %v, want it to hold %q", list, want)
		}
	}
	wantStatus(t, "WritePolicy with HCL that does not parse", c.WritePolicy(ctx, name, "path \"x\" {"), 400)
	wantStatus(t, "WritePolicy with an unknown capability", c.WritePolicy(ctx, name, "path \"x\" {\n  capabilities = [\"fly\"]\n}\n"), 400)
	wantStatus(t, "DeletePolicy default", c.DeletePolicy(ctx, "default"), 400)

	// Vault lowercases policy names.
	upper := unique("CT-Upper")
	must(t, "WritePolicy with capitals", c.WritePolicy(ctx, upper, hcl))
	if _, found, err := c.ReadPolicy(ctx, lower(upper)); err != nil || !found {
		t.Fatalf("ReadPolicy(%q) after writing %q: found=%v err=%v, want it found", lower(upper), upper, found, err)
	}
	must(t, "DeletePolicy", c.DeletePolicy(ctx, lower(upper)))

	must(t, "DeletePolicy", c.DeletePolicy(ctx, name))
	if _, found, err := c.ReadPolicy(ctx, name); err != nil || found {
		t.Fatalf("ReadPolicy after delete: found=%v err=%v, want found=false", found, err)
	}
	must(t, "DeletePolicy of a missing policy", c.DeletePolicy(ctx, name))
}

func lower(s string) string {
	b := []byte(s)
	for i, r := range b {
		if 'A' <= r && r <= 'Z' {
			b[i] = r + 'a' - 'A'
		}
	}
	return string(b)
}

func authMethods(t *testing.T, c vault.Client, _ vault.Dialer) {
	ctx := ctx(t)
	path := unique("ct-approle")
	must(t, "EnableAuthMethod", c.EnableAuthMethod(ctx, path, vault.MountInfo{Type: "approle", Description: "contract"}))
	m, err := c.ListAuthMethods(ctx)
	must(t, "ListAuthMethods", err)
	if got := m[path+"/"]; got.Type != "approle" || got.Description != "contract" {
		t.Fatalf("ListAuthMethods[%q] = %+v, want type approle, description contract (keys: %v)", path+"/", got, keys(m))
	}
	if m["token/"].Type != "token" {
		t.Fatalf("ListAuthMethods has no token/ method: %v", keys(m))
	}
	wantStatus(t, "EnableAuthMethod on a path in use", c.EnableAuthMethod(ctx, path, vault.MountInfo{Type: "approle"}), 400)
	wantStatus(t, "EnableAuthMethod of an unknown plugin", c.EnableAuthMethod(ctx, unique("ct-bogus"), vault.MountInfo{Type: "bogus"}), 400)
}

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func keys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

// wantNumber checks a number as vaultapi decodes it: a json.Number.
func wantNumber(t *testing.T, what string, got any, want string) {
	t.Helper()
	n, ok := got.(json.Number)
	if !ok || n.String() != want {
		t.Fatalf("%s = %#v (%T), want json.Number(%q)", what, got, got, want)
	}
}

func wantStrings(t *testing.T, what string, got any, want ...string) {
	t.Helper()
	l, ok := got.([]any)
	if !ok {
		t.Fatalf("%s = %#v (%T), want a []any of strings", what, got, got)
	}
	var s []string
	for _, e := range l {
		str, ok := e.(string)
		if !ok {
			t.Fatalf("%s holds %#v (%T), want strings", what, e, e)
		}
		s = append(s, str)
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("%s = %q, want %q", what, s, want)
	}
}

// approleLogin is a role that logs in with its role_id alone (no SecretID), from loopback.
func approleLogin(roleID string, ttl any) map[string]any {
	return map[string]any{
		"role_id":               roleID,
		"bind_secret_id":        false,
		"secret_id_bound_cidrs": []string{"127.0.0.0/8"},
		"token_ttl":             ttl,
		"token_policies":        []string{"default", "ct-reader"},
	}
}

func approleRoles(t *testing.T, c vault.Client, _ vault.Dialer) {
	ctx := ctx(t)
	mount := unique("ct-approle")
	must(t, "EnableAuthMethod", c.EnableAuthMethod(ctx, mount, vault.MountInfo{Type: "approle"}))

	if r, err := c.ReadRole(ctx, mount, "missing"); err != nil || r != nil {
		t.Fatalf("ReadRole of a missing role = %v, %v; want nil, nil", r, err)
	}
	must(t, "WriteRole", c.WriteRole(ctx, mount, "app", approleLogin(unique("role-id"), 900)))
	r, err := c.ReadRole(ctx, mount, "app")
	must(t, "ReadRole", err)
	wantNumber(t, "token_ttl", r["token_ttl"], "900")
	wantStrings(t, "token_policies", r["token_policies"], "default", "ct-reader")
	if r["bind_secret_id"] != false {
		t.Fatalf("bind_secret_id = %#v, want false", r["bind_secret_id"])
	}
	// Vault fills in what was not written; the deprecated policies comes back only when it
	// is what was written; role_id is not part of the role.
	wantNumber(t, "token_max_ttl (not written)", r["token_max_ttl"], "0")
	if r["token_type"] != "default" {
		t.Fatalf("token_type = %#v, want Vault's default", r["token_type"])
	}
	for _, k := range []string{"policies", "role_id"} {
		if v, ok := r[k]; ok {
			t.Fatalf("ReadRole returned %s = %#v", k, v)
		}
	}

	// A duration string is stored, and read back, in seconds; other fields stay.
	must(t, "WriteRole update", c.WriteRole(ctx, mount, "app", map[string]any{"token_ttl": "30m"}))
	r, err = c.ReadRole(ctx, mount, "app")
	must(t, "ReadRole", err)
	wantNumber(t, "token_ttl after writing 30m", r["token_ttl"], "1800")
	wantStrings(t, "token_policies after an update without them", r["token_policies"], "default", "ct-reader")

	// Deprecated fields set their token_ twins, and both come back.
	must(t, "WriteRole with deprecated fields", c.WriteRole(ctx, mount, "app", map[string]any{"policies": "p1,p2", "period": "1h"}))
	r, err = c.ReadRole(ctx, mount, "app")
	must(t, "ReadRole", err)
	wantStrings(t, "policies", r["policies"], "p1", "p2")
	wantStrings(t, "token_policies after writing policies", r["token_policies"], "p1", "p2")
	wantNumber(t, "token_period after writing period", r["token_period"], "3600")

	must(t, "WriteRole second", c.WriteRole(ctx, mount, "other", approleLogin(unique("role-id"), 60)))
	list, err := c.ListRoles(ctx, mount)
	must(t, "ListRoles", err)
	if !reflect.DeepEqual(list, []string{"app", "other"}) {
		t.Fatalf("ListRoles = %v, want [app other]", list)
	}
	must(t, "DeleteRole", c.DeleteRole(ctx, mount, "app"))
	if r, err := c.ReadRole(ctx, mount, "app"); err != nil || r != nil {
		t.Fatalf("ReadRole after delete = %v, %v; want nil, nil", r, err)
	}
}

func kubernetesRoles(t *testing.T, c vault.Client, _ vault.Dialer) {
	ctx := ctx(t)
	mount := unique("ct-k8s")
	must(t, "EnableAuthMethod", c.EnableAuthMethod(ctx, mount, vault.MountInfo{Type: "kubernetes"}))

	role := map[string]any{
		"bound_service_account_names":      []string{"webapp"},
		"bound_service_account_namespaces": []string{"production"},
		"token_policies":                   []string{"webapp-read"},
		"token_ttl":                        int64(15 * 60),
		"audience":                         "vault",
	}
	must(t, "WriteRole", c.WriteRole(ctx, mount, "webapp", role))
	r, err := c.ReadRole(ctx, mount, "webapp")
	must(t, "ReadRole", err)
	wantNumber(t, "token_ttl", r["token_ttl"], "900")
	wantStrings(t, "bound_service_account_names", r["bound_service_account_names"], "webapp")
	wantStrings(t, "token_policies", r["token_policies"], "webapp-read")
	if r["audience"] != "vault" || r["alias_name_source"] != "serviceaccount_uid" {
		t.Fatalf("audience = %#v, alias_name_source = %#v; want vault and Vault's default", r["audience"], r["alias_name_source"])
	}
	if v, ok := r["policies"]; ok {
		t.Fatalf("ReadRole returned the deprecated policies = %#v after token_policies was written", v)
	}
	wantStatus(t, "WriteRole without bound service accounts", c.WriteRole(ctx, mount, "bad", map[string]any{"token_ttl": 60}), 400)

	if cfg, err := c.ReadAuthConfig(ctx, mount); err != nil || cfg != nil {
		t.Fatalf("ReadAuthConfig before any config = %v, %v; want nil, nil", cfg, err)
	}
	_, err = c.Login(ctx, mount, map[string]any{"role": "webapp", "jwt": "not-a-jwt"})
	wantStatus(t, "Login before the method is configured", err, 500)
	_, err = c.Login(ctx, mount, map[string]any{"role": "nobody", "jwt": "not-a-jwt"})
	wantStatus(t, "Login for a missing role", err, 400)
	must(t, "WriteAuthConfig", c.WriteAuthConfig(ctx, mount, map[string]any{
		"kubernetes_host": "https://127.0.0.1:6443", "disable_local_ca_jwt": true, "token_reviewer_jwt": "",
	}))
	cfg, err := c.ReadAuthConfig(ctx, mount)
	must(t, "ReadAuthConfig", err)
	if cfg["kubernetes_host"] != "https://127.0.0.1:6443" || cfg["token_reviewer_jwt_set"] != false || cfg["disable_local_ca_jwt"] != true || cfg["disable_iss_validation"] != true {
		t.Fatalf("ReadAuthConfig = %v, want the host, token_reviewer_jwt_set=false, disable_local_ca_jwt=true", cfg)
	}
	if _, ok := cfg["token_reviewer_jwt"]; ok {
		t.Fatalf("ReadAuthConfig returned token_reviewer_jwt: %v", cfg)
	}
	must(t, "WriteAuthConfig with a reviewer JWT", c.WriteAuthConfig(ctx, mount, map[string]any{
		"kubernetes_host": "https://127.0.0.1:6443", "disable_local_ca_jwt": true, "token_reviewer_jwt": "reviewer.jwt.value",
	}))
	cfg, err = c.ReadAuthConfig(ctx, mount)
	must(t, "ReadAuthConfig", err)
	if cfg["token_reviewer_jwt_set"] != true || strings.Contains(fmtJSON(cfg), "reviewer.jwt.value") {
		t.Fatalf("ReadAuthConfig = %v, want token_reviewer_jwt_set=true and no JWT", cfg)
	}
	// With a config, a JWT that does not verify is refused.
	_, err = c.Login(ctx, mount, map[string]any{"role": "webapp", "jwt": "not-a-jwt"})
	wantStatus(t, "Login with a bad JWT", err, 403)
}

func mounts(t *testing.T, c vault.Client, _ vault.Dialer) {
	ctx := ctx(t)
	path := unique("ct-kv")
	must(t, "EnableMount", c.EnableMount(ctx, path, vault.MountInfo{Type: "kv", Description: "contract", Options: map[string]string{"version": "2"}}))
	m, err := c.ListMounts(ctx)
	must(t, "ListMounts", err)
	got := m[path+"/"]
	if got.Type != "kv" || got.Options["version"] != "2" || got.Description != "contract" {
		t.Fatalf("ListMounts[%q] = %+v, want kv version 2 (keys: %v)", path+"/", got, keys(m))
	}
	for _, k := range []string{"sys/", "cubbyhole/", "identity/"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("ListMounts has no %s: %v", k, keys(m))
		}
	}
	wantStatus(t, "EnableMount on a path in use", c.EnableMount(ctx, path, vault.MountInfo{Type: "kv", Options: map[string]string{"version": "2"}}), 400)
}

// kvMount mounts a fresh KV v2 engine. A new engine may briefly refuse writes while it
// initialises its version store; the wait is bounded.
func kvMount(t *testing.T, c vault.Client) string {
	ctx := ctx(t)
	path := unique("ct-kv")
	must(t, "EnableMount", c.EnableMount(ctx, path, vault.MountInfo{Type: "kv", Options: map[string]string{"version": "2"}}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.KVWrite(ctx, path, "ready", map[string]any{"ok": true}, -1)
		if err == nil {
			must(t, "KVDeleteAll ready", c.KVDeleteAll(ctx, path, "ready"))
			return path
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new KV v2 engine %s refuses writes: %v", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func kv(t *testing.T, c vault.Client, _ vault.Dialer) {
	ctx := ctx(t)
	mount := kvMount(t, c)
	const p = "production/db"

	if s, err := c.KVRead(ctx, mount, p); err != nil || s != nil {
		t.Fatalf("KVRead of a missing secret = %v, %v; want nil, nil", s, err)
	}
	if m, err := c.KVReadMetadata(ctx, mount, p); err != nil || m != nil {
		t.Fatalf("KVReadMetadata of a missing secret = %v, %v; want nil, nil", m, err)
	}

	v, err := c.KVWrite(ctx, mount, p, map[string]any{"user": "app", "port": 5432}, 0)
	must(t, "KVWrite cas=0 on a new secret", err)
	if v != 1 {
		t.Fatalf("first version = %d, want 1", v)
	}
	_, err = c.KVWrite(ctx, mount, p, map[string]any{"user": "x"}, 0)
	wantStatus(t, "KVWrite cas=0 on an existing secret", err, 400)
	v, err = c.KVWrite(ctx, mount, p, map[string]any{"user": "app2", "port": 5432}, 1)
	must(t, "KVWrite cas=1", err)
	if v != 2 {
		t.Fatalf("second version = %d, want 2", v)
	}
	_, err = c.KVWrite(ctx, mount, p, map[string]any{"user": "stale"}, 1)
	wantStatus(t, "KVWrite with a stale cas", err, 400)
	v, err = c.KVWrite(ctx, mount, p, map[string]any{"user": "app3", "port": 5433}, -1)
	must(t, "KVWrite unconditional", err)
	if v != 3 {
		t.Fatalf("third version = %d, want 3", v)
	}

	s, err := c.KVRead(ctx, mount, p)
	must(t, "KVRead", err)
	if s == nil || s.Version != 3 || s.Data["user"] != "app3" {
		t.Fatalf("KVRead = %+v, want version 3 with user app3", s)
	}
	wantNumber(t, "KVRead port", s.Data["port"], "5433")
	s.Data["user"] = "mutated" // callers own what they get
	if s2, _ := c.KVRead(ctx, mount, p); s2 == nil || s2.Data["user"] != "app3" {
		t.Fatalf("a caller's change to KVRead's map reached the server: %+v", s2)
	}

	must(t, "KVWriteMetadata", c.KVWriteMetadata(ctx, mount, p, map[string]string{"owner": "vaultctl"}))
	m, err := c.KVReadMetadata(ctx, mount, p)
	must(t, "KVReadMetadata", err)
	if m == nil || m.CurrentVersion != 3 || m.CustomMetadata["owner"] != "vaultctl" || m.UpdatedTime.IsZero() {
		t.Fatalf("KVReadMetadata = %+v, want current version 3, owner=vaultctl, an updated time", m)
	}

	_, err = c.KVWrite(ctx, mount, "production/cache", map[string]any{"a": "b"}, -1)
	must(t, "KVWrite production/cache", err)
	_, err = c.KVWrite(ctx, mount, "production/tier/x", map[string]any{"a": "b"}, -1)
	must(t, "KVWrite production/tier/x", err)
	list, err := c.KVList(ctx, mount, "production/")
	must(t, "KVList", err)
	if !reflect.DeepEqual(list, []string{"cache", "db", "tier/"}) {
		t.Fatalf("KVList(production/) = %q, want [cache db tier/]", list)
	}
	if list, err := c.KVList(ctx, mount, "nothing/"); err != nil || len(list) != 0 {
		t.Fatalf("KVList of an empty folder = %q, %v; want nothing, no error", list, err)
	}

	if sd, ok := c.(vault.KVSoftDeleter); ok {
		must(t, "KVDelete", sd.KVDelete(ctx, mount, p))
		if s, err := c.KVRead(ctx, mount, p); err != nil || s != nil {
			t.Fatalf("KVRead of a deleted current version = %+v, %v; want nil, nil", s, err)
		}
		if m, err := c.KVReadMetadata(ctx, mount, p); err != nil || m == nil || m.CurrentVersion != 3 {
			t.Fatalf("KVReadMetadata after a soft delete = %+v, %v; want current version 3", m, err)
		}
		v, err := c.KVWrite(ctx, mount, p, map[string]any{"user": "app4"}, 3)
		must(t, "KVWrite cas=3 over a deleted version", err)
		if v != 4 {
			t.Fatalf("version after the deleted one = %d, want 4", v)
		}
	} else {
		t.Errorf("%T does not implement vault.KVSoftDeleter", c)
	}

	must(t, "KVDeleteAll", c.KVDeleteAll(ctx, mount, p))
	if s, err := c.KVRead(ctx, mount, p); err != nil || s != nil {
		t.Fatalf("KVRead after KVDeleteAll = %+v, %v; want nil, nil", s, err)
	}
	if m, err := c.KVReadMetadata(ctx, mount, p); err != nil || m != nil {
		t.Fatalf("KVReadMetadata after KVDeleteAll = %+v, %v; want nil, nil", m, err)
	}
	v, err = c.KVWrite(ctx, mount, p, map[string]any{"user": "again"}, 0)
	must(t, "KVWrite cas=0 after KVDeleteAll", err)
	if v != 1 {
		t.Fatalf("version after KVDeleteAll = %d, want 1", v)
	}

	_, err = c.KVWrite(ctx, unique("ct-nomount"), p, map[string]any{"a": "b"}, -1)
	wantStatus(t, "KVWrite to a path with no engine", err, 404)
}

func audit(t *testing.T, c vault.Client, _ vault.Dialer) {
	ctx := ctx(t)
	path := unique("ct-file")
	file := filepath.Join(t.TempDir(), "audit.log")
	must(t, "EnableAuditDevice", c.EnableAuditDevice(ctx, path, vault.AuditDevice{Type: "file", Description: "contract", Options: map[string]string{"file_path": file}}))
	t.Cleanup(func() { c.DisableAuditDevice(context.Background(), path) })
	m, err := c.ListAuditDevices(ctx)
	must(t, "ListAuditDevices", err)
	got, ok := m[path+"/"]
	if !ok || got.Type != "file" || got.Options["file_path"] != file || got.Description != "contract" {
		t.Fatalf("ListAuditDevices[%q] = %+v (present=%v), want the file device (keys: %v)", path+"/", got, ok, keys(m))
	}
	wantStatus(t, "EnableAuditDevice on a path in use", c.EnableAuditDevice(ctx, path, vault.AuditDevice{Type: "file", Options: map[string]string{"file_path": file}}), 400)
	must(t, "DisableAuditDevice", c.DisableAuditDevice(ctx, path))
	m, err = c.ListAuditDevices(ctx)
	must(t, "ListAuditDevices", err)
	if _, ok := m[path+"/"]; ok {
		t.Fatalf("ListAuditDevices still holds %q after disabling it", path+"/")
	}
}

// approleWithLogin enables an approle mount with one role that logs in by role_id.
func approleWithLogin(t *testing.T, c vault.Client) (mount, roleID string) {
	ctx := ctx(t)
	mount, roleID = unique("ct-login"), unique("role-id")
	must(t, "EnableAuthMethod", c.EnableAuthMethod(ctx, mount, vault.MountInfo{Type: "approle"}))
	must(t, "WriteRole", c.WriteRole(ctx, mount, "app", approleLogin(roleID, 600)))
	return mount, roleID
}

func loginLeases(t *testing.T, c vault.Client, d vault.Dialer) {
	ctx := ctx(t)
	mount, roleID := approleWithLogin(t, c)
	if tok, err := c.Login(ctx, mount, map[string]any{"role_id": "not-" + roleID}); err == nil {
		t.Fatalf("Login with a wrong role_id succeeded (token %q)", tok)
	}

	user := dialAnother(t, d)
	tok, err := user.Login(ctx, mount, map[string]any{"role_id": roleID})
	must(t, "Login", err)
	if tok == "" || user.Token() != "" {
		t.Fatalf("Login returned %q and left the client's token %q; want a token returned, the client's unchanged", tok, user.Token())
	}
	user.SetToken(tok)
	must(t, "LookupSelf with the login token", user.LookupSelf(ctx))

	prefix := "auth/" + mount + "/login/"
	ids, err := c.ListLeases(ctx, prefix)
	must(t, "ListLeases", err)
	if len(ids) != 1 {
		t.Fatalf("ListLeases(%s) = %q, want the one login's lease", prefix, ids)
	}
	l, err := c.LookupLease(ctx, prefix+ids[0])
	must(t, "LookupLease", err)
	if l.ID != prefix+ids[0] || l.IssueTime.IsZero() || !l.ExpireTime.After(l.IssueTime) {
		t.Fatalf("LookupLease = %+v, want its ID, an issue time and a later expiry", l)
	}
	if l.ExpireTime.Sub(l.IssueTime) > 11*time.Minute {
		t.Fatalf("lease lasts %s, want the role's 10m token_ttl", l.ExpireTime.Sub(l.IssueTime))
	}

	must(t, "RevokePrefix", c.RevokePrefix(ctx, prefix))
	err = user.LookupSelf(ctx)
	if !vault.IsForbidden(err) {
		t.Fatalf("LookupSelf with a token revoked by prefix: %v, want a 403", err)
	}
	ids, err = c.ListLeases(ctx, prefix)
	must(t, "ListLeases after RevokePrefix", err)
	if len(ids) != 0 {
		t.Fatalf("ListLeases after RevokePrefix = %q, want none", ids)
	}
}

func revokedToken(t *testing.T, c vault.Client, d vault.Dialer) {
	ctx := ctx(t)
	mount, roleID := approleWithLogin(t, c)
	user := dialAnother(t, d)
	tok, err := user.Login(ctx, mount, map[string]any{"role_id": roleID})
	must(t, "Login", err)
	user.SetToken(tok)
	must(t, "RevokeSelf", user.RevokeSelf(ctx))

	err = user.LookupSelf(ctx)
	wantStatus(t, "LookupSelf with a revoked token", err, 403)
	if !vault.IsForbidden(err) || vault.IsNotFound(err) {
		t.Fatalf("IsForbidden/IsNotFound disagree with the status of %v", err)
	}
	_, err = user.ListPolicies(ctx)
	wantStatus(t, "ListPolicies with a revoked token", err, 403)
	// Logging in needs no token: a client holding a revoked one still can.
	if _, err := user.Login(ctx, mount, map[string]any{"role_id": roleID}); err != nil {
		t.Fatalf("Login from a client holding a revoked token: %v", err)
	}
	// The root client is unaffected.
	must(t, "LookupSelf as root", c.LookupSelf(ctx))
}

// capabilitiesSelf: a token's capabilities as Vault evaluates its policies, the proof migrate
// relies on: the exact path is readable, a sibling under the explicit parent deny is not.
func capabilitiesSelf(t *testing.T, c vault.Client, d vault.Dialer) {
	ctx := ctx(t)
	must(t, "WritePolicy", c.WritePolicy(ctx, "ct-reader", `
path "ct-kv/data/app/db" { capabilities = ["read"] }
path "ct-kv/data/app/*" { capabilities = ["deny"] }
path "ct-kv/metadata/app/*" { capabilities = ["deny"] }
`))
	mount, roleID := approleWithLogin(t, c)
	user := dialAnother(t, d)
	tok, err := user.Login(ctx, mount, map[string]any{"role_id": roleID})
	must(t, "Login", err)
	user.SetToken(tok)
	got, err := user.CapabilitiesSelf(ctx, "ct-kv/data/app/db", "ct-kv/data/app/other", "sys/mounts")
	must(t, "CapabilitiesSelf", err)
	want := map[string][]string{"ct-kv/data/app/db": {"read"}, "ct-kv/data/app/other": {"deny"}, "sys/mounts": {"deny"}}
	for p, w := range want {
		if fmtJSON(got[p]) != fmtJSON(w) {
			t.Errorf("capabilities on %s = %v, want %v", p, got[p], w)
		}
	}
	root, err := c.CapabilitiesSelf(ctx, "ct-kv/data/app/other")
	must(t, "CapabilitiesSelf as root", err)
	if fmtJSON(root["ct-kv/data/app/other"]) != `["root"]` {
		t.Errorf("root token's capabilities = %v, want [root]", root)
	}
	must(t, "DeletePolicy", c.DeletePolicy(ctx, "ct-reader"))
}

func unauthenticated(t *testing.T, _ vault.Client, d vault.Dialer) {
	ctx := ctx(t)
	anon := dialAnother(t, d)
	_, err := anon.ListPolicies(ctx)
	wantStatus(t, "ListPolicies without a token", err, 403)
	wantStatus(t, "LookupSelf without a token", anon.LookupSelf(ctx), 403)
	wantStatus(t, "WritePolicy without a token", anon.WritePolicy(ctx, unique("ct-anon"), "path \"x\" {\n  capabilities = [\"read\"]\n}\n"), 403)

	st, err := anon.SealStatus(ctx)
	must(t, "SealStatus without a token", err)
	if !st.Initialized || st.Sealed {
		t.Fatalf("SealStatus = initialized %v, sealed %v; want an initialized, unsealed Vault", st.Initialized, st.Sealed)
	}
	h, err := anon.Health(ctx)
	must(t, "Health without a token", err)
	if !h.Initialized || h.Sealed || h.Version == "" {
		t.Fatalf("Health = %+v, want initialized, unsealed, a version", h)
	}
	_, err = anon.Init(ctx, &vaultapi.InitRequest{SecretShares: 1, SecretThreshold: 1, RecoveryShares: 1, RecoveryThreshold: 1})
	wantStatus(t, "Init of an initialized Vault", err, 400)
}

// authTune: audit_non_hmac_request_keys round-trips, a second tune with the same keys reads
// back the same, and a missing method is an error, not an empty tune.
func authTune(t *testing.T, c vault.Client, _ vault.Dialer) {
	ctx := ctx(t)
	mount := unique("ct-tune")
	must(t, "EnableAuthMethod", c.EnableAuthMethod(ctx, mount, vault.MountInfo{Type: "kubernetes"}))
	tune, err := c.ReadAuthTune(ctx, mount)
	must(t, "ReadAuthTune", err)
	if len(tune.AuditNonHMACRequestKeys) != 0 {
		t.Fatalf("ReadAuthTune of a new method = %+v, want no audit_non_hmac_request_keys", tune)
	}
	for range 2 {
		must(t, "TuneAuthMethod", c.TuneAuthMethod(ctx, mount, vault.AuthTune{AuditNonHMACRequestKeys: []string{"role"}}))
		tune, err = c.ReadAuthTune(ctx, mount)
		must(t, "ReadAuthTune", err)
		if !slices.Equal(tune.AuditNonHMACRequestKeys, []string{"role"}) {
			t.Fatalf("ReadAuthTune after tuning = %+v, want audit_non_hmac_request_keys [role]", tune)
		}
	}
	if _, err := c.ReadAuthTune(ctx, unique("ct-missing")); err == nil {
		t.Fatal("ReadAuthTune of a missing method: no error")
	}
}
