package sandbox

// The pod status the runner writes: a conditional merge patch, only when it changed.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func (r *runner) patchStatus(ctx context.Context, pod *corev1.Pod, p *podProc) error {
	p.mu.Lock()
	cs := p.cs
	p.mu.Unlock()
	st := buildPodStatus(pod, &pod.Spec.Containers[0], cs, p.ip, r.cfg.HostIP, p.start)
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
