package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vaultctl/vaultctl/internal/sandbox/agentinject"
)

// testInjector is an injector install: a Deployment with the injector's environment, its
// Service, and a MutatingWebhookConfiguration pointing at the Service.
func testInjector(cfgName, ns string, env map[string]string, nsSel, objSel *metav1.LabelSelector, policy admissionregistrationv1.FailurePolicyType) []runtime.Object {
	lbl := map[string]string{"app.kubernetes.io/name": "vault-agent-injector", "app.kubernetes.io/instance": cfgName}
	var vars []corev1.EnvVar
	for k, v := range env {
		vars = append(vars, corev1.EnvVar{Name: k, Value: v})
	}
	create := admissionregistrationv1.Create
	return []runtime.Object{
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: cfgName + "-injector", Namespace: ns},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbl},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "sidecar-injector", Env: vars}}},
			}},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: cfgName + "-svc", Namespace: ns},
			Spec:       corev1.ServiceSpec{Selector: lbl},
		},
		&admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: cfgName},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name:         "vault.hashicorp.com",
				ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: cfgName + "-svc"}},
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				}},
				FailurePolicy:     &policy,
				NamespaceSelector: nsSel,
				ObjectSelector:    objSel,
			}},
		},
	}
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	l := map[string]string{corev1.LabelMetadataName: name}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func TestSelectInjector(t *testing.T) {
	addr := map[string]string{injectorAddrEnv: "https://vault.vault.svc:8200"}
	team := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	notOptedOut := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "vault-injection", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"off"}}}}
	ignore, fail := admissionregistrationv1.Ignore, admissionregistrationv1.Fail
	objs := func(groups ...[]runtime.Object) []runtime.Object {
		var out []runtime.Object
		for _, g := range groups {
			out = append(out, g...)
		}
		return out
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: map[string]string{"app": "web"}}}
	for _, tc := range []struct {
		name    string
		objects []runtime.Object
		ns      *corev1.Namespace
		optOut  bool   // the pod carries vault-injection: off
		want    string // configuration name; "" none
		wantErr string
	}{
		{"no injector", nil, namespace("apps", nil), false, "", ""},
		{"everything selected", testInjector("vault-agent-injector-cfg", "vault", addr, nil, nil, ignore), namespace("apps", nil), false, "vault-agent-injector-cfg", ""},
		{"namespace not selected", testInjector("team-a", "vault", addr, team, nil, ignore), namespace("apps", nil), false, "", ""},
		{"namespace selected", testInjector("team-a", "vault", addr, team, nil, ignore), namespace("apps", map[string]string{"team": "a"}), false, "team-a", ""},
		{"object selector includes", testInjector("cfg", "vault", addr, nil, notOptedOut, ignore), namespace("apps", nil), false, "cfg", ""},
		{"object selector excludes", testInjector("cfg", "vault", addr, nil, notOptedOut, ignore), namespace("apps", nil), true, "", ""},
		{"first by name wins", objs(
			testInjector("b-injector", "vault", addr, nil, nil, ignore),
			testInjector("a-injector", "other", addr, nil, nil, ignore)), namespace("apps", nil), false, "a-injector", ""},
		{"a selected one after an unselected one", objs(
			testInjector("a-injector", "other", addr, team, nil, ignore),
			testInjector("b-injector", "vault", addr, nil, nil, ignore)), namespace("apps", nil), false, "b-injector", ""},
		{"not an injector: no AGENT_INJECT_VAULT_ADDR", testInjector("cfg", "vault", map[string]string{"AGENT_INJECT_LOG_LEVEL": "debug"}, nil, nil, ignore),
			namespace("apps", nil), false, "", ""},
		{"broken env, Ignore: the next one", objs(
			testInjector("a-injector", "other", map[string]string{injectorAddrEnv: "x", "AGENT_INJECT_REVOKE_ON_SHUTDOWN": "maybe"}, nil, nil, ignore),
			testInjector("b-injector", "vault", addr, nil, nil, ignore)), namespace("apps", nil), false, "b-injector", ""},
		{"broken env, Fail: refused", testInjector("a-injector", "other", map[string]string{injectorAddrEnv: "x", "AGENT_INJECT_TEMPLATE_MAX_CONNECTIONS_PER_HOST": "many"}, nil, nil, fail),
			namespace("apps", nil), false, "", `failed calling webhook "vault.hashicorp.com": the injector Deployment other/a-injector-injector would not start: AGENT_INJECT_TEMPLATE_MAX_CONNECTIONS_PER_HOST="many" is not an integer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objects := append([]runtime.Object{tc.ns}, tc.objects...)
			// The sandbox's own configuration is never a candidate, whatever it selects.
			objects = append(objects, sandboxWebhookConfig("https://127.0.0.1:1/mutate", nil))
			cs := fake.NewClientset(objects...)
			p := pod.DeepCopy()
			if tc.optOut {
				p.Labels["vault-injection"] = "off"
			}
			got, err := selectInjector(context.Background(), cs, p, tc.ns)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			name := ""
			if got != nil {
				name = got.Config
				if got.Defaults.Namespace != "apps" || got.Defaults.Address == "" {
					t.Errorf("defaults %+v: want the pod's namespace and the injector's address", got.Defaults)
				}
			}
			if name != tc.want {
				t.Errorf("injector %q, want %q", name, tc.want)
			}
		})
	}
}

func TestRulePodsCreate(t *testing.T) {
	rule := func(ops []admissionregistrationv1.OperationType, groups, versions, resources []string) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{APIGroups: groups, APIVersions: versions, Resources: resources}}
	}
	create := []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
	all := []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}
	update := []admissionregistrationv1.OperationType{admissionregistrationv1.Update}
	for _, tc := range []struct {
		r    admissionregistrationv1.RuleWithOperations
		want bool
	}{
		{rule(create, []string{""}, []string{"v1"}, []string{"pods"}), true},
		{rule(all, []string{"*"}, []string{"*"}, []string{"*"}), true},
		{rule(create, []string{""}, []string{"v1"}, []string{"*/*"}), true},
		{rule(update, []string{""}, []string{"v1"}, []string{"pods"}), false},
		{rule(create, []string{"apps"}, []string{"v1"}, []string{"pods"}), false},
		{rule(create, []string{""}, []string{"v1"}, []string{"pods/exec"}), false},
		{rule(create, []string{""}, []string{"v1"}, []string{"services"}), false},
	} {
		if got := rulePodsCreate(tc.r); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.r, got, tc.want)
		}
	}
	cluster := admissionregistrationv1.ClusterScope
	r := rule(create, []string{""}, []string{"v1"}, []string{"pods"})
	r.Scope = &cluster
	if rulePodsCreate(r) {
		t.Error("a Cluster-scoped rule matches pods")
	}
}

func TestInjectorDefaults(t *testing.T) {
	env := []corev1.EnvVar{
		{Name: injectorAddrEnv, Value: "https://vault.vault.svc:8200"},
		{Name: "AGENT_INJECT_VAULT_CACERT_BYTES", Value: "PEM"},
		{Name: "AGENT_INJECT_VAULT_AUTH_PATH", Value: "auth/k8s"},
		{Name: "AGENT_INJECT_VAULT_IMAGE", Value: "hashicorp/vault:1.20"},
		{Name: "AGENT_INJECT_TEMPLATE_STATIC_SECRET_RENDER_INTERVAL", Value: "5s"},
		{Name: "AGENT_INJECT_TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE", Value: "false"},
		{Name: "AGENT_INJECT_TEMPLATE_MAX_CONNECTIONS_PER_HOST", Value: "3"},
		{Name: "AGENT_INJECT_DEFAULT_TEMPLATE", Value: "json"},
		{Name: "AGENT_INJECT_SET_SECURITY_CONTEXT", Value: "false"},
		{Name: "AGENT_INJECT_CPU_LIMIT", Value: "1"},
		{Name: "AGENT_INJECT_LOG_LEVEL", Value: "debug"},  // the injector's own log
		{Name: "AGENT_INJECT_VAULT_AUTH_TYPE", Value: ""}, // empty: the flag default
	}
	d, err := injectorDefaults(env)
	if err != nil {
		t.Fatal(err)
	}
	f := false
	want := agentinject.Defaults{
		Address: "https://vault.vault.svc:8200", CACertBytes: "PEM", AuthPath: "auth/k8s", Image: "hashicorp/vault:1.20",
		StaticSecretRenderInterval: "5s", ExitOnRetryFailure: &f, MaxConnectionsPerHost: 3, DefaultTemplate: "json",
		SetSecurityContext: &f, LimitCPU: "1",
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("defaults\n%+v, want\n%+v", d, want)
	}
}

// review posts an AdmissionReview for pod to the webhook and returns the response.
func review(t *testing.T, url string, pod *corev1.Pod) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	in, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "0b1e", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Operation: admissionv1.Create,
			Namespace: "apps", Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+webhookPath, "application/json", bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil || out.Response.UID != "0b1e" {
		t.Fatalf("not an answer to the review: %s", body)
	}
	return out.Response
}

func TestAgentWebhookReview(t *testing.T) {
	ignore := admissionregistrationv1.Ignore
	cs := fake.NewClientset(append(
		[]runtime.Object{namespace("apps", map[string]string{"team": "a"}), namespace("other", nil)},
		testInjector("team-a-injector", "vault", map[string]string{injectorAddrEnv: "https://vault.vault.svc:8200", "AGENT_INJECT_VAULT_CACERT_BYTES": "PEM"},
			&metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}, nil, ignore)...)...)
	srv := httptest.NewServer(&agentWebhook{cs: cs, log: log.New(io.Discard, "", 0)})
	defer srv.Close()

	webapp := func(ns string, extra map[string]string) *corev1.Pod {
		ann := map[string]string{
			agentinject.AnnotationInject:                       "true",
			"vault.hashicorp.com/role":                         "webapp",
			"vault.hashicorp.com/agent-inject-secret-db-creds": "secret/data/db",
		}
		for k, v := range extra {
			ann[k] = v
		}
		mount := corev1.VolumeMount{Name: "kube-api-access-x", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "webapp-", Namespace: ns, Annotations: ann},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "webapp", Image: "webapp", VolumeMounts: []corev1.VolumeMount{mount}}},
				Volumes:    []corev1.Volume{{Name: "kube-api-access-x"}},
			},
		}
	}

	t.Run("injected", func(t *testing.T) {
		pod := webapp("apps", nil)
		resp := review(t, srv.URL, pod)
		if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("response %+v: want allowed with a JSONPatch", resp)
		}
		got := applyJSONPatch(t, pod, resp.Patch)
		a, err := agentinject.ParsePod(pod, agentinject.Defaults{Address: "https://vault.vault.svc:8200", CACertBytes: "PEM", Namespace: "apps"})
		if err != nil {
			t.Fatal(err)
		}
		ops, err := a.Patch(pod)
		if err != nil {
			t.Fatal(err)
		}
		want := applyJSONPatch(t, pod, mustJSON(t, ops))
		want.Annotations[KwokStatusAnnotation] = "custom"
		want.Annotations[InjectedByAnnotation] = "team-a-injector"
		if !reflect.DeepEqual(got, want) {
			t.Errorf("patched pod differs from agentinject's with the markers:\ngot  %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
		}
		// The agent's configuration carries the injector's address, the pod's role and secret.
		init := got.Spec.InitContainers[0]
		var cfg []byte
		for _, e := range init.Env {
			if e.Name == "VAULT_CONFIG" {
				cfg, _ = base64.StdEncoding.DecodeString(e.Value)
			}
		}
		if init.Name != agentinject.InitContainerName || !strings.Contains(string(cfg), `"address":"https://vault.vault.svc:8200"`) ||
			!strings.Contains(string(cfg), `"role":"webapp"`) || !strings.Contains(string(cfg), `/vault/secrets/db-creds`) {
			t.Errorf("init container %s, configuration %s", init.Name, cfg)
		}
	})
	t.Run("namespace no injector selects: unchanged", func(t *testing.T) {
		if resp := review(t, srv.URL, webapp("other", nil)); !resp.Allowed || resp.Patch != nil {
			t.Errorf("response %+v: want allowed without a patch", resp)
		}
	})
	t.Run("not asking, or already injected: unchanged", func(t *testing.T) {
		for _, p := range []*corev1.Pod{
			{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "apps"}},
			webapp("apps", map[string]string{agentinject.AnnotationStatus: "injected"}),
			webapp("apps", map[string]string{agentinject.AnnotationInject: "false"}),
		} {
			if resp := review(t, srv.URL, p); !resp.Allowed || resp.Patch != nil {
				t.Errorf("%v: response %+v: want allowed without a patch", p.Annotations, resp)
			}
		}
	})
	t.Run("bad annotation: refused with the injector's message", func(t *testing.T) {
		resp := review(t, srv.URL, webapp("apps", map[string]string{"vault.hashicorp.com/agent-pre-populate": "sometimes"}))
		want := `error creating new agent sidecar: cannot parse '' as bool: strconv.ParseBool: parsing "sometimes": invalid syntax`
		if resp.Allowed || resp.Result == nil || resp.Result.Message != want {
			t.Errorf("response %+v: want refused with %q", resp, want)
		}
	})
	t.Run("probe", func(t *testing.T) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default", Annotations: map[string]string{webhookProbeAnnotation: ""}}}
		resp := review(t, srv.URL, p)
		if got := applyJSONPatch(t, p, resp.Patch); got.Annotations[webhookProbeAnnotation] != "answered" {
			t.Errorf("probe annotations %v", got.Annotations)
		}
	})
	t.Run("not a review", func(t *testing.T) {
		resp, err := http.Post(srv.URL+webhookPath, "application/json", strings.NewReader(`{"kind":"AdmissionReview"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("HTTP %d, want 400", resp.StatusCode)
		}
	})
}

func TestApplyWebhookConfig(t *testing.T) {
	cs := fake.NewClientset()
	ctx := context.Background()
	for _, url := range []string{"https://127.0.0.1:1/mutate", "https://127.0.0.1:2/mutate"} {
		if err := applyWebhookConfig(ctx, cs, sandboxWebhookConfig(url, []byte("CA"))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, SandboxInjectorWebhook, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wh := got.Webhooks[0]
	if *wh.ClientConfig.URL != "https://127.0.0.1:2/mutate" || string(wh.ClientConfig.CABundle) != "CA" || *wh.FailurePolicy != admissionregistrationv1.Ignore ||
		*wh.SideEffects != admissionregistrationv1.SideEffectClassNone || wh.ObjectSelector != nil {
		t.Errorf("webhook %+v", wh)
	}
	// The control plane's namespaces are left out, every other one is in.
	for ns, want := range map[string]bool{"kube-system": false, "kube-node-lease": false, "default": true, "vault": true} {
		ok, err := webhookMatches(wh, &corev1.Pod{}, namespace(ns, nil))
		if err != nil || ok != want {
			t.Errorf("namespace %s: %v, %v; want %v", ns, ok, err, want)
		}
	}
}

func applyJSONPatch(t *testing.T, pod *corev1.Pod, patch []byte) *corev1.Pod {
	t.Helper()
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(mustJSON(t, pod))
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
