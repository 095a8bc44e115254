package waves

import (
	"bytes"
	"context"
	"fmt"
	"reflect"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/vaultctl/vaultctl/manifests"
)

// FieldManager is the field manager of what the waves write.
const FieldManager = "vaultctl-waves"

// kubernetesClient is the Kubernetes API the waves use.
type kubernetesClient = kubernetes.Interface

// AdmissionObjects are the ValidatingAdmissionPolicy and its binding as embedded in
// manifests/admission/deny-raw-secrets.yaml.
func AdmissionObjects() (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding, error) {
	docs := bytes.Split(manifests.AdmissionPolicy(), []byte("\n---\n"))
	if len(docs) != 2 {
		return nil, nil, fmt.Errorf("%s: want the policy and its binding, found %d documents", manifests.AdmissionPolicyFile, len(docs))
	}
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{}
	if err := yaml.UnmarshalStrict(docs[0], p); err != nil {
		return nil, nil, fmt.Errorf("%s: the policy: %w", manifests.AdmissionPolicyFile, err)
	}
	b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
	if err := yaml.UnmarshalStrict(docs[1], b); err != nil {
		return nil, nil, fmt.Errorf("%s: the binding: %w", manifests.AdmissionPolicyFile, err)
	}
	return p, b, nil
}

func bindingMatches(live, want *admissionregistrationv1.ValidatingAdmissionPolicyBinding) bool {
	if live.Spec.PolicyName != want.Spec.PolicyName || !reflect.DeepEqual(live.Spec.ValidationActions, want.Spec.ValidationActions) {
		return false
	}
	l, w := live.Spec.MatchResources, want.Spec.MatchResources
	return l != nil && w != nil && reflect.DeepEqual(l.NamespaceSelector, w.NamespaceSelector)
}

// EnsureAdmissionPolicy installs the policy and its binding, or brings them back to what
// vaultctl ships; it changes nothing when they already are. The objects are cluster-wide with
// fixed names: every installation (and vaultctl migrate --prune's label) shares one pair, which
// is why it only ever converges to the embedded spec. It returns what it changed.
func EnsureAdmissionPolicy(ctx context.Context, cs kubernetes.Interface) ([]string, error) {
	want, wantBinding, err := AdmissionObjects()
	if err != nil {
		return nil, err
	}
	var changed []string
	api := cs.AdmissionregistrationV1()
	live, err := api.ValidatingAdmissionPolicies().Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := api.ValidatingAdmissionPolicies().Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return changed, fmt.Errorf("creating ValidatingAdmissionPolicy %s: %w", want.Name, err)
		}
		changed = append(changed, "created ValidatingAdmissionPolicy "+want.Name)
	case err != nil:
		return changed, fmt.Errorf("reading ValidatingAdmissionPolicy %s: %w", want.Name, err)
	case !reflect.DeepEqual(live.Spec.Validations, want.Spec.Validations) || !reflect.DeepEqual(live.Spec.Variables, want.Spec.Variables):
		live.Spec = want.Spec
		if _, err := api.ValidatingAdmissionPolicies().Update(ctx, live, metav1.UpdateOptions{}); err != nil {
			return changed, fmt.Errorf("updating ValidatingAdmissionPolicy %s: %w", want.Name, err)
		}
		changed = append(changed, "updated ValidatingAdmissionPolicy "+want.Name)
	}
	lb, err := api.ValidatingAdmissionPolicyBindings().Get(ctx, wantBinding.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, wantBinding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return changed, fmt.Errorf("creating ValidatingAdmissionPolicyBinding %s: %w", wantBinding.Name, err)
		}
		changed = append(changed, "created ValidatingAdmissionPolicyBinding "+wantBinding.Name)
	case err != nil:
		return changed, fmt.Errorf("reading ValidatingAdmissionPolicyBinding %s: %w", wantBinding.Name, err)
	case !bindingMatches(lb, wantBinding):
		lb.Spec = wantBinding.Spec
		if _, err := api.ValidatingAdmissionPolicyBindings().Update(ctx, lb, metav1.UpdateOptions{}); err != nil {
			return changed, fmt.Errorf("updating ValidatingAdmissionPolicyBinding %s: %w", wantBinding.Name, err)
		}
		changed = append(changed, "updated ValidatingAdmissionPolicyBinding "+wantBinding.Name)
	}
	return changed, nil
}

// labelMigrated sets vaultctl.io/migrated=true on ns; it reports whether it changed anything.
func labelMigrated(ctx context.Context, cs kubernetes.Interface, ns string) (bool, error) {
	n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("reading namespace %s: %w", ns, err)
	}
	if n.Labels[manifests.MigratedLabel] == "true" {
		return false, nil
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, manifests.MigratedLabel)
	if _, err := cs.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
		return false, fmt.Errorf("labelling namespace %s %s=true: %w", ns, manifests.MigratedLabel, err)
	}
	return true, nil
}
