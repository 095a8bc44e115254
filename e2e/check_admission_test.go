package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/vaultctl/vaultctl/manifests"
)

// TestAdmissionPolicyDeniesRawSecrets applies the shipped ValidatingAdmissionPolicy to a real
// kube-apiserver and checks what the migration waves rely on: new Secrets are refused in a
// namespace labelled vaultctl.io/migrated=true, the exempt types still go through there, and
// unlabelled namespaces are untouched.
func TestAdmissionPolicyDeniesRawSecrets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := admissionClient(t)

	policy, binding := admissionObjects(t)
	// A kept sandbox may still have them from an earlier run.
	cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{})
	cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, policy.Name, metav1.DeleteOptions{})
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	t.Cleanup(func() {
		cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(context.Background(), policy.Name, metav1.DeleteOptions{})
	})
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create binding: %v", err)
	}
	t.Cleanup(func() {
		cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})

	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000)
	migrated := admissionNamespace(ctx, t, cs, "check-migrated-"+suffix, map[string]string{manifests.MigratedLabel: "true"})
	legacy := admissionNamespace(ctx, t, cs, "check-legacy-"+suffix, nil)

	// The API server picks up a new policy asynchronously: create until refused, up to 30 s.
	var denied error
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; denied == nil; i++ {
		s := admissionSecret(fmt.Sprintf("probe-%d", i), "") // no type: defaults to Opaque
		_, err := cs.CoreV1().Secrets(migrated).Create(ctx, s, metav1.CreateOptions{})
		switch {
		case err == nil:
			cs.CoreV1().Secrets(migrated).Delete(ctx, s.Name, metav1.DeleteOptions{})
			if time.Now().After(deadline) {
				t.Fatal("an Opaque Secret is still accepted in the migrated namespace after 30s")
			}
			time.Sleep(500 * time.Millisecond)
		case apierrors.IsForbidden(err):
			denied = err
		default:
			t.Fatalf("unexpected error creating a Secret: %v", err)
		}
	}
	if msg := denied.Error(); !strings.Contains(msg, "migrated to Vault") || !strings.Contains(msg, manifests.MigratedLabel) {
		t.Errorf("denial does not tell the user why: %v", msg)
	}

	for _, typ := range []corev1.SecretType{corev1.SecretTypeOpaque, "example.com/custom"} {
		if _, err := cs.CoreV1().Secrets(migrated).Create(ctx, admissionSecret("typed-"+strings.ToLower(strings.NewReplacer("/", "-", ".", "-").Replace(string(typ))), typ), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("type %s in the migrated namespace: error %v, want Forbidden", typ, err)
		}
	}

	exempt := []*corev1.Secret{
		admissionSecret("ingress-cert", corev1.SecretTypeTLS),
		admissionSecret("sh.helm.release.v1.web.v1", "helm.sh/release.v1"),
		admissionSecret("registry", corev1.SecretTypeDockerConfigJson),
	}
	exempt[0].Data = map[string][]byte{corev1.TLSCertKey: []byte("cert"), corev1.TLSPrivateKeyKey: []byte("key")}
	exempt[2].Data = map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}
	for _, s := range exempt {
		if _, err := cs.CoreV1().Secrets(migrated).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Errorf("exempt type %s refused in the migrated namespace: %v", s.Type, err)
		}
	}

	if _, err := cs.CoreV1().Secrets(legacy).Create(ctx, admissionSecret("still-allowed", corev1.SecretTypeOpaque), metav1.CreateOptions{}); err != nil {
		t.Errorf("an Opaque Secret in an unlabelled namespace was refused: %v", err)
	}
}

func admissionClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", sb.Kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", sb.Kubeconfig, err)
	}
	cfg.Timeout = 30 * time.Second
	cfg.WarningHandler = rest.NoWarnings{} // the TLS Secret's dummy PEM draws a warning
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// admissionObjects decodes the two embedded documents: exactly what vaultctl ships.
func admissionObjects(t *testing.T) (*admissionv1.ValidatingAdmissionPolicy, *admissionv1.ValidatingAdmissionPolicyBinding) {
	t.Helper()
	var policy *admissionv1.ValidatingAdmissionPolicy
	var binding *admissionv1.ValidatingAdmissionPolicyBinding
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifests.AdmissionPolicy())))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "ValidatingAdmissionPolicy":
			policy = &admissionv1.ValidatingAdmissionPolicy{}
			err = yaml.UnmarshalStrict(doc, policy)
		case "ValidatingAdmissionPolicyBinding":
			binding = &admissionv1.ValidatingAdmissionPolicyBinding{}
			err = yaml.UnmarshalStrict(doc, binding)
		case "":
			continue
		default:
			t.Fatalf("unexpected kind %q in the admission manifest", meta.Kind)
		}
		if err != nil {
			t.Fatalf("%s: %v", meta.Kind, err)
		}
	}
	if policy == nil || binding == nil {
		t.Fatal("the admission manifest lacks the policy or its binding")
	}
	return policy, binding
}

func admissionNamespace(ctx context.Context, t *testing.T, cs kubernetes.Interface, name string, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() { cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return name
}

func admissionSecret(name string, typ corev1.SecretType) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       typ,
		StringData: map[string]string{"password": "hunter2"},
	}
}
