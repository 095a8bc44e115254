package sandbox

// The pod status the runner writes: a conditional merge patch, only when it changed.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func (r *runner) patchStatus(ctx context.Context, pod *corev1.Pod, p *podProc) error {
	var st corev1.PodStatus
	if p.injected {
		st = r.injectedPodStatus(pod, p)
	} else {
		c := &pod.Spec.Containers[0]
		cp := p.ctr(c.Name, false)
		p.mu.Lock()
		cs := cp.cs
		p.mu.Unlock()
		st = buildPodStatus(pod, c, cs, p.ip, r.cfg.HostIP, p.start)
	}
	// metadata.uid makes the patch conditional: it never lands on a newer pod of the same name.
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": pod.UID}, "status": st})
	if err != nil {
		return err
	}
	if bytes.Equal(body, p.lastStatus) {
		return nil
	}
	_, err = r.cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, body, metav1.PatchOptions{}, "status")
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return nil
	case err != nil:
		return fmt.Errorf("patching status: %w", err)
	}
	p.lastStatus = body
	return nil
}

// ctrView is what the status of an injected pod needs to know about one container.
type ctrView struct {
	cs        containerState
	completed bool
}

// injectedPodStatus is the status of an injected pod from its containers' records.
func (r *runner) injectedPodStatus(pod *corev1.Pod, p *podProc) corev1.PodStatus {
	p.mu.Lock()
	views := make(map[string]ctrView, len(p.ctrs))
	for name, cp := range p.ctrs {
		views[name] = ctrView{cs: cp.cs, completed: cp.completed}
	}
	p.mu.Unlock()
	return buildInjectedStatus(pod, views, p.ip, r.cfg.HostIP, p.start)
}

// buildInjectedStatus renders the status a kubelet reports for a pod with init containers and
// several containers, so kubectl shows what it would in a cluster: Init:0/1 while an init
// container runs, Init:Error or Init:CrashLoopBackOff after it failed, PodInitializing for the
// containers until every init container completed, then Running (or Succeeded and Failed).
func buildInjectedStatus(pod *corev1.Pod, views map[string]ctrView, podIP, hostIP string, podStart time.Time) corev1.PodStatus {
	t := func(x time.Time) metav1.Time { return metav1.NewTime(x.UTC().Truncate(time.Second)) }
	st := pendingPodStatus(pod, podIP, hostIP, podStart)
	status := func(c *corev1.Container, v ctrView, init bool, waitingReason string) corev1.ContainerStatus {
		s := corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: v.cs.ContainerID,
			RestartCount: v.cs.RestartCount, Started: ptrTo(v.cs.Running),
		}
		switch {
		case v.completed && v.cs.Last != nil:
			s.State.Terminated = v.cs.Last
			s.Ready = init && v.cs.Last.ExitCode == 0 // a completed init container reports ready
		case v.cs.Running:
			s.State.Running = &corev1.ContainerStateRunning{StartedAt: t(v.cs.StartedAt)}
			s.Ready = v.cs.Ready
			s.LastTerminationState.Terminated = v.cs.Last
		default:
			reason, msg := v.cs.WaitingReason, v.cs.WaitingMessage
			if reason == "" {
				reason = waitingReason
			}
			s.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
			s.LastTerminationState.Terminated = v.cs.Last
		}
		return s
	}

	initialized, initFailed := true, false
	var pendingInit []string
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		v := views[c.Name]
		st.InitContainerStatuses = append(st.InitContainerStatuses, status(c, v, true, "PodInitializing"))
		if v.completed && v.cs.Last != nil && v.cs.Last.ExitCode == 0 {
			continue
		}
		initialized = false
		initFailed = initFailed || (v.completed && v.cs.Last != nil)
		pendingInit = append(pendingInit, c.Name)
	}
	allReady, allDone, anyFailed, anyStarted := true, true, false, false
	var unready []string
	readySince := podStart
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		v := views[c.Name]
		waiting := "PodInitializing"
		if initialized {
			waiting = "ContainerCreating"
		}
		s := status(c, v, false, waiting)
		st.ContainerStatuses = append(st.ContainerStatuses, s)
		if !s.Ready {
			allReady = false
			unready = append(unready, c.Name)
		}
		if v.cs.ReadySince.After(readySince) {
			readySince = v.cs.ReadySince
		}
		anyStarted = anyStarted || v.cs.Running || v.cs.Last != nil || v.cs.RestartCount > 0
		allDone = allDone && v.completed
		anyFailed = anyFailed || (v.completed && v.cs.Last != nil && v.cs.Last.ExitCode != 0)
	}
	switch {
	case initFailed:
		st.Phase = corev1.PodFailed
	case !initialized:
		st.Phase = corev1.PodPending
	case allDone && anyFailed:
		st.Phase = corev1.PodFailed
	case allDone:
		st.Phase = corev1.PodSucceeded
	case anyStarted:
		st.Phase = corev1.PodRunning
	}

	cond := func(typ corev1.PodConditionType, ok bool, since time.Time, reason, msg string) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
			reason, msg = "", ""
		}
		return corev1.PodCondition{Type: typ, Status: s, LastTransitionTime: t(since), Reason: reason, Message: msg}
	}
	scheduled := cond(corev1.PodScheduled, true, podStart, "", "")
	for _, pc := range pod.Status.Conditions {
		if pc.Type == corev1.PodScheduled {
			scheduled = pc
		}
	}
	ready := initialized && allReady && st.Phase == corev1.PodRunning
	readyReason, readyMsg := "ContainersNotReady", "containers with unready status: ["+strings.Join(unready, " ")+"]"
	if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed {
		readyReason, readyMsg = "PodCompleted", ""
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, true, podStart, "", ""),
		cond(corev1.PodInitialized, initialized, podStart, "ContainersNotInitialized", "containers with incomplete status: ["+strings.Join(pendingInit, " ")+"]"),
		cond(corev1.ContainersReady, ready, readySince, readyReason, readyMsg),
		cond(corev1.PodReady, ready, readySince, readyReason, readyMsg),
		scheduled,
	}
	return st
}
