package phases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/helmclient"
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
	Env *Env

	helm HelmAPI // one client for Check, Apply and the verifying Check
}

// HelmAPI is the part of Helm the server phase uses; *helmclient.Client satisfies it.
type HelmAPI interface {
	// Status says whether UpgradeOrInstall would write a new revision, changing nothing.
	Status(ctx context.Context, release string, ch *chart.Chart, vals map[string]any) (helmclient.Status, error)
	// UpgradeOrInstall installs or upgrades the release; it is a no-op when nothing differs.
	UpgradeOrInstall(ctx context.Context, release string, ch *chart.Chart, vals map[string]any) (helmclient.Result, error)
}

// newHelm builds the Helm client of a namespace; tests replace it with a fake.
var newHelm = func(env *Env, ns string) (HelmAPI, error) {
	return helmclient.New(helmclient.Options{
		REST:        env.KubeREST,
		Kubeconfig:  env.Kubeconfig,
		Context:     env.KubeContext,
		Namespace:   ns,
		Description: "vaultctl apply",
		// A pending revision is a killed run's once the apply Lease is ours again (it expires
		// or was deleted by someone who knows that run died); a minute still covers a helm
		// command someone runs by hand at the same moment.
		PendingGrace: time.Minute,
	})
}

// How long Apply waits for the server pods, and how often it looks.
var (
	serverPodTimeout = 5 * time.Minute
	serverPodPoll    = time.Second
)

func (p *Server) Name() string        { return "server" }
func (p *Server) Description() string { return "Vault HA Raft server installed with Helm" }

func (p *Server) Inputs() any {
	v := p.Env.Config.Vault
	chartVersion := ""
	if ch, err := charts.Vault(); err == nil {
		chartVersion = ch.Metadata.Version
	}
	return struct {
		Mode, Address, Namespace string
		Replicas                 int
		Raft                     config.Raft
		Seal                     config.Seal
		TLSSecret                string
		Image                    string
		Resources                config.Resources
		Storage                  config.Storage
		Chart                    string
	}{v.Mode, v.Address, v.Namespace, v.Replicas, v.Raft, v.Seal, v.TLS.SecretName, v.Images.Vault, v.Resources, v.Storage, chartVersion}
}

func (p *Server) client() (HelmAPI, error) { return cachedHelm(p.Env, &p.helm) }

// cachedHelm returns *cache, building the Vault namespace's Helm client on first use so that
// Check, Apply and the verifying Check share one.
func cachedHelm(env *Env, cache *HelmAPI) (HelmAPI, error) {
	if *cache == nil {
		h, err := newHelm(env, env.Config.Vault.Namespace)
		if err != nil {
			return nil, Fail("check --kubeconfig and --context", "Helm client: %v", err)
		}
		*cache = h
	}
	return *cache, nil
}

func (p *Server) release() string {
	return p.Env.Config.Vault.Namespace + "/" + charts.ServerRelease
}

func (p *Server) Check(ctx context.Context) (Diff, error) {
	cfg := p.Env.Config
	if cfg.External() {
		return Diff{Facts: []string{"external Vault at " + cfg.Vault.Address + "; no server installed"}}, nil
	}
	if p.Env.Kube == nil {
		return Diff{}, Fail("pass --kubeconfig/--context or set cluster.kubeconfig", "no Kubernetes connection")
	}
	ch, err := charts.Vault()
	if err != nil {
		return Diff{}, err
	}
	h, err := p.client()
	if err != nil {
		return Diff{}, err
	}
	st, err := h.Status(ctx, charts.ServerRelease, ch, charts.ServerValues(cfg))
	if err != nil {
		return Diff{}, helmFailure(err, cfg.Vault.Namespace)
	}
	var d Diff
	obj := "Helm release " + p.release()
	chartName := ch.Metadata.Name + "-" + ch.Metadata.Version
	switch {
	case !st.Exists:
		if sts, err := p.statefulSet(ctx); err != nil {
			return Diff{}, err
		} else if sts != nil && sts.Annotations["meta.helm.sh/release-name"] != charts.ServerRelease {
			return Diff{}, Fail("remove the Vault that was installed another way (keep its PersistentVolumeClaims if you want its data), or use vault.mode: external to keep it",
				"StatefulSet %s/%s exists but belongs to no Helm release %q", cfg.Vault.Namespace, charts.FullName, charts.ServerRelease)
		}
		d.Changes = append(d.Changes, Change{Action: Create, Object: obj,
			Detail: fmt.Sprintf("chart %s, %d replicas", chartName, cfg.Vault.Replicas)})
		if ok, err := p.tlsSecretExists(ctx); err != nil {
			return Diff{}, err
		} else if !ok {
			d.Facts = append(d.Facts, "waits for TLS Secret "+cfg.Vault.Namespace+"/"+cfg.Vault.TLS.SecretName+" (tls phase)")
		}
		return d, nil
	case st.Differs:
		d.Changes = append(d.Changes, Change{Action: Update, Object: obj, Detail: fmt.Sprintf("revision %d: %s", st.Revision, st.Reason)})
	default:
		d.Facts = append(d.Facts, fmt.Sprintf("%s revision %d deployed (chart %s)", obj, st.Revision, chartName))
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
			Detail: fmt.Sprintf("%d/%d Running; wait for %s", pods.running, cfg.Vault.Replicas, strings.Join(pods.waiting, ", "))})
	} else {
		d.Facts = append(d.Facts, fmt.Sprintf("%d/%d pods Running", pods.running, cfg.Vault.Replicas))
	}
	for _, c := range pods.restarts {
		d.Facts = append(d.Facts, c.Detail)
	}
	if len(pods.restarts) > 0 {
		d.Facts = append(d.Facts, fmt.Sprintf("OnDelete updates restart nothing: restart the pods one at a time, standbys first and the leader (label vault-active=true) last, with `kubectl delete pod -n %s POD`, waiting for each to rejoin", cfg.Vault.Namespace))
	}
	return d, nil
}

// PendingRestarts lists the server pods that run an older pod template than the StatefulSet's,
// as Restart changes, for the commands that restart pods (`vaultctl upgrade`, `status`).
func (p *Server) PendingRestarts(ctx context.Context) ([]Change, error) {
	if p.Env.Config.External() {
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
	cfg := p.Env.Config
	if cfg.External() {
		return nil
	}
	ns := cfg.Vault.Namespace
	ok, err := p.tlsSecretExists(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return Fail("run the tls phase first (vaultctl apply --only tls,server), or create the Secret when vault.tls.mode is secret",
			"TLS Secret %s/%s does not exist; Vault pods would not start without it", ns, cfg.Vault.TLS.SecretName)
	}
	ch, err := charts.Vault()
	if err != nil {
		return err
	}
	h, err := p.client()
	if err != nil {
		return err
	}
	progressf(ctx, "helm upgrade --install %s (chart %s-%s)", p.release(), ch.Metadata.Name, ch.Metadata.Version)
	res, err := h.UpgradeOrInstall(ctx, charts.ServerRelease, ch, charts.ServerValues(cfg))
	if err != nil {
		return helmFailure(err, ns)
	}
	if res.Changed {
		progressf(ctx, "release %s at revision %d", p.release(), res.Revision)
	}
	return p.waitPods(ctx)
}

func helmFailure(err error, ns string) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *helmclient.PendingError
	if errors.As(err, &pe) {
		return Fail(fmt.Sprintf("if no helm command runs against it, run vaultctl apply again in %s: the interrupted revision is then marked failed and replaced (`helm history %s -n %s`)",
			pe.Wait.Round(time.Second), pe.Release, ns), "%v", err)
	}
	// Shared by the server and injector phases: the release is named in err.
	return Fail(fmt.Sprintf("see `helm list -a -n %s`, `helm history RELEASE -n %s` and `kubectl get events -n %s`; fix the cause and run vaultctl apply again (a failed install is rolled back)",
		ns, ns, ns), "%v", err)
}

func (p *Server) tlsSecretExists(ctx context.Context) (bool, error) {
	v := p.Env.Config.Vault
	_, err := p.Env.Kube.CoreV1().Secrets(v.Namespace).Get(ctx, v.TLS.SecretName, metav1.GetOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	}
	return false, Fail("check that your kube credentials may read Secrets in namespace "+v.Namespace, "reading Secret %s: %v", v.TLS.SecretName, err)
}

func (p *Server) statefulSet(ctx context.Context) (*appsv1.StatefulSet, error) {
	ns := p.Env.Config.Vault.Namespace
	sts, err := p.Env.Kube.AppsV1().StatefulSets(ns).Get(ctx, charts.FullName, metav1.GetOptions{})
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
	st := p.Env.Config.Vault.Storage
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
			ns := p.Env.Config.Vault.Namespace
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
	v := p.Env.Config.Vault
	list, err := p.Env.Kube.CoreV1().Pods(v.Namespace).List(ctx, metav1.ListOptions{LabelSelector: charts.ServerSelector})
	if err != nil {
		return nil, Fail("check that your kube credentials may list pods in namespace "+v.Namespace, "listing Vault pods: %v", err)
	}
	byName := map[string]*corev1.Pod{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	out := &serverPods{}
	var unbound []string
	for i := range v.Replicas {
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
			strings.Join(unbound, ", "), v.Storage.DataSize, v.Storage.AuditSize))
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
		pvc, err := p.Env.Kube.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, vol.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
		if err != nil || pvc.Status.Phase != corev1.ClaimBound {
			pending = append(pending, vol.PersistentVolumeClaim.ClaimName)
		}
	}
	return pending
}

// waitPods waits until every replica's pod exists and runs, reporting progress as it changes.
func (p *Server) waitPods(ctx context.Context) error {
	v := p.Env.Config.Vault
	deadline := time.Now().Add(serverPodTimeout)
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
			progressf(ctx, "%d/%d Vault pods Running", pods.running, v.Replicas)
			return nil
		}
		msg := fmt.Sprintf("%d/%d Vault pods Running; waiting for %s", pods.running, v.Replicas, strings.Join(pods.waiting, ", "))
		if msg != last {
			progressf(ctx, "%s", msg)
			last = msg
		}
		if time.Now().After(deadline) {
			hint := strings.Join(pods.hints, "; ")
			if hint == "" {
				hint = fmt.Sprintf("kubectl describe pods -n %s -l %s; kubectl get events -n %s", v.Namespace, charts.ServerSelector, v.Namespace)
			}
			return Fail(hint, "Vault pods not Running after %s: %s", serverPodTimeout, strings.Join(pods.waiting, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(serverPodPoll):
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
