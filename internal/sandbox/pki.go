package sandbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	// Named so that the sandbox's own pki type (its file layout) keeps its name.
	x509pki "github.com/vaultctl/vaultctl/internal/pki"
)

// certValidity is long because a sandbox may be kept for weeks; it never leaves the machine.
const certValidity = 5 * 365 * 24 * time.Hour

// vaultReplicas is the size of the external Vault cluster and of the SAN list of its certificate
// (a production StatefulSet has the same three pod names).
const vaultReplicas = 3

// leafSpec describes one certificate signed by the sandbox CA.
type leafSpec struct {
	name     string // file stem under pki/
	cn       string
	orgs     []string
	server   bool
	client   bool
	dnsNames []string
	ips      []net.IP
}

// apiserverSANs are the names clients use for the API server: loopback from the host, the
// in-cluster service names, and the first address of the service CIDR (10.0.0.0/24).
func apiserverSANs() ([]string, []net.IP) {
	return []string{
			"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local",
		},
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")}
}

// vaultSANs lets one certificate serve the external cluster on loopback and, later, a Vault
// StatefulSet named "vault" in namespace "vault" (pod DNS names through the headless service).
func vaultSANs() ([]string, []net.IP) {
	dns := []string{"localhost"}
	for _, svc := range []string{"vault", "vault-active", "vault-standby", "vault-internal"} {
		dns = append(dns, svc, svc+".vault", svc+".vault.svc", svc+".vault.svc.cluster.local")
	}
	for i := range vaultReplicas {
		pod := fmt.Sprintf("vault-%d", i)
		dns = append(dns, pod,
			pod+".vault-internal",
			pod+".vault-internal.vault",
			pod+".vault-internal.vault.svc",
			pod+".vault-internal.vault.svc.cluster.local")
	}
	return dns, []net.IP{net.ParseIP("127.0.0.1")}
}

// leafSpecs lists every certificate of the sandbox. Client certificates carry the identities
// Kubernetes RBAC expects: system:masters for admin; the built-in names for kcm and scheduler.
// kwok plays the kubelet of every fake node, so it gets system:masters too rather than a
// hand-maintained role.
func leafSpecs() []leafSpec {
	apiDNS, apiIPs := apiserverSANs()
	vDNS, vIPs := vaultSANs()
	return []leafSpec{
		{name: "apiserver", cn: "kube-apiserver", server: true, dnsNames: apiDNS, ips: apiIPs},
		{name: "admin", cn: "kubernetes-admin", orgs: []string{"system:masters"}, client: true},
		{name: "kube-controller-manager", cn: "system:kube-controller-manager", client: true},
		{name: "kube-scheduler", cn: "system:kube-scheduler", client: true},
		{name: "kwok", cn: "kwok-controller", orgs: []string{"system:masters"}, client: true},
		{name: "vault", cn: "vault", server: true, client: true, dnsNames: vDNS, ips: vIPs},
		// kwok serves the kubelet API (logs, port-forward) of every fake node on 127.0.0.1.
		{name: "kwok-serving", cn: "kwok-kubelet", server: true, dnsNames: kwokNodeNames(), ips: []net.IP{net.ParseIP("127.0.0.1")}},
		// The API server's identity towards that kubelet API.
		{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, client: true},
		// The runner's agent injector webhook, which the API server calls at 127.0.0.1.
		{name: portAgentInjector, cn: SandboxInjectorWebhook, server: true, dnsNames: []string{"localhost"}, ips: []net.IP{net.ParseIP("127.0.0.1")}},
	}
}

func kwokNodeNames() []string {
	n := []string{"localhost"}
	for i := range fakeNodeCount {
		n = append(n, FakeNodeName(i))
	}
	return n
}

// pki holds the paths of the generated material.
type pki struct {
	dir string
}

func (p pki) cert(name string) string { return filepath.Join(p.dir, name+".crt") }
func (p pki) key(name string) string  { return filepath.Join(p.dir, name+".key") }
func (p pki) saKey() string           { return filepath.Join(p.dir, "sa.key") }
func (p pki) saPub() string           { return filepath.Join(p.dir, "sa.pub") }

// ensurePKI creates whatever is missing under dir and keeps what exists, so a restarted sandbox
// keeps its CA (kubeconfigs, Vault's trust) and its ServiceAccount signing key (issued tokens).
func ensurePKI(dir string) (pki, error) {
	p := pki{dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return p, err
	}
	caCert, caKey, err := p.ensureCA()
	if err != nil {
		return p, fmt.Errorf("sandbox CA: %w", err)
	}
	for _, spec := range leafSpecs() {
		if exists(p.cert(spec.name)) && exists(p.key(spec.name)) {
			continue
		}
		if err := p.writeLeaf(spec, caCert, caKey); err != nil {
			return p, fmt.Errorf("certificate %s: %w", spec.name, err)
		}
	}
	if !exists(p.saKey()) || !exists(p.saPub()) {
		// The API server verifies ServiceAccount tokens with RS256 by default: RSA it is.
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return p, err
		}
		pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return p, err
		}
		if err := writePEM(p.saKey(), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k), 0o600); err != nil {
			return p, err
		}
		if err := writePEM(p.saPub(), "PUBLIC KEY", pub, 0o644); err != nil {
			return p, err
		}
	}
	return p, nil
}

func (p pki) ensureCA() (*x509.Certificate, crypto.Signer, error) {
	if exists(p.cert("ca")) && exists(p.key("ca")) {
		return loadCA(p.cert("ca"), p.key("ca"))
	}
	now := time.Now()
	cert, key, err := x509pki.NewCA(pkix.Name{CommonName: "vaultctl-sandbox-ca", Organization: []string{"vaultctl sandbox"}},
		now.Add(-time.Hour), // tolerate small clock skew between processes
		now.Add(certValidity))
	if err != nil {
		return nil, nil, err
	}
	if err := writeKey(p.key("ca"), key); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(p.cert("ca"), x509pki.EncodeCerts(cert), 0o644); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func (p pki) writeLeaf(spec leafSpec, ca *x509.Certificate, caKey crypto.Signer) error {
	cert, key, err := signLeaf(spec, ca, caKey)
	if err != nil {
		return err
	}
	if err := writeKey(p.key(spec.name), key); err != nil {
		return err
	}
	return writeFileAtomic(p.cert(spec.name), x509pki.EncodeCerts(cert), 0o644)
}

// signLeaf issues the certificate spec describes, for a new ECDSA P-256 key.
func signLeaf(spec leafSpec, ca *x509.Certificate, caKey crypto.Signer) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	now := time.Now()
	ls := x509pki.LeafSpec{
		Subject:   pkix.Name{CommonName: spec.cn, Organization: spec.orgs},
		DNSNames:  spec.dnsNames,
		IPs:       spec.ips,
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(certValidity),
	}
	if spec.server {
		ls.ExtKeyUsage = append(ls.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if spec.client {
		ls.ExtKeyUsage = append(ls.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	return x509pki.Issue(ls, ca, caKey)
}

// loadCA reads the sandbox CA back; the certificate and key must belong together.
func loadCA(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	cert, key, err := x509pki.ParseKeyPair(cb, kb)
	if err != nil {
		return nil, nil, fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	return cert, key, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	b, err := x509pki.EncodeKey(key)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeFileAtomic writes via a temporary file and rename, so a crash never leaves half a file
// that a later run would trust.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return nil
}
