package vault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/internal/vault/vaulttest"
)

func TestFakeContract(t *testing.T) {
	vaulttest.Contract(t, func(t *testing.T) (vault.Client, vault.Dialer) {
		s := vault.NewFakeServer()
		return s.RootClient(), s.Dialer()
	})
}

// The same suite with every subtest on one server, as the real-Vault run does.
func TestFakeContractSharedServer(t *testing.T) {
	s := vault.NewFakeServer()
	vaulttest.Contract(t, func(t *testing.T) (vault.Client, vault.Dialer) {
		return s.RootClient(), s.Dialer()
	})
}

func TestFakeDatabaseContract(t *testing.T) {
	vaulttest.Database(t, func(t *testing.T) (vault.Client, vault.Dialer) {
		s := vault.NewFakeServer()
		return s.RootClient(), s.Dialer()
	}, "postgres://vaultadmin:not-used@127.0.0.1:5432/postgres?sslmode=disable")
}

var bg = context.Background()

func TestFakeFailAndCalls(t *testing.T) {
	s := vault.NewFakeServer()
	c := s.RootClient()
	boom := errors.New("boom")
	s.Fail("WritePolicy", boom)
	if err := c.WritePolicy(bg, "vaultctl-admin", `path "x" { capabilities = ["read"] }`); !errors.Is(err, boom) {
		t.Fatalf("WritePolicy with Fail set = %v, want boom", err)
	}
	if _, _, err := c.ReadPolicy(bg, "vaultctl-admin"); err != nil {
		t.Fatalf("ReadPolicy is not failed: %v", err)
	}
	s.Fail("WritePolicy", nil)
	if err := c.WritePolicy(bg, "vaultctl-admin", `path "x" { capabilities = ["read"] }`); err != nil {
		t.Fatalf("WritePolicy after clearing Fail: %v", err)
	}
	c.WriteRole(bg, "token", "x", nil)
	c.KVRead(bg, "secret", "production/db")
	c.ListPolicies(bg)
	want := []string{"WritePolicy vaultctl-admin", "ReadPolicy vaultctl-admin", "WritePolicy vaultctl-admin", "WriteRole token/x", "KVRead secret/production/db", "ListPolicies"}
	if got := s.Calls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Calls = %q\nwant %q", got, want)
	}
	s.ResetCalls()
	if got := s.Calls(); len(got) != 0 {
		t.Fatalf("Calls after ResetCalls = %q", got)
	}

	s.Fail("Dial", boom)
	if _, err := s.Dialer().Dial(vault.Endpoint{Address: "https://x"}); !errors.Is(err, boom) {
		t.Fatalf("Dial with Fail set = %v", err)
	}
	// A Fail error of Vault's kind is seen as such.
	s.Fail("LookupSelf", &vaultapi.ResponseError{StatusCode: 403})
	if err := c.LookupSelf(bg); !vault.IsForbidden(err) {
		t.Fatalf("LookupSelf with a 403 failure: IsForbidden(%v) = false", err)
	}
}

func TestFakeKubernetesLogin(t *testing.T) {
	s := vault.NewFakeServer()
	c := s.RootClient()
	must(t, c.EnableAuthMethod(bg, "kubernetes", vault.MountInfo{Type: "kubernetes"}))
	must(t, c.WriteRole(bg, "kubernetes", "vaultctl-admin", map[string]any{
		"bound_service_account_names": "vaultctl", "bound_service_account_namespaces": "vault", "token_ttl": "15m",
	}))
	s.AllowLogin("kubernetes", "vaultctl-admin", "good-jwt")
	if _, err := c.Login(bg, "kubernetes", map[string]any{"role": "vaultctl-admin", "jwt": "good-jwt"}); vault.StatusCode(err) != 500 {
		t.Fatalf("Login before the method's config is written = %v, want Vault's 500", err)
	}
	must(t, c.WriteAuthConfig(bg, "kubernetes", map[string]any{"kubernetes_host": "https://kubernetes.default.svc"}))

	for _, tc := range []struct {
		body   map[string]any
		status int
	}{
		{map[string]any{"role": "vaultctl-admin", "jwt": "bad-jwt"}, 403},
		{map[string]any{"role": "nobody", "jwt": "good-jwt"}, 400},
		{map[string]any{"jwt": "good-jwt"}, 400},
	} {
		if _, err := c.Login(bg, "kubernetes", tc.body); vault.StatusCode(err) != tc.status {
			t.Errorf("Login(%v) = %v, want a %d", tc.body, err, tc.status)
		}
	}
	if _, err := c.Login(bg, "nowhere", map[string]any{"role": "vaultctl-admin", "jwt": "good-jwt"}); !vault.IsForbidden(err) {
		t.Errorf("Login at a missing mount = %v, want a 403", err)
	}
	tok, err := c.Login(bg, "kubernetes", map[string]any{"role": "vaultctl-admin", "jwt": "good-jwt"})
	must(t, err)
	u := s.Client(tok)
	must(t, u.LookupSelf(bg))
	ids, err := c.ListLeases(bg, "auth/kubernetes/login")
	must(t, err)
	if len(ids) != 1 {
		t.Fatalf("leases = %v", ids)
	}
	l, err := c.LookupLease(bg, "auth/kubernetes/login/"+ids[0])
	must(t, err)
	if d := l.ExpireTime.Sub(l.IssueTime); d != 15*time.Minute {
		t.Fatalf("lease TTL %s, want the role's 15m", d)
	}
	must(t, c.RevokeLease(bg, l.ID))
	if err := u.LookupSelf(bg); !vault.IsForbidden(err) {
		t.Fatalf("LookupSelf after its lease was revoked = %v, want a 403", err)
	}
}

func TestFakeTokens(t *testing.T) {
	s := vault.NewFakeServer()
	s.AddToken("hvs.added")
	c := s.Client("hvs.added")
	must(t, c.LookupSelf(bg))
	s.RevokeToken("hvs.added")
	if err := c.LookupSelf(bg); !vault.IsForbidden(err) {
		t.Fatalf("LookupSelf with a revoked token = %v", err)
	}
	if _, err := c.ListMounts(bg); !vault.IsForbidden(err) {
		t.Fatalf("ListMounts with a revoked token = %v", err)
	}
	c.SetToken(s.RootToken())
	must(t, c.LookupSelf(bg))
	if err := s.Client("hvs.unknown").LookupSelf(bg); !vault.IsForbidden(err) {
		t.Fatalf("an unknown token: %v", err)
	}
}

func TestFakeSealAndInit(t *testing.T) {
	s := vault.NewFakeServer()
	root := s.RootClient()
	s.SetSealed(true)
	if _, err := root.ListPolicies(bg); vault.StatusCode(err) != 503 {
		t.Fatalf("ListPolicies on a sealed Vault = %v, want a 503", err)
	}
	st, err := root.SealStatus(bg)
	must(t, err)
	if !st.Sealed || !st.Initialized || st.Type != "awskms" {
		t.Fatalf("SealStatus = %+v", st)
	}
	s.SetSealed(false)

	s.SetInitialized(false)
	if err := root.LookupSelf(bg); err == nil {
		t.Fatal("the old root token survives a fresh cluster")
	}
	h, err := root.Health(bg)
	must(t, err)
	if h.Initialized || !h.Sealed {
		t.Fatalf("Health of a fresh cluster = %+v", h)
	}
	anon := s.Client("")
	if _, err := anon.Init(bg, &vaultapi.InitRequest{RecoveryShares: 3, RecoveryThreshold: 4}); vault.StatusCode(err) != 400 {
		t.Fatalf("Init with threshold > shares = %v, want a 400", err)
	}
	resp, err := anon.Init(bg, &vaultapi.InitRequest{RecoveryShares: 3, RecoveryThreshold: 2})
	must(t, err)
	if len(resp.RecoveryKeys) != 3 || len(resp.RecoveryKeysB64) != 3 || resp.RootToken == "" || len(resp.Keys) != 0 {
		t.Fatalf("Init = %+v", resp)
	}
	if resp.RootToken != s.RootToken() {
		t.Fatal("RootToken is not Init's")
	}
	anon.SetToken(resp.RootToken)
	must(t, anon.LookupSelf(bg))
	if _, err := anon.Init(bg, &vaultapi.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1}); vault.StatusCode(err) != 400 {
		t.Fatalf("second Init = %v, want a 400", err)
	}
}

func TestFakeAutopilot(t *testing.T) {
	s := vault.NewFakeServer()
	c := s.RootClient()
	st, err := c.AutopilotState(bg)
	must(t, err)
	if !st.Healthy || len(st.Voters) != 3 || st.FailureTolerance != 1 {
		t.Fatalf("AutopilotState = %+v", st)
	}
	st.Voters[0] = "mutated"
	st2, _ := c.AutopilotState(bg)
	if st2.Voters[0] != "vault-0" {
		t.Fatal("AutopilotState aliases the server's state")
	}
	s.SetAutopilotState(&vaultapi.AutopilotState{Healthy: false, Voters: []string{"a"}})
	if st, _ := c.AutopilotState(bg); st.Healthy || len(st.Voters) != 1 {
		t.Fatalf("after SetAutopilotState: %+v", st)
	}

	for _, tc := range []struct {
		body map[string]any
		ok   bool
	}{
		{map[string]any{"cleanup_dead_servers": true, "min_quorum": 3, "dead_server_last_contact_threshold": "10m", "server_stabilization_time": 1}, true},
		{map[string]any{"disable_upgrade_migration": true}, false},
		{map[string]any{"min_quorum": 2}, false}, // cleanup_dead_servers is on from above
		{map[string]any{"dead_server_last_contact_threshold": "30s"}, false},
		{map[string]any{"last_contact_threshold": "soon"}, false},
	} {
		err := c.WriteAutopilotConfig(bg, tc.body)
		if (err == nil) != tc.ok {
			t.Errorf("WriteAutopilotConfig(%v) = %v, want ok=%v", tc.body, err, tc.ok)
		}
	}
	cfg, err := c.AutopilotConfig(bg)
	must(t, err)
	want := vaultapi.AutopilotConfig{CleanupDeadServers: true, MinQuorum: 3, DeadServerLastContactThreshold: 10 * time.Minute,
		ServerStabilizationTime: time.Second, LastContactThreshold: 10 * time.Second, MaxTrailingLogs: 1000}
	if *cfg != want {
		t.Fatalf("AutopilotConfig = %+v\nwant %+v", *cfg, want)
	}
	s.SetRaft(false)
	if st, err := c.AutopilotState(bg); st != nil || err != nil {
		t.Fatalf("AutopilotState without raft = %v, %v; want nil, nil", st, err)
	}
	if err := c.WriteAutopilotConfig(bg, map[string]any{"min_quorum": 3}); !vault.IsNotFound(err) {
		t.Fatalf("WriteAutopilotConfig without raft = %v; want a 404", err)
	}
}

func TestFakeDatabase(t *testing.T) {
	s := vault.NewFakeServer()
	c := s.RootClient()
	if err := c.WriteDBConnection(bg, "database", "pg", map[string]any{"plugin_name": "postgresql-database-plugin"}); !vault.IsNotFound(err) {
		t.Fatalf("WriteDBConnection without a mount = %v, want a 404", err)
	}
	must(t, c.EnableMount(bg, "database", vault.MountInfo{Type: "database"}))
	must(t, c.WriteDBConnection(bg, "database", "pg", map[string]any{
		"plugin_name": "postgresql-database-plugin", "allowed_roles": "app,other",
		"connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/app", "username": "vaultadmin", "password": "s3cret",
	}))
	conn, err := c.ReadDBConnection(bg, "database", "pg")
	must(t, err)
	details, _ := conn["connection_details"].(map[string]any)
	if conn["plugin_name"] != "postgresql-database-plugin" || details["username"] != "vaultadmin" || details["password"] != nil || conn["password"] != nil {
		t.Fatalf("ReadDBConnection = %v", conn)
	}
	if !reflect.DeepEqual(conn["allowed_roles"], []any{"app", "other"}) {
		t.Fatalf("allowed_roles = %#v", conn["allowed_roles"])
	}
	if r, err := c.ReadDBRole(bg, "database", "app"); r != nil || err != nil {
		t.Fatalf("ReadDBRole of a missing role = %v, %v", r, err)
	}
	if err := c.WriteDBRole(bg, "database", "app", map[string]any{"creation_statements": "x"}); vault.StatusCode(err) != 400 {
		t.Fatalf("WriteDBRole without db_name = %v", err)
	}
	must(t, c.WriteDBRole(bg, "database", "app", map[string]any{"db_name": "pg", "creation_statements": []string{"CREATE ROLE \"{{name}}\""}, "default_ttl": "1h", "max_ttl": 86400}))
	r, err := c.ReadDBRole(bg, "database", "app")
	must(t, err)
	if r["default_ttl"] != json.Number("3600") || r["max_ttl"] != json.Number("86400") || r["credential_type"] != "password" {
		t.Fatalf("ReadDBRole = %v", r)
	}
	cr, err := c.GenerateDBCredentials(bg, "database", "app")
	must(t, err)
	if cr.Data["username"] == "" || cr.Data["password"] == "" || cr.Duration != time.Hour {
		t.Fatalf("GenerateDBCredentials = %+v", cr)
	}
	ids, err := c.ListLeases(bg, "database/creds/app/")
	must(t, err)
	if len(ids) != 1 || "database/creds/app/"+ids[0] != cr.LeaseID {
		t.Fatalf("leases %v, want %s", ids, cr.LeaseID)
	}
	must(t, c.RevokePrefix(bg, "database/creds/app"))
	if l := s.Leases(); len(l) != 0 {
		t.Fatalf("leases after RevokePrefix: %v", l)
	}
	must(t, c.WriteDBRole(bg, "database", "nope", map[string]any{"db_name": "pg", "creation_statements": "x"}))
	if _, err := c.GenerateDBCredentials(bg, "database", "nope"); vault.StatusCode(err) != 500 {
		t.Fatalf("credentials for a role the connection does not allow = %v", err)
	}
	must(t, c.DeleteDBRole(bg, "database", "app"))
	if _, err := c.GenerateDBCredentials(bg, "database", "app"); vault.StatusCode(err) != 400 {
		t.Fatalf("credentials for a deleted role = %v", err)
	}
}

func TestFakeReturnsCopies(t *testing.T) {
	s := vault.NewFakeServer()
	c := s.RootClient()
	must(t, c.EnableAuthMethod(bg, "approle", vault.MountInfo{Type: "approle", Options: map[string]string{"a": "b"}}))
	m, _ := c.ListAuthMethods(bg)
	m["approle/"].Options["a"] = "mutated"
	if m2, _ := c.ListAuthMethods(bg); m2["approle/"].Options["a"] != "b" {
		t.Fatal("ListAuthMethods aliases the server's options")
	}
	role := map[string]any{"bind_secret_id": false, "token_bound_cidrs": []string{"10.0.0.0/8"}, "token_policies": []string{"a"}}
	must(t, c.WriteRole(bg, "approle", "r", role))
	role["token_policies"].([]string)[0] = "mutated"
	r, _ := c.ReadRole(bg, "approle", "r")
	r["token_policies"].([]any)[0] = "mutated"
	r2, _ := c.ReadRole(bg, "approle", "r")
	if !reflect.DeepEqual(r2["token_policies"], []any{"a"}) {
		t.Fatalf("role aliased: %v", r2["token_policies"])
	}
	if _, ok := r2["role_id"]; ok {
		t.Fatal("approle role read returns role_id; Vault does not")
	}
}

// Many goroutines, many clients, one server: run under -race.
func TestFakeConcurrent(t *testing.T) {
	s := vault.NewFakeServer()
	must(t, s.RootClient().EnableMount(bg, "secret", vault.MountInfo{Type: "kv-v2"}))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.Dialer().Dial(vault.Endpoint{Address: "https://vault:8200"})
			if err != nil {
				t.Error(err)
				return
			}
			c.SetToken(s.RootToken())
			for j := range 20 {
				p := fmt.Sprintf("w%d/%d", i, j)
				if _, err := c.KVWrite(bg, "secret", p, map[string]any{"j": j}, 0); err != nil {
					t.Error(err)
				}
				c.KVRead(bg, "secret", p)
				c.WritePolicy(bg, fmt.Sprintf("p%d", i), `path "x" { capabilities = ["read"] }`)
				c.ListPolicies(bg)
				_ = c.Token()
				s.Calls()
			}
		}()
	}
	wg.Wait()
	l, err := s.RootClient().KVList(bg, "secret", "")
	must(t, err)
	if len(l) != 8 {
		t.Fatalf("KVList = %v", l)
	}
}

func TestFakeCanceledContext(t *testing.T) {
	s := vault.NewFakeServer()
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := s.RootClient().ListPolicies(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("ListPolicies with a canceled context = %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
