package phases

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/pki"
)

// ServerTLS makes sure Vault's listener has a certificate whose SANs cover every name clients
// and peers use: each pod in the headless Service (retry_join, api_addr), the Services, and
// 127.0.0.1 (the pod's own VAULT_ADDR).
//
// tls.mode generate: vaultctl keeps its own CA (Secret vault-ca) and issues the server
// certificate into the kubernetes.io/tls Secret vault.tls.secretName (tls.crt, tls.key, ca.crt),
// renewing it renewBefore its expiry and re-issuing it when the names change (replicas, extra
// SANs). A CA close to expiry is rotated; ca.crt then holds the new and the old CA, so agents
// that trust either keep working. tls.mode secret: the named Secret is only verified.
// tls.mode cert-manager: a cert-manager Certificate issues that Secret.
//
// Private keys live only in the Secrets: never in facts, errors, checkpoints or Helm values.
type ServerTLS struct {
	In      TLSInputs
	Kube    kubernetes.Interface
	Dynamic func() (dynamic.Interface, error) // cert-manager mode
	Clock   Clock
}

// TLSInputs is what the tls phase reads of the config.
type TLSInputs struct {
	External  bool
	Address   string
	Namespace string
	Replicas  int
	TLS       config.TLS
}

func tlsInputs(cfg *config.Config) TLSInputs {
	v := cfg.Vault
	return TLSInputs{External: cfg.External(), Address: v.Address, Namespace: v.Namespace, Replicas: v.Replicas, TLS: v.TLS}
}

func (p *ServerTLS) now() time.Time {
	if p.Clock != nil {
		return p.Clock()
	}
	return time.Now()
}

// TLS names and lifetimes.
const (
	CASecret           = "vault-ca"
	IssuedAtAnnotation = "vaultctl.io/issued-at"
	caLifetime         = 10 * 365 * 24 * time.Hour
	serverCertLifetime = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so a node with a slow clock accepts a new certificate.
	clockSkew = 5 * time.Minute
)

func (p *ServerTLS) Name() string { return "tls" }
func (p *ServerTLS) Description() string {
	return "Vault server certificate covering every pod and Service name"
}
func (p *ServerTLS) Inputs() any { return p.In }

// ServerSANs lists the names and addresses the server certificate must cover.
func ServerSANs(namespace string, replicas int, extra []string) (dns []string, ips []string) {
	forms := func(host string) []string {
		return []string{host, host + "." + namespace, host + "." + namespace + ".svc", host + "." + namespace + ".svc.cluster.local"}
	}
	for i := range replicas {
		dns = append(dns, forms(charts.InternalHost(i))...)
	}
	for _, svc := range []string{charts.FullName, charts.FullName + "-active", charts.FullName + "-standby", charts.FullName + "-internal"} {
		dns = append(dns, forms(svc)...)
	}
	dns = append(dns, "localhost")
	ips = []string{"127.0.0.1"}
	for _, e := range extra {
		if ip := net.ParseIP(e); ip != nil {
			ips = append(ips, ip.String())
		} else if e != "" {
			dns = append(dns, strings.ToLower(e))
		}
	}
	slices.Sort(dns)
	slices.Sort(ips)
	return slices.Compact(dns), slices.Compact(ips)
}

func (p *ServerTLS) sans() ([]string, []string) {
	return ServerSANs(p.In.Namespace, p.In.Replicas, p.In.TLS.ExtraSANs)
}

func (p *ServerTLS) Check(ctx context.Context) (Diff, error) {
	if p.In.External {
		return Diff{Facts: []string{"external Vault at " + p.In.Address + ": its TLS is managed outside vaultctl"}}, nil
	}
	if p.Kube == nil {
		return Diff{}, Fail("pass --kubeconfig/--context or set cluster.kubeconfig", "no Kubernetes connection")
	}
	switch p.In.TLS.Mode {
	case "secret":
		return p.checkUserSecret(ctx)
	case "cert-manager":
		return p.checkCertManager(ctx)
	default:
		st, err := p.observe(ctx)
		if err != nil {
			return Diff{}, err
		}
		return st.diff(p), nil
	}
}

func (p *ServerTLS) Apply(ctx context.Context, _ Diff) error {
	switch p.In.TLS.Mode {
	case "secret":
		return nil // verified only
	case "cert-manager":
		return p.applyCertManager(ctx)
	}
	// Observe again rather than trust the diff: the plan may be old.
	st, err := p.observe(ctx)
	if err != nil {
		return err
	}
	ns := p.In.Namespace
	if err := ensureNamespace(ctx, p.Kube, ns); err != nil {
		return Fail("check that your kube credentials may create namespaces", "%v", err)
	}
	now := p.now()
	ca := st.ca
	if st.caAction != "" {
		next, err := newCA(ns, now)
		if err != nil {
			return err
		}
		if ca != nil {
			next.bundle = caBundle(now, next.cert, ca.bundle...) // rotation: keep trusting the old CA
		}
		if err := p.writeSecret(ctx, CASecret, st.caSecret, next.secretData(), nil); err != nil {
			return err
		}
		ca = next
	}
	if st.certAction != "" || st.caAction != "" {
		dns, ips := p.sans()
		crt, key, err := issueServerCert(ca, dns, ips, now)
		if err != nil {
			return err
		}
		data := map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key, "ca.crt": pemCerts(ca.bundle)}
		ann := map[string]string{IssuedAtAnnotation: now.UTC().Format(time.RFC3339)}
		return p.writeSecret(ctx, p.In.TLS.SecretName, st.certSecret, data, ann)
	}
	if st.bundleStale {
		data := maps.Clone(st.certSecret.Data)
		data["ca.crt"] = pemCerts(ca.bundle)
		return p.writeSecret(ctx, p.In.TLS.SecretName, st.certSecret, data, st.certSecret.Annotations)
	}
	return nil
}

// tlsState is what observe found in generate mode.
type tlsState struct {
	caSecret, certSecret *corev1.Secret
	ca                   *authority
	caAction, caWhy      string // "", "create" or "rotate"
	cert                 *x509.Certificate
	certAction, certWhy  string // "", "create" or "reissue"
	bundleStale          bool
	restartFact          string
}

func (p *ServerTLS) secrets() secretClient {
	return p.Kube.CoreV1().Secrets(p.In.Namespace)
}

type secretClient interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error)
	Create(ctx context.Context, s *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error)
	Update(ctx context.Context, s *corev1.Secret, opts metav1.UpdateOptions) (*corev1.Secret, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

func (p *ServerTLS) getSecret(ctx context.Context, name string) (*corev1.Secret, error) {
	s, err := p.secrets().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, Fail("check that your kube credentials may read Secrets in namespace "+p.In.Namespace,
			"reading Secret %s: %v", name, err)
	}
	return s, nil
}

func (p *ServerTLS) observe(ctx context.Context) (*tlsState, error) {
	cfg := p.In
	ns := cfg.Namespace
	now := p.now()
	st := &tlsState{}
	var err error
	if st.caSecret, err = p.getSecret(ctx, CASecret); err != nil {
		return nil, err
	}
	switch {
	case st.caSecret == nil:
		st.caAction, st.caWhy = "create", "not found"
	default:
		ca, err := loadCA(st.caSecret, now)
		if err != nil {
			return nil, Fail(fmt.Sprintf("delete Secret %s/%s to let vaultctl create a new CA (workloads must then trust the new ca.crt), or restore it", ns, CASecret),
				"CA Secret %s/%s is unusable: %v", ns, CASecret, err)
		}
		st.ca = ca
		// A server certificate must not outlive its CA: rotate while a full certificate
		// lifetime plus the renewal margin still fits.
		if left := ca.cert.NotAfter.Sub(now); left < serverCertLifetime+cfg.TLS.RenewBefore.Duration {
			st.caAction, st.caWhy = "rotate", "expires "+ca.cert.NotAfter.UTC().Format(time.DateOnly)
		}
	}

	if st.certSecret, err = p.getSecret(ctx, cfg.TLS.SecretName); err != nil {
		return nil, err
	}
	switch {
	case st.certSecret == nil:
		st.certAction, st.certWhy = "create", "not found"
	case st.certSecret.Labels[ManagedByLabel] != "vaultctl":
		return nil, Fail("set vault.tls.mode: secret to use it as it is, or delete it, or choose another vault.tls.secretName",
			"Secret %s/%s exists and was not created by vaultctl", ns, cfg.TLS.SecretName)
	case st.certSecret.Type != corev1.SecretTypeTLS:
		st.certAction, st.certWhy = "reissue", fmt.Sprintf("type is %s, not kubernetes.io/tls", st.certSecret.Type)
	default:
		cert, err := parseKeyPair(st.certSecret)
		switch {
		case err != nil:
			st.certAction, st.certWhy = "reissue", err.Error()
		case st.ca != nil && cert.CheckSignatureFrom(st.ca.cert) != nil:
			st.cert = cert
			st.certAction, st.certWhy = "reissue", "not issued by the current CA"
		default:
			st.cert = cert
			dns, ips := p.sans()
			if d := sanDiff(cert, dns, ips); d != "" {
				st.certAction, st.certWhy = "reissue", "SANs differ: "+d
			} else if cert.NotAfter.Sub(now) < cfg.TLS.RenewBefore.Duration {
				st.certAction, st.certWhy = "reissue", "renew: expires "+cert.NotAfter.UTC().Format(time.DateOnly)
			}
		}
		if st.certAction == "" && st.ca != nil && !bytes.Equal(bytes.TrimSpace(st.certSecret.Data["ca.crt"]), bytes.TrimSpace(pemCerts(caBundle(now, st.ca.cert, st.ca.bundle...)))) {
			st.bundleStale = true
		}
	}
	if st.certAction == "" && st.caAction == "" {
		st.restartFact = p.podsBehind(ctx, st.certSecret)
	}
	return st, nil
}

func (st *tlsState) diff(p *ServerTLS) Diff {
	ns := p.In.Namespace
	name := p.In.TLS.SecretName
	var d Diff
	switch st.caAction {
	case "create":
		d.Changes = append(d.Changes, Change{Action: Create, Object: fmt.Sprintf("CA Secret %s/%s", ns, CASecret), Detail: "ECDSA P-256, 10 years"})
	case "rotate":
		d.Changes = append(d.Changes, Change{Action: Update, Object: fmt.Sprintf("CA Secret %s/%s", ns, CASecret),
			Detail: "rotate (" + st.caWhy + "); ca.crt keeps the old CA until it expires"})
	}
	dns, ips := p.sans()
	switch {
	case st.certAction == "create":
		d.Changes = append(d.Changes, Change{Action: Create, Object: fmt.Sprintf("Secret %s/%s (server certificate)", ns, name),
			Detail: fmt.Sprintf("%d DNS names, %s", len(dns), strings.Join(ips, ", "))})
	case st.certAction == "reissue":
		why := st.certWhy
		if st.caAction != "" {
			why += "; re-issued by the new CA"
		}
		d.Changes = append(d.Changes, Change{Action: Update, Object: fmt.Sprintf("Secret %s/%s (server certificate)", ns, name), Detail: why})
	case st.caAction != "":
		d.Changes = append(d.Changes, Change{Action: Update, Object: fmt.Sprintf("Secret %s/%s (server certificate)", ns, name), Detail: "re-issued by the new CA"})
	case st.bundleStale:
		d.Changes = append(d.Changes, Change{Action: Update, Object: fmt.Sprintf("Secret %s/%s ca.crt", ns, name), Detail: "CA bundle differs from vault-ca"})
	}
	if st.ca != nil && st.caAction == "" {
		d.Facts = append(d.Facts, fmt.Sprintf("CA %s/%s valid until %s", ns, CASecret, st.ca.cert.NotAfter.UTC().Format(time.DateOnly)))
	}
	if st.cert != nil && st.certAction == "" {
		d.Facts = append(d.Facts, fmt.Sprintf("server certificate %s/%s valid until %s, covers %d DNS names and %s",
			ns, name, st.cert.NotAfter.UTC().Format(time.DateOnly), len(dns), strings.Join(ips, ", ")))
	}
	if st.restartFact != "" {
		d.Facts = append(d.Facts, st.restartFact)
	}
	return d
}

// podsBehind reports Vault pods that started before the certificate in s was issued: Vault
// reads its certificate at start and on SIGHUP only.
func (p *ServerTLS) podsBehind(ctx context.Context, s *corev1.Secret) string {
	if s == nil {
		return ""
	}
	issued, err := time.Parse(time.RFC3339, s.Annotations[IssuedAtAnnotation])
	if err != nil {
		return ""
	}
	pods, err := p.Kube.CoreV1().Pods(p.In.Namespace).List(ctx, metav1.ListOptions{LabelSelector: charts.ServerSelector})
	if err != nil {
		return ""
	}
	var behind []string
	for _, pod := range pods.Items {
		if pod.Status.StartTime != nil && pod.Status.StartTime.Time.Before(issued) && pod.DeletionTimestamp == nil {
			behind = append(behind, pod.Name)
		}
	}
	if len(behind) == 0 {
		return ""
	}
	sort.Strings(behind)
	return fmt.Sprintf("certificate renewed %s; %s still serve the previous one until they get SIGHUP (kubectl exec -n %s POD -- kill -HUP 1) or restart",
		issued.UTC().Format(time.DateTime), strings.Join(behind, ", "), p.In.Namespace)
}

func (p *ServerTLS) writeSecret(ctx context.Context, name string, cur *corev1.Secret, data map[string][]byte, ann map[string]string) error {
	ns := p.In.Namespace
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{ManagedByLabel: "vaultctl"}, Annotations: ann},
		Type:       corev1.SecretTypeTLS,
		Data:       data,
	}
	hint := "check that your kube credentials may create and update Secrets in namespace " + ns
	if cur != nil && cur.Type != corev1.SecretTypeTLS {
		// The type of a Secret is immutable.
		if err := p.secrets().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return Fail(hint, "replacing Secret %s/%s: %v", ns, name, err)
		}
		cur = nil
	}
	if cur == nil {
		if _, err := p.secrets().Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return Fail(hint, "creating Secret %s/%s: %v", ns, name, err)
		}
		return nil
	}
	next := cur.DeepCopy()
	next.Type, next.Data = want.Type, want.Data
	if next.Labels == nil {
		next.Labels = map[string]string{}
	}
	next.Labels[ManagedByLabel] = "vaultctl"
	next.Annotations = ann
	if _, err := p.secrets().Update(ctx, next, metav1.UpdateOptions{}); err != nil {
		return Fail(hint, "updating Secret %s/%s: %v", ns, name, err)
	}
	return nil
}

// --- tls.mode secret ---

func (p *ServerTLS) checkUserSecret(ctx context.Context) (Diff, error) {
	cfg := p.In
	ns, name := cfg.Namespace, cfg.TLS.SecretName
	s, err := p.getSecret(ctx, name)
	if err != nil {
		return Diff{}, err
	}
	create := fmt.Sprintf("kubectl create secret generic %s -n %s --type=kubernetes.io/tls --from-file=tls.crt --from-file=tls.key --from-file=ca.crt", name, ns)
	if s == nil {
		return Diff{}, Fail("create it ("+create+") or set vault.tls.mode: generate", "TLS Secret %s/%s does not exist", ns, name)
	}
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, "ca.crt"} {
		if len(s.Data[k]) == 0 {
			return Diff{}, Fail("Vault needs tls.crt and tls.key for its listener and ca.crt for retry_join: "+create,
				"TLS Secret %s/%s has no %s", ns, name, k)
		}
	}
	cert, err := parseKeyPair(s)
	if err != nil {
		return Diff{}, Fail("put a PEM certificate and its private key into the Secret", "TLS Secret %s/%s: %v", ns, name, err)
	}
	dns, ips := p.sans()
	if missing := missingSANs(cert, dns, ips); len(missing) > 0 {
		return Diff{}, Fail("issue a certificate whose SANs include every name listed (vaultctl needs all of them: peers join by pod name, clients use the Services)",
			"certificate in Secret %s/%s does not cover %s", ns, name, strings.Join(missing, ", "))
	}
	now := p.now()
	if now.After(cert.NotAfter) {
		return Diff{}, Fail("renew the certificate in Secret "+ns+"/"+name, "certificate in Secret %s/%s expired on %s", ns, name, cert.NotAfter.UTC().Format(time.DateOnly))
	}
	d := Diff{Facts: []string{fmt.Sprintf("using Secret %s/%s: valid until %s, covers all %d names", ns, name, cert.NotAfter.UTC().Format(time.DateOnly), len(dns)+len(ips))}}
	if cert.NotAfter.Sub(now) < cfg.TLS.RenewBefore.Duration {
		d.Facts = append(d.Facts, fmt.Sprintf("warning: the certificate expires on %s; renew it, then SIGHUP each Vault pod", cert.NotAfter.UTC().Format(time.DateOnly)))
	}
	return d, nil
}

// --- tls.mode cert-manager ---

var certificateGVR = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}

func (p *ServerTLS) desiredCertificate() *unstructured.Unstructured {
	cfg := p.In
	kind, name, ok := strings.Cut(cfg.TLS.CertManagerIssuer, "/")
	if !ok {
		kind, name = "Issuer", cfg.TLS.CertManagerIssuer
	}
	dns, ips := p.sans()
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1",
		"kind":       "Certificate",
		"metadata": map[string]any{
			"name": cfg.TLS.SecretName, "namespace": cfg.Namespace,
			"labels": map[string]any{ManagedByLabel: "vaultctl"},
		},
		"spec": map[string]any{
			"secretName":  cfg.TLS.SecretName,
			"commonName":  charts.FullName + "." + cfg.Namespace + ".svc",
			"dnsNames":    toAny(dns),
			"ipAddresses": toAny(ips),
			"duration":    serverCertLifetime.String(),
			"renewBefore": cfg.TLS.RenewBefore.Duration.String(),
			"privateKey":  map[string]any{"algorithm": "ECDSA", "size": int64(256), "rotationPolicy": "Always"},
			"usages":      []any{"server auth", "client auth", "digital signature"},
			"issuerRef":   map[string]any{"kind": kind, "name": name, "group": "cert-manager.io"},
		},
	}}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func (p *ServerTLS) certManagerClient(ctx context.Context) (dynamic.ResourceInterface, error) {
	_, err := p.Kube.Discovery().ServerResourcesForGroupVersion("cert-manager.io/v1")
	if err != nil {
		return nil, Fail("install cert-manager (https://cert-manager.io/docs/installation/) or set vault.tls.mode: generate",
			"cert-manager is not installed: the cluster serves no cert-manager.io/v1 API (%v)", err)
	}
	if p.Dynamic == nil {
		return nil, errors.New("no dynamic Kubernetes client")
	}
	dc, err := p.Dynamic()
	if err != nil {
		return nil, err
	}
	return dc.Resource(certificateGVR).Namespace(p.In.Namespace), nil
}

func (p *ServerTLS) checkCertManager(ctx context.Context) (Diff, error) {
	rc, err := p.certManagerClient(ctx)
	if err != nil {
		return Diff{}, err
	}
	want := p.desiredCertificate()
	obj := "cert-manager Certificate " + want.GetNamespace() + "/" + want.GetName()
	cur, err := rc.Get(ctx, want.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return Diff{Changes: []Change{{Action: Create, Object: obj, Detail: "issuer " + p.In.TLS.CertManagerIssuer}}}, nil
	case err != nil:
		return Diff{}, Fail("check that your kube credentials may read certificates.cert-manager.io", "reading %s: %v", obj, err)
	}
	if !sameSpec(cur.Object["spec"], want.Object["spec"]) {
		return Diff{Changes: []Change{{Action: Update, Object: obj, Detail: "spec differs (names, issuer or lifetime)"}}}, nil
	}
	return Diff{Facts: []string{obj + " up to date; cert-manager issues and renews Secret " + p.In.TLS.SecretName}}, nil
}

// sameSpec compares the keys vaultctl sets; cert-manager may default others.
func sameSpec(cur, want any) bool {
	c, _ := cur.(map[string]any)
	w, _ := want.(map[string]any)
	for k, v := range w {
		if fmt.Sprint(c[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

func (p *ServerTLS) applyCertManager(ctx context.Context) error {
	rc, err := p.certManagerClient(ctx)
	if err != nil {
		return err
	}
	if err := ensureNamespace(ctx, p.Kube, p.In.Namespace); err != nil {
		return Fail("check that your kube credentials may create namespaces", "%v", err)
	}
	want := p.desiredCertificate()
	cur, err := rc.Get(ctx, want.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = rc.Create(ctx, want, metav1.CreateOptions{})
	} else if err == nil {
		cur.Object["spec"] = want.Object["spec"]
		_, err = rc.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return Fail("check that your kube credentials may create certificates.cert-manager.io", "writing Certificate: %v", err)
	}
	return nil
}

// --- x509 ---

// authority is a CA with its key, plus the bundle of CA certificates clients trust.
type authority struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	bundle []*x509.Certificate // current first
}

func (a *authority) secretData() map[string][]byte {
	keyPEM, err := pki.EncodeKey(a.key)
	if err != nil {
		panic(err) // an ECDSA P-256 key always marshals
	}
	return map[string][]byte{
		corev1.TLSCertKey:       pki.EncodeCerts(a.cert),
		corev1.TLSPrivateKeyKey: keyPEM,
		"ca.crt":                pemCerts(a.bundle),
	}
}

func newCA(namespace string, now time.Time) (*authority, error) {
	subject := pkix.Name{CommonName: "vaultctl Vault CA (" + namespace + ")", Organization: []string{"vaultctl"}}
	cert, key, err := pki.NewCA(subject, now.Add(-clockSkew), now.Add(caLifetime))
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key, bundle: []*x509.Certificate{cert}}, nil
}

func loadCA(s *corev1.Secret, now time.Time) (*authority, error) {
	cert, signer, err := pki.ParseKeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if errors.Is(err, pki.ErrNotKeyPair) {
		return nil, errors.New("tls.crt and tls.key are not a matching PEM certificate and key")
	}
	if err != nil {
		return nil, fmt.Errorf("tls.crt: %v", err)
	}
	key, ok := signer.(*ecdsa.PrivateKey)
	if !ok || !cert.IsCA {
		return nil, errors.New("tls.crt is not an ECDSA CA certificate")
	}
	// ca.crt carries the CAs agents still trust during a rotation: dropping an unreadable one
	// silently would make the next write forget the old CAs.
	bundle, err := parseCerts(s.Data["ca.crt"])
	if err != nil {
		return nil, fmt.Errorf("ca.crt (the CAs agents still trust) is unreadable: %v; repair it, or delete the key ca.crt to trust only the current CA", err)
	}
	return &authority{cert: cert, key: key, bundle: caBundle(now, cert, bundle...)}, nil
}

// caBundle is current followed by the other unexpired CA certificates, without duplicates.
func caBundle(now time.Time, current *x509.Certificate, others ...*x509.Certificate) []*x509.Certificate {
	return pki.Bundle(now, current, others...)
}

func issueServerCert(ca *authority, dns, ips []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	spec := pki.LeafSpec{
		Subject:     pkix.Name{CommonName: dns[0], Organization: []string{"vaultctl"}},
		DNSNames:    dns,
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(serverCertLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, ip := range ips {
		addr := net.ParseIP(ip)
		if addr == nil {
			return nil, nil, fmt.Errorf("server certificate: %q is not an IP address", ip)
		}
		spec.IPs = append(spec.IPs, addr)
	}
	cert, key, err := pki.Issue(spec, ca.cert, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("server certificate: %w", err)
	}
	if keyPEM, err = pki.EncodeKey(key); err != nil {
		return nil, nil, err
	}
	return pki.EncodeCerts(cert), keyPEM, nil
}

// parseKeyPair checks that tls.crt and tls.key match and returns the leaf certificate. Its
// errors never contain key material.
func parseKeyPair(s *corev1.Secret) (*x509.Certificate, error) {
	cert, _, err := pki.ParseKeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if errors.Is(err, pki.ErrNotKeyPair) {
		return nil, errors.New("tls.crt and tls.key are not a matching PEM certificate and private key")
	}
	if err != nil {
		return nil, fmt.Errorf("tls.crt: %v", err)
	}
	return cert, nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) { return pki.ParseCerts(data) }

func pemCerts(certs []*x509.Certificate) []byte { return pki.EncodeCerts(certs...) }

// missingSANs lists the wanted names and addresses the certificate does not cover. Wildcards
// count, as TLS clients honour them.
func missingSANs(c *x509.Certificate, dns, ips []string) []string {
	return pki.MissingSANs(c, dns, ips)
}

// sanDiff describes how the certificate's SANs differ from the wanted ones: "" when equal.
func sanDiff(c *x509.Certificate, dns, ips []string) string { return pki.SANDiff(c, dns, ips) }

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
