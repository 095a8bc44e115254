package phases

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/config"
)

// Server installs the Vault server: the embedded vault chart as Helm release "vault" in the
// Vault namespace (server only; the injector has a release of its own), then waits until every
// replica's pod exists and runs. It waits for Running, not Ready: a server is not Ready until
// the initialize phase has run, and initialize needs the pods.
//
// Helm's --wait cannot do this job: it counts a StatefulSet with OnDelete updates as ready at
// once, so "atomic" only covers the API calls, and the phase waits for the pods itself.
//
// OnDelete also means that a changed pod template (config, image, resources) restarts nothing.
// Check reports each pod whose revision is older than the StatefulSet's as a fact "restart
// pending: pod vault-N runs an older config" rather than as a Restart change: Apply must not
// restart Vault pods (that belongs to an upgrade command: standbys first, the leader last, after
// a snapshot), so a Restart change would survive every apply and the runner's verify-after-apply
// would fail forever. PendingRestarts returns the same information as Restart changes for the
// commands that do act on it.
type Server struct {
	In   ServerInputs
	Kube kubernetes.Interface
	Helm *lazyHelm
	// PodTimeout bounds Apply's wait for the pods; PodPoll is how often it looks.
	PodTimeout, PodPoll time.Duration
}

// ServerInputs is what the server phase reads of the config: the chart values rendered from it
// (server HCL, seal, Raft, image, resources, storage) and the fields the phase itself checks.
type ServerInputs struct {
	External  bool
	Address   string
	Namespace string
	Replicas  int
	TLSSecret string
	Storage   config.Storage
	Chart     string
	Values    map[string]any
}

func serverInputs(cfg *config.Config) ServerInputs {
	return ServerInputs{
		External: cfg.External(), Address: cfg.Vault.Address, Namespace: cfg.Vault.Namespace, Replicas: cfg.Vault.Replicas,
		TLSSecret: cfg.Vault.TLS.SecretName, Storage: cfg.Vault.Storage, Chart: chartVersion(), Values: charts.ServerValues(cfg),
	}
}

func (p *Server) Name() string        { return "server" }
func (p *Server) Description() string { return "Vault HA Raft server installed with Helm" }

func (p *Server) Inputs() any { return p.In }

func (p *Server) release() (helmRelease, error) {
	ch, err := charts.Vault()
	if err != nil {
		return helmRelease{}, err
	}
	return helmRelease{helm: p.Helm, name: charts.ServerRelease, namespace: p.In.Namespace, chart: ch, values: p.In.Values}, nil
}

func (p *Server) Check(ctx context.Context) (Diff, error) {
	if p.In.External {
		return Diff{Facts: []string{"external Vault at " + p.In.Address + "; no server installed"}}, nil
	}
	if p.Kube == nil {
		return Diff{}, Fail("pass --kubeconfig/--context or set cluster.kubeconfig", "no Kubernetes connection")
	}
	r, err := p.release()
	if err != nil {
		return Diff{}, err
	}
	st, err := r.status(ctx)
	if err != nil {
		return Diff{}, err
	}
	ns := p.In.Namespace
	var d Diff
	c, fact := r.change(st, fmt.Sprintf("chart %s, %d replicas", r.chartName(), p.In.Replicas))
	if !st.Exists {
		if sts, err := p.statefulSet(ctx); err != nil {
			return Diff{}, err
		} else if sts != nil && sts.Annotations["meta.helm.sh/release-name"] != charts.ServerRelease {
			return Diff{}, Fail("remove the Vault that was installed another way (keep its PersistentVolumeClaims if you want its data), or use vault.mode: external to keep it",
				"StatefulSet %s/%s exists but belongs to no Helm release %q", ns, charts.FullName, charts.ServerRelease)
		}
		d.Changes = append(d.Changes, *c)
		if ok, err := p.tlsSecretExists(ctx); err != nil {
			return Diff{}, err
		} else if !ok {
			d.Facts = append(d.Facts, "waits for TLS Secret "+ns+"/"+p.In.TLSSecret+" (tls phase)")
		}
		return d, nil
	}
	if c != nil {
		d.Changes = append(d.Changes, *c)
	} else {
		d.Facts = append(d.Facts, fact)
	}
	sts, err := p.statefulSet(ctx)
	if err != nil {
		return Diff{}, err
	}
	if sts != nil {
		if err := p.checkClaims(sts); err != nil {
			return Diff{}, err
		}
	}
	pods, err := p.observePods(ctx, sts)
	if err != nil {
		return Diff{}, err
	}
	if len(pods.waiting) > 0 {
		d.Changes = append(d.Changes, Change{Action: Update, Object: "Vault pods",
			Detail: fmt.Sprintf("%d/%d Running; wait for %s", pods.running, p.In.Replicas, strings.Join(pods.waiting, ", "))})
	} else {
		d.Facts = append(d.Facts, fmt.Sprintf("%d/%d pods Running", pods.running, p.In.Replicas))
	}
	for _, c := range pods.restarts {
		d.Facts = append(d.Facts, c.Detail)
	}
	if len(pods.restarts) > 0 {
		d.Facts = append(d.Facts, "OnDelete updates restart nothing: run `vaultctl upgrade` to restart them one at a time (a Raft snapshot first, standbys, then the leader after a step-down)")
	}
	return d, nil
}

// PendingRestarts lists the server pods that run an older pod template than the StatefulSet's,
// as Restart changes, for the commands that restart pods (`vaultctl upgrade`, `status`).
func (p *Server) PendingRestarts(ctx context.Context) ([]Change, error) {
	if p.In.External {
		return nil, nil
	}
	sts, err := p.statefulSet(ctx)
	if err != nil || sts == nil {
		return nil, err
	}
	pods, err := p.observePods(ctx, sts)
	if err != nil {
		return nil, err
	}
	return pods.restarts, nil
}

func (p *Server) Apply(ctx context.Context, _ Diff) error {
	if p.In.External {
		return nil
	}
	ok, err := p.tlsSecretExists(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return Fail("run the tls phase first (vaultctl apply --only tls,server), or create the Secret when vault.tls.mode is secret",
			"TLS Secret %s/%s does not exist; Vault pods would not start without it", p.In.Namespace, p.In.TLSSecret)
	}
	r, err := p.release()
	if err != nil {
		return err
	}
	if err := r.upgrade(ctx); err != nil {
		return err
	}
	return p.waitPods(ctx)
}

func (p *Server) tlsSecretExists(ctx context.Context) (bool, error) {
	ns := p.In.Namespace
	_, err := p.Kube.CoreV1().Secrets(ns).Get(ctx, p.In.TLSSecret, metav1.GetOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	}
	return false, Fail("check that your kube credentials may read Secrets in namespace "+ns, "reading Secret %s: %v", p.In.TLSSecret, err)
}

func (p *Server) statefulSet(ctx context.Context) (*appsv1.StatefulSet, error) {
	ns := p.In.Namespace
	sts, err := p.Kube.AppsV1().StatefulSets(ns).Get(ctx, charts.FullName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, Fail("check that your kube credentials may read StatefulSets in namespace "+ns, "reading StatefulSet %s/%s: %v", ns, charts.FullName, err)
	}
	return sts, nil
}

// checkClaims refuses a storage change the API server would reject: a StatefulSet's volume
// claim templates are immutable, and Helm's atomic rollback would only hide the cause.
func (p *Server) checkClaims(sts *appsv1.StatefulSet) error {
	st := p.In.Storage
	want := map[string]string{"data": st.DataSize, "audit": st.AuditSize}
	for _, c := range sts.Spec.VolumeClaimTemplates {
		size, ok := want[c.Name]
		if !ok {
			continue
		}
		var problem string
		got := c.Spec.Resources.Requests[corev1.ResourceStorage]
		if q, err := resource.ParseQuantity(size); err == nil && q.Cmp(got) != 0 {
			problem = fmt.Sprintf("size %s -> %s", got.String(), size)
		}
		// An empty class in the config means "the cluster default", which the API server fills in.
		if st.StorageClass != "" && (c.Spec.StorageClassName == nil || *c.Spec.StorageClassName != st.StorageClass) {
			cur := ""
			if c.Spec.StorageClassName != nil {
				cur = *c.Spec.StorageClassName
			}
			problem = strings.TrimPrefix(problem+fmt.Sprintf("; storage class %q -> %q", cur, st.StorageClass), "; ")
		}
		if problem != "" {
			ns := p.In.Namespace
			return Fail(fmt.Sprintf("restore vault.storage, or change the volumes by hand: expand each PVC %s-%s-N (if its StorageClass allows), then `kubectl delete statefulset %s -n %s --cascade=orphan` and run vaultctl apply again (pods and data stay)",
				c.Name, charts.FullName, charts.FullName, ns),
				"volume claim %q of StatefulSet %s/%s cannot change in place (%s)", c.Name, ns, charts.FullName, problem)
		}
	}
	return nil
}

// serverPods is what observePods found.
type serverPods struct {
	running  int
	waiting  []string // "vault-1 (Pending: ...)"
	hints    []string // what to do about the waiting pods
	restarts []Change
}

func (p *Server) observePods(ctx context.Context, sts *appsv1.StatefulSet) (*serverPods, error) {
	ns := p.In.Namespace
	list, err := p.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: charts.ServerSelector})
	if err != nil {
		return nil, Fail("check that your kube credentials may list pods in namespace "+ns, "listing Vault pods: %v", err)
	}
	byName := map[string]*corev1.Pod{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	out := &serverPods{}
	var unbound []string
	for i := range p.In.Replicas {
		name := charts.PodName(i)
		pod := byName[name]
		switch {
		case pod == nil:
			out.waiting = append(out.waiting, name+" (not created yet)")
		case pod.DeletionTimestamp != nil:
			out.waiting = append(out.waiting, name+" (terminating)")
		case pod.Status.Phase == corev1.PodRunning:
			out.running++
		default:
			why, hint, claims := p.podProblem(ctx, pod)
			out.waiting = append(out.waiting, fmt.Sprintf("%s (%s)", name, why))
			if hint != "" && !slices.Contains(out.hints, hint) {
				out.hints = append(out.hints, hint)
			}
			unbound = append(unbound, claims...)
		}
		if pod != nil && sts != nil {
			if c, ok := restartPending(sts, pod); ok {
				out.restarts = append(out.restarts, c)
			}
		}
	}
	if len(unbound) > 0 {
		sort.Strings(unbound)
		out.hints = append(out.hints, fmt.Sprintf("claims %s are not bound: set vault.storage.storageClass to a class with a provisioner, or create PersistentVolumes (data %s, audit %s each)",
			strings.Join(unbound, ", "), p.In.Storage.DataSize, p.In.Storage.AuditSize))
	}
	return out, nil
}

// restartPending compares a pod with its StatefulSet's template. Once the controller has seen
// the current spec it compares revisions (any template change: config, image, resources);
// before that it compares the config checksum annotation.
func restartPending(sts *appsv1.StatefulSet, pod *corev1.Pod) (Change, bool) {
	if pod.DeletionTimestamp != nil {
		return Change{}, false
	}
	var why string
	if sts.Status.ObservedGeneration >= sts.Generation && sts.Status.UpdateRevision != "" {
		if have := pod.Labels[appsv1.ControllerRevisionHashLabelKey]; have != "" && have != sts.Status.UpdateRevision {
			why = fmt.Sprintf("revision %s, StatefulSet wants %s", have, sts.Status.UpdateRevision)
		}
	} else {
		want := sts.Spec.Template.Annotations[charts.ConfigHashAnnotation]
		if have := pod.Annotations[charts.ConfigHashAnnotation]; want != "" && have != want {
			why = fmt.Sprintf("config %s, StatefulSet wants %s", have, want)
		}
	}
	if why == "" {
		return Change{}, false
	}
	return Change{Action: Restart, Object: "pod " + pod.Namespace + "/" + pod.Name,
		Detail: fmt.Sprintf("restart pending: pod %s runs an older config (%s)", pod.Name, why)}, true
}

// podProblem explains why a pod does not run, what to do, and which of its claims are unbound.
func (p *Server) podProblem(ctx context.Context, pod *corev1.Pod) (why, hint string, unbound []string) {
	ns := pod.Namespace
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName":
				return w.Reason, "check vault.images.vault (" + cs.Image + ") and that the nodes can pull it (registry access, imagePullSecrets)", nil
			case "CrashLoopBackOff", "CreateContainerConfigError", "RunContainerError":
				return w.Reason, fmt.Sprintf("read the server log: kubectl logs -n %s %s --previous", ns, pod.Name), nil
			case "":
			default:
				return w.Reason, "", nil
			}
		}
	}
	if pod.Status.Phase == corev1.PodPending || pod.Status.Phase == "" {
		// Unbound claims are the usual cause, before or after the scheduler says so.
		if claims := p.unboundClaims(ctx, pod); len(claims) > 0 {
			return "unbound volume claims", "", claims
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message != "" {
			return "unschedulable: " + c.Message, "check node capacity and taints against vault.resources", nil
		}
	}
	if pod.Status.Phase == "" {
		return "Pending", "", nil
	}
	return string(pod.Status.Phase), "", nil
}

// unboundClaims names the pod's claims that are not Bound.
func (p *Server) unboundClaims(ctx context.Context, pod *corev1.Pod) []string {
	var pending []string
	for _, vol := range pod.Spec.Volumes {
		if vol.PersistentVolumeClaim == nil {
			continue
		}
		pvc, err := p.Kube.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, vol.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
		if err != nil || pvc.Status.Phase != corev1.ClaimBound {
			pending = append(pending, vol.PersistentVolumeClaim.ClaimName)
		}
	}
	return pending
}

// waitPods waits until every replica's pod exists and runs, reporting progress as it changes.
func (p *Server) waitPods(ctx context.Context) error {
	ns, replicas := p.In.Namespace, p.In.Replicas
	timeout, poll := p.PodTimeout, p.PodPoll
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	if poll == 0 {
		poll = time.Second
	}
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		sts, err := p.statefulSet(ctx)
		if err != nil {
			return err
		}
		pods, err := p.observePods(ctx, sts)
		if err != nil {
			return err
		}
		if len(pods.waiting) == 0 {
			progressf(ctx, "%d/%d Vault pods Running", pods.running, replicas)
			return nil
		}
		msg := fmt.Sprintf("%d/%d Vault pods Running; waiting for %s", pods.running, replicas, strings.Join(pods.waiting, ", "))
		if msg != last {
			progressf(ctx, "%s", msg)
			last = msg
		}
		if time.Now().After(deadline) {
			hint := strings.Join(pods.hints, "; ")
			if hint == "" {
				hint = fmt.Sprintf("kubectl describe pods -n %s -l %s; kubectl get events -n %s", ns, charts.ServerSelector, ns)
			}
			return Fail(hint, "Vault pods not Running after %s: %s", timeout, strings.Join(pods.waiting, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Progress: phases that wait report what they wait for through the context, so a CLI can show
// it on its live line without phases printing anything.

type progressKey struct{}

// WithProgress returns a context whose phases report progress lines to f.
func WithProgress(ctx context.Context, f func(line string)) context.Context {
	return context.WithValue(ctx, progressKey{}, f)
}

func progressf(ctx context.Context, format string, args ...any) {
	if f, ok := ctx.Value(progressKey{}).(func(string)); ok && f != nil {
		f(fmt.Sprintf(format, args...))
	}
}

// Progressf reports a progress line through ctx, for the actions outside phases (migrate).
func Progressf(ctx context.Context, format string, args ...any) { progressf(ctx, format, args...) }
