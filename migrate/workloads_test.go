package migrate

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func wlTemplate(sa string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api"}},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "api:1"}}},
	}
}

func TestSetTemplateChangesOnceAndReadsBack(t *testing.T) {
	ctx := context.Background()
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}
	cs := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "api"}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: wlTemplate("default")}},
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "report"}, Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: wlTemplate("default")}}}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "once"}, Spec: batchv1.JobSpec{Template: wlTemplate("default")}},
	)
	for _, id := range []WorkloadID{{"Deployment", "api"}, {"CronJob", "report"}} {
		changed, _, err := SetTemplate(ctx, cs, "ns", id, wlTemplate("api"))
		if err != nil || !changed {
			t.Fatalf("%s: first SetTemplate = %t, %v", id, changed, err)
		}
		if changed, _, err := SetTemplate(ctx, cs, "ns", id, wlTemplate("api")); err != nil || changed {
			t.Fatalf("%s: second SetTemplate = %t, %v; want no change", id, changed, err)
		}
		got, err := ReadTemplate(ctx, cs, "ns", id)
		if err != nil || got.Spec.ServiceAccountName != "api" {
			t.Fatalf("%s: ReadTemplate = %+v, %v", id, got, err)
		}
	}
	if _, _, err := SetTemplate(ctx, cs, "ns", WorkloadID{"Job", "once"}, wlTemplate("api")); err == nil || !strings.Contains(err.Error(), "cannot be changed") {
		t.Fatalf("SetTemplate on a Job = %v, want the immutability explained", err)
	}
	if _, _, err := SetTemplate(ctx, cs, "ns", WorkloadID{"Deployment", "gone"}, wlTemplate("api")); err == nil || !strings.Contains(err.Error(), "no longer exists") {
		t.Fatalf("SetTemplate on a missing Deployment = %v", err)
	}
}

func TestRolloutReportsProgressAndStuckPods(t *testing.T) {
	ctx := context.Background()
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}
	two := int32(2)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "api", Generation: 2},
		Spec:   appsv1.DeploymentSpec{Replicas: &two, Selector: sel, Template: wlTemplate("api")},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 2, AvailableReplicas: 2}}
	cs := fake.NewClientset(d)
	id := WorkloadID{"Deployment", "api"}
	st, err := Rollout(ctx, cs, "ns", id)
	if err != nil || st.Done || st.Stuck || !strings.Contains(st.Message, "1 old pods") {
		t.Fatalf("mid-rollout = %+v, %v", st, err)
	}

	stuck := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "api-x", Labels: map[string]string{"app": "api"}},
		Status: corev1.PodStatus{InitContainerStatuses: []corev1.ContainerStatus{{Name: "vault-agent-init", RestartCount: 3,
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}}}
	if _, err := cs.CoreV1().Pods("ns").Create(ctx, stuck, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st, _ = Rollout(ctx, cs, "ns", id)
	if !st.Stuck || !strings.Contains(st.Message, "vault-agent-init") || !strings.Contains(st.Message, "kubectl logs -n ns api-x -c vault-agent-init") {
		t.Fatalf("with an init container failing = %+v, want stuck naming it and the logs command", st)
	}

	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}
	if _, err := cs.AppsV1().Deployments("ns").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, _ := Rollout(ctx, cs, "ns", id); !st.Done {
		t.Fatalf("rolled out = %+v", st)
	}
}

func TestRolloutOfAnOnDeleteStatefulSetSaysWhatToDo(t *testing.T) {
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db"},
		Spec: appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}}}
	st, err := Rollout(context.Background(), fake.NewClientset(s), "ns", WorkloadID{"StatefulSet", "db"})
	if err != nil || !st.Stuck || !strings.Contains(st.Message, "OnDelete") {
		t.Fatalf("OnDelete StatefulSet = %+v, %v", st, err)
	}
}
