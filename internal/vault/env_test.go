package vault

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA returns a fresh self-signed CA certificate as PEM.
func testCA(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveEndpoint(t *testing.T) {
	dir := t.TempDir()
	caA, caB := testCA(t, "a"), testCA(t, "b")
	fileA, fileA2, fileB := writeFile(t, dir, "a.pem", caA), writeFile(t, dir, "a-copy.pem", caA), writeFile(t, dir, "b.pem", caB)
	junk := writeFile(t, dir, "junk.pem", []byte("not a certificate"))
	const addr, other = "https://vault.example:8200", "https://other.example:8200"

	type want struct {
		addr     string
		ca       []byte
		token    string
		warnings []string // each warning must contain all these substrings, in order of warnings
		err      []string // the error must contain all of these
	}
	for _, tc := range []struct {
		name string
		cfg  EndpointConfig
		env  map[string]string
		want want
	}{
		{"config only", EndpointConfig{Address: addr, CACert: fileA}, nil, want{addr: addr, ca: caA}},
		{"VAULT_ADDR fills a silent config", EndpointConfig{}, map[string]string{"VAULT_ADDR": other}, want{addr: other}},
		{"VAULT_ADDR differs from the config", EndpointConfig{Address: addr}, map[string]string{"VAULT_ADDR": other},
			want{addr: addr, warnings: []string{"VAULT_ADDR=" + other + " is ignored|" + addr}}},
		{"VAULT_ADDR equal but for a slash", EndpointConfig{Address: addr}, map[string]string{"VAULT_ADDR": addr + "/"}, want{addr: addr}},
		{"no address anywhere", EndpointConfig{}, nil, want{err: []string{"vault.address", "VAULT_ADDR"}}},
		{"address without scheme", EndpointConfig{Address: "vault:8200"}, nil, want{err: []string{"scheme", "vault.address"}}},
		{"inline PEM", EndpointConfig{Address: addr, CACert: string(caB)}, nil, want{addr: addr, ca: caB}},
		{"unreadable CA file", EndpointConfig{Address: addr, CACert: filepath.Join(dir, "missing.pem")}, nil, want{err: []string{"vault.tls.caCert", "missing.pem"}}},
		{"CA file holds no certificate", EndpointConfig{Address: addr, CACert: junk}, nil, want{err: []string{"no PEM certificate", "junk.pem"}}},
		{"VAULT_CACERT fills a silent config", EndpointConfig{Address: addr}, map[string]string{"VAULT_CACERT": fileB}, want{addr: addr, ca: caB}},
		{"VAULT_CACERT unreadable", EndpointConfig{Address: addr}, map[string]string{"VAULT_CACERT": filepath.Join(dir, "nope.pem")}, want{err: []string{"VAULT_CACERT", "nope.pem"}}},
		{"VAULT_CACERT differs from the config", EndpointConfig{Address: addr, CACert: fileA}, map[string]string{"VAULT_CACERT": fileB},
			want{addr: addr, ca: caA, warnings: []string{"VAULT_CACERT=" + fileB + " is ignored|" + fileA}}},
		{"VAULT_CACERT another file with the same CA", EndpointConfig{Address: addr, CACert: fileA}, map[string]string{"VAULT_CACERT": fileA2}, want{addr: addr, ca: caA}},
		{"VAULT_CACERT_BYTES fills a silent config", EndpointConfig{Address: addr}, map[string]string{"VAULT_CACERT_BYTES": string(caB)}, want{addr: addr, ca: caB}},
		{"VAULT_CACERT_BYTES differs from the config", EndpointConfig{Address: addr, CACert: fileA}, map[string]string{"VAULT_CACERT_BYTES": string(caB)},
			want{addr: addr, ca: caA, warnings: []string{"VAULT_CACERT_BYTES is ignored|vault.tls.caCert"}}},
		{"VAULT_TOKEN is the fallback token", EndpointConfig{Address: addr}, map[string]string{"VAULT_TOKEN": "hvs.x"}, want{addr: addr, token: "hvs.x"}},
		{"VAULT_NAMESPACE is refused", EndpointConfig{Address: addr}, map[string]string{"VAULT_NAMESPACE": "team-a"}, want{err: []string{"VAULT_NAMESPACE=team-a", "root namespace", "Unset VAULT_NAMESPACE"}}},
		{"VAULT_SKIP_VERIFY with a pinned CA is refused", EndpointConfig{Address: addr, CACert: fileA}, map[string]string{"VAULT_SKIP_VERIFY": "true"},
			want{err: []string{"VAULT_SKIP_VERIFY=true", "pinned CA", fileA, "Unset VAULT_SKIP_VERIFY"}}},
		{"VAULT_SKIP_VERIFY with VAULT_CACERT is refused", EndpointConfig{Address: addr}, map[string]string{"VAULT_SKIP_VERIFY": "1", "VAULT_CACERT": fileB},
			want{err: []string{"VAULT_SKIP_VERIFY=1", "VAULT_CACERT=" + fileB}}},
		{"VAULT_SKIP_VERIFY without a CA is ignored", EndpointConfig{Address: addr}, map[string]string{"VAULT_SKIP_VERIFY": "true"},
			want{addr: addr, warnings: []string{"VAULT_SKIP_VERIFY=true is ignored|always verifies|VAULT_CACERT"}}},
		{"VAULT_SKIP_VERIFY=false is harmless", EndpointConfig{Address: addr, CACert: fileA}, map[string]string{"VAULT_SKIP_VERIFY": "false"}, want{addr: addr, ca: caA}},
		{"VAULT_SKIP_VERIFY not a boolean", EndpointConfig{Address: addr}, map[string]string{"VAULT_SKIP_VERIFY": "yes please"},
			want{addr: addr, warnings: []string{"VAULT_SKIP_VERIFY=yes please is ignored"}}},
		{"connection variables are ignored, each named", EndpointConfig{Address: addr}, map[string]string{
			"VAULT_CAPATH": dir, "VAULT_TLS_SERVER_NAME": "x", "VAULT_PROXY_ADDR": "http://p", "VAULT_HTTP_PROXY": "http://p",
			"VAULT_HEADERS": `{"A":"b"}`, "VAULT_AGENT_ADDR": "http://127.0.0.1:8100",
		}, want{addr: addr, warnings: []string{
			"VAULT_CAPATH is ignored|VAULT_CACERT", "VAULT_TLS_SERVER_NAME is ignored|unset VAULT_TLS_SERVER_NAME",
			"VAULT_PROXY_ADDR is ignored|unset VAULT_PROXY_ADDR", "VAULT_HTTP_PROXY is ignored|unset VAULT_HTTP_PROXY",
			"VAULT_HEADERS is ignored|unset VAULT_HEADERS", "VAULT_AGENT_ADDR is ignored|unset VAULT_AGENT_ADDR",
		}}},
		{"client-side tuning is ignored", EndpointConfig{Address: addr}, map[string]string{
			"VAULT_CLIENT_CERT": "c", "VAULT_CLIENT_KEY": "k", "VAULT_WRAP_TTL": "5m", "VAULT_MFA": "m", "VAULT_RATE_LIMIT": "1",
			"VAULT_MAX_RETRIES": "9", "VAULT_CLIENT_TIMEOUT": "1s", "VAULT_SRV_LOOKUP": "true", "VAULT_DISABLE_REDIRECTS": "true",
		}, want{addr: addr, warnings: []string{"VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY", "VAULT_WRAP_TTL", "VAULT_MFA", "VAULT_RATE_LIMIT",
			"VAULT_MAX_RETRIES", "VAULT_CLIENT_TIMEOUT", "VAULT_SRV_LOOKUP", "VAULT_DISABLE_REDIRECTS"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, tok, warnings, err := ResolveEndpoint(tc.cfg, func(k string) string { return tc.env[k] })
			if tc.want.err != nil {
				if err == nil {
					t.Fatalf("no error; want one mentioning %q", tc.want.err)
				}
				for _, s := range tc.want.err {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ep.Address != tc.want.addr || string(ep.CAPEM) != string(tc.want.ca) || tok != tc.want.token {
				t.Errorf("got address %q, CA %d bytes, token %q; want %q, %d bytes, %q", ep.Address, len(ep.CAPEM), tok, tc.want.addr, len(tc.want.ca), tc.want.token)
			}
			if len(warnings) != len(tc.want.warnings) {
				t.Fatalf("warnings = %q; want %d", warnings, len(tc.want.warnings))
			}
			for i, w := range tc.want.warnings {
				for _, s := range strings.Split(w, "|") {
					if !strings.Contains(warnings[i], s) {
						t.Errorf("warning %q does not mention %q", warnings[i], s)
					}
				}
			}
		})
	}
}
