package waves

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/migrate"
)

// notReady is "" when the workload runs the template migrate wrote (patchedHash) and is Ready
// now; otherwise why not. Jobs and CronJobs run to completion, so only their template counts.
func notReady(ctx context.Context, cs kubernetes.Interface, ns string, id migrate.WorkloadID, patchedHash string) string {
	tpl, err := migrate.ReadTemplate(ctx, cs, ns, id)
	if err != nil {
		return err.Error()
	}
	if patchedHash != "" && migrate.TemplateHash(*tpl) != patchedHash {
		return "changed since its migration (migrate namespace --plan plans it again)"
	}
	get := metav1.GetOptions{}
	switch id.Kind {
	case "Deployment":
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, id.Name, get)
		if err != nil {
			return err.Error()
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		if d.Status.ReadyReplicas < want || d.Status.UpdatedReplicas < want {
			return fmt.Sprintf("has %d/%d ready", d.Status.ReadyReplicas, want)
		}
	case "StatefulSet":
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, id.Name, get)
		if err != nil {
			return err.Error()
		}
		want := int32(1)
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		if s.Status.ReadyReplicas < want {
			return fmt.Sprintf("has %d/%d ready", s.Status.ReadyReplicas, want)
		}
	case "DaemonSet":
		d, err := cs.AppsV1().DaemonSets(ns).Get(ctx, id.Name, get)
		if err != nil {
			return err.Error()
		}
		if d.Status.NumberReady < d.Status.DesiredNumberScheduled {
			return fmt.Sprintf("has %d/%d ready", d.Status.NumberReady, d.Status.DesiredNumberScheduled)
		}
	case "Pod":
		p, err := cs.CoreV1().Pods(ns).Get(ctx, id.Name, get)
		if err != nil {
			return err.Error()
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return ""
			}
		}
		return "is not Ready"
	}
	return ""
}
