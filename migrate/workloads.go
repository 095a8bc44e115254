package migrate

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// FieldManager is the field manager migrate patches workloads with, so `kubectl get
// --show-managed-fields` says who changed the pod template.
const FieldManager = "vaultctl-migrate"

// ReadTemplate returns a workload's live pod template.
func ReadTemplate(ctx context.Context, cs kubernetes.Interface, ns string, id WorkloadID) (*corev1.PodTemplateSpec, error) {
	w, err := getWorkload(ctx, cs, ns, id)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s no longer exists in %s: %w", id, ns, err)
	}
	if err != nil {
		return nil, err
	}
	return w.template().DeepCopy(), nil
}

// SetTemplate replaces a workload's pod template with t (retrying on conflict) and returns the
// template the API server stored, defaults filled in. Whether anything changes is decided on
// the server's own defaulting (a dry run first): a template read back never equals the one
// written field for field, and a re-run must not count that as a change. Bare Pods cannot
// change their spec: they are recreated with the new one, as a controller would.
//
// before, when set, is called with the template about to be stored, ahead of the write: the
// engine records it in the journal first, so a run killed right after the write still knows
// the workload is its own.
func SetTemplate(ctx context.Context, cs kubernetes.Interface, ns string, id WorkloadID, t corev1.PodTemplateSpec, before ...func(corev1.PodTemplateSpec) error) (changed bool, stored corev1.PodTemplateSpec, err error) {
	intend := func(tpl corev1.PodTemplateSpec) error {
		for _, f := range before {
			if err := f(tpl); err != nil {
				return err
			}
		}
		return nil
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		w, err := getWorkload(ctx, cs, ns, id)
		if err != nil {
			return err
		}
		live := w.template().DeepCopy()
		*w.template() = *t.DeepCopy()
		if id.Kind == "Pod" {
			// No dry run can replace a Pod: compare the fields migrate sets.
			if equality.Semantic.DeepDerivative(t.Spec, live.Spec) && equality.Semantic.DeepDerivative(t.ObjectMeta, live.ObjectMeta) {
				changed, stored = false, *live
				return nil
			}
			changed, stored = true, t
			if err := intend(t); err != nil {
				return err
			}
			return recreatePod(ctx, cs, w.pod, t)
		}
		if id.Kind == "Job" {
			return fmt.Errorf("Job %s: a Job's pod template cannot be changed once created; re-create the Job from its manifest with the new template", id.Name)
		}
		dry, err := w.update(ctx, cs, true)
		if err != nil {
			return err
		}
		if TemplateHash(dry) == TemplateHash(*live) {
			changed, stored = false, *live
			return nil
		}
		if err := intend(dry); err != nil {
			return err
		}
		stored, err = w.update(ctx, cs, false)
		changed = err == nil
		return err
	})
	if apierrors.IsNotFound(err) {
		return false, corev1.PodTemplateSpec{}, fmt.Errorf("%s no longer exists in %s: %w", id, ns, err)
	}
	return changed, stored, err
}

// workload is one live object that carries a pod template.
type workload struct {
	id  WorkloadID
	obj any
	pod *corev1.Pod
	pt  *corev1.PodTemplateSpec
}

func (w *workload) template() *corev1.PodTemplateSpec { return w.pt }

// update writes the object (a server-side dry run when dry) and returns the template stored.
func (w *workload) update(ctx context.Context, cs kubernetes.Interface, dry bool) (corev1.PodTemplateSpec, error) {
	opts := metav1.UpdateOptions{FieldManager: FieldManager}
	if dry {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	switch o := w.obj.(type) {
	case *appsv1.Deployment:
		r, err := cs.AppsV1().Deployments(o.Namespace).Update(ctx, o, opts)
		if err != nil {
			return corev1.PodTemplateSpec{}, err
		}
		return r.Spec.Template, nil
	case *appsv1.StatefulSet:
		r, err := cs.AppsV1().StatefulSets(o.Namespace).Update(ctx, o, opts)
		if err != nil {
			return corev1.PodTemplateSpec{}, err
		}
		return r.Spec.Template, nil
	case *appsv1.DaemonSet:
		r, err := cs.AppsV1().DaemonSets(o.Namespace).Update(ctx, o, opts)
		if err != nil {
			return corev1.PodTemplateSpec{}, err
		}
		return r.Spec.Template, nil
	case *batchv1.CronJob:
		r, err := cs.BatchV1().CronJobs(o.Namespace).Update(ctx, o, opts)
		if err != nil {
			return corev1.PodTemplateSpec{}, err
		}
		return r.Spec.JobTemplate.Spec.Template, nil
	}
	return corev1.PodTemplateSpec{}, fmt.Errorf("%s: migrate does not patch a %s", w.id, w.id.Kind)
}

// getWorkload reads the workload and points at its pod template.
func getWorkload(ctx context.Context, cs kubernetes.Interface, ns string, id WorkloadID) (*workload, error) {
	get := metav1.GetOptions{}
	w := &workload{id: id}
	switch id.Kind {
	case "Deployment":
		o, err := cs.AppsV1().Deployments(ns).Get(ctx, id.Name, get)
		if err != nil {
			return nil, err
		}
		w.obj, w.pt = o, &o.Spec.Template
	case "StatefulSet":
		o, err := cs.AppsV1().StatefulSets(ns).Get(ctx, id.Name, get)
		if err != nil {
			return nil, err
		}
		w.obj, w.pt = o, &o.Spec.Template
	case "DaemonSet":
		o, err := cs.AppsV1().DaemonSets(ns).Get(ctx, id.Name, get)
		if err != nil {
			return nil, err
		}
		w.obj, w.pt = o, &o.Spec.Template
	case "CronJob":
		o, err := cs.BatchV1().CronJobs(ns).Get(ctx, id.Name, get)
		if err != nil {
			return nil, err
		}
		w.obj, w.pt = o, &o.Spec.JobTemplate.Spec.Template
	case "Job":
		o, err := cs.BatchV1().Jobs(ns).Get(ctx, id.Name, get)
		if err != nil {
			return nil, err
		}
		w.obj, w.pt = o, &o.Spec.Template
	case "Pod":
		o, err := cs.CoreV1().Pods(ns).Get(ctx, id.Name, get)
		if err != nil {
			return nil, err
		}
		t := corev1.PodTemplateSpec{ObjectMeta: podTemplateMeta(o.ObjectMeta), Spec: o.Spec}
		t.Spec.NodeName = "" // the scheduler's, not the user's
		w.obj, w.pod, w.pt = o, o, &t
	default:
		return nil, fmt.Errorf("%s: migrate does not read a %s", id, id.Kind)
	}
	return w, nil
}

// podTemplateMeta keeps what a Pod's template may carry: labels and annotations.
func podTemplateMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Labels: m.Labels, Annotations: m.Annotations}
}

// recreatePod replaces a bare Pod by one with the same name and the new template: delete,
// wait until it is gone, create.
func recreatePod(ctx context.Context, cs kubernetes.Interface, old *corev1.Pod, t corev1.PodTemplateSpec) error {
	pods := cs.CoreV1().Pods(old.Namespace)
	uid := old.UID
	if err := pods.Delete(ctx, old.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	for {
		cur, err := pods.Get(ctx, old.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && cur.UID != uid) {
			break
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for Pod %s to go before re-creating it: %w", old.Name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	meta := t.ObjectMeta
	meta.Name, meta.Namespace = old.Name, old.Namespace
	meta.OwnerReferences = old.OwnerReferences
	_, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: meta, Spec: t.Spec}, metav1.CreateOptions{FieldManager: FieldManager})
	return err
}

// RolloutStatus is one look at a workload's rollout.
type RolloutStatus struct {
	Done bool
	// Stuck is set when a pod of the new template cannot start (for example an agent init
	// container that keeps failing): waiting longer will not help.
	Stuck   bool
	Message string // what it waits for, or why it is stuck (the pod and container, the reason)
}

// Rollout observes whether the workload runs its current template everywhere, Ready. CronJobs
// have nothing running to wait for: their next Job uses the new template.
func Rollout(ctx context.Context, cs kubernetes.Interface, ns string, id WorkloadID) (RolloutStatus, error) {
	var sel *metav1.LabelSelector
	switch id.Kind {
	case "Deployment":
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, id.Name, metav1.GetOptions{})
		if err != nil {
			return RolloutStatus{}, err
		}
		sel = d.Spec.Selector
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		switch {
		case st.ObservedGeneration < d.Generation:
			return waiting(ctx, cs, ns, sel, "the Deployment controller has not seen the change yet")
		case st.UpdatedReplicas < want:
			return waiting(ctx, cs, ns, sel, fmt.Sprintf("%d of %d pods updated", st.UpdatedReplicas, want))
		case st.Replicas > st.UpdatedReplicas:
			return waiting(ctx, cs, ns, sel, fmt.Sprintf("%d old pods still running", st.Replicas-st.UpdatedReplicas))
		case st.AvailableReplicas < want:
			return waiting(ctx, cs, ns, sel, fmt.Sprintf("%d of %d updated pods available", st.AvailableReplicas, want))
		}
		return RolloutStatus{Done: true, Message: fmt.Sprintf("%d/%d pods updated and available", want, want)}, nil
	case "StatefulSet":
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, id.Name, metav1.GetOptions{})
		if err != nil {
			return RolloutStatus{}, err
		}
		sel = s.Spec.Selector
		if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
			return RolloutStatus{Stuck: true, Message: "the StatefulSet's updateStrategy is OnDelete: its pods keep the old template until deleted; delete them one at a time, then re-run"}, nil
		}
		want := int32(1)
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		st := s.Status
		switch {
		case st.ObservedGeneration < s.Generation:
			return waiting(ctx, cs, ns, sel, "the StatefulSet controller has not seen the change yet")
		case st.UpdateRevision != st.CurrentRevision || st.UpdatedReplicas < want:
			return waiting(ctx, cs, ns, sel, fmt.Sprintf("%d of %d pods updated", st.UpdatedReplicas, want))
		case st.ReadyReplicas < want:
			return waiting(ctx, cs, ns, sel, fmt.Sprintf("%d of %d pods ready", st.ReadyReplicas, want))
		}
		return RolloutStatus{Done: true, Message: fmt.Sprintf("%d/%d pods updated and ready", want, want)}, nil
	case "DaemonSet":
		d, err := cs.AppsV1().DaemonSets(ns).Get(ctx, id.Name, metav1.GetOptions{})
		if err != nil {
			return RolloutStatus{}, err
		}
		sel = d.Spec.Selector
		st := d.Status
		switch {
		case st.ObservedGeneration < d.Generation:
			return waiting(ctx, cs, ns, sel, "the DaemonSet controller has not seen the change yet")
		case st.UpdatedNumberScheduled < st.DesiredNumberScheduled:
			return waiting(ctx, cs, ns, sel, fmt.Sprintf("%d of %d pods updated", st.UpdatedNumberScheduled, st.DesiredNumberScheduled))
		case st.NumberAvailable < st.DesiredNumberScheduled:
			return waiting(ctx, cs, ns, sel, fmt.Sprintf("%d of %d pods available", st.NumberAvailable, st.DesiredNumberScheduled))
		}
		return RolloutStatus{Done: true, Message: fmt.Sprintf("%d/%d pods updated and available", st.DesiredNumberScheduled, st.DesiredNumberScheduled)}, nil
	case "CronJob":
		return RolloutStatus{Done: true, Message: "the next scheduled Job uses the new template"}, nil
	case "Pod":
		p, err := cs.CoreV1().Pods(ns).Get(ctx, id.Name, metav1.GetOptions{})
		if err != nil {
			return RolloutStatus{}, err
		}
		if podReady(p) {
			return RolloutStatus{Done: true, Message: "the pod is Ready"}, nil
		}
		if why, stuck := podStuck(p); stuck {
			return RolloutStatus{Stuck: true, Message: why}, nil
		}
		return RolloutStatus{Message: "the pod is not Ready yet"}, nil
	}
	return RolloutStatus{}, fmt.Errorf("%s: migrate does not follow the rollout of a %s", id, id.Kind)
}

// waiting looks at the workload's pods for one that cannot start: its cause beats "N of M".
func waiting(ctx context.Context, cs kubernetes.Interface, ns string, sel *metav1.LabelSelector, msg string) (RolloutStatus, error) {
	if sel != nil {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err == nil && s != labels.Nothing() {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
			if err == nil {
				for i := range pods.Items {
					if why, stuck := podStuck(&pods.Items[i]); stuck {
						return RolloutStatus{Stuck: true, Message: why}, nil
					}
				}
			}
		}
	}
	return RolloutStatus{Message: msg}, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podStuck reports a pod whose container has failed and restarted, or is in a waiting reason
// that does not clear by itself. A first start that is merely slow is not stuck.
func podStuck(p *corev1.Pod) (string, bool) {
	check := func(kind string, sts []corev1.ContainerStatus) (string, bool) {
		for _, s := range sts {
			w := s.State.Waiting
			switch {
			case w != nil && (w.Reason == "CrashLoopBackOff" || w.Reason == "CreateContainerConfigError" || w.Reason == "ImagePullBackOff" || w.Reason == "ErrImagePull"):
				return fmt.Sprintf("pod %s: %s container %s is %s: %s", p.Name, kind, s.Name, w.Reason, firstLine(w.Message)), true
			case s.RestartCount > 0 && s.LastTerminationState.Terminated != nil && s.LastTerminationState.Terminated.ExitCode != 0:
				t := s.LastTerminationState.Terminated
				return fmt.Sprintf("pod %s: %s container %s exited %d (%s) and was restarted %d times; see `kubectl logs -n %s %s -c %s`",
					p.Name, kind, s.Name, t.ExitCode, t.Reason, s.RestartCount, p.Namespace, p.Name, s.Name), true
			}
		}
		return "", false
	}
	if why, ok := check("init", p.Status.InitContainerStatuses); ok {
		return why, true
	}
	return check("", p.Status.ContainerStatuses)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// WaitRollout polls Rollout until it is done, stuck or timeout passes.
func WaitRollout(ctx context.Context, cs kubernetes.Interface, ns string, id WorkloadID, timeout, every time.Duration) (RolloutStatus, error) {
	deadline := time.Now().Add(timeout)
	// Start polling fast and slow down to every: a controller usually observes a patch within
	// milliseconds (a workload with 0 replicas is done then), while a real rollout takes long
	// enough that polls once every interval cost nothing.
	pause := min(every, 50*time.Millisecond)
	for {
		st, err := Rollout(ctx, cs, ns, id)
		if err != nil || st.Done || st.Stuck {
			return st, err
		}
		if time.Now().After(deadline) {
			st.Stuck = true
			st.Message = fmt.Sprintf("not rolled out after %s: %s", timeout, st.Message)
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, every)
	}
}
