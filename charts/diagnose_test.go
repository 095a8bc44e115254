package charts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/testreq"
)

// vaultBinary finds the pinned vault build: $VAULT_BIN, else $VAULTCTL_TOOLS_DIR/vault.
func vaultBinary(t *testing.T) string {
	for _, p := range []string{os.Getenv("VAULT_BIN"), filepath.Join(os.Getenv("VAULTCTL_TOOLS_DIR"), "vault")} {
		if fi, err := os.Stat(p); p != "" && err == nil && !fi.IsDir() {
			return p
		}
	}
	// Under `make test` the tools are built before the unit tests run (unit depends on tools).
	testreq.Missing(t, "no vault binary: set VAULT_BIN or VAULTCTL_TOOLS_DIR (hack/tools/build.sh --dir; `make tools` builds it)")
	return ""
}

// TestServerHCLWithVaultDiagnose runs the real `vault operator diagnose` on the generated
// configuration, with only the pod paths and listen addresses moved to a temporary directory (as
// the sandbox runner does). Everything but the awskms seal, which needs KMS, must pass.
func TestServerHCLWithVaultDiagnose(t *testing.T) {
	bin := vaultBinary(t)
	dir := t.TempDir()
	tlsDir, dataDir := filepath.Join(dir, "tls"), filepath.Join(dir, "data")
	for _, d := range []string{tlsDir, dataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeTestPKI(t, tlsDir)
	api, cluster := freeAddr(t), freeAddr(t)

	cfg := baseConfig(func(c *config.Config) { c.Vault.Seal.AWSKMS.Endpoint = "http://127.0.0.1:1" })
	hcl := ServerHCL(cfg)
	hcl = strings.NewReplacer(TLSDir, tlsDir, DataDir, dataDir, "0.0.0.0:8200", api, "0.0.0.0:8201", cluster).Replace(hcl)
	file := filepath.Join(dir, ConfigKey)
	if err := os.WriteFile(file, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "operator", "diagnose", "-config", file, "-skip=autounseal", "-format=json")
	cmd.Env = append(os.Environ(),
		"VAULT_API_ADDR=https://"+api, "VAULT_CLUSTER_ADDR=https://"+cluster, "VAULT_RAFT_NODE_ID=vault-0",
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=")
	out, _ := cmd.Output() // diagnose exits non-zero: the seal cannot reach KMS
	var root diagResult
	if err := json.Unmarshal(out, &root); err != nil {
		t.Fatalf("diagnose output is not JSON: %v\n%s", err, out)
	}
	status := map[string]string{}
	root.walk(func(r diagResult) { status[r.Name] = r.Status })
	for _, check := range []string{"Parse Configuration", "Create Storage Backend", "Check Cluster Address", "Check Listener TLS", "Create Listeners", "Check Core Creation"} {
		if status[check] != "ok" {
			t.Errorf("diagnose %q: %q", check, status[check])
		}
	}
	if t.Failed() {
		t.Logf("config:\n%s\ndiagnose:\n%s", hcl, out)
	}
}

type diagResult struct {
	Name     string       `json:"name"`
	Status   string       `json:"status"`
	Message  string       `json:"message"`
	Children []diagResult `json:"children"`
}

func (r diagResult) walk(f func(diagResult)) {
	f(r)
	for _, c := range r.Children {
		c.walk(f)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeTestPKI writes a CA and a leaf for 127.0.0.1 and localhost as tls.crt, tls.key, ca.crt.
func writeTestPKI(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "vault"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(365 * 24 * time.Hour), DNSNames: []string{"localhost", "vault-0.vault-internal"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	files := map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"ca.crt":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
