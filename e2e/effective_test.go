package e2e

// What an application container of a kwok-faked pod would see, through the Go API and through
// `vaultctl-sandbox effective`.

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/internal/sandbox"
)

const effectiveNS = "effective-e2e"

func TestEffectiveKwokPod(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := kube(t)
	ensureNamespace(t, cs, effectiveNS)

	secret := map[string][]byte{
		"username": []byte("app"),
		"password": []byte("it's \"p@ss\" $HOME\n"),
		"cert.bin": {0xff, 0xfe, 'x', '\n'}, // not UTF-8; no NUL, which no env value can hold
		"env.sh":   []byte("export FROM_FILE='sourced '\\''value'\\'' with $ and spaces'\n"),
	}
	_, err := cs.CoreV1().Secrets(effectiveNS).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-db"}, Data: secret}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	mode := int32(0o400)
	labels := map[string]string{"app": "effective-web"}
	mounts := []corev1.VolumeMount{{Name: "db", MountPath: "/etc/db", ReadOnly: true}}
	env := []corev1.EnvVar{
		{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app-db"}, Key: "password"}}},
		{Name: "DSN", Value: "postgres://$(DB_username)@db/orders"},
	}
	envFrom := []corev1.EnvFromSource{{Prefix: "DB_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-db"}}}}
	_, err = cs.AppsV1().Deployments(effectiveNS).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{
						{Name: "web", Image: "registry.invalid/web:1.0", EnvFrom: envFrom, Env: env, VolumeMounts: mounts},
						{Name: "worker", Image: "registry.invalid/web:1.0", Command: []string{"/bin/sh", "-c", ". /etc/db/env.sh && exec worker"}, VolumeMounts: mounts,
							Env: []corev1.EnvVar{{Name: "ROLE", Value: "worker"}}},
					},
					Volumes: []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
						SecretName: "app-db", Items: []corev1.KeyToPath{
							{Key: "password", Path: "password", Mode: &mode},
							{Key: "cert.bin", Path: "tls/cert.bin"},
							{Key: "env.sh", Path: "env.sh"},
						}}}}},
				},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	var pod string
	eventually(t, 90*time.Second, "a pod of Deployment web", func() error {
		pods, err := cs.CoreV1().Pods(effectiveNS).List(ctx, metav1.ListOptions{LabelSelector: "app=effective-web"})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				pod = p.Name
				return nil
			}
		}
		return fmt.Errorf("%d pods, none live", len(pods.Items))
	})

	want := &sandbox.Effective{
		Env: map[string]string{
			"DB_username": "app", "DB_password": string(secret["password"]), "DB_cert.bin": string(secret["cert.bin"]), "DB_env.sh": string(secret["env.sh"]),
			"DB_PASSWORD": string(secret["password"]),
			"DSN":         "postgres://app@db/orders",
		},
		Files: map[string][]byte{"/etc/db/password": secret["password"], "/etc/db/tls/cert.bin": secret["cert.bin"], "/etc/db/env.sh": secret["env.sh"]},
		Modes: map[string]fs.FileMode{"/etc/db/password": 0o400, "/etc/db/tls/cert.bin": 0o644, "/etc/db/env.sh": 0o644},
	}
	got, err := sb.Effective(ctx, effectiveNS, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	// The ServiceAccount admission mounts kube-api-access-* into every container: its
	// namespace file is computed like any other (the token exists only for pods the runner runs).
	const saDir = "/var/run/secrets/kubernetes.io/serviceaccount/"
	p, err := cs.CoreV1().Pods(effectiveNS).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		if m.MountPath+"/" == saDir && string(got.Files[saDir+"namespace"]) != effectiveNS {
			t.Errorf("%snamespace = %q, want %q", saDir, got.Files[saDir+"namespace"], effectiveNS)
		}
	}
	withoutSA := func(e *sandbox.Effective) *sandbox.Effective {
		c := &sandbox.Effective{Env: e.Env, Files: maps.Clone(e.Files), Modes: maps.Clone(e.Modes)}
		for f := range c.Files {
			if strings.HasPrefix(f, saDir) {
				delete(c.Files, f)
				delete(c.Modes, f)
			}
		}
		return c
	}
	// Values are secrets in a real estate, but these are test values: show them on failure.
	if got := withoutSA(got); !reflect.DeepEqual(got, want) {
		t.Errorf("Effective(web) =\n%+v\nwant\n%+v", got, want)
	}

	worker, err := sb.Effective(ctx, effectiveNS, pod, "worker")
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := map[string]string{"ROLE": "worker", "FROM_FILE": "sourced 'value' with $ and spaces"}
	if !maps.Equal(worker.Env, wantEnv) {
		t.Errorf("Effective(worker).Env = %q, want %q (after sourcing /etc/db/env.sh)", worker.Env, wantEnv)
	}

	for _, tc := range []struct {
		args []string
		want *sandbox.Effective
	}{
		{[]string{"effective", effectiveNS + "/" + pod}, got},
		{[]string{"effective", effectiveNS + "/" + pod, "-c", "worker"}, worker},
	} {
		code, out, stderr := runSandboxCLI(t, tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, stderr)
		}
		var fromCLI sandbox.Effective
		if err := json.Unmarshal(out, &fromCLI); err != nil {
			t.Fatalf("%v: not the JSON document: %v", tc.args, err)
		}
		if !reflect.DeepEqual(&fromCLI, tc.want) {
			t.Errorf("%v = %+v, want what the Go API gives, %+v", tc.args, fromCLI, *tc.want)
		}
	}
	var wire struct {
		Files map[string]string `json:"files"`
		Modes map[string]string `json:"modes"`
	}
	_, out, _ := runSandboxCLI(t, "effective", effectiveNS+"/"+pod)
	if err := json.Unmarshal(out, &wire); err != nil || wire.Files["/etc/db/tls/cert.bin"] != "//54Cg==" || wire.Modes["/etc/db/password"] != "0400" {
		t.Errorf("wire form: files %q modes %q (%v); want base64 files and octal modes", wire.Files, wire.Modes, err)
	}

	if code, _, stderr := runSandboxCLI(t, "effective", effectiveNS+"/"+pod, "-c", "nope"); code != 1 || !strings.Contains(stderr, "web, worker") {
		t.Errorf("unknown container: exit %d, %q; want 1 and the pod's containers", code, stderr)
	}
}
