package vault

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// recorder is a TLS server that answers like Vault from a table and records each request.
type recorder struct {
	srv *httptest.Server
	ca  []byte // PEM of the server's certificate

	mu   sync.Mutex
	reqs []recorded
	// answers maps "METHOD /v1/path" to a status and a JSON body.
	answers map[string]answer
}

type recorded struct {
	method, path, query string
	header              http.Header
	body                string
	clientCerts         int
}

type answer struct {
	status int
	body   string
}

func newRecorder(t *testing.T, answers map[string]answer) *recorder {
	t.Helper()
	r := &recorder{answers: answers}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		rec := recorded{method: req.Method, path: req.URL.Path, query: req.URL.RawQuery, header: req.Header.Clone(), body: string(b)}
		if req.TLS != nil {
			rec.clientCerts = len(req.TLS.PeerCertificates)
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, rec)
		a, ok := r.answers[req.Method+" "+req.URL.Path]
		r.mu.Unlock()
		if !ok {
			a = answer{404, `{"errors":[]}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	r.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	r.ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw})
	return r
}

func (r *recorder) endpoint() Endpoint { return Endpoint{Address: r.srv.URL, CAPEM: r.ca} }

func (r *recorder) last(t *testing.T) recorded {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("the server got no request")
	}
	return r.reqs[len(r.reqs)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// clientPair writes a client certificate and key that vaultapi would load and present.
func clientPair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "leaked-client"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return writeFile(t, dir, "client.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		writeFile(t, dir, "client-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}

// closedAddr is a loopback address nothing listens on: where a leaked setting would send us.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// setHostileEnv sets every variable hashicorp/vault/api reads (api/client.go ReadEnvironment
// and NewClient, logical.go's wrap TTL) to a value that, if honoured, would be visible in the
// request or make it fail. Values stay well-formed: vaultapi fails NewClient on malformed
// ones (see TestHTTPDialerMalformedEnvironment).
func setHostileEnv(t *testing.T, serverCA []byte) {
	dir := t.TempDir()
	dead := closedAddr(t)
	cert, key := clientPair(t, dir)
	otherCA := writeFile(t, dir, "other-ca.pem", testCA(t, "other"))
	for k, v := range map[string]string{
		"VAULT_ADDR":              "https://" + dead,
		"VAULT_AGENT_ADDR":        "http://" + dead,
		"VAULT_CACERT":            otherCA,
		"VAULT_CACERT_BYTES":      string(testCA(t, "other-bytes")),
		"VAULT_CAPATH":            dir,
		"VAULT_CLIENT_CERT":       cert,
		"VAULT_CLIENT_KEY":        key,
		"VAULT_CLIENT_TIMEOUT":    "1ns",
		"VAULT_HEADERS":           `{"X-Leaked":"yes"}`,
		"VAULT_SRV_LOOKUP":        "true",
		"VAULT_SKIP_VERIFY":       "true",
		"VAULT_NAMESPACE":         "leaked-ns",
		"VAULT_TLS_SERVER_NAME":   "leaked.invalid",
		"VAULT_WRAP_TTL":          "5m",
		"VAULT_MAX_RETRIES":       "7",
		"VAULT_TOKEN":             "hvs.leaked",
		"VAULT_MFA":               "leaked:123456",
		"VAULT_RATE_LIMIT":        "1:1",
		"VAULT_HTTP_PROXY":        "http://" + dead,
		"VAULT_PROXY_ADDR":        "http://" + dead,
		"VAULT_DISABLE_REDIRECTS": "true",
		"HTTPS_PROXY":             "http://" + dead,
		"HTTP_PROXY":              "http://" + dead,
		"NO_PROXY":                "",
	} {
		t.Setenv(k, v)
	}
	_ = serverCA
}

func TestHTTPDialerIgnoresEnvironment(t *testing.T) {
	r := newRecorder(t, map[string]answer{
		"GET /v1/sys/policies/acl":       {200, `{"data":{"keys":["default","root"]}}`},
		"PUT /v1/auth/approle/login":     {200, `{"auth":{"client_token":"hvs.new"}}`},
		"GET /v1/auth/token/lookup-self": {200, `{"data":{"id":"x"}}`},
	})
	setHostileEnv(t, r.ca)

	c, err := HTTPDialer{Timeout: 10 * time.Second}.Dial(r.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	if c.Token() != "" {
		t.Fatalf("a fresh client holds token %q: VAULT_TOKEN leaked", c.Token())
	}
	ctx := context.Background()
	pols, err := c.ListPolicies(ctx)
	if err != nil {
		t.Fatalf("ListPolicies: %v (a VAULT_* variable redirected or broke the request)", err)
	}
	if len(pols) != 2 {
		t.Fatalf("ListPolicies = %v", pols)
	}
	if n := r.count(); n != 1 {
		t.Fatalf("%d requests for one call", n)
	}
	req := r.last(t)
	checkClean := func(req recorded, wantToken string) {
		t.Helper()
		if got := req.header.Get("X-Vault-Token"); got != wantToken {
			t.Errorf("X-Vault-Token = %q, want %q", got, wantToken)
		}
		for _, h := range []string{"X-Vault-Namespace", "X-Leaked", "X-Vault-Wrap-Ttl", "X-Vault-Mfa", "X-Vault-Wrap-Format"} {
			if v := req.header.Values(h); len(v) > 0 {
				t.Errorf("request carries %s: %q", h, v)
			}
		}
		if req.header.Get("X-Vault-Request") != "true" {
			t.Errorf("request lacks X-Vault-Request: true (headers %v)", req.header)
		}
		if req.clientCerts != 0 {
			t.Errorf("the client presented %d certificates: VAULT_CLIENT_CERT leaked", req.clientCerts)
		}
	}
	checkClean(req, "")
	if req.method != "GET" || req.path != "/v1/sys/policies/acl" || req.query != "list=true" {
		t.Errorf("request %s %s?%s", req.method, req.path, req.query)
	}

	c.SetToken("hvs.mine")
	if err := c.LookupSelf(ctx); err != nil {
		t.Fatal(err)
	}
	checkClean(r.last(t), "hvs.mine")
	tok, err := c.Login(ctx, "approle", map[string]any{"role_id": "x"})
	if err != nil || tok != "hvs.new" {
		t.Fatalf("Login = %q, %v", tok, err)
	}
	checkClean(r.last(t), "") // logins never carry the client's token
	if c.Token() != "hvs.mine" {
		t.Fatalf("Login changed the client's token to %q", c.Token())
	}
}

// With the environment hostile, the TLS verification still uses exactly the Endpoint's CA.
func TestHTTPDialerVerifiesWithTheEndpointCAOnly(t *testing.T) {
	r := newRecorder(t, nil)
	setHostileEnv(t, r.ca)
	// VAULT_CACERT naming the right CA must not help a client given none: system roots only.
	t.Setenv("VAULT_CACERT", writeFile(t, t.TempDir(), "server-ca.pem", r.ca))
	ctx := context.Background()
	for name, ep := range map[string]Endpoint{
		"no CA":      {Address: r.srv.URL},
		"another CA": {Address: r.srv.URL, CAPEM: testCA(t, "another")},
	} {
		c, err := HTTPDialer{MaxRetries: -1}.Dial(ep)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ListPolicies(ctx)
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) && !strings.Contains(fmt.Sprint(err), "certificate") {
			t.Errorf("%s: ListPolicies = %v; want a certificate verification failure (VAULT_SKIP_VERIFY or VAULT_CACERT leaked)", name, err)
		}
	}
	if n := r.count(); n != 0 {
		t.Fatalf("the server answered %d requests over unverified TLS", n)
	}
}

func TestHTTPDialerMalformedEnvironment(t *testing.T) {
	t.Setenv("VAULT_RATE_LIMIT", "fast")
	_, err := HTTPDialer{}.Dial(Endpoint{Address: "https://127.0.0.1:8200"})
	if err == nil || !strings.Contains(err.Error(), "VAULT_") {
		t.Fatalf("Dial with a malformed VAULT_RATE_LIMIT = %v; want an error naming VAULT_* variables", err)
	}
}

func TestHTTPDialerRejectsBadEndpoint(t *testing.T) {
	if _, err := (HTTPDialer{}).Dial(Endpoint{}); err == nil {
		t.Fatal("Dial without an address succeeded")
	}
	if _, err := (HTTPDialer{}).Dial(Endpoint{Address: "https://x", CAPEM: []byte("junk")}); err == nil {
		t.Fatal("Dial with a CA that holds no certificate succeeded")
	}
}

// The client's requests and its reading of Vault's answers, on shapes the contract suite
// cannot produce at will.
func TestHTTPClientShapes(t *testing.T) {
	r := newRecorder(t, map[string]answer{
		"GET /v1/kv/data/gone":                             {404, `{"data":{"data":null,"metadata":{"deletion_time":"2025-01-01T00:00:00Z","version":2}}}`},
		"GET /v1/kv/data/live":                             {200, `{"data":{"data":{"n":5},"metadata":{"version":7}}}`},
		"PUT /v1/kv/data/w":                                {200, `{"data":{"version":3}}`},
		"GET /v1/kv/metadata/live":                         {200, `{"data":{"current_version":7,"custom_metadata":{"owner":"me"},"updated_time":"2025-01-02T03:04:05.123456Z"}}`},
		"GET /v1/sys/policies/acl/forbidden":               {403, `{"errors":["permission denied"]}`},
		"GET /v1/sys/policies/acl/p":                       {200, `{"data":{"name":"p","policy":"path \"x\" {}"}}`},
		"PUT /v1/sys/storage/raft/autopilot/configuration": {204, ``},
		"GET /v1/auth/k8s/role/r":                          {200, `{"data":{"token_ttl":900,"token_policies":["a"]}}`},
		"PUT /v1/auth/k8s/login":                           {200, `{"data":{}}`},
		"GET /v1/sys/leases/lookup/auth/k8s/login":         {200, `{"data":{"keys":["h1","h2"]}}`},
		"PUT /v1/sys/leases/lookup":                        {200, `{"data":{"id":"auth/k8s/login/h1","issue_time":"2025-01-01T00:00:00Z","expire_time":"2025-01-01T01:00:00Z","renewable":true}}`},
		"PUT /v1/sys/leases/revoke-prefix/auth/k8s/login":  {204, ``},
		"GET /v1/db/creds/app":                             {200, `{"lease_id":"db/creds/app/x","lease_duration":3600,"data":{"username":"u","password":"p"}}`},
	})
	c, err := HTTPDialer{MaxRetries: -1}.Dial(r.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("hvs.t")
	ctx := context.Background()

	if s, err := c.KVRead(ctx, "kv", "gone"); s != nil || err != nil {
		t.Errorf("KVRead of a deleted current version = %+v, %v; want nil, nil", s, err)
	}
	if s, err := c.KVRead(ctx, "kv", "missing"); s != nil || err != nil {
		t.Errorf("KVRead of a missing secret = %+v, %v; want nil, nil", s, err)
	}
	if s, err := c.KVRead(ctx, "kv", "live"); err != nil || s.Version != 7 || s.Data["n"] != json.Number("5") {
		t.Errorf("KVRead = %+v, %v", s, err)
	}
	if m, err := c.KVReadMetadata(ctx, "kv", "live"); err != nil || m.CurrentVersion != 7 || m.CustomMetadata["owner"] != "me" || m.UpdatedTime.Nanosecond() != 123456000 {
		t.Errorf("KVReadMetadata = %+v, %v", m, err)
	}

	for _, tc := range []struct {
		cas  int
		body string
	}{{-1, `{"data":{"a":1}}`}, {0, `{"data":{"a":1},"options":{"cas":0}}`}, {4, `{"data":{"a":1},"options":{"cas":4}}`}} {
		v, err := c.KVWrite(ctx, "kv", "w", map[string]any{"a": 1}, tc.cas)
		if err != nil || v != 3 {
			t.Errorf("KVWrite = %d, %v", v, err)
		}
		if got := r.last(t).body; !jsonEqual(got, tc.body) {
			t.Errorf("KVWrite cas=%d sent %s, want %s", tc.cas, got, tc.body)
		}
	}

	_, _, err = c.ReadPolicy(ctx, "forbidden")
	wrapped := fmt.Errorf("phase: %w", err)
	var re *vaultapi.ResponseError
	if !errors.As(wrapped, &re) || !IsForbidden(wrapped) || IsNotFound(wrapped) || StatusCode(wrapped) != 403 {
		t.Errorf("a 403 is not recognised through wrapping: %v", err)
	}
	if _, found, err := c.ReadPolicy(ctx, "missing"); found || err != nil {
		t.Errorf("ReadPolicy of a missing policy: found=%v, %v", found, err)
	}
	if hcl, found, err := c.ReadPolicy(ctx, "p"); !found || err != nil || hcl != `path "x" {}` {
		t.Errorf("ReadPolicy = %q %v %v", hcl, found, err)
	}
	if StatusCode(errors.New("dial tcp: refused")) != 0 || IsNotFound(nil) {
		t.Error("StatusCode of a non-Vault error is not 0")
	}

	body := map[string]any{"min_quorum": 3, "server_stabilization_time": "10s"}
	if err := c.WriteAutopilotConfig(ctx, body); err != nil {
		t.Fatal(err)
	}
	if got := r.last(t).body; !jsonEqual(got, `{"min_quorum":3,"server_stabilization_time":"10s"}`) {
		t.Errorf("WriteAutopilotConfig sent %s", got)
	}

	role, err := c.ReadRole(ctx, "k8s", "r")
	if err != nil || role["token_ttl"] != json.Number("900") {
		t.Errorf("ReadRole token_ttl = %#v (%v); want json.Number(\"900\"), the type the Fake returns", role["token_ttl"], err)
	}
	if _, err := c.Login(ctx, "k8s", map[string]any{"role": "r", "jwt": "j"}); err == nil {
		t.Error("Login without auth.client_token in the answer succeeded")
	}

	ids, err := c.ListLeases(ctx, "auth/k8s/login/")
	if err != nil || len(ids) != 2 {
		t.Errorf("ListLeases = %v, %v", ids, err)
	}
	if q := r.last(t).query; q != "list=true" {
		t.Errorf("ListLeases query %q", q)
	}
	if ids, err := c.ListLeases(ctx, "auth/none/"); err != nil || ids == nil || len(ids) != 0 {
		t.Errorf("ListLeases of an empty prefix = %#v, %v; want an empty list", ids, err)
	}
	l, err := c.LookupLease(ctx, "auth/k8s/login/h1")
	if err != nil || l.ID != "auth/k8s/login/h1" || !l.Renewable || l.ExpireTime.Sub(l.IssueTime) != time.Hour {
		t.Errorf("LookupLease = %+v, %v", l, err)
	}
	if got := r.last(t).body; !jsonEqual(got, `{"lease_id":"auth/k8s/login/h1"}`) {
		t.Errorf("LookupLease sent %s", got)
	}
	if err := c.RevokePrefix(ctx, "auth/k8s/login/"); err != nil {
		t.Errorf("RevokePrefix: %v", err)
	}
	cr, err := c.GenerateDBCredentials(ctx, "db", "app")
	if err != nil || cr.LeaseID != "db/creds/app/x" || cr.Duration != time.Hour || cr.Data["username"] != "u" {
		t.Errorf("GenerateDBCredentials = %+v, %v", cr, err)
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}
