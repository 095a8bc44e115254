package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func mustCA(t *testing.T, cn string, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	c, k, err := NewCA(pkix.Name{CommonName: cn}, t0.Add(-time.Minute), notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func TestNewCA(t *testing.T) {
	ca, key := mustCA(t, "test CA", t0.Add(time.Hour))
	if !ca.IsCA || !ca.MaxPathLenZero || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("not a leaf-only CA: IsCA=%t MaxPathLenZero=%t usage=%v", ca.IsCA, ca.MaxPathLenZero, ca.KeyUsage)
	}
	if !bytes.Equal(ca.SubjectKeyId, KeyID(&key.PublicKey)) || len(ca.SubjectKeyId) != 20 {
		t.Errorf("subject key id %x, want the key's", ca.SubjectKeyId)
	}
	if ca.Subject.CommonName != "test CA" || !ca.NotAfter.Equal(t0.Add(time.Hour)) {
		t.Errorf("subject %q, NotAfter %s", ca.Subject, ca.NotAfter)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	other, _ := mustCA(t, "other", t0.Add(time.Hour))
	if ca.SerialNumber.Cmp(other.SerialNumber) == 0 {
		t.Error("two CAs with one serial")
	}
}

func TestIssue(t *testing.T) {
	ca, caKey := mustCA(t, "test CA", t0.Add(24*time.Hour))
	spec := LeafSpec{
		Subject:     pkix.Name{CommonName: "vault.vault.svc", Organization: []string{"vaultctl"}},
		DNSNames:    []string{"vault.vault.svc", "*.vault-internal"},
		IPs:         []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		NotBefore:   t0.Add(-time.Minute),
		NotAfter:    t0.Add(48 * time.Hour), // beyond the CA: capped
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leaf, key, err := Issue(spec, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("NotAfter %s, want capped at the CA's %s", leaf.NotAfter, ca.NotAfter)
	}
	if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature || !bytes.Equal(leaf.AuthorityKeyId, ca.SubjectKeyId) {
		t.Errorf("IsCA=%t usage=%v aki=%x", leaf.IsCA, leaf.KeyUsage, leaf.AuthorityKeyId)
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Error("certificate is not for the returned key")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"vault.vault.svc", "vault-2.vault-internal", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: t0}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a server-only certificate verified for client auth")
	}

	spec.IPs = []net.IP{net.ParseIP("not-an-ip")}
	if _, _, err := Issue(spec, ca, caKey); err == nil {
		t.Error("an unparsable IP SAN must be refused, not issued empty")
	}
	if _, _, err := Issue(spec, nil, nil); err == nil {
		t.Error("no CA must be an error")
	}
}

func TestPEMRoundTrip(t *testing.T) {
	ca, caKey := mustCA(t, "test CA", t0.Add(time.Hour))
	leaf, key, err := Issue(LeafSpec{Subject: pkix.Name{CommonName: "x"}, DNSNames: []string{"x"}, NotBefore: t0, NotAfter: t0.Add(time.Hour)}, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("key is not PKCS #8 PEM: %.40s", keyPEM)
	}
	chain := EncodeCerts(leaf, ca)
	certs, err := ParseCerts(chain)
	if err != nil || len(certs) != 2 || !certs[0].Equal(leaf) || !certs[1].Equal(ca) {
		t.Fatalf("chain round trip: %d certificates, %v", len(certs), err)
	}
	c, signer, err := ParseKeyPair(chain, keyPEM)
	if err != nil || !c.Equal(leaf) || !signer.Public().(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatalf("key pair: %v", err)
	}

	// Other block types are skipped; a key in a bundle is no certificate.
	if certs, err := ParseCerts(append(append([]byte{}, keyPEM...), EncodeCerts(ca)...)); err != nil || len(certs) != 1 {
		t.Errorf("bundle with a key block: %d certificates, %v", len(certs), err)
	}
}

func TestParseCertsErrors(t *testing.T) {
	ca, _ := mustCA(t, "test CA", t0.Add(time.Hour))
	for name, in := range map[string][]byte{
		"empty":    nil,
		"not PEM":  []byte("hello"),
		"only key": []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
	} {
		if certs, err := ParseCerts(in); err == nil || certs != nil {
			t.Errorf("%s: want an error, got %d certificates", name, len(certs))
		}
	}
	// A corrupt second certificate: an error, and the good first one.
	bad := append(EncodeCerts(ca), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")...)
	certs, err := ParseCerts(bad)
	if err == nil || !strings.Contains(err.Error(), "certificate 2") || len(certs) != 1 {
		t.Errorf("corrupt second certificate: %d certificates, %v", len(certs), err)
	}
}

func TestParseKeyPairNeverQuotesTheKey(t *testing.T) {
	ca, caKey := mustCA(t, "a", t0.Add(time.Hour))
	_, otherKey := mustCA(t, "b", t0.Add(time.Hour))
	otherPEM, _ := EncodeKey(otherKey)
	caPEM, _ := EncodeKey(caKey)
	for name, key := range map[string][]byte{
		"mismatch": otherPEM,
		"garbage":  []byte("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"),
		"raw":      []byte("secret-key-bytes"),
	} {
		_, _, err := ParseKeyPair(EncodeCerts(ca), key)
		if !errors.Is(err, ErrNotKeyPair) {
			t.Errorf("%s: want ErrNotKeyPair, got %v", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "c2Vj")) {
			t.Errorf("%s: error quotes the key: %v", name, err)
		}
	}
	if _, _, err := ParseKeyPair(EncodeCerts(ca), caPEM); err != nil {
		t.Errorf("matching pair: %v", err)
	}
}

func TestBundle(t *testing.T) {
	cur, _ := mustCA(t, "current", t0.Add(48*time.Hour))
	old, _ := mustCA(t, "old", t0.Add(24*time.Hour))
	expired, _ := mustCA(t, "expired", t0.Add(time.Hour))
	ca, caKey := mustCA(t, "issuer", t0.Add(48*time.Hour))
	leaf, _, _ := Issue(LeafSpec{Subject: pkix.Name{CommonName: "leaf"}, NotBefore: t0, NotAfter: t0.Add(time.Hour)}, ca, caKey)

	got := Bundle(t0.Add(2*time.Hour), cur, cur, old, expired, leaf, old)
	if len(got) != 2 || !got[0].Equal(cur) || !got[1].Equal(old) {
		var names []string
		for _, c := range got {
			names = append(names, c.Subject.CommonName)
		}
		t.Errorf("bundle %v, want [current old]", names)
	}
}

func TestSANs(t *testing.T) {
	ca, caKey := mustCA(t, "test CA", t0.Add(time.Hour))
	leaf, _, err := Issue(LeafSpec{
		Subject:   pkix.Name{CommonName: "x"},
		DNSNames:  []string{"Vault.vault.svc", "a.example", "*.vault-internal"},
		IPs:       []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		NotBefore: t0, NotAfter: t0.Add(time.Hour),
	}, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	dns, ips := SANs(leaf)
	if strings.Join(dns, ",") != "*.vault-internal,a.example,vault.vault.svc" || strings.Join(ips, ",") != "10.0.0.1,127.0.0.1" {
		t.Errorf("SANs %v %v", dns, ips)
	}

	missing := MissingSANs(leaf, []string{"vault.vault.svc", "vault-0.vault-internal", "b.example"}, []string{"127.0.0.1", "::1", "bogus"})
	if strings.Join(missing, ",") != "b.example,::1,bogus" {
		t.Errorf("missing %v (wildcards cover, case does not matter)", missing)
	}

	tests := []struct {
		dns, ips []string
		want     string
	}{
		{[]string{"*.vault-internal", "a.example", "vault.vault.svc"}, []string{"10.0.0.1", "127.0.0.1"}, ""},
		{[]string{"*.vault-internal", "a.example", "vault.vault.svc", "new.example"}, []string{"10.0.0.1", "127.0.0.1"}, "+new.example"},
		{[]string{"a.example"}, []string{"127.0.0.1"}, "-*.vault-internal, -vault.vault.svc, -10.0.0.1"},
		{[]string{"*.vault-internal", "a.example", "vault.vault.svc", "1", "2", "3", "4"}, []string{"127.0.0.1"}, "+1, +2, +3, +1 more; -10.0.0.1"},
	}
	for _, tt := range tests {
		if got := SANDiff(leaf, tt.dns, tt.ips); got != tt.want {
			t.Errorf("SANDiff(%v, %v) = %q, want %q", tt.dns, tt.ips, got, tt.want)
		}
	}
}
