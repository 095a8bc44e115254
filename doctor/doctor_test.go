package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/networkpolicy"
)

func testCA(t *testing.T, cn string) string {
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
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// rig is a cluster with namespace "app" (ServiceAccount web, the cluster CA published) and a
// Vault with a KV v2 mount, the kubernetes auth method configured with that CA, policy web on
// secret/data/app/db and role web bound to web in app.
type rig struct {
	t     *testing.T
	kube  *fake.Clientset
	vault vault.Client
	ca    string
}

func newRig(t *testing.T, objs ...runtime.Object) *rig {
	t.Helper()
	ca := testCA(t, "cluster-ca")
	base := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"vault-injection": "on"}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "app"}, Data: map[string]string{"ca.crt": ca}},
	}
	cs := fake.NewSimpleClientset(append(base, objs...)...)
	v := vault.NewFakeServer().RootClient()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(v.EnableMount(ctx, "secret", vault.MountInfo{Type: "kv", Options: map[string]string{"version": "2"}}))
	must(v.EnableAuthMethod(ctx, "kubernetes", vault.MountInfo{Type: "kubernetes"}))
	must(v.WriteAuthConfig(ctx, "kubernetes", map[string]any{"kubernetes_host": "https://k8s", "kubernetes_ca_cert": ca}))
	must(v.WritePolicy(ctx, "web", `path "secret/data/app/db" { capabilities = ["read"] }`))
	must(v.WriteRole(ctx, "kubernetes", "web", map[string]any{
		"bound_service_account_names": []string{"web"}, "bound_service_account_namespaces": []string{"app"}, "token_policies": []string{"web"},
	}))
	return &rig{t: t, kube: cs, vault: v, ca: ca}
}

func (r *rig) run(target Target) *Report {
	r.t.Helper()
	d := &Doctor{Kube: r.kube, Vault: r.vault, Config: &config.Config{Vault: config.Vault{Mode: config.ModeExternal, Namespace: "vault"},
		KubernetesAuth: config.KubernetesAuth{Path: "kubernetes", TokenReviewer: config.ClientJWT}}}
	rep, err := d.Run(context.Background(), target)
	if err != nil {
		r.t.Fatal(err)
	}
	return rep
}

// injectedPod is a pod the injector mutated, running as sa, reading path.
func injectedPod(name, sa, path string, ann map[string]string) *corev1.Pod {
	a := map[string]string{annInject: "true", annStatus: "injected", annRole: "web", annSecretPrefix + "db": path}
	for k, v := range ann {
		a[k] = v
	}
	mount := []corev1.VolumeMount{{Name: "kube-api-access-x", MountPath: tokenMountPath}}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "app", Annotations: a},
		Spec: corev1.PodSpec{ServiceAccountName: sa,
			InitContainers: []corev1.Container{{Name: initContainer, VolumeMounts: mount}},
			Containers:     []corev1.Container{{Name: "app"}, {Name: sidecarContainer, VolumeMounts: mount}},
			Volumes: []corev1.Volume{{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			InitContainerStatuses: []corev1.ContainerStatus{{Name: initContainer, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}},
			ContainerStatuses:     []corev1.ContainerStatus{{Name: "app", Ready: true}, {Name: sidecarContainer, Ready: true}}},
	}
}

func codes(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, string(f.Severity)+":"+f.Code)
	}
	return out
}

func find(t *testing.T, r *Report, code string) Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Code == code {
			if f.Fix == "" || f.Message == "" || len(f.Evidence) == 0 {
				t.Errorf("finding %s lacks message, evidence or fix: %+v", code, f)
			}
			return f
		}
	}
	t.Fatalf("no %s finding; got %v", code, codes(r))
	return Finding{}
}

func evidenceHas(t *testing.T, f Finding, want ...string) {
	t.Helper()
	all := strings.Join(f.Evidence, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("%s evidence lacks %q:\n%s", f.Code, w, all)
		}
	}
}

func TestHealthyPodHasNoProblem(t *testing.T) {
	r := newRig(t, injectedPod("web-1", "web", "secret/data/app/db", nil))
	rep := r.run(Target{Namespace: "app"})
	if rep.Problems() != 0 {
		t.Fatalf("healthy pod: %v", codes(rep))
	}
	if len(rep.Pods) != 1 || rep.Pods[0] != "app/web-1" {
		t.Errorf("pods: %v", rep.Pods)
	}
	// The only note: the sidecar re-renders but runs no command.
	if got := codes(rep); len(got) != 1 || got[0] != "info:"+CodeNoReloadCommand {
		t.Errorf("notes: %v", got)
	}
}

func TestServiceAccountAndNamespaceNotBound(t *testing.T) {
	p := injectedPod("web-1", "other", "secret/data/app/db", nil)
	p.Namespace = "app"
	r := newRig(t, p)
	rep := r.run(Target{Namespace: "app", Name: "web-1"})
	f := find(t, rep, CodeSANotBound)
	evidenceHas(t, f, "spec.serviceAccountName: other", "bound_service_account_names: [web]")
	if !strings.Contains(f.Fix, "bound_service_account_names=web,other") {
		t.Errorf("fix: %s", f.Fix)
	}
	if err := r.vault.WriteRole(context.Background(), "kubernetes", "web", map[string]any{
		"bound_service_account_names": []string{"*"}, "bound_service_account_namespaces": []string{"prod-*"}, "token_policies": []string{"web"},
	}); err != nil {
		t.Fatal(err)
	}
	rep = r.run(Target{Namespace: "app", Name: "web-1"})
	find(t, rep, CodeNamespaceNotBound)
	for _, f := range rep.Findings {
		if f.Code == CodeSANotBound {
			t.Errorf("* binds every ServiceAccount: %+v", f)
		}
	}
}

func TestRoleMissingAndConfigRoleFix(t *testing.T) {
	r := newRig(t, injectedPod("web-1", "web", "secret/data/app/db", map[string]string{annRole: "nope"}))
	rep := r.run(Target{Namespace: "app"})
	f := find(t, rep, CodeRoleMissing)
	evidenceHas(t, f, `vault.hashicorp.com/role: "nope"`, "no such role")
}

func TestAudienceMismatch(t *testing.T) {
	p := injectedPod("web-1", "web", "secret/data/app/db", nil)
	p.Spec.Volumes[0].Projected.Sources[0].ServiceAccountToken.Audience = "https://kubernetes.default.svc"
	r := newRig(t, p)
	if err := r.vault.WriteRole(context.Background(), "kubernetes", "web", map[string]any{
		"bound_service_account_names": []string{"web"}, "bound_service_account_namespaces": []string{"app"}, "token_policies": []string{"web"}, "audience": "vault",
	}); err != nil {
		t.Fatal(err)
	}
	f := find(t, r.run(Target{Namespace: "app"}), CodeAudience)
	evidenceHas(t, f, `audience: "vault"`, `"https://kubernetes.default.svc"`)
	if !strings.Contains(f.Fix, "audience=https://kubernetes.default.svc") {
		t.Errorf("fix: %s", f.Fix)
	}
}

func TestStaleCA(t *testing.T) {
	r := newRig(t, injectedPod("web-1", "web", "secret/data/app/db", nil))
	if err := r.vault.WriteAuthConfig(context.Background(), "kubernetes", map[string]any{"kubernetes_host": "https://k8s", "kubernetes_ca_cert": testCA(t, "old-ca")}); err != nil {
		t.Fatal(err)
	}
	f := find(t, r.run(Target{Namespace: "app"}), CodeStaleCA)
	evidenceHas(t, f, "kubernetes_ca_cert: CN=old-ca", "cluster CA (ConfigMap app/kube-root-ca.crt): CN=cluster-ca")
	if !strings.Contains(f.Fix, "vaultctl apply --only kubernetes-auth") {
		t.Errorf("fix: %s", f.Fix)
	}
}

func TestPolicyWithoutDataSegmentAndWrongMount(t *testing.T) {
	r := newRig(t,
		injectedPod("web-1", "web", "secret/app/db", nil),  // annotation without data/: the agent adds it on KV v2
		injectedPod("web-2", "web", "secrets/app/db", nil), // no such mount
		injectedPod("web-3", "web", "secret/data/app/other", nil))
	if err := r.vault.WritePolicy(context.Background(), "web", `path "secret/app/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	rep := r.run(Target{Namespace: "app", Name: "web-1"})
	f := find(t, rep, CodeDataSegment)
	evidenceHas(t, f, "API path secret/data/app/db", "policies: default, web")
	if !strings.Contains(f.Fix, `path "secret/data/app/db"`) {
		t.Errorf("fix: %s", f.Fix)
	}
	f = find(t, r.run(Target{Namespace: "app", Name: "web-2"}), CodeWrongMount)
	evidenceHas(t, f, "secret/")
	if err := r.vault.WritePolicy(context.Background(), "web", `path "secret/data/app/db" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	find(t, r.run(Target{Namespace: "app", Name: "web-3"}), CodePathDenied)
	if rep := r.run(Target{Namespace: "app", Name: "web-1"}); rep.Problems() != 0 {
		t.Errorf("after the fix: %v", codes(rep))
	}
}

// injector is a chart-like injector: Service, Deployment with AGENT_INJECT_*, webhook.
func injector(available int32, caBundle []byte, ignore bool, nsLabels map[string]string) []runtime.Object {
	lbl := map[string]string{"app.kubernetes.io/name": "vault-agent-injector"}
	policy := admissionregistrationv1.Fail
	if ignore {
		policy = admissionregistrationv1.Ignore
	}
	return []runtime.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "vault-agent-injector-svc", Namespace: "vault"}, Spec: corev1.ServiceSpec{Selector: lbl}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "vault-agent-injector", Namespace: "vault"},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "sidecar-injector", Env: []corev1.EnvVar{{Name: "AGENT_INJECT_VAULT_ADDR", Value: "https://vault:8200"}}}}}}},
			Status: appsv1.DeploymentStatus{AvailableReplicas: available}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "vault-agent-injector-cfg"},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "vault.hashicorp.com",
				ClientConfig:      admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "vault", Name: "vault-agent-injector-svc"}, CABundle: caBundle},
				Rules:             []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{"CREATE"}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: nsLabels},
				FailurePolicy:     &policy}}},
	}
}

func plainPod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "app", Annotations: map[string]string{annInject: "true", annRole: "web"}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app"}}}}
}

func TestInjectionNotHappening(t *testing.T) {
	t.Run("no injector", func(t *testing.T) {
		find(t, newRig(t, plainPod()).run(Target{Namespace: "app"}), CodeNoWebhook)
	})
	t.Run("namespace not selected", func(t *testing.T) {
		objs := append(injector(1, []byte(testCA(t, "inj")), false, map[string]string{"team": "blue"}), plainPod())
		f := find(t, newRig(t, objs...).run(Target{Namespace: "app"}), CodeNotSelected)
		if !strings.Contains(f.Fix, "kubectl label namespace app team=blue") {
			t.Errorf("fix: %s", f.Fix)
		}
	})
	t.Run("empty caBundle, Ignore hides it", func(t *testing.T) {
		objs := append(injector(1, nil, true, map[string]string{"vault-injection": "on"}), plainPod())
		rep := newRig(t, objs...).run(Target{Namespace: "app"})
		find(t, rep, CodeCABundle)
		if f := find(t, rep, CodeFailurePolicy); f.Severity != Warning {
			t.Errorf("Ignore beside a named cause is a warning: %+v", f)
		}
	})
	t.Run("no available injector pod", func(t *testing.T) {
		objs := append(injector(0, []byte(testCA(t, "inj")), false, nil), plainPod())
		rep := newRig(t, objs...).run(Target{Namespace: "app"})
		find(t, rep, CodeInjectorDown)
		for _, f := range rep.Findings {
			if f.Code == CodeFailurePolicy {
				t.Errorf("failurePolicy Fail is not reported: %+v", f)
			}
		}
	})
	t.Run("no token mount", func(t *testing.T) {
		p := injectedPod("web-1", "web", "secret/data/app/db", nil)
		p.Spec.Volumes = nil
		p.Spec.AutomountServiceAccountToken = new(bool)
		f := find(t, newRig(t, p).run(Target{Namespace: "app"}), CodeNoTokenMount)
		evidenceHas(t, f, "automountServiceAccountToken: false")
	})
}

func TestJobSidecarAndRotation(t *testing.T) {
	job := injectedPod("job-1", "web", "secret/data/app/db", nil)
	job.OwnerReferences = []metav1.OwnerReference{{Kind: "Job", Name: "migrate"}}
	job.Status.ContainerStatuses = []corev1.ContainerStatus{
		{Name: "app", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}},
		{Name: sidecarContainer, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	once := injectedPod("web-1", "web", "secret/data/app/db", map[string]string{annPrePopulateOnly: "true"})
	once.Spec.Containers = once.Spec.Containers[:1]
	r := newRig(t, job, once)
	f := find(t, r.run(Target{Namespace: "app", Name: "job-1"}), CodeJobSidecar)
	if !strings.Contains(f.Message, "finished") || !strings.Contains(f.Fix, annPrePopulateOnly) {
		t.Errorf("job sidecar: %+v", f)
	}
	find(t, r.run(Target{Namespace: "app", Name: "web-1"}), CodeRenderedOnce)
}

func TestLogLinesNameTheCause(t *testing.T) {
	for line, want := range map[string]string{
		`[ERROR] agent.auth.handler: error authenticating: error="Error making API request.\n\nURL: PUT https://v/v1/auth/kubernetes/login\nCode: 403. Errors:\n\n* service account name not authorized"`: CodeSANotBound,
		`* namespace not authorized`: CodeNamespaceNotBound,
		`* invalid role name "web"`:  CodeRoleMissing,
		`* invalid audience (aud) claim: audience claim does not match any expected audience`:                                                             CodeAudience,
		`Post "https://k8s/apis/authentication.k8s.io/v1/tokenreviews": tls: failed to verify certificate: x509: certificate signed by unknown authority`: CodeStaleCA,
		`URL: GET https://v/v1/secret/data/app/db Code: 403. Errors: * permission denied`:                                                                 CodePathDenied,
		`dial tcp 10.0.0.1:8200: connect: connection refused`:                                                                                             CodeVaultUnreachable,
		`* Vault is sealed`: CodeVaultSealed,
	} {
		got := ""
		for _, p := range logPatterns {
			if p.match(line) {
				got = p.code
				break
			}
		}
		if got != want {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
}

func TestParseTarget(t *testing.T) {
	for arg, want := range map[string]Target{
		"web-1":          {Namespace: "n", Name: "web-1"},
		"pod/web-1":      {Namespace: "n", Name: "web-1"},
		"deploy/web":     {Namespace: "n", Kind: "Deployment", Name: "web"},
		"StatefulSet/db": {Namespace: "n", Kind: "StatefulSet", Name: "db"},
		"":               {Namespace: "n"},
	} {
		got, err := ParseTarget("n", arg)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", arg, got, err, want)
		}
	}
	if _, err := ParseTarget("n", "cronjob/x"); err == nil {
		t.Error("cronjob/x accepted")
	}
}

func TestWorkloadWithoutPodsIsJudgedByItsTemplate(t *testing.T) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "app"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{annInject: "true"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}}}
	rep := newRig(t, dep).run(Target{Namespace: "app", Kind: "Deployment", Name: "web"})
	find(t, rep, CodeNoWebhook)
	if len(rep.Pods) != 1 || rep.Pods[0] != "Deployment/web" {
		t.Errorf("pods: %v", rep.Pods)
	}
	d := &Doctor{Kube: fake.NewSimpleClientset(), Config: &config.Config{}}
	if _, err := d.Run(context.Background(), Target{Namespace: "app", Kind: "Deployment", Name: "nope"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing workload: %v", err)
	}
}

func TestWorkloadTemplateInASelectedNamespaceIsNoProblem(t *testing.T) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "app"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{annInject: "true"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}}}
	objs := append(injector(1, []byte(testCA(t, "inj")), true, map[string]string{"vault-injection": "on"}), dep)
	rep := newRig(t, objs...).run(Target{Namespace: "app", Kind: "Deployment", Name: "web"})
	if rep.Problems() != 0 {
		t.Errorf("a scaled-down workload the injector selects: %v", codes(rep))
	}
}

// Cause 7: vaultctl's own NetworkPolicies (networkpolicy.Build) admit only the listed clients.
func TestNetworkPolicyBlocksUnlistedNamespace(t *testing.T) {
	cfg := &config.Config{Vault: config.Vault{Mode: config.ModeInCluster, Namespace: "vault"},
		NetworkPolicies: config.NetworkPolicies{Enabled: true, AllowedClients: []config.AllowedClient{{Namespace: "prod"}}}}
	config.ApplyDefaults(cfg)
	var objs []runtime.Object
	for _, p := range networkpolicy.Build(cfg) {
		objs = append(objs, p.DeepCopy())
	}
	objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vault"}}, injectedPod("web-1", "web", "secret/data/app/db", nil))
	r := newRig(t, objs...)
	d := &Doctor{Kube: r.kube, Vault: r.vault, Config: cfg}
	rep, err := d.Run(context.Background(), Target{Namespace: "app"})
	if err != nil {
		t.Fatal(err)
	}
	f := find(t, rep, CodeNetworkPolicy)
	evidenceHas(t, f, "TCP 8200: denied", "does not enforce NetworkPolicies")
	if !strings.Contains(f.Fix, "networkPolicies.allowedClients") {
		t.Errorf("fix: %s", f.Fix)
	}
	cfg.NetworkPolicies.AllowedClients = append(cfg.NetworkPolicies.AllowedClients, config.AllowedClient{Namespace: "app"})
	r2 := newRig(t, append(func() []runtime.Object {
		var o []runtime.Object
		for _, p := range networkpolicy.Build(cfg) {
			o = append(o, p.DeepCopy())
		}
		return o
	}(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vault"}}, injectedPod("web-1", "web", "secret/data/app/db", nil))...)
	rep, err = (&Doctor{Kube: r2.kube, Vault: r2.vault, Config: cfg}).Run(context.Background(), Target{Namespace: "app"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		if f.Code == CodeNetworkPolicy {
			t.Errorf("app is now allowed: %+v", f)
		}
	}
}

// probe stands in for Vault's accessor endpoints: one live token of web in app.
type probe struct{ asked []string }

func (p *probe) ListAccessors(context.Context) ([]string, error) {
	return []string{"acc-other", "acc-web"}, nil
}
func (p *probe) LookupAccessor(_ context.Context, a string) (*vault.TokenInfo, error) {
	ns := "app"
	if a == "acc-other" {
		ns = "elsewhere"
	}
	return &vault.TokenInfo{Accessor: a, Path: "auth/kubernetes/login", ExpireTime: time.Now().Add(time.Hour),
		Meta: map[string]string{"role": "web", "service_account_name": "web", "service_account_namespace": ns}}, nil
}
func (p *probe) RevokeAccessor(context.Context, string) error { return nil }
func (p *probe) CapabilitiesAccessor(_ context.Context, a string, paths ...string) (map[string][]string, error) {
	p.asked = append(p.asked, a)
	return map[string][]string{paths[0]: {"deny"}}, nil
}

func TestDeniedPathCarriesVaultsOwnAnswer(t *testing.T) {
	r := newRig(t, injectedPod("web-1", "web", "secret/data/app/other", nil))
	pr := &probe{}
	d := &Doctor{Kube: r.kube, Vault: r.vault, Tokens: pr, Config: &config.Config{KubernetesAuth: config.KubernetesAuth{Path: "kubernetes"}}}
	rep, err := d.Run(context.Background(), Target{Namespace: "app"})
	if err != nil {
		t.Fatal(err)
	}
	f := find(t, rep, CodePathDenied)
	evidenceHas(t, f, "Vault (sys/capabilities-accessor, the agent's live token): secret/data/app/other: [deny]")
	if len(pr.asked) != 1 || pr.asked[0] != "acc-web" {
		t.Errorf("asked about %v, want the pod's own token", pr.asked)
	}
}

// A template without a token: the injector refuses every pod, the Deployment has none.
func TestTemplateWithoutTokenIsRefusedByTheInjector(t *testing.T) {
	no := false
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "app"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{annInject: "true", annRole: "web"}},
				Spec: corev1.PodSpec{AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: "app"}}}}}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d8", Namespace: "app", OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: "web"}}},
		Status: appsv1.ReplicaSetStatus{Conditions: []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue,
			Message: `admission webhook "vault.hashicorp.com" denied the request: error creating new agent sidecar: failed to find service account volume mount`}}}}
	objs := append(injector(1, []byte(testCA(t, "inj")), true, nil), dep, rs)
	rep := newRig(t, objs...).run(Target{Namespace: "app", Kind: "Deployment", Name: "web"})
	f := find(t, rep, CodeNoTokenMount)
	evidenceHas(t, f, "spec.automountServiceAccountToken: false", "ReplicaSet web-5d8: admission webhook", "failed to find service account volume mount")
	if !strings.Contains(f.Fix, "remove automountServiceAccountToken: false") {
		t.Errorf("fix: %s", f.Fix)
	}
}

// Without a Vault session the Kubernetes-side checks still run and the failure is a finding.
func TestNoVaultSessionIsAFinding(t *testing.T) {
	r := newRig(t, injectedPod("web-1", "web", "secret/data/app/db", map[string]string{annPrePopulateOnly: "true"}))
	d := &Doctor{Kube: r.kube, Config: &config.Config{Vault: config.Vault{Address: "https://vault:8200"}},
		VaultErr: fmt.Errorf(`cannot authenticate to Vault as vaultctl-admin: Post "https://k8s/apis/authentication.k8s.io/v1/tokenreviews": x509: certificate signed by unknown authority`)}
	rep, err := d.Run(context.Background(), Target{Namespace: "app"})
	if err != nil {
		t.Fatal(err)
	}
	f := find(t, rep, CodeVaultUnreachable)
	if !strings.Contains(f.Message, "stale CA") || f.Object != "Vault https://vault:8200" {
		t.Errorf("finding: %+v", f)
	}
	find(t, rep, CodeRenderedOnce)
}
