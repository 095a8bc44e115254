package sandbox

// The sandbox's agent injector: an HTTPS mutating admission webhook served by the runner.
//
// The Vault Agent Injector installed in the sandbox (the chart's, or a test's) never runs: its
// pod is kwok-faked, so its webhook calls fail and, with failurePolicy Ignore, pods would be
// created unmutated. The runner therefore registers its own webhook (SandboxInjectorWebhook) and,
// for a pod asking for injection, does what the injector that a real cluster would have called
// would do: it finds that injector from the cluster's other MutatingWebhookConfigurations,
// Services and Deployments (selectInjector), takes its flags from the Deployment's AGENT_INJECT_*
// environment, and answers with vault-k8s's patch (agentinject.Patch) plus two sandbox markers:
//
//   - kwok.x-k8s.io/status: custom, so kwok leaves the pod's status to the runner;
//   - sandbox.vaultctl.io/injected-by: the emulated injector's MutatingWebhookConfiguration, the
//     sign that the sandbox, not that injector, handled the pod (its own webhook still fails, which
//     is what `doctor` must see).

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/internal/sandbox/agentinject"
)

const (
	// SandboxInjectorWebhook names the runner's MutatingWebhookConfiguration.
	SandboxInjectorWebhook = "vaultctl-sandbox-agent-injector"
	// InjectedByAnnotation marks a pod the sandbox injected, with the name of the
	// MutatingWebhookConfiguration of the injector it stood in for.
	InjectedByAnnotation = "sandbox.vaultctl.io/injected-by"
	// webhookProbeAnnotation marks the dry-run pod the runner creates to see its webhook called.
	webhookProbeAnnotation = "sandbox.vaultctl.io/webhook-probe"

	portAgentInjector = "agent-injector" // the webhook's port and its certificate's name
	webhookPath       = "/mutate"
	// injectorAddrEnv is what makes a Deployment an agent injector (vault-k8s flags.go: the one
	// setting it cannot run without).
	injectorAddrEnv = "AGENT_INJECT_VAULT_ADDR"
)

// emulatedInjector is the injector a real cluster would have called for a pod.
type emulatedInjector struct {
	Config     string // its MutatingWebhookConfiguration
	Webhook    string // the webhook's name in it
	Deployment string // namespace/name of the Deployment behind its Service
	Defaults   agentinject.Defaults
}

// selectInjector finds the injector that would have mutated pod (in namespace ns) in a real
// cluster: the API server calls the mutating webhooks of every configuration, sorted by name and
// in order within one, whose rules match pods CREATE and whose namespaceSelector and
// objectSelector match; the first that is an agent injector (its clientConfig.service names a
// Service whose selector matches a Deployment with AGENT_INJECT_VAULT_ADDR) injects, and the
// later ones see agent-inject-status: injected and leave the pod alone. nil when none matches.
//
// An injector whose environment its flags parser would refuse never starts: its webhook fails,
// and its failurePolicy decides, as the API server's does. Ignore goes on to the next webhook; Fail
// (the default) refuses the pod, reported as an error. matchConditions are not evaluated.
func selectInjector(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, ns *corev1.Namespace) (*emulatedInjector, error) {
	list, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing MutatingWebhookConfigurations: %w", err)
	}
	cfgs := list.Items
	sort.Slice(cfgs, func(i, j int) bool { return cfgs[i].Name < cfgs[j].Name })
	for _, cfg := range cfgs {
		if cfg.Name == SandboxInjectorWebhook {
			continue
		}
		for _, wh := range cfg.Webhooks {
			ok, err := webhookMatches(wh, pod, ns)
			if err != nil {
				return nil, fmt.Errorf("MutatingWebhookConfiguration %s, webhook %s: %w", cfg.Name, wh.Name, err)
			}
			if !ok || wh.ClientConfig.Service == nil {
				continue
			}
			dep, env, err := injectorDeployment(ctx, cs, wh.ClientConfig.Service)
			if err != nil {
				return nil, err
			}
			if dep == "" {
				continue
			}
			d, err := injectorDefaults(env)
			if err != nil {
				if wh.FailurePolicy != nil && *wh.FailurePolicy == admissionregistrationv1.Ignore {
					continue
				}
				return nil, fmt.Errorf("failed calling webhook %q: the injector Deployment %s would not start: %w", wh.Name, dep, err)
			}
			d.Namespace = ns.Name
			return &emulatedInjector{Config: cfg.Name, Webhook: wh.Name, Deployment: dep, Defaults: d}, nil
		}
	}
	return nil, nil
}

// webhookMatches reports whether the API server would call wh for the creation of pod.
func webhookMatches(wh admissionregistrationv1.MutatingWebhook, pod *corev1.Pod, ns *corev1.Namespace) (bool, error) {
	if !slices.ContainsFunc(wh.Rules, rulePodsCreate) {
		return false, nil
	}
	for _, sel := range []struct {
		what string
		sel  *metav1.LabelSelector
		set  map[string]string
	}{{"namespaceSelector", wh.NamespaceSelector, ns.Labels}, {"objectSelector", wh.ObjectSelector, pod.Labels}} {
		if sel.sel == nil {
			continue // the API server defaults both to {}: everything
		}
		s, err := metav1.LabelSelectorAsSelector(sel.sel)
		if err != nil {
			return false, fmt.Errorf("%s: %w", sel.what, err)
		}
		if !s.Matches(labels.Set(sel.set)) {
			return false, nil
		}
	}
	return true, nil
}

// rulePodsCreate reports whether a rule covers CREATE of core/v1 pods (not a subresource).
func rulePodsCreate(r admissionregistrationv1.RuleWithOperations) bool {
	has := func(list []string, want ...string) bool {
		return slices.ContainsFunc(list, func(s string) bool { return slices.Contains(want, s) })
	}
	ops := make([]string, len(r.Operations))
	for i, o := range r.Operations {
		ops[i] = string(o)
	}
	scopeOK := r.Scope == nil || *r.Scope == admissionregistrationv1.AllScopes || *r.Scope == admissionregistrationv1.NamespacedScope
	return has(ops, "CREATE", "*") && has(r.APIGroups, "", "*") && has(r.APIVersions, "v1", "*") &&
		has(r.Resources, "pods", "*", "*/*") && scopeOK
}

// injectorDeployment finds the Deployment behind a webhook's Service that runs an agent injector,
// first by name, and the environment of its injector container; "" when there is none (no such
// Service, no selector, no matching Deployment).
func injectorDeployment(ctx context.Context, cs kubernetes.Interface, ref *admissionregistrationv1.ServiceReference) (string, []corev1.EnvVar, error) {
	svc, err := cs.CoreV1().Services(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("Service %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	if len(svc.Spec.Selector) == 0 {
		return "", nil, nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	deps, err := cs.AppsV1().Deployments(ref.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", nil, fmt.Errorf("listing Deployments in %s: %w", ref.Namespace, err)
	}
	items := deps.Items
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	for _, d := range items {
		if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == injectorAddrEnv }) {
				return d.Namespace + "/" + d.Name, c.Env, nil
			}
		}
	}
	return "", nil, nil
}

// injectorDefaults reads an injector container's AGENT_INJECT_* environment as vault-k8s
// flags.go parseEnvs does: an empty variable keeps the flag default; booleans and integers that do
// not parse stop the injector. Only literal values are read (valueFrom is not resolved), and
// AGENT_INJECT_LOG_LEVEL/LOG_FORMAT are the injector's own logging, not the agent's.
func injectorDefaults(env []corev1.EnvVar) (agentinject.Defaults, error) {
	var d agentinject.Defaults
	str := map[string]*string{
		injectorAddrEnv:                                       &d.Address,
		"AGENT_INJECT_VAULT_CACERT_BYTES":                     &d.CACertBytes,
		"AGENT_INJECT_VAULT_AUTH_TYPE":                        &d.AuthType,
		"AGENT_INJECT_VAULT_AUTH_PATH":                        &d.AuthPath,
		"AGENT_INJECT_VAULT_NAMESPACE":                        &d.VaultNamespace,
		"AGENT_INJECT_PROXY_ADDR":                             &d.ProxyAddress,
		"AGENT_INJECT_VAULT_IMAGE":                            &d.Image,
		"AGENT_INJECT_DEFAULT_TEMPLATE":                       &d.DefaultTemplate,
		"AGENT_INJECT_TEMPLATE_STATIC_SECRET_RENDER_INTERVAL": &d.StaticSecretRenderInterval,
		"AGENT_INJECT_AUTH_MIN_BACKOFF":                       &d.AuthMinBackoff,
		"AGENT_INJECT_AUTH_MAX_BACKOFF":                       &d.AuthMaxBackoff,
		"AGENT_INJECT_DISABLE_IDLE_CONNECTIONS":               &d.DisableIdleConnections,
		"AGENT_INJECT_DISABLE_KEEP_ALIVES":                    &d.DisableKeepAlives,
		"AGENT_INJECT_RUN_AS_USER":                            &d.RunAsUser,
		"AGENT_INJECT_RUN_AS_GROUP":                           &d.RunAsGroup,
		"AGENT_INJECT_CPU_LIMIT":                              &d.LimitCPU,
		"AGENT_INJECT_MEM_LIMIT":                              &d.LimitMem,
		"AGENT_INJECT_EPHEMERAL_LIMIT":                        &d.LimitEphemeral,
		"AGENT_INJECT_CPU_REQUEST":                            &d.RequestCPU,
		"AGENT_INJECT_MEM_REQUEST":                            &d.RequestMem,
		"AGENT_INJECT_EPHEMERAL_REQUEST":                      &d.RequestEphemeral,
	}
	var exitOnRetry, setSecCtx bool
	boolean := map[string]*bool{
		"AGENT_INJECT_REVOKE_ON_SHUTDOWN":                    &d.RevokeOnShutdown,
		"AGENT_INJECT_RUN_AS_SAME_USER":                      &d.RunAsSameUser,
		"AGENT_INJECT_TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE": &exitOnRetry,
		"AGENT_INJECT_SET_SECURITY_CONTEXT":                  &setSecCtx,
	}
	for _, e := range env {
		if e.Value == "" {
			continue
		}
		if p, ok := str[e.Name]; ok {
			*p = e.Value
			continue
		}
		if p, ok := boolean[e.Name]; ok {
			v, err := strconv.ParseBool(e.Value)
			if err != nil {
				return d, fmt.Errorf("%s=%q is not a boolean", e.Name, e.Value)
			}
			*p = v
			switch e.Name {
			case "AGENT_INJECT_TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE":
				d.ExitOnRetryFailure = &exitOnRetry
			case "AGENT_INJECT_SET_SECURITY_CONTEXT":
				d.SetSecurityContext = &setSecCtx
			}
			continue
		}
		if e.Name == "AGENT_INJECT_TEMPLATE_MAX_CONNECTIONS_PER_HOST" {
			v, err := strconv.ParseInt(e.Value, 10, 64)
			if err != nil {
				return d, fmt.Errorf("%s=%q is not an integer", e.Name, e.Value)
			}
			d.MaxConnectionsPerHost = v
		}
	}
	return d, nil
}

// agentWebhook answers the API server's AdmissionReviews for pod creations.
type agentWebhook struct {
	cs  kubernetes.Interface
	log *log.Logger
}

func (h *agentWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != webhookPath {
		http.Error(w, "POST an admission.k8s.io/v1 AdmissionReview to "+webhookPath, http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("not an AdmissionReview with a request: %v", err), http.StatusBadRequest)
		return
	}
	resp := h.review(r.Context(), review.Request)
	resp.UID = review.Request.UID
	out, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// review decides one admission request.
func (h *agentWebhook) review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create || req.SubResource != "" {
		return allow
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return &admissionv1.AdmissionResponse{Result: &metav1.Status{Message: err.Error()}}
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace // a pod from generateName (a ReplicaSet's) comes without one
	}
	if _, ok := pod.Annotations[webhookProbeAnnotation]; ok {
		return jsonPatch(allow, []agentinject.PatchOperation{
			{Op: "add", Path: "/metadata/annotations/" + agentinject.EscapePointer(webhookProbeAnnotation), Value: "answered"},
		})
	}
	// Most pods do not ask: answer them without a look at the cluster.
	if _, ok := pod.Annotations[agentinject.AnnotationInject]; !ok || pod.Annotations[agentinject.AnnotationStatus] == "injected" {
		return allow
	}
	who := pod.Namespace + "/" + pod.Name
	if pod.Name == "" {
		who = pod.Namespace + "/" + pod.GenerateName + "*"
	}

	ns, err := h.cs.CoreV1().Namespaces().Get(ctx, pod.Namespace, metav1.GetOptions{})
	if err != nil {
		// Like an injector that cannot be reached: failurePolicy Ignore lets the pod in unchanged.
		h.log.Printf("agent injection: %s: namespace: %v; pod admitted unchanged", who, err)
		return allow
	}
	inj, err := selectInjector(ctx, h.cs, &pod, ns)
	if err != nil {
		h.log.Printf("agent injection: %s refused: %v", who, err)
		return &admissionv1.AdmissionResponse{Result: &metav1.Status{Message: err.Error()}}
	}
	if inj == nil {
		return allow // as in a cluster without an injector: the pod starts without its secrets
	}
	a, err := agentinject.ParsePod(&pod, inj.Defaults)
	if err == nil && a == nil {
		return allow // agent-inject reads false
	}
	var ops []agentinject.PatchOperation
	if err == nil {
		if ops, err = a.Patch(&pod); err != nil {
			err = fmt.Errorf("error creating patch for agent: %s", err)
		}
	}
	if err != nil {
		// vault-k8s answers with the error and no Allowed: the API server refuses the pod.
		h.log.Printf("agent injection: %s refused in place of %s: %v", who, inj.Config, err)
		return &admissionv1.AdmissionResponse{Result: &metav1.Status{Message: err.Error()}}
	}
	ops = append(ops,
		agentinject.PatchOperation{Op: "add", Path: "/metadata/annotations/" + agentinject.EscapePointer(KwokStatusAnnotation), Value: "custom"},
		agentinject.PatchOperation{Op: "add", Path: "/metadata/annotations/" + agentinject.EscapePointer(InjectedByAnnotation), Value: inj.Config})
	h.log.Printf("agent injection: %s injected in place of %s (Deployment %s)", who, inj.Config, inj.Deployment)
	resp := jsonPatch(allow, ops)
	if len(a.Unsupported) > 0 {
		resp.Warnings = []string{fmt.Sprintf("vaultctl sandbox: the injected agent ignores %s (not emulated)", strings.Join(a.Unsupported, ", "))}
	}
	return resp
}

func jsonPatch(resp *admissionv1.AdmissionResponse, ops []agentinject.PatchOperation) *admissionv1.AdmissionResponse {
	b, err := json.Marshal(ops)
	if err != nil {
		return &admissionv1.AdmissionResponse{Result: &metav1.Status{Message: err.Error()}}
	}
	pt := admissionv1.PatchTypeJSONPatch
	out := *resp
	out.Patch, out.PatchType = b, &pt
	return &out
}

// sandboxWebhookConfig is the runner's MutatingWebhookConfiguration: pods CREATE everywhere but
// the control plane's namespaces, at url, trusted through caPEM; failurePolicy Ignore so that a
// stopped runner never blocks pod creation.
func sandboxWebhookConfig(url string, caPEM []byte) *admissionregistrationv1.MutatingWebhookConfiguration {
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	never := admissionregistrationv1.NeverReinvocationPolicy
	scope := admissionregistrationv1.NamespacedScope
	timeout := int32(10)
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: SandboxInjectorWebhook, Labels: map[string]string{"app.kubernetes.io/managed-by": runnerManagedBy}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			// The chart's webhook name: the API server names it in a refusal ("admission webhook
			// \"vault.hashicorp.com\" denied the request: ..."), as it would the real injector's.
			Name:         "vault.hashicorp.com",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: &scope},
			}},
			FailurePolicy: &ignore,
			SideEffects:   &none,
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: []string{metav1.NamespaceSystem, corev1.NamespaceNodeLease},
			}}},
			ReinvocationPolicy:      &never,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}

// startAgentWebhook serves the webhook on addr with the certificate in certFile/keyFile, registers
// it, and returns once the API server calls it (a dry-run pod comes back with the probe's mark),
// so that a pod created after Up returns is injected. The server stops with ctx.
func (r *runner) startAgentWebhook(ctx context.Context, addr, certFile, keyFile, caFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("agent injector webhook certificate: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("agent injector webhook: %w", err)
	}
	srv := &http.Server{
		Handler:           &agentWebhook{cs: r.cs, log: r.log},
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          r.log,
	}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Printf("agent injector webhook: %v", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	url := "https://" + addr + webhookPath
	if err := applyWebhookConfig(ctx, r.cs, sandboxWebhookConfig(url, caPEM)); err != nil {
		return fmt.Errorf("registering MutatingWebhookConfiguration %s: %w", SandboxInjectorWebhook, err)
	}
	if err := waitWebhookCalled(ctx, r.cs); err != nil {
		return err
	}
	r.log.Printf("agent injector webhook %s serves %s", SandboxInjectorWebhook, url)
	return nil
}

// applyWebhookConfig creates the configuration or replaces the one a previous runner left.
func applyWebhookConfig(ctx context.Context, cs kubernetes.Interface, want *admissionregistrationv1.MutatingWebhookConfiguration) error {
	api := cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	_, err := api.Create(ctx, want, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := api.Get(ctx, want.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	want.ResourceVersion = cur.ResourceVersion
	_, err = api.Update(ctx, want, metav1.UpdateOptions{})
	return err
}

// waitWebhookCalled creates a dry-run pod until the API server, whose webhook informer picks up a
// new configuration asynchronously, returns it with the probe's mark.
func waitWebhookCalled(ctx context.Context, cs kubernetes.Interface) error {
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "vaultctl-sandbox-webhook-probe-", Annotations: map[string]string{webhookProbeAnnotation: ""}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "probe"}}},
	}
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		got, err := cs.CoreV1().Pods(metav1.NamespaceDefault).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case err != nil:
			last = err
		case got.Annotations[webhookProbeAnnotation] == "answered":
			return nil
		default:
			last = errors.New("the API server does not call it yet")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("agent injector webhook: %v", last)
}
