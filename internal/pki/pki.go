// Package pki is vaultctl's one implementation of X.509 plumbing: ECDSA P-256 keys, a
// self-signed CA, leaf certificates issued from a spec, PEM in and out, and SAN comparison.
// Callers (the tls phase, the sandbox) decide names, lifetimes and where the material lives.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// PEM block types written by this package.
const (
	certBlock = "CERTIFICATE"
	keyBlock  = "PRIVATE KEY" // PKCS #8
)

// ErrNotKeyPair says that PEM inputs are not a certificate and its private key. It carries no
// detail on purpose: errors from parsing a key could quote it, and errors end up in logs.
var ErrNotKeyPair = errors.New("not a matching PEM certificate and private key")

// NewKey generates an ECDSA P-256 key: fast to make, and accepted by every component vaultctl
// talks to (Vault, Kubernetes, Go and OpenSSL clients).
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	return k, nil
}

// Serial returns a random 127-bit serial number (positive, and unique without bookkeeping).
func Serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return n, nil
}

// KeyID is a subject key identifier for pub: the SHA-1 of its PKIX encoding (RFC 5280 section
// 4.2.1.2 style; an identifier, not a security boundary). Nil for a key x509 cannot encode.
func KeyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha1.Sum(der)
	return sum[:]
}

// NewCA creates a self-signed CA certificate and its key. The CA may sign leaf certificates
// only (path length 0): nothing in vaultctl needs an intermediate.
func NewCA(subject pkix.Name, notBefore, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cert, key, err := create(&x509.Certificate{
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	return cert, key, nil
}

// LeafSpec describes a certificate to issue.
type LeafSpec struct {
	Subject  pkix.Name
	DNSNames []string
	IPs      []net.IP
	// NotAfter is capped at the CA's NotAfter: a certificate cannot outlive its issuer's trust.
	NotBefore, NotAfter time.Time
	// KeyUsage defaults to DigitalSignature, all an ECDSA TLS key needs.
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
}

// Issue makes a new key and a certificate for it signed by ca.
func Issue(spec LeafSpec, ca *x509.Certificate, caKey crypto.Signer) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if ca == nil || caKey == nil {
		return nil, nil, errors.New("issuing a certificate: no CA")
	}
	for i, ip := range spec.IPs {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, nil, fmt.Errorf("issuing a certificate: IP SAN %d is not an address", i)
		}
	}
	usage := spec.KeyUsage
	if usage == 0 {
		usage = x509.KeyUsageDigitalSignature
	}
	notAfter := spec.NotAfter
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	cert, key, err := create(&x509.Certificate{
		Subject:               spec.Subject,
		NotBefore:             spec.NotBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              usage,
		ExtKeyUsage:           slices.Clone(spec.ExtKeyUsage),
		DNSNames:              slices.Clone(spec.DNSNames),
		IPAddresses:           slices.Clone(spec.IPs),
		AuthorityKeyId:        ca.SubjectKeyId,
	}, ca, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate %q: %w", spec.Subject.CommonName, err)
	}
	return cert, key, nil
}

// create gives tmpl a new key, a serial and its subject key ID, and signs it with parentKey;
// a nil parent means self-signed.
func create(tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = Serial(); err != nil {
		return nil, nil, err
	}
	tmpl.SubjectKeyId = KeyID(&key.PublicKey)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// EncodeCerts returns the certificates as concatenated PEM blocks, in order.
func EncodeCerts(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: certBlock, Bytes: c.Raw}) // a bytes.Buffer never fails
	}
	return b.Bytes()
}

// EncodeKey returns key as a PKCS #8 PEM block.
func EncodeKey(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: keyBlock, Bytes: der}), nil
}

// ParseCerts parses every CERTIFICATE block of data, in order; other block types are skipped
// (bundles often carry comments or keys). It fails when data holds no certificate or a
// certificate does not parse, and then also returns the certificates before the bad one.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != certBlock {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return out, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

// ParseKeyPair checks that certPEM's first certificate and keyPEM's private key belong together
// and returns both. A key-side failure is always ErrNotKeyPair (see there).
func ParseKeyPair(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, ErrNotKeyPair
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, ErrNotKeyPair
	}
	return cert, signer, nil
}

// Bundle is current followed by the other CA certificates that have not expired at now,
// without duplicates: what clients must trust while a CA rotation is under way.
func Bundle(now time.Time, current *x509.Certificate, others ...*x509.Certificate) []*x509.Certificate {
	out := []*x509.Certificate{current}
	for _, c := range others {
		if !c.IsCA || now.After(c.NotAfter) {
			continue
		}
		if !slices.ContainsFunc(out, func(o *x509.Certificate) bool { return o.Equal(c) }) {
			out = append(out, c)
		}
	}
	return out
}

// SANs lists the certificate's DNS names (lower-cased) and IP addresses, each sorted.
func SANs(c *x509.Certificate) (dns, ips []string) {
	for _, d := range c.DNSNames {
		dns = append(dns, strings.ToLower(d))
	}
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	slices.Sort(dns)
	slices.Sort(ips)
	return dns, ips
}

// MissingSANs lists the wanted names and addresses the certificate does not cover. Wildcards
// count, as TLS clients honour them.
func MissingSANs(c *x509.Certificate, dns, ips []string) []string {
	var missing []string
	for _, d := range dns {
		if c.VerifyHostname(d) != nil {
			missing = append(missing, d)
		}
	}
	for _, ip := range ips {
		want := net.ParseIP(ip)
		if !slices.ContainsFunc(c.IPAddresses, func(have net.IP) bool { return want != nil && have.Equal(want) }) {
			missing = append(missing, ip)
		}
	}
	return missing
}

// SANDiff describes how the certificate's SANs differ from the wanted ones, literally (no
// wildcard matching: it decides whether to re-issue): "+added, -removed", "" when equal. Each
// side names at most three entries.
func SANDiff(c *x509.Certificate, dns, ips []string) string {
	haveDNS, haveIPs := SANs(c)
	want, have := slices.Concat(dns, ips), slices.Concat(haveDNS, haveIPs)
	var parts []string
	for _, side := range []struct {
		sign     string
		from, to []string
	}{{"+", want, have}, {"-", have, want}} {
		var items []string
		for _, x := range side.from {
			if !slices.Contains(side.to, x) {
				items = append(items, x)
			}
		}
		if len(items) == 0 {
			continue
		}
		if len(items) > 3 {
			items = append(items[:3:3], fmt.Sprintf("%d more", len(items)-3))
		}
		parts = append(parts, side.sign+strings.Join(items, ", "+side.sign))
	}
	return strings.Join(parts, "; ")
}
