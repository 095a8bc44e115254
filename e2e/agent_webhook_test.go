package e2e

// The sandbox's agent injector webhook: the API server really mutates a pod that asks for a
// Vault Agent, as the injector a real cluster would have called for it (here a fake one, selected
// through its MutatingWebhookConfiguration's namespaceSelector), so the pod spec has the agent
// containers that `kubectl logs -c vault-agent-init` and `kubectl get pod` need.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/vaultctl/vaultctl/internal/sandbox"
	"github.com/vaultctl/vaultctl/internal/sandbox/agentinject"
)

const (
	webhookTestNS     = "agent-webhook-test"
	webhookTestNoneNS = "agent-webhook-none"
	// Sorted before the chart's vault-agent-injector-cfg, should a chart be installed too.
	webhookTestCfg = "agent-webhook-test-injector-cfg"
)

// fakeInjectorEnv is the injector Deployment's environment, as vault-helm renders it.
func fakeInjectorEnv(caPEM string) []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: "AGENT_INJECT_LISTEN", Value: ":8080"},
		{Name: "AGENT_INJECT_LOG_LEVEL", Value: "info"},
		{Name: "AGENT_INJECT_VAULT_ADDR", Value: "https://vault.vault.svc:8200"},
		{Name: "AGENT_INJECT_VAULT_AUTH_PATH", Value: "auth/kubernetes"},
		{Name: "AGENT_INJECT_VAULT_IMAGE", Value: "hashicorp/vault:1.21.1"},
		{Name: "AGENT_INJECT_VAULT_CACERT_BYTES", Value: base64.StdEncoding.EncodeToString([]byte(caPEM))},
		{Name: "AGENT_INJECT_TEMPLATE_STATIC_SECRET_RENDER_INTERVAL", Value: "5s"},
		{Name: "AGENT_INJECT_TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE", Value: "true"},
	}
}

// installFakeInjector creates an injector whose pod kwok fakes: Deployment, Service, and a
// MutatingWebhookConfiguration selecting only namespace ns.
func installFakeInjector(t *testing.T, cs kubernetes.Interface, ns, caPEM string) {
	ctx := context.Background()
	lbl := map[string]string{"app.kubernetes.io/name": "vault-agent-injector", "component": "webhook"}
	mustCreate(t, "injector Deployment", func() error {
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "vault-agent-injector"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr(int32(1)),
				Selector: &metav1.LabelSelector{MatchLabels: lbl},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: lbl},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name: "sidecar-injector", Image: "hashicorp/vault-k8s:1.7.6", Env: fakeInjectorEnv(caPEM),
					}}},
				},
			},
		}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, "injector Service", func() error {
		_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "vault-agent-injector-svc"},
			Spec:       corev1.ServiceSpec{Selector: lbl, Ports: []corev1.ServicePort{{Name: "https", Port: 443}}},
		}, metav1.CreateOptions{})
		return err
	})
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	// The faked pod never answers: fail fast rather than hold every pod creation for 10s.
	timeout := int32(1)
	path := "/mutate"
	mustCreate(t, "injector MutatingWebhookConfiguration", func() error {
		_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: webhookTestCfg},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name:         "vault.hashicorp.com",
				ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "vault-agent-injector-svc", Path: &path}},
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				}},
				FailurePolicy:           &ignore,
				SideEffects:             &none,
				TimeoutSeconds:          &timeout,
				AdmissionReviewVersions: []string{"v1", "v1beta1"},
				NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
			}},
		}, metav1.CreateOptions{})
		return err
	})
	t.Cleanup(func() {
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), webhookTestCfg, metav1.DeleteOptions{})
	})
}

// originWebapp is the origin article's webapp Deployment (agentinject's testdata), one replica in ns.
func originWebapp(t *testing.T, ns string) *appsv1.Deployment {
	b, err := os.ReadFile(filepath.Join("..", "internal", "sandbox", "agentinject", "testdata", "webapp.deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	d.Namespace, d.Spec.Replicas = ns, ptr(int32(1))
	return &d
}

// forceDeletePods deletes ns's Deployments, then its pods with grace 0 until none is left: kwok
// leaves injected pods alone, so without a runner for them nothing would finish their graceful
// deletion, and the namespace's.
func forceDeletePods(cs kubernetes.Interface, ns string) {
	ctx := context.Background()
	_ = cs.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationForeground)}, metav1.ListOptions{})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		_ = cs.AppsV1().ReplicaSets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}, metav1.ListOptions{})
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			return
		}
	}
}

func TestAgentWebhookInjectsLikeTheSelectedInjector(t *testing.T) {
	cs := kube(t)
	ctx := context.Background()
	caPEM, err := os.ReadFile(sb.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{webhookTestNS, webhookTestNoneNS} {
		ensureNamespace(t, cs, ns)
		ensureServiceAccount(t, cs, ns, "webapp-sa")
		t.Cleanup(func() {
			forceDeletePods(cs, ns)
			deleteNamespace(t, cs, ns)
		})
	}
	installFakeInjector(t, cs, webhookTestNS, string(caPEM))

	// A plain pod next to the webapp: once kwok has made it Running, kwok has had its chance at
	// the webapp's pod too.
	mustCreate(t, "control pod", func() error {
		_, err := cs.CoreV1().Pods(webhookTestNS).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "control"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, "webapp Deployment", func() error {
		_, err := cs.AppsV1().Deployments(webhookTestNS).Create(ctx, originWebapp(t, webhookTestNS), metav1.CreateOptions{})
		return err
	})

	var pod corev1.Pod
	eventually(t, 60*time.Second, "the webapp's pod", func() error {
		pods, err := cs.CoreV1().Pods(webhookTestNS).List(ctx, metav1.ListOptions{LabelSelector: "app=webapp"})
		if err != nil {
			return err
		}
		if len(pods.Items) != 1 {
			return fmt.Errorf("%d pods", len(pods.Items))
		}
		pod = pods.Items[0]
		return nil
	})

	// The markers: injected, by the sandbox in place of the selected injector, kwok hands off.
	for k, want := range map[string]string{
		agentinject.AnnotationStatus: "injected",
		sandbox.KwokStatusAnnotation: "custom",
		sandbox.InjectedByAnnotation: webhookTestCfg,
		agentinject.AnnotationInject: "true",
		"vault.hashicorp.com/role":   "webapp-production",
	} {
		if got := pod.Annotations[k]; got != want {
			t.Errorf("annotation %s = %q, want %q", k, got, want)
		}
	}

	// The agents' configurations are agentinject's for the article's annotations, with the
	// injector's flags and the token volume the ServiceAccount admission added.
	var token agentinject.TokenVolume
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		if strings.HasPrefix(m.Name, "kube-api-access-") {
			token = agentinject.TokenVolume{Name: m.Name, MountPath: m.MountPath, TokenPath: "token"}
		}
	}
	a, err := agentinject.Parse(originWebapp(t, webhookTestNS).Spec.Template.Annotations, agentinject.Defaults{
		Address: "https://vault.vault.svc:8200", AuthPath: "auth/kubernetes", Namespace: webhookTestNS, Token: token,
		StaticSecretRenderInterval: "5s", CACertBytes: base64.StdEncoding.EncodeToString(caPEM),
	})
	if err != nil || a == nil {
		t.Fatalf("agentinject.Parse: %v, %v", a, err)
	}
	names := func(cs []corev1.Container) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	if got := names(pod.Spec.InitContainers); !slices.Equal(got, []string{"vault-agent-init"}) {
		t.Fatalf("init containers %v, want [vault-agent-init]", got)
	}
	if got := names(pod.Spec.Containers); !slices.Equal(got, []string{"webapp", "vault-agent"}) {
		t.Fatalf("containers %v, want [webapp vault-agent]", got)
	}
	for _, c := range []struct {
		container corev1.Container
		init      bool
	}{{pod.Spec.InitContainers[0], true}, {pod.Spec.Containers[1], false}} {
		want, err := a.Config(c.init)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for _, e := range c.container.Env {
			env[e.Name] = e.Value
		}
		got, err := base64.StdEncoding.DecodeString(env["VAULT_CONFIG"])
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: VAULT_CONFIG %s (%v)\nwant %s", c.container.Name, got, err, want)
		}
		if env["VAULT_CACERT_BYTES"] != string(caPEM) {
			t.Errorf("%s: VAULT_CACERT_BYTES is not the injector's CA, decoded", c.container.Name)
		}
		if c.container.Image != "hashicorp/vault:1.21.1" {
			t.Errorf("%s: image %q, want the injector's AGENT_INJECT_VAULT_IMAGE", c.container.Name, c.container.Image)
		}
		if cmd := append(slices.Clone(c.container.Command), c.container.Args...); !slices.Equal(cmd, a.Command()) {
			t.Errorf("%s: command %q", c.container.Name, cmd)
		}
		var mounts []string
		for _, m := range c.container.VolumeMounts {
			mounts = append(mounts, m.Name+":"+m.MountPath)
		}
		home := map[bool]string{true: "home-init", false: "home-sidecar"}[c.init]
		for _, want := range []string{home + ":/home/vault", token.Name + ":" + token.MountPath, "vault-secrets:/vault/secrets"} {
			if !slices.Contains(mounts, want) {
				t.Errorf("%s: mounts %v lack %s", c.container.Name, mounts, want)
			}
		}
	}
	var webappMounts []string
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		webappMounts = append(webappMounts, m.Name+":"+m.MountPath)
	}
	if !slices.Contains(webappMounts, "vault-secrets:/vault/secrets") {
		t.Errorf("webapp mounts %v: want vault-secrets at /vault/secrets", webappMounts)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	for _, name := range []string{"home-init", "home-sidecar", "vault-secrets"} {
		if v, ok := vols[name]; !ok || v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory {
			t.Errorf("volume %s: %+v, want an emptyDir in memory", name, v)
		}
	}

	// kwok leaves the injected pod's status alone: once it has made the control pod Running,
	// the webapp's pod is still Pending (no runner for it yet) or runs on a runner address.
	waitPodRunning(t, cs, webhookTestNS, "control", nil, false)
	got, err := cs.CoreV1().Pods(webhookTestNS).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodPending && !strings.HasPrefix(got.Status.PodIP, "127.") {
		t.Errorf("injected pod phase %s, IP %q: kwok set its status", got.Status.Phase, got.Status.PodIP)
	}

	t.Run("NoInjectorSelects", func(t *testing.T) {
		mustCreate(t, "webapp Deployment", func() error {
			_, err := cs.AppsV1().Deployments(webhookTestNoneNS).Create(ctx, originWebapp(t, webhookTestNoneNS), metav1.CreateOptions{})
			return err
		})
		var p *corev1.Pod
		eventually(t, 60*time.Second, "the webapp's pod, Running as kwok fakes it", func() error {
			pods, err := cs.CoreV1().Pods(webhookTestNoneNS).List(ctx, metav1.ListOptions{LabelSelector: "app=webapp"})
			if err != nil {
				return err
			}
			if len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning {
				return fmt.Errorf("%d pods", len(pods.Items))
			}
			p = &pods.Items[0]
			return nil
		})
		if len(p.Spec.InitContainers) != 0 || !slices.Equal(names(p.Spec.Containers), []string{"webapp"}) || len(p.Spec.Volumes) != 1 {
			t.Errorf("pod changed: init %v, containers %v, volumes %v", names(p.Spec.InitContainers), names(p.Spec.Containers), p.Spec.Volumes)
		}
		for _, k := range []string{agentinject.AnnotationStatus, sandbox.InjectedByAnnotation, sandbox.KwokStatusAnnotation} {
			if v, ok := p.Annotations[k]; ok {
				t.Errorf("annotation %s=%q on a pod no injector selects", k, v)
			}
		}
	})

	t.Run("BadAnnotationRefused", func(t *testing.T) {
		tmpl := originWebapp(t, webhookTestNS).Spec.Template
		tmpl.Annotations["vault.hashicorp.com/agent-pre-populate"] = "sometimes"
		bad := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "webapp-bad", Annotations: tmpl.Annotations}, Spec: tmpl.Spec}
		_, err := cs.CoreV1().Pods(webhookTestNS).Create(ctx, bad, metav1.CreateOptions{})
		_, want := agentinject.Parse(tmpl.Annotations, agentinject.Defaults{Address: "https://vault.vault.svc:8200", Namespace: webhookTestNS, Token: token})
		if want == nil {
			t.Fatal("agentinject accepts the bad annotation")
		}
		if err == nil || !strings.Contains(err.Error(), `admission webhook "vault.hashicorp.com" denied the request: `+want.Error()) {
			t.Errorf("create: %v\nwant the injector's refusal: %v", err, want)
		}
	})
}
