package action

import (
	"context"
	"io"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestAuditFromPodsReadsEveryVaultServerPod(t *testing.T) {
	pod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "vault", Labels: labels}}
	}
	server := map[string]string{"app.kubernetes.io/name": "vault", "component": "server"}
	k := fake.NewSimpleClientset(pod("vault-0", server), pod("vault-1", server),
		pod("vault-agent-injector-x", map[string]string{"app.kubernetes.io/name": "vault-agent-injector", "component": "webhook"}))
	inputs, done, err := AuditFromPods(context.Background(), k, "vault", "vault")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	var names []string
	for _, in := range inputs {
		names = append(names, in.Name)
		if b, err := io.ReadAll(in.R); err != nil || len(b) == 0 {
			t.Errorf("%s: %q %v", in.Name, b, err)
		}
	}
	if strings.Join(names, ",") != "pod/vault-0,pod/vault-1" {
		t.Fatalf("inputs %v", names)
	}

	if _, _, err := AuditFromPods(context.Background(), k, "elsewhere", "vault"); err == nil || !strings.Contains(err.Error(), "-n/--namespace") {
		t.Fatalf("no pods: %v", err)
	}
}

func TestAuditInputsNamesAMissingFile(t *testing.T) {
	if _, _, err := AuditInputs([]string{"-", "/nonexistent/audit.log"}, strings.NewReader("")); err == nil || !strings.Contains(err.Error(), "/nonexistent/audit.log") {
		t.Fatalf("%v", err)
	}
}
