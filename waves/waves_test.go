package waves

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/pki"
	"github.com/vaultctl/vaultctl/manifests"
	"github.com/vaultctl/vaultctl/migrate"
)

const vaultNS = "vault"

func testConfig(ws ...config.Wave) *config.Config {
	c := &config.Config{}
	c.Vault.Namespace = vaultNS
	c.Injector.FailurePolicy = "Ignore"
	c.KubernetesAuth.Path = "kubernetes"
	c.KV = []config.KVMount{{Path: "secret"}}
	c.Migration.KVPath = "{mount}/{namespace}/{secret}"
	c.Migration.Waves = ws
	return c
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func verifiedJournal(t *testing.T, ctx context.Context, cs *fake.Clientset, ns string, workloads ...string) {
	t.Helper()
	at := time.Now().Add(-48 * time.Hour)
	js := migrate.JournalStore{Kube: cs, Namespace: ns, Now: func() time.Time { return at }}
	for _, w := range workloads {
		id, err := migrate.ParseWorkload(w)
		if err != nil {
			t.Fatal(err)
		}
		if err := js.PutWorkload(ctx, id, migrate.WorkloadRecord{State: migrate.WorkloadVerified}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNamespaceState(t *testing.T) {
	rec := func(s migrate.WorkloadState) migrate.WorkloadRecord { return migrate.WorkloadRecord{State: s} }
	cases := []struct {
		name      string
		obs       nsObservation
		workloads []string
		want      NamespaceState
	}{
		{"missing namespace", nsObservation{}, nil, NotStarted},
		{"no journal", nsObservation{exists: true, journal: &migrate.Journal{}}, nil, NotStarted},
		{"copied only", nsObservation{exists: true, hasWork: true, journal: &migrate.Journal{
			Secrets: map[string]migrate.SecretRecord{"db": {State: migrate.SecretCopied}}}}, nil, Planned},
		{"one of two patched", nsObservation{exists: true, journal: &migrate.Journal{Workloads: map[string]migrate.WorkloadRecord{
			"Deployment/a": rec(migrate.WorkloadVerified), "Deployment/b": rec(migrate.WorkloadProved)}}}, nil, Migrated},
		{"all verified but the plan has work", nsObservation{exists: true, hasWork: true, journal: &migrate.Journal{Workloads: map[string]migrate.WorkloadRecord{
			"Deployment/a": rec(migrate.WorkloadVerified)}}}, nil, Migrated},
		{"all verified", nsObservation{exists: true, journal: &migrate.Journal{Workloads: map[string]migrate.WorkloadRecord{
			"Deployment/a": rec(migrate.WorkloadVerified)}}}, nil, Verified},
		{"pruned", nsObservation{exists: true, journal: &migrate.Journal{Workloads: map[string]migrate.WorkloadRecord{
			"Deployment/a": rec(migrate.WorkloadVerified)}, Secrets: map[string]migrate.SecretRecord{"db": {State: migrate.SecretPruned}}}}, nil, Pruned},
		{"rolled back", nsObservation{exists: true, journal: &migrate.Journal{Workloads: map[string]migrate.WorkloadRecord{
			"Deployment/a": rec(migrate.WorkloadRolledBack)}}}, nil, RolledBack},
		// A pilot wave counts only its workloads: the rest of the namespace may still have work.
		{"pilot workload verified", nsObservation{exists: true, hasWork: true, journal: &migrate.Journal{Workloads: map[string]migrate.WorkloadRecord{
			"Deployment/wiki": rec(migrate.WorkloadVerified)}}}, []string{"deploy/wiki"}, Verified},
		{"pilot workload not reached", nsObservation{exists: true, journal: &migrate.Journal{Workloads: map[string]migrate.WorkloadRecord{
			"Deployment/other": rec(migrate.WorkloadVerified)}}}, []string{"Deployment/wiki"}, Planned},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, detail := tc.obs.state(tc.workloads); got != tc.want {
				t.Errorf("state = %s (%s), want %s", got, detail, tc.want)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		w    config.Wave
		want Kind
	}{
		{config.Wave{Namespaces: []string{"a"}}, KindNamespaces},
		{config.Wave{Workloads: []string{"a/Deployment/b"}}, KindNamespaces},
		{config.Wave{Gates: []string{"previous-wave-complete", "admission-policy"}}, KindGuard},
		{config.Wave{Gates: []string{"dynamic-db-credentials"}}, KindGates},
	} {
		if got := KindOf(tc.w); got != tc.want {
			t.Errorf("KindOf(%+v) = %s, want %s", tc.w, got, tc.want)
		}
	}
}

func caPEM(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCABundleProblem(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"valid", caPEM(t, now.Add(time.Hour)), ""},
		{"empty", nil, "is empty"},
		{"expired", caPEM(t, now.Add(-time.Hour)), "expired"},
		{"not PEM", []byte("hello"), "no PEM certificate"},
	} {
		if got := caBundleProblem(tc.b, now); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func injectorObjects(t *testing.T, available int32, ca []byte, fp admissionregistrationv1.FailurePolicyType) []runtime.Object {
	two := int32(2)
	sel := map[string]string{"app.kubernetes.io/name": "vault-agent-injector"}
	return []runtime.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "vault-agent-injector-svc", Namespace: vaultNS}, Spec: corev1.ServiceSpec{Selector: sel,
			Ports: []corev1.ServicePort{{Port: 443, TargetPort: intstr.FromInt(8080)}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "vault-agent-injector-0", Namespace: vaultNS, Labels: sel}, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "vault-agent-injector", Namespace: vaultNS},
			Spec: appsv1.DeploymentSpec{Replicas: &two}, Status: appsv1.DeploymentStatus{AvailableReplicas: available}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "vault-agent-injector-cfg"},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "vault.hashicorp.com", FailurePolicy: &fp,
				ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: ca,
					Service: &admissionregistrationv1.ServiceReference{Namespace: vaultNS, Name: "vault-agent-injector-svc"}}}}},
	}
}

func TestInjectorHealthy(t *testing.T) {
	ctx := context.Background()
	ca := caPEM(t, time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name string
		objs []runtime.Object
		ok   bool
		want string
	}{
		{"healthy", injectorObjects(t, 2, ca, "Ignore"), true, "injector: 2/2 available, webhook vault-agent-injector-cfg caBundle valid (serving certificate not reachable to verify), failurePolicy Ignore"},
		{"one pod down", injectorObjects(t, 1, ca, "Ignore"), false, "injector: 1/2 available"},
		{"no caBundle", injectorObjects(t, 2, nil, "Ignore"), false, "caBundle is empty"},
		{"failurePolicy drifted", injectorObjects(t, 2, ca, "Fail"), false, "failurePolicy Fail, the config says Ignore"},
		{"not installed", nil, false, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ge := &gateEval{o: &Observer{Kube: fake.NewClientset(tc.objs...), Config: testConfig(), DialInjector: unreachable}}
			r := ge.injectorHealthy(ctx)
			if r.OK != tc.ok || !strings.Contains(r.Evidence, tc.want) {
				t.Errorf("got %+v, want ok=%t with %q", r, tc.ok, tc.want)
			}
			if !r.OK && r.Fix == "" {
				t.Error("a failing gate says what to do")
			}
		})
	}
}

// fakeVault is the part of Vault the dynamic-db gate reads.
type fakeVault struct {
	conns, dbRoles map[string]bool
	roles          map[string][]string // auth role -> policies
	policies       map[string]string
}

func (f *fakeVault) ReadDBConnection(_ context.Context, mount, name string) (map[string]any, error) {
	if f.conns[mount+"/"+name] {
		return map[string]any{"plugin_name": "postgresql-database-plugin"}, nil
	}
	return nil, nil
}
func (f *fakeVault) ReadDBRole(_ context.Context, mount, name string) (map[string]any, error) {
	if f.dbRoles[mount+"/"+name] {
		return map[string]any{"db_name": "x"}, nil
	}
	return nil, nil
}
func (f *fakeVault) ListRoles(context.Context, string) ([]string, error) {
	var out []string
	for r := range f.roles {
		out = append(out, r)
	}
	return out, nil
}
func (f *fakeVault) ReadRole(_ context.Context, _, name string) (map[string]any, error) {
	var ps []any
	for _, p := range f.roles[name] {
		ps = append(ps, p)
	}
	return map[string]any{"token_policies": ps}, nil
}
func (f *fakeVault) ReadPolicy(_ context.Context, name string) (string, bool, error) {
	h, ok := f.policies[name]
	return h, ok, nil
}

func TestDynamicDBCredentials(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()
	cfg.Databases = []config.Database{{Name: "orders", Mount: "database", Roles: []config.DatabaseRole{{Name: "orders-rw"}}}}
	full := func() *fakeVault {
		return &fakeVault{
			conns: map[string]bool{"database/orders": true}, dbRoles: map[string]bool{"database/orders-rw": true},
			roles:    map[string][]string{"orders-app": {"default", "orders-db"}},
			policies: map[string]string{"orders-db": "path \"database/creds/orders-rw\" {\n  capabilities = [\"read\"]\n}\n"},
		}
	}
	ok := full()
	noRole := full()
	delete(noRole.dbRoles, "database/orders-rw")
	noGrant := full()
	noGrant.policies["orders-db"] = `path "database/creds/other" { capabilities = ["read"] }`
	glob := full()
	glob.policies["orders-db"] = `path "database/creds/*" { capabilities = ["read", "list"] }`
	for _, tc := range []struct {
		name string
		v    VaultReader
		ok   bool
		want string
	}{
		{"connection, role and a reader", ok, true, "Kubernetes-auth role orders-app may read database/creds/orders-rw"},
		{"glob grant", glob, true, "may read database/creds/orders-rw"},
		{"role missing", noRole, false, "missing in Vault: database/roles/orders-rw"},
		{"nobody may read", noGrant, false, "no Kubernetes-auth role's policy grants read on database/creds/orders-rw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ge := &gateEval{o: &Observer{Config: cfg, Vault: tc.v}}
			r := ge.dynamicDB(ctx, config.GateDynamicDBCredentials)
			if r.OK != tc.ok || !strings.Contains(r.Evidence, tc.want) {
				t.Errorf("got %+v, want ok=%t with %q", r, tc.ok, tc.want)
			}
		})
	}
	r := (&gateEval{o: &Observer{Config: cfg, VaultErr: errors.New("permission denied")}}).dynamicDB(ctx, "dynamic-db-credentials")
	if r.OK || !strings.Contains(r.Evidence, "permission denied") {
		t.Errorf("without Vault: %+v", r)
	}
}

func TestEnsureAdmissionPolicyIsIdempotent(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	changed, err := EnsureAdmissionPolicy(ctx, cs)
	if err != nil || len(changed) != 2 {
		t.Fatalf("first install: %v %v, want the policy and binding created", changed, err)
	}
	if p := admissionProblem(ctx, cs); p != "" {
		t.Fatalf("after install: %s", p)
	}
	if changed, err := EnsureAdmissionPolicy(ctx, cs); err != nil || len(changed) != 0 {
		t.Fatalf("second install changed %v (%v), want nothing", changed, err)
	}
	// Someone loosened the binding: it is put back.
	b, _ := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, "vaultctl-deny-raw-secrets", metav1.GetOptions{})
	b.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn}
	cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Update(ctx, b, metav1.UpdateOptions{})
	if p := admissionProblem(ctx, cs); !strings.Contains(p, "differs") {
		t.Errorf("a loosened binding: %q, want it reported", p)
	}
	if changed, err := EnsureAdmissionPolicy(ctx, cs); err != nil || len(changed) != 1 {
		t.Errorf("repair changed %v (%v), want the binding updated", changed, err)
	}
}

// A plan of pilot, guard and staging over a fake cluster: the guard is blocked by a raw Secret
// in the pilot's namespace, then installs the policy and labels the namespace.
func TestRunGuardWave(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(
		config.Wave{Week: 1, Name: "pilot", Workloads: []string{"tools/Deployment/wiki"}},
		config.Wave{Week: 2, Name: "ci-guard", Gates: []string{"previous-wave-complete", "check-passing", "admission-policy"}},
		config.Wave{Week: 3, Name: "staging", Namespaces: []string{"staging"}, Gates: []string{"previous-wave-complete", "admission-policy", "healthy-for: 24h"}},
	)
	cs := fake.NewClientset(namespace(vaultNS, nil), namespace("tools", nil), namespace("staging", nil),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "leak", Namespace: "tools"}, Type: corev1.SecretTypeOpaque},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "wiki", Namespace: "tools"}, Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"vault.hashicorp.com/agent-inject": "true", "vault.hashicorp.com/role": "tools-wiki"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "wiki", Image: "wiki"}}},
		}}, Status: appsv1.DeploymentStatus{ReadyReplicas: 1, UpdatedReplicas: 1}})
	verifiedJournal(t, ctx, cs, "tools", "Deployment/wiki")
	var migrated []string
	r := &Runner{Observer: Observer{Kube: cs, Config: cfg}, Migrate: func(_ context.Context, ns string, wl []string) ([]string, error) {
		migrated = append(migrated, ns)
		return nil, nil
	}}

	st, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Next != "ci-guard" || !st.Waves[0].Complete {
		t.Fatalf("next = %q, pilot %+v; want the pilot complete from its journal", st.Next, st.Waves[0])
	}
	res, err := r.Run(ctx, "", false)
	if !errors.Is(err, ErrBlocked) || len(res.Blocked) != 1 || res.Blocked[0].Gate != "check-passing" || !strings.Contains(res.Blocked[0].Evidence, "tools/Secret/leak") {
		t.Fatalf("guard with a raw Secret: %v, blocked %+v", err, res.Blocked)
	}
	if p := admissionProblem(ctx, cs); !strings.Contains(p, "not installed") {
		t.Errorf("a blocked wave installed something: %q", p)
	}
	cs.CoreV1().Secrets("tools").Delete(ctx, "leak", metav1.DeleteOptions{})

	plan, err := r.Run(ctx, "", true)
	if err != nil || plan.Wave != "ci-guard" || len(plan.Steps) != 2 {
		t.Fatalf("plan: %v %+v, want the policy and one label", err, plan)
	}
	res, err = r.Run(ctx, "", false)
	if err != nil || res.After == nil || !res.After.Complete {
		t.Fatalf("guard run: %v %+v", err, res)
	}
	ns, _ := cs.CoreV1().Namespaces().Get(ctx, "tools", metav1.GetOptions{})
	if ns.Labels[manifests.MigratedLabel] != "true" {
		t.Error("the pilot's namespace is not labelled after the guard wave")
	}
	if res.After.Finished == nil {
		t.Error("the guard wave's finish is not recorded")
	}
	// Re-running the complete guard wave changes nothing.
	again, err := r.Run(ctx, "ci-guard", false)
	if err != nil || !again.AlreadyComplete {
		t.Fatalf("second guard run: %v %+v", err, again)
	}
	for _, s := range again.Steps {
		if s.Done != "" {
			t.Errorf("second guard run changed %s: %s", s.What, s.Done)
		}
	}

	// Staging: healthy-for holds (the pilot verified 48h ago, Ready), so it migrates and, the
	// guard being on, labels staging.
	res, err = r.Run(ctx, "", false)
	if res != nil && len(res.Blocked) > 0 {
		t.Fatalf("staging blocked: %+v", res.Blocked)
	}
	if len(migrated) != 1 || migrated[0] != "staging" {
		t.Fatalf("staging run migrated %v (%v)", migrated, err)
	}
	// The fake Migrate writes no journal: the wave ran but is not complete, and says so.
	if err == nil || !strings.Contains(err.Error(), "not complete") {
		t.Errorf("staging without a journal: %v, want not complete", err)
	}
	ns, _ = cs.CoreV1().Namespaces().Get(ctx, "staging", metav1.GetOptions{})
	if ns.Labels[manifests.MigratedLabel] != "true" {
		t.Error("staging not labelled while the guard is on")
	}
}

func TestUnknownWave(t *testing.T) {
	r := &Runner{Observer: Observer{Kube: fake.NewClientset(), Config: testConfig(config.Wave{Week: 1, Name: "pilot", Namespaces: []string{"a"}})}}
	if _, err := r.Run(context.Background(), "pilt", true); !errors.Is(err, ErrUnknownWave) || !strings.Contains(err.Error(), "pilot") {
		t.Errorf("got %v", err)
	}
}

// healthy-for counts from the journal's verification time, and wants the workload Ready now.
func TestHealthyFor(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(
		config.Wave{Week: 1, Name: "staging", Namespaces: []string{"staging"}},
		config.Wave{Week: 2, Name: "production", Namespaces: []string{"production"}, Gates: []string{"healthy-for: 72h"}},
	)
	for _, tc := range []struct {
		name  string
		ready int32
		ok    bool
		want  string
	}{
		{"verified 48h ago, need 72h", 1, false, "staging/Deployment/api verified 48h0m0s ago"},
		{"not ready", 0, false, "has 0/1 ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(namespace("staging", nil), &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "staging"},
				Status: appsv1.DeploymentStatus{ReadyReplicas: tc.ready, UpdatedReplicas: tc.ready}})
			verifiedJournal(t, ctx, cs, "staging", "Deployment/api")
			ge := &gateEval{o: &Observer{Kube: cs, Config: cfg}, obs: &observation{ns: map[string]*nsObservation{}}}
			r := ge.healthyFor(ctx, 1, 72*time.Hour, "healthy-for: 72h")
			if r.OK != tc.ok || !strings.Contains(r.Evidence, tc.want) || r.Fix == "" {
				t.Errorf("got %+v, want ok=%t with %q", r, tc.ok, tc.want)
			}
			ge.o.Now = func() time.Time { return time.Now().Add(25 * time.Hour) }
			if r := ge.healthyFor(ctx, 1, 72*time.Hour, "healthy-for: 72h"); r.OK != (tc.ready == 1) {
				t.Errorf("73h after verification: %+v", r)
			}
		})
	}
}

func unreachable(context.Context, string, string, int) (net.Conn, error) {
	return nil, errors.New("connection refused")
}

// When an injector pod answers, its serving certificate must verify against the caBundle for
// the Service's name, as the API server checks it.
func TestInjectorServingCertificate(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	ca, caKey, err := pki.NewCA(pkix.Name{CommonName: "injector ca"}, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	leaf, key, err := pki.Issue(pki.LeafSpec{DNSNames: []string{"vault-agent-injector-svc.vault.svc"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	var dialed string
	dial := func(ctx context.Context, ns, pod string, port int) (net.Conn, error) {
		dialed = fmt.Sprintf("%s/%s:%d", ns, pod, port)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
	other, _, _ := pki.NewCA(pkix.Name{CommonName: "stale ca"}, now.Add(-time.Hour), now.Add(time.Hour))
	// A forward that accepts and then breaks off (what a node that cannot forward does) says
	// nothing about the certificate.
	broken := func(context.Context, string, string, int) (net.Conn, error) {
		a, b := net.Pipe()
		b.Close()
		return a, nil
	}
	ge := &gateEval{o: &Observer{Kube: fake.NewClientset(injectorObjects(t, 2, pki.EncodeCerts(ca), "Ignore")...), Config: testConfig(), DialInjector: broken}}
	if r := ge.injectorHealthy(ctx); !r.OK || !strings.Contains(r.Evidence, "not reachable to verify") {
		t.Errorf("a broken forward: %+v, want the gate to rest on the caBundle", r)
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
		ok     bool
		want   string
	}{
		{"current CA", pki.EncodeCerts(ca), true, "caBundle valid and verifies the serving certificate"},
		{"stale CA", pki.EncodeCerts(other), false, "serving certificate does not verify against the caBundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ge := &gateEval{o: &Observer{Kube: fake.NewClientset(injectorObjects(t, 2, tc.bundle, "Ignore")...), Config: testConfig(), DialInjector: dial}}
			r := ge.injectorHealthy(ctx)
			if r.OK != tc.ok || !strings.Contains(r.Evidence, tc.want) {
				t.Errorf("got %+v, want ok=%t with %q", r, tc.ok, tc.want)
			}
			if dialed != "vault/vault-agent-injector-0:8080" {
				t.Errorf("dialed %q, want the injector pod's target port", dialed)
			}
		})
	}
}

// The guard labels only the namespaces of complete waves: a label on a namespace still to
// migrate would deny the Secrets its workloads still need.
func TestGuardLabelsOnlyCompleteWaves(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(
		config.Wave{Week: 1, Name: "pilot", Namespaces: []string{"done"}},
		config.Wave{Week: 2, Name: "early", Namespaces: []string{"todo"}},
		config.Wave{Week: 3, Name: "ci-guard", Gates: []string{"admission-policy"}},
	)
	cs := fake.NewClientset(namespace("done", nil), namespace("todo", nil))
	verifiedJournal(t, ctx, cs, "done")
	migrate.JournalStore{Kube: cs, Namespace: "done"}.PutSecret(ctx, "unread", migrate.SecretRecord{State: migrate.SecretCopied})
	r := &Runner{Observer: Observer{Kube: cs, Config: cfg}}
	if _, err := r.Run(ctx, "ci-guard", false); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []struct {
		name string
		want bool
	}{{"done", true}, {"todo", false}} {
		n, _ := cs.CoreV1().Namespaces().Get(ctx, ns.name, metav1.GetOptions{})
		if got := n.Labels[manifests.MigratedLabel] == "true"; got != ns.want {
			t.Errorf("namespace %s labelled %t, want %t", ns.name, got, ns.want)
		}
	}
}
