package phases

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/config"
)

func testConfig(mod func(*config.Config)) *config.Config {
	c := &config.Config{APIVersion: config.APIVersion, Kind: config.Kind}
	c.Vault.Seal.AWSKMS = config.AWSKMS{Region: "us-east-1", KMSKeyID: "alias/vault-unseal-key"}
	if mod != nil {
		mod(c)
	}
	config.ApplyDefaults(c)
	return c
}

// testNow is the TLS tests' clock: setClock moves it, tlsOf wires it into the phase.
var testNow time.Time

func setClock(t *testing.T, now time.Time) {
	t.Helper()
	testNow = now
	t.Cleanup(func() { testNow = time.Time{} })
}

func tlsNow() time.Time {
	if testNow.IsZero() {
		return time.Now()
	}
	return testNow
}

// tlsOf builds the tls phase from env, as a run does, on the test clock.
func tlsOf(env *Env) *ServerTLS {
	p := phaseNamed(env, "tls").(*ServerTLS)
	p.Clock = tlsNow
	return p
}

func mustApply(t *testing.T, p Phase) Diff {
	t.Helper()
	ctx := context.Background()
	d, err := p.Check(ctx)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if err := p.Apply(ctx, d); err != nil {
		t.Fatalf("apply: %v", err)
	}
	after, err := p.Check(ctx)
	if err != nil {
		t.Fatalf("check after apply: %v", err)
	}
	if !after.Empty() {
		t.Fatalf("still differs after apply: %v", after.Changes)
	}
	return d
}

func serverSecret(t *testing.T, env *Env) (*corev1.Secret, *x509.Certificate) {
	t.Helper()
	v := env.Config.Vault
	s, err := env.Kube.CoreV1().Secrets(v.Namespace).Get(context.Background(), v.TLS.SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseKeyPair(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func verifyFor(t *testing.T, leaf *x509.Certificate, bundle []byte, name string) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatal("ca.crt holds no certificate")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: tlsNow()}); err != nil {
		t.Errorf("certificate does not verify for %s: %v", name, err)
	}
}

func TestTLSGenerateCreatesCAAndServerCertificate(t *testing.T) {
	setClock(t, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	env := &Env{Config: testConfig(func(c *config.Config) { c.Vault.TLS.ExtraSANs = []string{"vault.example.com", "10.1.2.3"} }), Kube: fake.NewClientset()}
	p := tlsOf(env)
	d := mustApply(t, p)
	if len(d.Changes) != 2 || d.Changes[0].Action != Create || d.Changes[1].Action != Create {
		t.Fatalf("first check: %v", d.Changes)
	}

	s, leaf := serverSecret(t, env)
	if s.Type != corev1.SecretTypeTLS || s.Labels[ManagedByLabel] != "vaultctl" || len(s.Data["ca.crt"]) == 0 {
		t.Fatalf("server Secret: type %s labels %v keys %d", s.Type, s.Labels, len(s.Data))
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("want an ECDSA P-256 key, got %T", leaf.PublicKey)
	}
	for _, name := range []string{"vault-0.vault-internal", "vault-2.vault-internal.vault.svc.cluster.local", "vault-active.vault.svc",
		"vault-standby", "vault-internal.vault", "vault.vault.svc", "localhost", "vault.example.com"} {
		verifyFor(t, leaf, s.Data["ca.crt"], name)
	}
	if err := leaf.VerifyHostname("vault-3.vault-internal"); err == nil {
		t.Error("certificate covers a replica that does not exist")
	}
	ips := map[string]bool{}
	for _, ip := range leaf.IPAddresses {
		ips[ip.String()] = true
	}
	if !ips["127.0.0.1"] || !ips["10.1.2.3"] {
		t.Errorf("IP SANs: %v", leaf.IPAddresses)
	}
	ca, err := env.Kube.CoreV1().Secrets("vault").Get(context.Background(), CASecret, metav1.GetOptions{})
	if err != nil || ca.Type != corev1.SecretTypeTLS || ca.Labels[ManagedByLabel] != "vaultctl" {
		t.Fatalf("CA Secret: %v %v", ca, err)
	}
	if _, err := env.Kube.CoreV1().Namespaces().Get(context.Background(), "vault", metav1.GetOptions{}); err != nil {
		t.Errorf("namespace not created: %v", err)
	}

	// Facts and changes never carry key material.
	after, _ := p.Check(context.Background())
	blob, _ := json.Marshal(append([]any{d, after}, p.Inputs()))
	for _, bad := range []string{"PRIVATE KEY", string(s.Data["tls.key"][40:80]), string(ca.Data["tls.key"][40:80])} {
		if strings.Contains(string(blob), bad) {
			t.Errorf("diff or inputs contain key material %q", bad)
		}
	}
	if len(after.Facts) != 2 {
		t.Errorf("facts: %v", after.Facts)
	}
}

func TestTLSReissuesWhenReplicasChange(t *testing.T) {
	setClock(t, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	env := &Env{Config: testConfig(nil), Kube: fake.NewClientset()}
	p := tlsOf(env)
	mustApply(t, p)
	_, before := serverSecret(t, env)

	env.Config.Vault.Replicas = 5
	p = tlsOf(env)
	d := mustApply(t, p)
	if len(d.Changes) != 1 || d.Changes[0].Action != Update || !strings.Contains(d.Changes[0].Detail, "SANs differ: +vault-3.vault-internal") {
		t.Fatalf("want a re-issue for new SANs, got %v", d.Changes)
	}
	s, after := serverSecret(t, env)
	verifyFor(t, after, s.Data["ca.crt"], "vault-4.vault-internal")
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Error("certificate was not re-issued")
	}
	if err := after.CheckSignatureFrom(mustCA(t, env).cert); err != nil {
		t.Error("re-issued certificate must come from the same CA")
	}

	// Fewer replicas: names that no longer exist are removed too.
	env.Config.Vault.Replicas = 3
	p = tlsOf(env)
	d = mustApply(t, p)
	if !strings.Contains(d.Changes[0].Detail, "-vault-3.vault-internal") {
		t.Fatalf("want SANs removed, got %v", d.Changes)
	}
}

func mustCA(t *testing.T, env *Env) *authority {
	t.Helper()
	s, err := env.Kube.CoreV1().Secrets(env.Config.Vault.Namespace).Get(context.Background(), CASecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := loadCA(s, tlsNow())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestTLSRenewsBeforeExpiry(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	setClock(t, start)
	env := &Env{Config: testConfig(nil), Kube: fake.NewClientset()}
	p := tlsOf(env)
	mustApply(t, p)
	_, first := serverSecret(t, env)

	setClock(t, start.Add(300*24*time.Hour)) // 65 days left, renewBefore is 30
	if d, err := p.Check(context.Background()); err != nil || !d.Empty() {
		t.Fatalf("not due yet: %v %v", d.Changes, err)
	}
	setClock(t, start.Add(340*24*time.Hour)) // 25 days left
	d := mustApply(t, p)
	if len(d.Changes) != 1 || !strings.Contains(d.Changes[0].Detail, "renew: expires") {
		t.Fatalf("want a renewal, got %v", d.Changes)
	}
	_, second := serverSecret(t, env)
	if !second.NotAfter.After(first.NotAfter) {
		t.Error("renewed certificate does not last longer")
	}
}

func TestTLSRotatesCAKeepingTheOldOneTrusted(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	setClock(t, start)
	env := &Env{Config: testConfig(nil), Kube: fake.NewClientset()}
	p := tlsOf(env)
	mustApply(t, p)
	oldCA := mustCA(t, env).cert

	// One year and 29 days before the CA expires: a full server certificate no longer fits.
	setClock(t, oldCA.NotAfter.Add(-(serverCertLifetime + 29*24*time.Hour)))
	d := mustApply(t, p)
	if len(d.Changes) != 2 || !strings.Contains(d.Changes[0].Detail, "rotate") || !strings.Contains(d.Changes[1].Detail, "new CA") {
		t.Fatalf("want CA rotation and re-issue, got %v", d.Changes)
	}
	ca := mustCA(t, env)
	if ca.cert.Equal(oldCA) || len(ca.bundle) != 2 || !ca.bundle[1].Equal(oldCA) {
		t.Fatalf("bundle after rotation: %d certificates", len(ca.bundle))
	}
	s, leaf := serverSecret(t, env)
	bundle, _ := parseCerts(s.Data["ca.crt"])
	if len(bundle) != 2 {
		t.Fatalf("server ca.crt must hold new and old CA, has %d", len(bundle))
	}
	if err := leaf.CheckSignatureFrom(ca.cert); err != nil {
		t.Error("server certificate must come from the new CA")
	}

	// A renewal shortly before the old CA expires still ships both CAs...
	setClock(t, oldCA.NotAfter.Add(-10*24*time.Hour))
	mustApply(t, p)
	s, _ = serverSecret(t, env)
	if bundle, _ := parseCerts(s.Data["ca.crt"]); len(bundle) != 2 {
		t.Fatalf("ca.crt lost the old CA before it expired (%d certificates)", len(bundle))
	}
	// ...and once the old CA has expired it leaves the bundle, without a new certificate.
	setClock(t, oldCA.NotAfter.Add(time.Hour))
	d = mustApply(t, p)
	if len(d.Changes) != 1 || !strings.Contains(d.Changes[0].Object, "ca.crt") {
		t.Fatalf("want the bundle pruned, got %v", d.Changes)
	}
	s, _ = serverSecret(t, env)
	if bundle, _ := parseCerts(s.Data["ca.crt"]); len(bundle) != 1 {
		t.Errorf("expired CA still in ca.crt (%d certificates)", len(bundle))
	}
}

func TestTLSRefusesSecretsItDidNotCreate(t *testing.T) {
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vault-server-tls", Namespace: "vault"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte("x"), "tls.key": []byte("secret-key-bytes")}}
	env := &Env{Config: testConfig(nil), Kube: fake.NewClientset(foreign)}
	_, err := (tlsOf(env)).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not created by vaultctl") || !strings.Contains(asPhaseError("tls", err).Hint, "vault.tls.mode: secret") {
		t.Fatalf("want a refusal with a hint, got %v", err)
	}
	if strings.Contains(err.Error(), "secret-key-bytes") {
		t.Error("error leaks key material")
	}
}

func TestTLSSecretModeVerifiesOnly(t *testing.T) {
	setClock(t, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	cfg := testConfig(func(c *config.Config) { c.Vault.TLS.Mode = "secret"; c.Vault.TLS.SecretName = "my-tls" })
	env := &Env{Config: cfg, Kube: fake.NewClientset()}
	p := tlsOf(env)
	_, err := p.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(asPhaseError("tls", err).Hint, "kubectl create secret") {
		t.Fatalf("missing Secret: %v", err)
	}

	ca, err := newCA("vault", tlsNow())
	if err != nil {
		t.Fatal(err)
	}
	mk := func(dns []string) *corev1.Secret {
		crt, key, err := issueServerCert(ca, dns, []string{"127.0.0.1"}, tlsNow())
		if err != nil {
			t.Fatal(err)
		}
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "my-tls", Namespace: "vault"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": crt, "tls.key": key, "ca.crt": pemCerts(ca.bundle)}}
	}
	env.Kube = fake.NewClientset(mk([]string{"vault.vault.svc", "vault-0.vault-internal"}))
	p = tlsOf(env)
	_, err = p.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not cover") || !strings.Contains(err.Error(), "vault-1.vault-internal") {
		t.Fatalf("short SANs: %v", err)
	}

	dns, _ := ServerSANs("vault", 3, nil)
	env.Kube = fake.NewClientset(mk([]string{"*.vault-internal", "*.vault-internal.vault", "*.vault-internal.vault.svc", "*.vault-internal.vault.svc.cluster.local",
		"vault", "vault.vault", "vault.vault.svc", "vault.vault.svc.cluster.local", "vault-active", "vault-active.vault", "vault-active.vault.svc",
		"vault-active.vault.svc.cluster.local", "vault-standby", "vault-standby.vault", "vault-standby.vault.svc", "vault-standby.vault.svc.cluster.local",
		"vault-internal", "vault-internal.vault", "vault-internal.vault.svc", "vault-internal.vault.svc.cluster.local", "localhost"}))
	p = tlsOf(env)
	d, err := p.Check(context.Background())
	if err != nil || !d.Empty() || !strings.Contains(d.Facts[0], "covers all") {
		t.Fatalf("good Secret (wildcards, %d names): %v %v", len(dns), d, err)
	}
	if err := p.Apply(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

func TestTLSCertManager(t *testing.T) {
	cfg := testConfig(func(c *config.Config) {
		c.Vault.TLS.Mode = "cert-manager"
		c.Vault.TLS.CertManagerIssuer = "ClusterIssuer/internal-ca"
	})
	kube := fake.NewClientset()
	env := &Env{Config: cfg, Kube: kube}
	p := tlsOf(env)
	_, err := p.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cert-manager is not installed") || !strings.Contains(asPhaseError("tls", err).Hint, "install cert-manager") {
		t.Fatalf("no CRD: %v", err)
	}

	kube.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{
		{GroupVersion: "cert-manager.io/v1", APIResources: []metav1.APIResource{{Name: "certificates", Kind: "Certificate", Namespaced: true}}},
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{certificateGVR: "CertificateList"})
	env.Dynamic = func() (dynamic.Interface, error) { return dyn, nil }

	d := mustApply(t, p)
	if len(d.Changes) != 1 || d.Changes[0].Action != Create {
		t.Fatalf("want a Certificate created: %v", d.Changes)
	}
	got, err := dyn.Resource(certificateGVR).Namespace("vault").Get(context.Background(), "vault-server-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := got.Object["spec"].(map[string]any)
	issuer := spec["issuerRef"].(map[string]any)
	wantDNS, _ := ServerSANs("vault", 3, nil)
	if issuer["kind"] != "ClusterIssuer" || issuer["name"] != "internal-ca" || len(spec["dnsNames"].([]any)) != len(wantDNS) {
		t.Errorf("Certificate spec: %v", spec)
	}

	cfg.Vault.Replicas = 5
	p = tlsOf(env)
	d = mustApply(t, p)
	if len(d.Changes) != 1 || d.Changes[0].Action != Update {
		t.Fatalf("want the Certificate updated for 5 replicas: %v", d.Changes)
	}
}

func TestTLSExternalIsANoOp(t *testing.T) {
	env := &Env{Config: testConfig(func(c *config.Config) { c.Vault.Mode = config.ModeExternal; c.Vault.Address = "https://v.example:8200" })}
	d, err := (tlsOf(env)).Check(context.Background())
	if err != nil || !d.Empty() || !strings.Contains(d.Facts[0], "external Vault") {
		t.Fatalf("external: %v %v", d, err)
	}
}

func TestTLSReportsPodsServingAnOldCertificate(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	setClock(t, start)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "vault-0", Namespace: "vault", Labels: map[string]string{
		"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": charts.ServerRelease, "component": "server"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &metav1.Time{Time: start.Add(-time.Hour)}}}
	env := &Env{Config: testConfig(nil), Kube: fake.NewClientset(pod)}
	p := tlsOf(env)
	mustApply(t, p)
	d, _ := p.Check(context.Background())
	if !d.Empty() || !strings.Contains(strings.Join(d.Facts, "\n"), "vault-0 still serve the previous one until they get SIGHUP") {
		t.Fatalf("facts: %v", d.Facts)
	}
}

func TestServerSANs(t *testing.T) {
	dns, ips := ServerSANs("ns1", 2, []string{"Vault.Example.com", "::1", ""})
	if len(ips) != 2 || ips[0] != "127.0.0.1" || ips[1] != "::1" {
		t.Errorf("ips: %v", ips)
	}
	want := []string{"vault-0.vault-internal", "vault-1.vault-internal.ns1.svc.cluster.local", "vault-active.ns1.svc", "vault.example.com", "localhost", "vault"}
	for _, w := range want {
		found := false
		for _, d := range dns {
			found = found || d == w
		}
		if !found {
			t.Errorf("missing %s in %v", w, dns)
		}
	}
	if len(dns) != 2*4+4*4+2 {
		t.Errorf("want %d DNS names, got %d", 2*4+4*4+2, len(dns))
	}
}

func TestTLSRefusesACorruptCABundleInsteadOfDroppingOldCAs(t *testing.T) {
	setClock(t, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	env := &Env{Config: testConfig(nil), Kube: fake.NewClientset()}
	mustApply(t, tlsOf(env))
	s, _ := env.Kube.CoreV1().Secrets("vault").Get(context.Background(), CASecret, metav1.GetOptions{})
	s.Data["ca.crt"] = append(s.Data["ca.crt"], []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")...)
	_, _ = env.Kube.CoreV1().Secrets("vault").Update(context.Background(), s, metav1.UpdateOptions{})
	_, err := tlsOf(env).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "ca.crt (the CAs agents still trust) is unreadable") {
		t.Fatalf("want the corrupt bundle reported, got %v", err)
	}
}
