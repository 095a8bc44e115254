package doctor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// injectorWebhook is one webhook that calls a Vault Agent Injector (vault-k8s): its Service
// is backed by a Deployment whose container has AGENT_INJECT_* settings.
type injectorWebhook struct {
	config  string // the MutatingWebhookConfiguration
	hook    admissionregistrationv1.MutatingWebhook
	service string // ns/name
	deploy  *appsv1.Deployment
}

type webhookSet struct {
	injectors []injectorWebhook
	err       error
}

// injectorWebhooks lists the webhooks that call a vault-k8s injector. Webhooks that call a URL
// (not a Service in the cluster) are not judged: vaultctl cannot see what answers there (the
// sandbox's own emulating webhook is one).
func (d *Doctor) injectorWebhooks(ctx context.Context) *webhookSet {
	if d.webhooks != nil {
		return d.webhooks
	}
	ws := &webhookSet{}
	d.webhooks = ws
	list, err := d.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		ws.err = err
		return ws
	}
	for _, cfg := range list.Items {
		for _, h := range cfg.Webhooks {
			svc := h.ClientConfig.Service
			if svc == nil || !coversPodCreate(h.Rules) {
				continue
			}
			dep := d.injectorBehind(ctx, svc.Namespace, svc.Name)
			if dep == nil {
				continue
			}
			ws.injectors = append(ws.injectors, injectorWebhook{config: cfg.Name, hook: h, service: svc.Namespace + "/" + svc.Name, deploy: dep})
		}
	}
	sort.Slice(ws.injectors, func(i, j int) bool { return ws.injectors[i].config < ws.injectors[j].config })
	return ws
}

func coversPodCreate(rules []admissionregistrationv1.RuleWithOperations) bool {
	has := func(list []string, v string) bool {
		for _, x := range list {
			if x == v || x == "*" {
				return true
			}
		}
		return false
	}
	for _, r := range rules {
		ops := false
		for _, op := range r.Operations {
			if op == admissionregistrationv1.Create || op == admissionregistrationv1.OperationAll {
				ops = true
			}
		}
		if ops && has(r.APIGroups, "") && has(r.Resources, "pods") {
			return true
		}
	}
	return false
}

// injectorBehind returns the Deployment behind a Service when it runs vault-k8s.
func (d *Doctor) injectorBehind(ctx context.Context, ns, name string) *appsv1.Deployment {
	svc, err := d.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || len(svc.Spec.Selector) == 0 {
		return nil
	}
	deps, err := d.Kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	for i := range deps.Items {
		dep := &deps.Items[i]
		if !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
			continue
		}
		for _, c := range dep.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "AGENT_INJECT_") {
					return dep
				}
			}
		}
	}
	return nil
}

// selects says whether a webhook would be called for a pod in a namespace with nsLabels.
func selects(h admissionregistrationv1.MutatingWebhook, ns string, nsLabels, podLabels map[string]string) (bool, string) {
	all := map[string]string{corev1.LabelMetadataName: ns}
	for k, v := range nsLabels {
		all[k] = v
	}
	if h.NamespaceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(h.NamespaceSelector)
		if err != nil || !sel.Matches(labels.Set(all)) {
			return false, "namespaceSelector " + metav1.FormatLabelSelector(h.NamespaceSelector)
		}
	}
	if h.ObjectSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(h.ObjectSelector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			return false, "objectSelector " + metav1.FormatLabelSelector(h.ObjectSelector)
		}
	}
	return true, ""
}

// injection explains a pod that asks for injection but has no agent containers (8).
func (d *Doctor) injection(ctx context.Context, c *podCheck) {
	p := c.pod
	ws := d.injectorWebhooks(ctx)
	if ws.err != nil {
		c.add(Finding{Severity: Warning, Code: CodeNoWebhook, Message: "the pod asks for injection but has no agent, and the webhooks could not be listed",
			Evidence: []string{"listing MutatingWebhookConfigurations: " + ws.err.Error()}, Fix: "run doctor with a kubeconfig that may list mutatingwebhookconfigurations"})
		return
	}
	base := []string{fmt.Sprintf("%s: %q, but the pod has no %s container", annInject, p.Annotations[annInject], initContainer)}
	if c.template {
		base = []string{fmt.Sprintf("%s: %q on the pod template; the workload has no pod", annInject, p.Annotations[annInject])}
	}
	if len(ws.injectors) == 0 {
		c.add(Finding{Severity: Error, Code: CodeNoWebhook,
			Message:  "no MutatingWebhookConfiguration calls a Vault Agent Injector, so nothing injects the agent",
			Evidence: append(base, "no webhook on pods CREATE whose Service is backed by a Deployment with AGENT_INJECT_* settings"),
			Fix:      "install the injector: vaultctl apply --only injector (injector.enabled: true), then recreate the pod"})
		return
	}
	var nsLabels map[string]string
	if ns, err := d.Kube.CoreV1().Namespaces().Get(ctx, p.Namespace, metav1.GetOptions{}); err == nil {
		nsLabels = ns.Labels
	}
	var chosen *injectorWebhook
	var why []string
	for i := range ws.injectors {
		iw := &ws.injectors[i]
		if ok, reason := selects(iw.hook, p.Namespace, nsLabels, p.Labels); ok {
			chosen = iw
			break
		} else {
			why = append(why, fmt.Sprintf("webhook %s in %s (injector %s) skips it: %s", iw.hook.Name, iw.config, iw.service, reason))
		}
	}
	if chosen == nil {
		fix := "label the namespace so an injector's namespaceSelector matches it, then recreate the pod"
		if sel := ws.injectors[0].hook.NamespaceSelector; sel != nil && len(sel.MatchLabels) > 0 {
			var kv []string
			for k, v := range sel.MatchLabels {
				kv = append(kv, k+"="+v)
			}
			sort.Strings(kv)
			fix = fmt.Sprintf("kubectl label namespace %s %s (what %s selects; injector.namespaceLabels in the config), then recreate the pod", p.Namespace, strings.Join(kv, " "), ws.injectors[0].config)
		}
		c.add(Finding{Severity: Error, Code: CodeNotSelected,
			Message:  fmt.Sprintf("no injector's webhook selects namespace %s, so the pod was created without the agent", p.Namespace),
			Evidence: append(append(base, fmt.Sprintf("namespace %s labels: %s", p.Namespace, labels.Set(nsLabels).String())), why...),
			Fix:      fix})
		return
	}
	problems := 0
	if c.template {
		if ev := d.templateWithoutToken(ctx, p); ev != nil {
			problems++
			c.add(Finding{Severity: Error, Code: CodeNoTokenMount,
				Message:  "the pod template mounts no ServiceAccount token, so the injector refuses every pod (vault-k8s: failed to find service account volume mount) and the workload has none",
				Evidence: append(append(base, ev...), d.creationFailures(ctx, p.Namespace, p.Name)...),
				Fix:      "remove automountServiceAccountToken: false from the pod template (or its ServiceAccount), or mount a projected token and name it in " + annTokenVolume + "; the controller then creates the pods"})
		}
	}
	obj := "MutatingWebhookConfiguration " + chosen.config
	if msg := caBundleProblem(chosen.hook.ClientConfig.CABundle, d.Now()); msg != "" {
		problems++
		c.add(Finding{Severity: Error, Code: CodeCABundle, Object: obj,
			Message:  "the injector webhook's caBundle " + msg + ": the API server cannot verify the injector, every call fails and the pod is created without the agent",
			Evidence: append(base, fmt.Sprintf("webhook %s clientConfig.caBundle: %s", chosen.hook.Name, msg)),
			Fix:      fmt.Sprintf("the injector writes its own caBundle at start (AGENT_INJECT_TLS_AUTO): restart it (kubectl rollout restart deployment/%s -n %s) and check its log", chosen.deploy.Name, chosen.deploy.Namespace)})
	}
	if chosen.deploy.Status.AvailableReplicas == 0 {
		problems++
		c.add(Finding{Severity: Error, Code: CodeInjectorDown, Object: "Deployment " + chosen.deploy.Namespace + "/" + chosen.deploy.Name,
			Message:  "the injector has no available pod: the webhook call fails and the pod is created without the agent",
			Evidence: append(base, fmt.Sprintf("Deployment %s/%s: %d of %d replicas available", chosen.deploy.Namespace, chosen.deploy.Name, chosen.deploy.Status.AvailableReplicas, replicas(chosen.deploy))),
			Fix:      fmt.Sprintf("kubectl describe deployment %s -n %s and kubectl get pods -n %s: fix what keeps the injector from running, then recreate the pod", chosen.deploy.Name, chosen.deploy.Namespace, chosen.deploy.Namespace)})
	}
	ignore := chosen.hook.FailurePolicy == nil || *chosen.hook.FailurePolicy == admissionregistrationv1.Ignore
	if c.template && problems == 0 {
		// No pod yet: the template would be injected by this webhook, nothing failed.
		c.add(Finding{Severity: Info, Code: CodeNotInjectable, Object: obj,
			Message:  fmt.Sprintf("the workload has no pod; webhook %s (injector %s) would inject pods made from its template", chosen.hook.Name, chosen.service),
			Evidence: []string{fmt.Sprintf("namespace %s matches the webhook's selectors", p.Namespace)},
			Fix:      "scale the workload up, then run doctor on its pods"})
		return
	}
	if ignore {
		sev := Warning
		if problems == 0 {
			sev = Error // nothing else explains it: the call failed and Ignore let the pod through
		}
		c.add(Finding{Severity: sev, Code: CodeFailurePolicy, Object: obj,
			Message: "the webhook's failurePolicy is Ignore: when the injector call fails, the API server creates the pod without the agent and says nothing, which hides the failure",
			Evidence: append(base, fmt.Sprintf("webhook %s failurePolicy: Ignore; the injector behind it is %s", chosen.hook.Name, chosen.service),
				"the API server's log (or the audit log) shows the failed call: failed calling webhook \""+chosen.hook.Name+"\""),
			Fix: "fix the injector (above), then recreate the pod; injector.failurePolicy: Fail (vaultctl apply --only injector) makes such pods fail to create visibly instead"})
	}
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// caBundleProblem says what is wrong with a webhook's caBundle, or "".
func caBundleProblem(b []byte, now interface{ Unix() int64 }) string {
	if len(strings.TrimSpace(string(b))) == 0 {
		return "is empty"
	}
	var found int
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return "holds a PEM block that is not a certificate"
		}
		found++
		if c.NotAfter.Unix() < now.Unix() {
			return fmt.Sprintf("holds a certificate that expired on %s", c.NotAfter.UTC().Format("2006-01-02"))
		}
	}
	if found == 0 {
		return "is not PEM"
	}
	return ""
}

// templateWithoutToken says why a pod made from the template would get no ServiceAccount token
// (the evidence), or nil when it would get one.
func (d *Doctor) templateWithoutToken(ctx context.Context, p *corev1.Pod) []string {
	for _, v := range p.Spec.Volumes {
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil {
					return nil
				}
			}
		}
	}
	if a := p.Spec.AutomountServiceAccountToken; a != nil {
		if *a {
			return nil
		}
		return []string{"pod template spec.automountServiceAccountToken: false, and no projected ServiceAccount token volume"}
	}
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	if acct, err := d.Kube.CoreV1().ServiceAccounts(p.Namespace).Get(ctx, sa, metav1.GetOptions{}); err == nil &&
		acct.AutomountServiceAccountToken != nil && !*acct.AutomountServiceAccountToken {
		return []string{fmt.Sprintf("ServiceAccount %s/%s automountServiceAccountToken: false, and the template neither overrides it nor mounts a projected token", p.Namespace, sa)}
	}
	return nil
}

// creationFailures are the controller's reports of pods it could not create for the workload
// named KIND/NAME (a ReplicaSet's ReplicaFailure condition, FailedCreate events).
func (d *Doctor) creationFailures(ctx context.Context, ns, kindName string) []string {
	kind, name, _ := strings.Cut(kindName, "/")
	owners := []string{name}
	var out []string
	if kind == "Deployment" {
		owners = nil
		if rss, err := d.Kube.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, rs := range rss.Items {
				for _, o := range rs.OwnerReferences {
					if o.Kind == "Deployment" && o.Name == name {
						owners = append(owners, rs.Name)
						for _, cond := range rs.Status.Conditions {
							if cond.Type == appsv1.ReplicaSetReplicaFailure && cond.Status == corev1.ConditionTrue {
								out = append(out, fmt.Sprintf("ReplicaSet %s: %s", rs.Name, cond.Message))
							}
						}
					}
				}
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	evs, err := d.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	for _, e := range evs.Items {
		for _, o := range owners {
			if e.InvolvedObject.Name == o && e.Reason == "FailedCreate" {
				out = append(out, fmt.Sprintf("event FailedCreate on %s %s: %s", e.InvolvedObject.Kind, o, e.Message))
				break
			}
		}
		if len(out) >= 3 {
			break
		}
	}
	return out
}
