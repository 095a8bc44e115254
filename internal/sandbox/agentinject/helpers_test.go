package agentinject

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// apiAccess is the token mount the ServiceAccount admission plugin gives every container, which
// is what the injector finds (ServiceAccountToken).
var apiAccess = TokenVolume{Name: "kube-api-access-abcde", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", TokenPath: "token"}

// podTemplate reads a Pod, or a Deployment's pod template, from testdata.
func podTemplate(t *testing.T, file string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Kind string `json:"kind"`
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	if obj.Kind == "Deployment" {
		return &corev1.Pod{ObjectMeta: obj.Spec.Template.ObjectMeta, Spec: obj.Spec.Template.Spec}
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(b, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

// goldenPodFile is the testdata pod of a golden test: the article's webapp is a Deployment.
func goldenPodFile(name string) string {
	if name == "webapp" {
		return "webapp.deployment.yaml"
	}
	return name + ".pod.yaml"
}
