// Package doctor diagnoses pods that ask for Vault Agent injection: it reads live state (the
// pod, its agent's log, the injector's webhook, the Kubernetes auth role and config, the
// policies) and names each problem with its evidence and the fix. It only reads.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
)

// Severity says how much a finding matters: errors and warnings are problems (exit 1), info
// is advice that does not fail the run.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding codes, one per cause the doctor can name.
const (
	CodeAgentLogin        = "agent-login-failed" // 1: the init agent fails, cause not confirmed elsewhere
	CodeRoleMissing       = "role-missing"       // 2
	CodeSANotBound        = "service-account-not-bound"
	CodeNamespaceNotBound = "namespace-not-bound"
	CodeNoRole            = "no-role-annotation"
	CodeAudience          = "audience-mismatch"           // 3
	CodeStaleCA           = "stale-ca"                    // 4
	CodeReviewerJWT       = "reviewer-jwt-invalid"        // 4
	CodeDataSegment       = "policy-missing-data-segment" // 5
	CodeWrongMount        = "wrong-mount"                 // 5
	CodePathDenied        = "path-denied"                 // 5
	CodeVaultSealed       = "vault-sealed"                // 6
	CodeVaultUnreachable  = "vault-unreachable"           // 6
	CodeVaultNoLeader     = "vault-no-leader"             // 6
	CodeNetworkPolicy     = "network-policy-blocks"       // 7
	CodeNoWebhook         = "injector-webhook-missing"    // 8
	CodeNotSelected       = "injector-not-selecting"      // 8
	CodeCABundle          = "webhook-cabundle-invalid"    // 8
	CodeInjectorDown      = "injector-unavailable"        // 8
	CodeFailurePolicy     = "webhook-failure-ignored"     // 8
	CodeNoTokenMount      = "no-token-mount"              // 8
	CodeJobSidecar        = "job-sidecar-never-exits"     // 9
	CodeRenderedOnce      = "rendered-once"               // 10
	CodeNoReloadCommand   = "no-reload-command"           // 10
	CodeNotInjectable     = "injection-not-requested"
)

// Finding is one problem: what, where, the evidence that shows it and the fix.
type Finding struct {
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	Object   string   `json:"object"`
	Message  string   `json:"message"`
	Evidence []string `json:"evidence"`
	Fix      string   `json:"fix"`
}

// Report is what a run found.
type Report struct {
	// Pods are the pods (ns/name) examined; a workload without pods is named by KIND/NAME.
	Pods     []string  `json:"pods"`
	Findings []Finding `json:"findings"`
}

// Problems counts the findings that fail the run (errors and warnings).
func (r *Report) Problems() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity != Info {
			n++
		}
	}
	return n
}

// VaultReader is what the doctor reads of Vault; vault.Client satisfies it.
type VaultReader interface {
	ReadRole(ctx context.Context, mount, name string) (map[string]any, error)
	ReadAuthConfig(ctx context.Context, mount string) (map[string]any, error)
	ReadPolicy(ctx context.Context, name string) (string, bool, error)
	ListMounts(ctx context.Context) (map[string]vault.MountInfo, error)
	Health(ctx context.Context) (*vaultapi.HealthResponse, error)
}

// Doctor holds the handles a diagnosis reads.
type Doctor struct {
	Kube   kubernetes.Interface
	Config *config.Config
	// Vault is nil when no session could be opened; VaultErr then says why, and the checks
	// that need Vault are reported as not run.
	Vault    VaultReader
	VaultErr error
	// KubeCA is the cluster CA from the kubeconfig, used when the pod's namespace has no
	// kube-root-ca.crt ConfigMap.
	KubeCA []byte
	Now    func() time.Time

	// Tokens, when set, lets the doctor ask Vault itself what an agent's live token may do.
	Tokens TokenProbe

	accessors  map[string]*vault.TokenInfo
	roles      map[string]roleRead
	policies   map[string]policyRead
	issuer     *string // the API server's default token audience, once read
	mounts     map[string]vault.MountInfo
	mountsErr  error
	authConfig map[string]authConfigResult
	webhooks   *webhookSet
}

type authConfigResult struct {
	data map[string]any
	err  error
}

// Target is what to examine: Name empty means every pod asking for injection in Namespace
// (every namespace when that is empty too); Kind empty means Name is a pod.
type Target struct {
	Namespace string
	Kind      string
	Name      string
}

// ParseTarget reads POD or KIND/NAME.
func ParseTarget(ns, arg string) (Target, error) {
	t := Target{Namespace: ns}
	if arg == "" {
		return t, nil
	}
	kind, name, ok := strings.Cut(arg, "/")
	if !ok {
		t.Name = arg
		return t, nil
	}
	k, known := kinds[strings.ToLower(kind)]
	if !known || name == "" {
		return t, fmt.Errorf("%q: want POD or KIND/NAME with KIND one of pod, deployment, statefulset, daemonset, replicaset, job", arg)
	}
	t.Kind, t.Name = k, name
	if k == "Pod" {
		t.Kind = ""
	}
	return t, nil
}

var kinds = map[string]string{
	"pod": "Pod", "pods": "Pod", "po": "Pod",
	"deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
	"statefulset": "StatefulSet", "statefulsets": "StatefulSet", "sts": "StatefulSet",
	"daemonset": "DaemonSet", "daemonsets": "DaemonSet", "ds": "DaemonSet",
	"replicaset": "ReplicaSet", "replicasets": "ReplicaSet", "rs": "ReplicaSet",
	"job": "Job", "jobs": "Job",
}

// ErrNotFound marks a target the cluster does not have.
var ErrNotFound = errors.New("not found")

// Run diagnoses the target.
func (d *Doctor) Run(ctx context.Context, t Target) (*Report, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	rep := &Report{Pods: []string{}, Findings: []Finding{}}
	pods, tmpl, err := d.resolve(ctx, t)
	if err != nil {
		return nil, err
	}
	if vf := d.vaultHealth(ctx); vf != nil {
		rep.Findings = append(rep.Findings, *vf)
	}
	for i := range pods {
		p := &pods[i]
		rep.Pods = append(rep.Pods, p.Namespace+"/"+p.Name)
		rep.Findings = append(rep.Findings, d.pod(ctx, p, t.Name != "" && t.Kind == "", false)...)
	}
	if len(pods) == 0 && tmpl != nil {
		// A workload without pods: what can be judged from its template (injection).
		rep.Pods = append(rep.Pods, t.Kind+"/"+t.Name)
		rep.Findings = append(rep.Findings, d.pod(ctx, tmpl, true, true)...)
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool { return rank(rep.Findings[i].Severity) < rank(rep.Findings[j].Severity) })
	return rep, nil
}

func rank(s Severity) int {
	switch s {
	case Error:
		return 0
	case Warning:
		return 1
	}
	return 2
}

// resolve lists the pods to examine; for a workload it also returns a stand-in pod built
// from its template, for when it has no pods.
func (d *Doctor) resolve(ctx context.Context, t Target) ([]corev1.Pod, *corev1.Pod, error) {
	core := d.Kube.CoreV1()
	if t.Name == "" {
		list, err := core.Pods(t.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("listing pods: %w", err)
		}
		var out []corev1.Pod
		for _, p := range list.Items {
			if asksInjection(p.Annotations) {
				out = append(out, p)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
		return out, nil, nil
	}
	if t.Kind == "" {
		p, err := core.Pods(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("%w: pod %s/%s (kubectl get pods -n %s lists them)", ErrNotFound, t.Namespace, t.Name, t.Namespace)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading pod %s/%s: %w", t.Namespace, t.Name, err)
		}
		return []corev1.Pod{*p}, nil, nil
	}
	sel, tmpl, err := d.workload(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	list, err := core.Pods(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, nil, fmt.Errorf("listing the pods of %s/%s: %w", t.Kind, t.Name, err)
	}
	stand := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
	stand.Namespace, stand.Name = t.Namespace, t.Kind+"/"+t.Name
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			pods = append(pods, p)
		}
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	return pods, stand, nil
}

func (d *Doctor) workload(ctx context.Context, t Target) (labels.Selector, *corev1.PodTemplateSpec, error) {
	apps, batch := d.Kube.AppsV1(), d.Kube.BatchV1()
	var (
		ls   *metav1.LabelSelector
		tmpl *corev1.PodTemplateSpec
		err  error
	)
	switch t.Kind {
	case "Deployment":
		o, e := apps.Deployments(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err = e; e == nil {
			ls, tmpl = o.Spec.Selector, &o.Spec.Template
		}
	case "StatefulSet":
		o, e := apps.StatefulSets(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err = e; e == nil {
			ls, tmpl = o.Spec.Selector, &o.Spec.Template
		}
	case "DaemonSet":
		o, e := apps.DaemonSets(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err = e; e == nil {
			ls, tmpl = o.Spec.Selector, &o.Spec.Template
		}
	case "ReplicaSet":
		o, e := apps.ReplicaSets(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err = e; e == nil {
			ls, tmpl = o.Spec.Selector, &o.Spec.Template
		}
	case "Job":
		o, e := batch.Jobs(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err = e; e == nil {
			ls, tmpl = o.Spec.Selector, &o.Spec.Template
		}
	}
	if apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("%w: %s %s/%s", ErrNotFound, t.Kind, t.Namespace, t.Name)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s %s/%s: %w", t.Kind, t.Namespace, t.Name, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s/%s: selector: %w", t.Kind, t.Namespace, t.Name, err)
	}
	return sel, tmpl, nil
}

// vaultHealth reports Vault sealed, unreachable or uninitialized (cause 6), once per run.
func (d *Doctor) vaultHealth(ctx context.Context) *Finding {
	addr := d.Config.Vault.Address
	if addr == "" {
		addr = "the Vault pods in namespace " + d.Config.Vault.Namespace
	}
	if d.Vault == nil {
		if d.VaultErr == nil {
			return nil
		}
		msg := "vaultctl could not open a Vault session, so the checks that read roles, auth config and policies did not run"
		for _, p := range logPatterns {
			if p.code == CodeStaleCA && p.match(d.VaultErr.Error()) {
				msg += "; vaultctl's own login fails as the pods' do: Vault cannot verify the API server (stale CA, see the pods' findings)"
			}
		}
		return &Finding{Severity: Error, Code: CodeVaultUnreachable, Object: "Vault " + addr,
			Message:  msg,
			Evidence: []string{d.VaultErr.Error()},
			Fix:      "check that Vault answers (vaultctl status) and that vault.address / vault.tls.caCert are right; VAULT_TOKEN is used when the vaultctl-admin login does not work"}
	}
	h, err := d.Vault.Health(ctx)
	if err != nil {
		return &Finding{Severity: Error, Code: CodeVaultUnreachable, Object: "Vault " + addr,
			Message: "Vault does not answer sys/health", Evidence: []string{err.Error()},
			Fix: "check that the Vault servers run and that this machine (and the pods) can reach " + addr + " on 8200"}
	}
	switch {
	case !h.Initialized:
		return &Finding{Severity: Error, Code: CodeVaultSealed, Object: "Vault " + addr, Message: "Vault is not initialized",
			Evidence: []string{"sys/health: initialized=false"}, Fix: "vaultctl apply (the initialize phase)"}
	case h.Sealed:
		return &Finding{Severity: Error, Code: CodeVaultSealed, Object: "Vault " + addr, Message: "Vault is sealed: every agent login fails",
			Evidence: []string{"sys/health: sealed=true"}, Fix: "check the awskms seal: the servers' logs and the KMS key (vaultctl status; vaultctl apply --only kms)"}
	}
	return nil
}

// asksInjection reads agent-inject as vault-k8s does (strconv.ParseBool).
func asksInjection(ann map[string]string) bool {
	return truthy(ann[annInject])
}

func truthy(s string) bool {
	switch strings.TrimSpace(s) {
	case "1", "t", "T", "TRUE", "true", "True":
		return true
	}
	return false
}
