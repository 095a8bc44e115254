package migrate

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSecretBackupRestoresTheSecretExactly(t *testing.T) {
	ctx := context.Background()
	kv := kvFake(t)
	s := testSecret(map[string][]byte{"bin": {0xff, 0x00, '\n'}, "pw": []byte(`'"$ x`)})
	s.Type = "example.com/custom"
	s.Labels = map[string]string{"app": "api"}
	s.Annotations = map[string]string{"note": "n"}
	out, v, err := BackupSecret(ctx, kv, "secret", s)
	if err != nil || out != BackupWritten || v != 1 {
		t.Fatalf("first backup = %s v%d, %v", out, v, err)
	}
	if out, _, err := BackupSecret(ctx, kv, "secret", s); err != nil || out != BackupUnchanged {
		t.Fatalf("second backup = %s, %v; want unchanged", out, err)
	}
	b, err := ReadSecretBackup(ctx, kv, "secret", "team-a", "db")
	if err != nil || b == nil {
		t.Fatalf("ReadSecretBackup = %v, %v", b, err)
	}
	if !b.SameSecret(s) {
		t.Fatalf("backup %+v differs from the Secret", b)
	}
	back := b.Secret("team-a")
	if back.Type != s.Type || string(back.Data["bin"]) != string(s.Data["bin"]) || back.Labels["app"] != "api" {
		t.Fatalf("restored Secret %+v", back)
	}

	// The Secret changed before prune: the backup follows it, KV keeps the old version.
	s.Data["pw"] = []byte("new")
	if out, v, err := BackupSecret(ctx, kv, "secret", s); err != nil || out != BackupWritten || v != 2 {
		t.Fatalf("backup after a change = %s v%d, %v; want written v2", out, v, err)
	}
	if none, err := ReadSecretBackup(ctx, kv, "secret", "team-a", "other"); err != nil || none != nil {
		t.Fatalf("backup of a Secret never backed up = %v, %v", none, err)
	}
}

func TestWorkloadBackupKeepsTheFirst(t *testing.T) {
	ctx := context.Background()
	kv := kvFake(t)
	orig := WorkloadBackup{Kind: "Deployment", Name: "api", Template: corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "default", Containers: []corev1.Container{{Name: "app", Image: "api:1"}}},
	}}
	if out, _, err := BackupWorkload(ctx, kv, "secret", "team-a", orig); err != nil || out != BackupWritten {
		t.Fatalf("first = %s, %v", out, err)
	}
	patched := orig
	patched.Template.Spec.ServiceAccountName = "api"
	if out, _, err := BackupWorkload(ctx, kv, "secret", "team-a", patched); err != nil || out != BackupKept {
		t.Fatalf("backup of the patched workload = %s, %v; want the first kept", out, err)
	}
	b, err := ReadWorkloadBackup(ctx, kv, "secret", "team-a", WorkloadID{"Deployment", "api"})
	if err != nil || b == nil || b.Template.Spec.ServiceAccountName != "default" {
		t.Fatalf("ReadWorkloadBackup = %+v, %v; want the original", b, err)
	}
	if err := DeleteWorkloadBackup(ctx, kv, "secret", "team-a", WorkloadID{"Deployment", "api"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := ReadWorkloadBackup(ctx, kv, "secret", "team-a", WorkloadID{"Deployment", "api"}); b != nil {
		t.Fatal("backup still there after delete")
	}
}
