package sandbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "vaultctl-sandbox-ca", Organization: []string{"vaultctl sandbox"}},
		NotBefore:             now.Add(-time.Hour), // tolerate small clock skew between processes
		NotAfter:              now.Add(certValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	if err := writeKey(p.key("ca"), key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(p.cert("ca"), "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func (p pki) writeLeaf(spec leafSpec, ca *x509.Certificate, caKey crypto.Signer) error {
	der, key, err := signLeaf(spec, ca, caKey)
	if err != nil {
		return err
	}
	if err := writeKey(p.key(spec.name), key); err != nil {
		return err
	}
	return writePEM(p.cert(spec.name), "CERTIFICATE", der, 0o644)
}

// signLeaf issues an ECDSA P-256 certificate (fast to generate; every component accepts it).
func signLeaf(spec leafSpec, ca *x509.Certificate, caKey crypto.Signer) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: spec.cn, Organization: spec.orgs},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:              spec.dnsNames,
		IPAddresses:           spec.ips,
	}
	if spec.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if spec.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	return der, key, err
}

func loadCA(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(cb)
	if block == nil {
		return nil, nil, fmt.Errorf("%s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certFile, err)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	kblock, _ := pem.Decode(kb)
	if kblock == nil {
		return nil, nil, fmt.Errorf("%s: no PEM key", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(kblock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: key cannot sign", keyFile)
	}
	return cert, signer, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
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
