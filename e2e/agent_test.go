package e2e

// Issue 11: pods that ask for injection run a real Vault Agent (the sandbox webhook injects them
// as the Vault Agent Injector would, the runner runs the agents), proven on rendered bytes
// against the sandbox's 3-node Vault.
//
// The tests own auth/sbagent and the KV v2 mount sbagent-kv (the article's Deployment reads
// secret/, which it mounts if no one did), namespaces sbagent-*, and a fake injector
// (Deployment, Service and MutatingWebhookConfiguration in sbagent-system) that handles only
// namespaces labelled sbagent-test=true.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/vaultctl/vaultctl/internal/sandbox"
	"github.com/vaultctl/vaultctl/phases"
)

const (
	agentAuthMount = "sbagent"
	agentKV        = "sbagent-kv"
	agentSystemNS  = "sbagent-system"
	agentNSLabel   = "sbagent-test"
	agentInjector  = "sbagent-vault-agent-injector"
)

var (
	agentSetupOnce sync.Once
	agentSetupErr  error
)

// agentSetup prepares Vault (Kubernetes auth at auth/sbagent, the KV mounts) and the fake
// injector once per run, and returns a root client.
func agentSetup(t testing.TB) *vaultapi.Client {
	t.Helper()
	root := vaultRoot(t, sb.VaultAddrs[0])
	agentSetupOnce.Do(func() { agentSetupErr = setupAgents(t, root) })
	if agentSetupErr != nil {
		t.Fatalf("agent test setup: %v", agentSetupErr)
	}
	return root
}

func setupAgents(t testing.TB, root *vaultapi.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := kube(t)
	ensureNamespace(t, cs, agentSystemNS)
	ensureServiceAccount(t, cs, agentSystemNS, "vault-reviewer")
	_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sbagent-vault-reviewer-delegator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vault-reviewer", Namespace: agentSystemNS}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	apiCA, err := os.ReadFile(sb.CACertFile)
	if err != nil {
		return err
	}
	vaultCA, err := os.ReadFile(sb.VaultCACert)
	if err != nil {
		return err
	}

	// Vault: the auth method and the KV v2 mounts.
	var lastErr error
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if lastErr = vaultMounts(ctx, root); lastErr == nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if lastErr != nil {
		return lastErr
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/"+agentAuthMount+"/config", map[string]any{
		"kubernetes_host":    sb.APIServerURL,
		"kubernetes_ca_cert": string(apiCA),
		"token_reviewer_jwt": saToken(t, cs, agentSystemNS, "vault-reviewer"),
	}); err != nil {
		return fmt.Errorf("auth/%s/config: %w", agentAuthMount, err)
	}

	// The injector a cluster would run: its Deployment (kwok-faked: it never answers), the
	// Service its webhook names, and the webhook registration the sandbox emulates.
	labels := map[string]string{"app.kubernetes.io/name": "vault-agent-injector", "app.kubernetes.io/instance": "sbagent"}
	_, err = cs.AppsV1().Deployments(agentSystemNS).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: agentInjector, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "sidecar-injector", Image: "hashicorp/vault-k8s:1.7.2",
					Args: []string{"agent-inject", "2>&1"},
					Env: []corev1.EnvVar{
						{Name: "AGENT_INJECT_LISTEN", Value: ":8080"},
						{Name: "AGENT_INJECT_VAULT_ADDR", Value: sb.VaultAddrs[0]},
						{Name: "AGENT_INJECT_VAULT_AUTH_PATH", Value: "auth/" + agentAuthMount},
						{Name: "AGENT_INJECT_VAULT_CACERT_BYTES", Value: string(vaultCA)},
						{Name: "AGENT_INJECT_VAULT_IMAGE", Value: "hashicorp/vault:1.21.1"},
						{Name: "AGENT_INJECT_LOG_LEVEL", Value: "info"},
					},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	_, err = cs.CoreV1().Services(agentSystemNS).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: agentInjector},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	none, ignore := admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.Ignore
	_, err = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: agentInjector + "-cfg"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "vault.hashicorp.com",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service:  &admissionregistrationv1.ServiceReference{Namespace: agentSystemNS, Name: agentInjector, Path: ptr("/mutate")},
				CABundle: apiCA,
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{agentNSLabel: "true"}},
			SideEffects:             &none,
			FailurePolicy:           &ignore,
			AdmissionReviewVersions: []string{"v1", "v1beta1"},
			// The Deployment's pod is fake: the API server's call to it fails, quickly.
			TimeoutSeconds: ptr(int32(2)),
		}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

func vaultMounts(ctx context.Context, root *vaultapi.Client) error {
	auths, err := root.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return err
	}
	if _, ok := auths[agentAuthMount+"/"]; !ok {
		if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, agentAuthMount, &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
			return err
		}
	}
	mounts, err := root.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return err
	}
	for _, m := range []string{agentKV, "secret"} {
		if _, ok := mounts[m+"/"]; ok {
			continue
		}
		if err := root.Sys().MountWithContext(ctx, m, &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			return err
		}
	}
	return nil
}

// agentCase is one test's namespace, ServiceAccount, Vault role and policy.
type agentCase struct {
	t    testing.TB
	ctx  context.Context
	cs   kubernetes.Interface
	root *vaultapi.Client
	ns   string
}

// newAgentCase creates namespace sbagent-NAME (labelled for the fake injector) with
// ServiceAccount "app", and deletes it at the end.
func newAgentCase(t testing.TB, name string) *agentCase {
	t.Helper()
	root := agentSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel)
	cs := kube(t)
	ns := "sbagent-" + name
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{agentNSLabel: "true"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("namespace %s: %v", ns, err)
	}
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
	ensureServiceAccount(t, cs, ns, "app")
	return &agentCase{t: t, ctx: ctx, cs: cs, root: root, ns: ns}
}

// role writes role NAME at auth/sbagent bound to ServiceAccount sa of the case's namespace.
func (a *agentCase) role(name, sa string, policies ...string) {
	a.t.Helper()
	if _, err := a.root.Logical().WriteWithContext(a.ctx, "auth/"+agentAuthMount+"/role/"+name, map[string]any{
		"bound_service_account_names":      sa,
		"bound_service_account_namespaces": a.ns,
		"token_policies":                   strings.Join(policies, ","),
		"token_ttl":                        "1h",
	}); err != nil {
		a.t.Fatalf("role %s: %v", name, err)
	}
}

func (a *agentCase) policy(name, hcl string) {
	a.t.Helper()
	if err := a.root.Sys().PutPolicyWithContext(a.ctx, name, hcl); err != nil {
		a.t.Fatalf("policy %s: %v", name, err)
	}
}

func (a *agentCase) kv(mount, path string, data map[string]any) {
	a.t.Helper()
	if _, err := a.root.KVv2(mount).Put(a.ctx, path, data); err != nil {
		a.t.Fatalf("kv put %s/%s: %v", mount, path, err)
	}
}

// pod creates a bare pod running as ServiceAccount "app" with the annotations and an app
// container that would read the secrets.
func (a *agentCase) pod(name string, ann map[string]string, initContainers ...corev1.Container) *corev1.Pod {
	a.t.Helper()
	ann = mergeMaps(map[string]string{"vault.hashicorp.com/agent-inject": "true"}, ann)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "app",
			InitContainers:     initContainers,
			Containers:         []corev1.Container{{Name: "app", Image: "registry.example.com/app:1", Command: []string{"/app/start"}}},
		},
	}
	created, err := a.cs.CoreV1().Pods(a.ns).Create(a.ctx, pod, metav1.CreateOptions{})
	if err != nil {
		a.t.Fatalf("create pod %s: %v", name, err)
	}
	if created.Annotations[sandbox.InjectedByAnnotation] != agentInjector+"-cfg" {
		a.t.Fatalf("pod %s was not injected by the emulated %s (annotations %v)", name, agentInjector, created.Annotations)
	}
	return created
}

func (a *agentCase) get(name string) *corev1.Pod {
	a.t.Helper()
	p, err := a.cs.CoreV1().Pods(a.ns).Get(a.ctx, name, metav1.GetOptions{})
	if err != nil {
		a.t.Fatalf("get pod %s: %v", name, err)
	}
	return p
}

// logs is `kubectl logs POD -c CONTAINER`, through the API server and kwok.
func (a *agentCase) logs(pod, container string) (string, error) {
	b, err := a.cs.CoreV1().Pods(a.ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(a.ctx)
	return string(b), err
}

// waitRunning waits until pod name is Running and Ready and returns it.
func (a *agentCase) waitRunning(name string, timeout time.Duration) *corev1.Pod {
	a.t.Helper()
	var pod *corev1.Pod
	eventually(a.t, timeout, "pod "+a.ns+"/"+name+" Running and Ready", func() error {
		p, err := a.cs.CoreV1().Pods(a.ns).Get(a.ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pod = p
		if s := podDisplayStatus(p); s != "Running" || !podReady(p) {
			log, _ := a.logs(name, "vault-agent-init")
			return fmt.Errorf("status %s; vault-agent-init log: %s", s, tail(log, 600))
		}
		return nil
	})
	return pod
}

// waitInitLog waits until the vault-agent-init log contains want while the pod shows Init:0/1
// (the agent keeps retrying), and returns the log.
func (a *agentCase) waitInitLog(name, want string, timeout time.Duration) string {
	a.t.Helper()
	var log string
	eventually(a.t, timeout, "vault-agent-init of "+name+" logging "+want, func() error {
		var err error
		if log, err = a.logs(name, "vault-agent-init"); err != nil {
			return err
		}
		if !strings.Contains(log, want) {
			return fmt.Errorf("log so far: %s", tail(log, 600))
		}
		return nil
	})
	p := a.get(name)
	if s := podDisplayStatus(p); s != "Init:0/1" || p.Status.Phase != corev1.PodPending {
		a.t.Errorf("pod %s: STATUS %s, phase %s; want Init:0/1, Pending", name, s, p.Status.Phase)
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running != nil || c.Ready {
			a.t.Errorf("container %s started before the agent's init container completed: %+v", c.Name, c.State)
		}
	}
	return log
}

func (a *agentCase) effective(pod, container string) *sandbox.Effective {
	a.t.Helper()
	e, err := sb.Effective(a.ctx, a.ns, pod, container)
	if err != nil {
		a.t.Fatalf("effective view of %s/%s -c %s: %v", a.ns, pod, container, err)
	}
	return e
}

// podDisplayStatus is the STATUS column of `kubectl get pod` (kubectl's printPod), for the
// states pods reach here.
func podDisplayStatus(p *corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return "Terminating"
	}
	for i, s := range p.Status.InitContainerStatuses {
		switch {
		case s.State.Terminated != nil && s.State.Terminated.ExitCode == 0:
			continue
		case s.State.Terminated != nil:
			if s.State.Terminated.Reason != "" {
				return "Init:" + s.State.Terminated.Reason
			}
			return fmt.Sprintf("Init:ExitCode:%d", s.State.Terminated.ExitCode)
		case s.State.Waiting != nil && s.State.Waiting.Reason != "" && s.State.Waiting.Reason != "PodInitializing":
			return "Init:" + s.State.Waiting.Reason
		default:
			return fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
	}
	reason := string(p.Status.Phase)
	for _, s := range p.Status.ContainerStatuses {
		switch {
		case s.State.Waiting != nil && s.State.Waiting.Reason != "":
			reason = s.State.Waiting.Reason
		case s.State.Terminated != nil && s.State.Terminated.Reason != "" && reason != string(corev1.PodRunning):
			reason = s.State.Terminated.Reason
		}
	}
	return reason
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// The origin article's webapp Deployment, its annotations byte for byte: each replica's
// /vault/secrets/db-creds holds the export lines with the KV values, and the webapp's command,
// which sources the file, gets them in its environment. Deleting a pod stops its agent.
func TestAgentWebappDeploymentRendersArticleTemplate(t *testing.T) {
	t.Parallel()
	a := newAgentCase(t, "webapp")
	ensureServiceAccount(t, a.cs, a.ns, "webapp-sa")
	creds := map[string]any{"host": "db.production.internal", "username": "webapp", "password": "s3cr3t-pa55.word_42"}
	a.kv("secret", "production/db-credentials", creds)
	a.policy("sbagent-app-db-readonly", `path "secret/data/production/db-credentials" { capabilities = ["read"] }`)
	a.role("webapp-production", "webapp-sa", "sbagent-app-db-readonly")

	raw, err := os.ReadFile(filepath.Join("..", "internal", "sandbox", "agentinject", "testdata", "webapp.deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(raw, &d); err != nil {
		t.Fatalf("the article's Deployment: %v", err)
	}
	d.Namespace = a.ns
	if _, err := a.cs.AppsV1().Deployments(a.ns).Create(a.ctx, &d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the webapp Deployment: %v", err)
	}

	var pods []corev1.Pod
	eventually(t, 3*time.Minute, "3 webapp pods Running and Ready", func() error {
		list, err := a.cs.CoreV1().Pods(a.ns).List(a.ctx, metav1.ListOptions{LabelSelector: "app=webapp"})
		if err != nil {
			return err
		}
		ready := 0
		for _, p := range list.Items {
			if podDisplayStatus(&p) == "Running" && podReady(&p) {
				ready++
			}
		}
		if ready != 3 {
			return fmt.Errorf("%d of %d pods Running and Ready", ready, len(list.Items))
		}
		pods = list.Items
		return nil
	})

	want := fmt.Sprintf("export DB_HOST=%q\nexport DB_USER=%q\nexport DB_PASS=%q\n", creds["host"], creds["username"], creds["password"])
	for _, p := range pods {
		if p.Annotations["vault.hashicorp.com/agent-inject-status"] != "injected" {
			t.Errorf("pod %s: agent-inject-status %q", p.Name, p.Annotations["vault.hashicorp.com/agent-inject-status"])
		}
		e := a.effective(p.Name, "webapp")
		if got := string(e.Files["/vault/secrets/db-creds"]); got != want {
			t.Errorf("pod %s: /vault/secrets/db-creds =\n%q\nwant\n%q", p.Name, got, want)
		}
		for k, v := range map[string]any{"DB_HOST": creds["host"], "DB_USER": creds["username"], "DB_PASS": creds["password"]} {
			if e.Env[k] != v {
				t.Errorf("pod %s: the sourced environment has %s=%q, want %q", p.Name, k, e.Env[k], v)
			}
		}
		if log, err := a.logs(p.Name, "vault-agent-init"); err != nil || !strings.Contains(log, "rendered") {
			t.Errorf("pod %s: kubectl logs -c vault-agent-init: %v\n%s", p.Name, err, tail(log, 600))
		}
		if _, err := a.logs(p.Name, "vault-agent"); err != nil {
			t.Errorf("pod %s: kubectl logs -c vault-agent: %v", p.Name, err)
		}
	}

	// Deleting a pod stops its sidecar agent; the ReplicaSet's replacement gets its own.
	victim := pods[0]
	pid := sandbox.ContainerPID(sb.Dir, a.ns, victim.Name, "vault-agent")
	if pid == 0 || !processAlive(pid) {
		t.Fatalf("pod %s: no running vault-agent process (pid %d)", victim.Name, pid)
	}
	if err := a.cs.CoreV1().Pods(a.ns).Delete(a.ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "deleted pod "+victim.Name+" gone with its agent", func() error {
		if processAlive(pid) {
			return fmt.Errorf("vault-agent (pid %d) still runs", pid)
		}
		_, err := a.cs.CoreV1().Pods(a.ns).Get(a.ctx, victim.Name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod still there (%v)", err)
		}
		return nil
	})
}

// A pod whose ServiceAccount its role does not bind stays Init:0/1 with Vault's own error in
// `kubectl logs -c vault-agent-init`; once the role is fixed, the agent's next retry succeeds
// and the same pod runs.
func TestAgentWrongServiceAccountThenRoleFixed(t *testing.T) {
	t.Parallel()
	a := newAgentCase(t, "wrongsa")
	a.kv(agentKV, "wrongsa/config", map[string]any{"token": "abc123"})
	a.policy("sbagent-wrongsa", `path "`+agentKV+`/data/wrongsa/config" { capabilities = ["read"] }`)
	a.role("sbagent-wrongsa", "someone-else", "sbagent-wrongsa")
	pod := a.pod("app", map[string]string{
		"vault.hashicorp.com/role":                     "sbagent-wrongsa",
		"vault.hashicorp.com/agent-inject-secret-conf": agentKV + "/data/wrongsa/config",
	})
	a.waitInitLog("app", "service account name not authorized", 2*time.Minute)

	a.role("sbagent-wrongsa", "app", "sbagent-wrongsa")
	fixed := a.waitRunning("app", 3*time.Minute)
	if fixed.UID != pod.UID {
		t.Fatalf("the pod was recreated (uid %s, was %s)", fixed.UID, pod.UID)
	}
	if e := a.effective("app", "app"); !strings.Contains(string(e.Files["/vault/secrets/conf"]), "abc123") {
		t.Errorf("after the fix /vault/secrets/conf = %q", e.Files["/vault/secrets/conf"])
	}
}

// A policy on the KV v2 logical path (no data/) lets the agent log in but not read: the pod
// stays Init:0/1 with the 403 in the log. Deleting it stops the agent that keeps retrying.
func TestAgentPolicyWithoutDataPrefixIs403(t *testing.T) {
	t.Parallel()
	a := newAgentCase(t, "nodata")
	a.kv(agentKV, "nodata/config", map[string]any{"token": "abc123"})
	a.policy("sbagent-nodata", `path "`+agentKV+`/nodata/config" { capabilities = ["read"] }`)
	a.role("sbagent-nodata", "app", "sbagent-nodata")
	a.pod("app", map[string]string{
		"vault.hashicorp.com/role":                     "sbagent-nodata",
		"vault.hashicorp.com/agent-inject-secret-conf": agentKV + "/data/nodata/config",
	})
	log := a.waitInitLog("app", "403", 2*time.Minute)
	if !strings.Contains(log, "permission denied") {
		t.Errorf("the 403 is Vault's permission denied: %s", tail(log, 800))
	}
	if e := a.effective("app", "app"); len(e.Files["/vault/secrets/conf"]) != 0 {
		t.Errorf("nothing may be rendered: %q", e.Files["/vault/secrets/conf"])
	}

	// Deleting the stuck pod stops its init agent.
	pid := sandbox.ContainerPID(sb.Dir, a.ns, "app", "vault-agent-init")
	if pid == 0 || !processAlive(pid) {
		t.Fatalf("no running vault-agent-init process (pid %d)", pid)
	}
	if err := a.cs.CoreV1().Pods(a.ns).Delete(a.ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "deleted pod gone with its init agent", func() error {
		if processAlive(pid) {
			return fmt.Errorf("vault-agent-init (pid %d) still runs", pid)
		}
		if _, err := a.cs.CoreV1().Pods(a.ns).Get(a.ctx, "app", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod still there (%v)", err)
		}
		return nil
	})
}

// A binary value stored base64 in KV and rendered with base64Decode arrives byte for byte,
// a byte that is not UTF-8 and the trailing newline included; a custom secret-volume-path with
// agent-inject-perms 0400 gives that path and mode.
func TestAgentBinaryValueAndCustomPathAndMode(t *testing.T) {
	t.Parallel()
	a := newAgentCase(t, "binary")
	blob := []byte("key\x00\xff\xfe binary\r\nend\n")
	a.kv(agentKV, "binary/blob", map[string]any{"b64": base64.StdEncoding.EncodeToString(blob)})
	a.policy("sbagent-binary", `path "`+agentKV+`/data/binary/*" { capabilities = ["read"] }`)
	a.role("sbagent-binary", "app", "sbagent-binary")
	a.pod("app", map[string]string{
		"vault.hashicorp.com/role":                         "sbagent-binary",
		"vault.hashicorp.com/agent-inject-secret-keystore": agentKV + "/data/binary/blob",
		"vault.hashicorp.com/agent-inject-template-keystore": `{{- with secret "` + agentKV + `/data/binary/blob" -}}` +
			`{{ base64Decode .Data.data.b64 }}{{- end }}`,
		"vault.hashicorp.com/secret-volume-path-keystore": "/etc/app/keys",
		"vault.hashicorp.com/agent-inject-perms-keystore": "0400",
	})
	a.waitRunning("app", 3*time.Minute)
	e := a.effective("app", "app")
	const path = "/etc/app/keys/keystore"
	if got := e.Files[path]; !bytes.Equal(got, blob) {
		t.Errorf("%s = %q, want %q (files %v)", path, got, blob, keysOf(e.Files))
	}
	if m := e.Modes[path]; m.Perm() != 0o400 {
		t.Errorf("%s mode %04o, want 0400", path, m.Perm())
	}
}

// The sidecar re-renders a changed KV value within the static-secret render interval. Its
// cache listener answers at the pod's address.
func TestAgentSidecarRerendersRotatedValue(t *testing.T) {
	t.Parallel()
	a := newAgentCase(t, "rotate")
	a.kv(agentKV, "rotate/config", map[string]any{"password": "first"})
	a.policy("sbagent-rotate", `path "`+agentKV+`/data/rotate/config" { capabilities = ["read"] }`)
	a.role("sbagent-rotate", "app", "sbagent-rotate")
	a.pod("app", map[string]string{
		"vault.hashicorp.com/role":                                   "sbagent-rotate",
		"vault.hashicorp.com/agent-inject-secret-pw":                 agentKV + "/data/rotate/config",
		"vault.hashicorp.com/agent-inject-template-pw":               `{{ with secret "` + agentKV + `/data/rotate/config" }}{{ .Data.data.password }}{{ end }}`,
		"vault.hashicorp.com/template-static-secret-render-interval": "2s",
		"vault.hashicorp.com/agent-cache-enable":                     "true",
	})
	pod := a.waitRunning("app", 3*time.Minute)
	// The sidecar's cache listener (127.0.0.1:8200 in a pod) listens on the pod's address, once
	// the agent is up (the sidecar has no readiness probe, in a cluster either).
	eventually(t, time.Minute, "Vault's health through the agent's listener at the pod IP", func() error {
		resp, err := http.Get("http://" + net.JoinHostPort(pod.Status.PodIP, "8200") + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		// The agent answered at the pod's address: that is the listener's part. Its status is
		// Vault's (another test may be restarting the node it proxies to).
		t.Logf("sys/health through the agent's listener: HTTP %d", resp.StatusCode)
		return nil
	})
	if got := string(a.effective("app", "app").Files["/vault/secrets/pw"]); got != "first" {
		t.Fatalf("rendered at start: %q", got)
	}
	a.kv(agentKV, "rotate/config", map[string]any{"password": "second"})
	eventually(t, time.Minute, "the sidecar re-renders the rotated value", func() error {
		if got := string(a.effective("app", "app").Files["/vault/secrets/pw"]); got != "second" {
			return fmt.Errorf("still %q", got)
		}
		return nil
	})
}

// agent-init-first: the application's init container runs after the agent's and sees the
// rendered file; without it, it runs before and sees nothing, as in a cluster.
func TestAgentInitFirstDecidesWhatAppInitContainerSees(t *testing.T) {
	t.Parallel()
	a := newAgentCase(t, "initfirst")
	a.kv(agentKV, "initfirst/config", map[string]any{"url": "postgres://db"})
	a.policy("sbagent-initfirst", `path "`+agentKV+`/data/initfirst/config" { capabilities = ["read"] }`)
	a.role("sbagent-initfirst", "app", "sbagent-initfirst")
	migrate := corev1.Container{Name: "migrate", Image: "registry.example.com/migrate:1", Command: []string{"/migrate"}}
	ann := map[string]string{
		"vault.hashicorp.com/role":                     "sbagent-initfirst",
		"vault.hashicorp.com/agent-inject-secret-db":   agentKV + "/data/initfirst/config",
		"vault.hashicorp.com/agent-inject-template-db": `{{ with secret "` + agentKV + `/data/initfirst/config" }}{{ .Data.data.url }}{{ end }}`,
	}
	a.pod("first", mergeMaps(ann, map[string]string{"vault.hashicorp.com/agent-init-first": "true"}), migrate)
	a.pod("last", ann, migrate)
	for _, name := range []string{"first", "last"} {
		p := a.waitRunning(name, 3*time.Minute)
		var order []string
		for _, c := range p.Spec.InitContainers {
			order = append(order, c.Name)
		}
		t.Logf("pod %s: init containers %v", name, order)
	}
	if got := string(a.effective("first", "migrate").Files["/vault/secrets/db"]); got != "postgres://db" {
		t.Errorf("with agent-init-first, migrate sees /vault/secrets/db = %q", got)
	}
	last := a.effective("last", "migrate")
	for p := range last.Files {
		if strings.HasPrefix(p, "/vault/secrets/") {
			t.Errorf("without agent-init-first, migrate ran before the agent but sees %s", p)
		}
	}
	if _, ok := last.Files["/vault/secrets/db"]; ok {
		t.Error("without agent-init-first the file cannot be there yet")
	}
	// The application container itself sees the file either way.
	if got := string(a.effective("last", "app").Files["/vault/secrets/db"]); got != "postgres://db" {
		t.Errorf("app container of pod last sees %q", got)
	}
}

// A Job's pod with pre-populate-only has no sidecar: after the agent's init container the app
// completes and the pod Succeeded, as on a real cluster.
func TestAgentJobPrePopulateOnlyCompletes(t *testing.T) {
	t.Parallel()
	a := newAgentCase(t, "job")
	a.kv(agentKV, "job/config", map[string]any{"k": "v"})
	a.policy("sbagent-job", `path "`+agentKV+`/data/job/config" { capabilities = ["read"] }`)
	a.role("sbagent-job", "app", "sbagent-job")
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "migrate"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr(int32(0)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
					"vault.hashicorp.com/agent-inject":              "true",
					"vault.hashicorp.com/agent-pre-populate-only":   "true",
					"vault.hashicorp.com/role":                      "sbagent-job",
					"vault.hashicorp.com/agent-inject-secret-cfg":   agentKV + "/data/job/config",
					"vault.hashicorp.com/agent-inject-template-cfg": `{{ with secret "` + agentKV + `/data/job/config" }}{{ .Data.data.k }}{{ end }}`,
				}},
				Spec: corev1.PodSpec{
					ServiceAccountName: "app", RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "migrate", Image: "registry.example.com/migrate:1", Command: []string{"/migrate"}}},
				},
			},
		},
	}
	if _, err := a.cs.BatchV1().Jobs(a.ns).Create(a.ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	eventually(t, 3*time.Minute, "the Job's pod Succeeded", func() error {
		list, err := a.cs.CoreV1().Pods(a.ns).List(a.ctx, metav1.ListOptions{LabelSelector: "job-name=migrate"})
		if err != nil {
			return err
		}
		if len(list.Items) != 1 {
			return fmt.Errorf("%d pods", len(list.Items))
		}
		pod = list.Items[0]
		if pod.Status.Phase != corev1.PodSucceeded {
			return fmt.Errorf("phase %s (%s)", pod.Status.Phase, podDisplayStatus(&pod))
		}
		return nil
	})
	for _, c := range pod.Spec.Containers {
		if c.Name == "vault-agent" {
			t.Error("pre-populate-only injected a sidecar")
		}
	}
	if got := string(a.effective(pod.Name, "migrate").Files["/vault/secrets/cfg"]); got != "v" {
		t.Errorf("the Job's container sees /vault/secrets/cfg = %q", got)
	}
}

// An application pod of a cluster whose Vault vaultctl installed in-cluster: the chart's
// injector is the one the sandbox stands in for, the agent's address is the chart's in-cluster
// Service name (https://vault.NS.svc:8200), which the pod's /etc/hosts resolves to a Ready Vault
// server pod of the runner, verified against the certificate vaultctl's TLS phase issued.
func TestAgentInClusterVaultThroughServiceName(t *testing.T) {
	t.Parallel()
	const ns, appNS = "sbagent-ic", "sbagent-ic-app"
	cs := kube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	claimPVs(t, cs, ns, inClusterClaims())
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
	ensureNamespace(t, cs, appNS, map[string]string{injectorLabel: ns}) // the estate's injector sees only these
	t.Cleanup(func() { deleteNamespace(t, cs, appNS) })
	ensureServiceAccount(t, cs, appNS, "app")
	cfgPath := filepath.Join(t.TempDir(), "vaultctl.yaml")
	writeInClusterConfigWith(t, cfgPath, ns, false, inClusterExtras{Roles: `  - name: sbagent-ic
    serviceAccounts: [app]
    namespaces: [` + appNS + `]
    policies: [app-db-readonly]
    ttl: 1h
    maxTTL: 4h
`, Sections: `networkPolicies:
  enabled: true
  appEgress: true
  allowedClients:
    - namespace: ` + appNS + `
`})
	if res := vaultctl(t, "apply", "-c", cfgPath, "-o", "json"); !parseRun(t, res).OK {
		t.Fatalf("in-cluster apply failed:\n%s", res)
	}
	vc := portForwardVault(t, ns, "vault-0", serverCA(t, cs, ns))
	login, err := vc.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{
		"role": phases.AdminRole, "jwt": saToken(t, cs, ns, phases.AdminServiceAccount),
	})
	if err != nil {
		t.Fatalf("%s login: %v", phases.AdminRole, err)
	}
	vc.SetToken(login.Auth.ClientToken)
	creds := map[string]any{"host": "db.in-cluster", "username": "webapp", "password": "ic-pass-1"}
	if _, err := vc.KVv2("secret").Put(ctx, "production/db-credentials", creds); err != nil {
		t.Fatalf("writing secret/production/db-credentials as %s: %v", phases.AdminRole, err)
	}

	pod, err := cs.CoreV1().Pods(appNS).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "webapp", Annotations: map[string]string{
			"vault.hashicorp.com/agent-inject":                 "true",
			"vault.hashicorp.com/role":                         "sbagent-ic",
			"vault.hashicorp.com/agent-inject-secret-db-creds": "secret/data/production/db-credentials",
			"vault.hashicorp.com/agent-inject-template-db-creds": `{{- with secret "secret/data/production/db-credentials" -}}
export DB_PASS="{{ .Data.data.password }}"
{{- end }}
`,
		}},
		Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{
			Name: "webapp", Image: "registry.example.com/webapp:v2.4.1", Command: []string{"/bin/sh", "-c"}, Args: []string{". /vault/secrets/db-creds && exec /app/start"},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	by := pod.Annotations[sandbox.InjectedByAnnotation]
	if !strings.Contains(by, "agent-injector") || strings.HasPrefix(by, agentInjector) {
		t.Fatalf("injected by %q, want the chart's injector of %s", by, ns)
	}
	var agentAddr string
	for _, c := range pod.Spec.InitContainers {
		for _, e := range c.Env {
			if e.Name == "VAULT_CONFIG" {
				raw, _ := base64.StdEncoding.DecodeString(e.Value)
				agentAddr = string(raw)
			}
		}
	}
	if !strings.Contains(agentAddr, `"address":"https://vault.`+ns+`.svc:8200"`) {
		t.Fatalf("the injected agent does not address the in-cluster Service: %s", agentAddr)
	}
	a := &agentCase{t: t, ctx: ctx, cs: cs, ns: appNS}
	a.waitRunning("webapp", 3*time.Minute)
	e := a.effective("webapp", "webapp")
	if got := string(e.Files["/vault/secrets/db-creds"]); got != `export DB_PASS="ic-pass-1"`+"\n" {
		t.Errorf("/vault/secrets/db-creds = %q", got)
	}
	if e.Env["DB_PASS"] != "ic-pass-1" {
		t.Errorf("sourced DB_PASS = %q", e.Env["DB_PASS"])
	}
	t.Run("a migrated namespace is admitted by the NetworkPolicies", func(t *testing.T) {
		testMigrateAdmittedByNetworkPolicies(t, cs, cfgPath, ns, "sbagent-ic-mig")
	})
}

// An agent that cannot start (a template that does not parse) exits with an error: its init
// container is restarted with backoff and counted, kubectl shows Init:Error or
// Init:CrashLoopBackOff, and `kubectl logs --previous` has a failed run's output.
func TestAgentInitContainerCrashLoops(t *testing.T) {
	t.Parallel()
	a := newAgentCase(t, "crash")
	a.role("sbagent-crash", "app", "default")
	a.pod("app", map[string]string{
		"vault.hashicorp.com/role":                      "sbagent-crash",
		"vault.hashicorp.com/agent-inject-secret-bad":   agentKV + "/data/crash/config",
		"vault.hashicorp.com/agent-inject-template-bad": `{{ with secret "` + agentKV + `/data/crash/config" }}`,
	})
	// Two failed runs: the second's start moved the first's log to --previous, as a kubelet
	// keeps the last terminated instance for it.
	eventually(t, 2*time.Minute, "vault-agent-init failed twice and restarted", func() error {
		p := a.get("app")
		for _, s := range p.Status.InitContainerStatuses {
			if s.Name != "vault-agent-init" {
				continue
			}
			last := s.LastTerminationState.Terminated
			if s.RestartCount < 2 || last == nil || last.ExitCode == 0 {
				return fmt.Errorf("restarts %d, last state %+v", s.RestartCount, s.LastTerminationState)
			}
			if st := podDisplayStatus(p); st != "Init:Error" && st != "Init:CrashLoopBackOff" && st != "Init:0/1" {
				return fmt.Errorf("STATUS %s", st)
			}
			if p.Status.Phase != corev1.PodPending {
				return fmt.Errorf("phase %s", p.Status.Phase)
			}
			return nil
		}
		return errors.New("no vault-agent-init status")
	})
	prev, err := a.cs.CoreV1().Pods(a.ns).GetLogs("app", &corev1.PodLogOptions{Container: "vault-agent-init", Previous: true}).DoRaw(a.ctx)
	if err != nil || !strings.Contains(string(prev), "parse: template") {
		t.Errorf("kubectl logs --previous -c vault-agent-init: %v\n%s", err, tail(string(prev), 800))
	}
}
