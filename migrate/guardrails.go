package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/networkpolicy"
)

// The guard rails vaultctl installed were drawn for the clients the config lists. A workload
// migrate switches to Vault is not among them, so without these objects vaultctl's own
// default-deny would cut it off from Vault (NetworkPolicies), and in client-jwt mode Vault could
// not review its token (system:auth-delegator). Every such object is labelled with the
// namespace it was made for (networkpolicy.MigratedNamespaceLabel), so --purge finds them
// without the journal and the installer's --prune leaves them alone.

// ClientJWTBindingName is the ClusterRoleBinding that lets ns's migrated ServiceAccounts have
// their own tokens reviewed (kubernetesAuth.tokenReviewer client-jwt).
func ClientJWTBindingName(ns string) string { return "vaultctl-migrate-auth-delegator-" + ns }

// GuardRailsInput is what EnsureGuardRails puts in place for a namespace.
type GuardRailsInput struct {
	Namespace string
	// NetworkPolicies are networkpolicy.BuildMigrated's for the namespace (none in external
	// mode or with policies disabled).
	NetworkPolicies []networkingv1.NetworkPolicy
	VaultNamespace  string
	// ClientJWT: Vault reviews each login with the client's own JWT, so every migrated
	// ServiceAccount needs system:auth-delegator.
	ClientJWT bool
	Workloads []WorkloadPlan
	// BindingWait bounds the wait for the API server's authorizer to honour a new binding
	// (default 30s): the proof logs in right after.
	BindingWait time.Duration
}

// guardLabels mark an object migrate made for namespace ns.
func guardLabels(ns string) map[string]string {
	return map[string]string{ManagedByLabel: "vaultctl", CreatedByLabel: createdByValue, networkpolicy.MigratedNamespaceLabel: ns}
}

// EnsureGuardRails admits the namespace's migrated workloads through vaultctl's NetworkPolicies
// and, in client-jwt mode, binds their ServiceAccounts to system:auth-delegator. Idempotent:
// objects already as wanted are not written.
func EnsureGuardRails(ctx context.Context, kube kubernetes.Interface, in GuardRailsInput) ([]AccessChange, error) {
	var out []AccessChange
	migrating := slices.ContainsFunc(in.Workloads, func(wp WorkloadPlan) bool { return wp.Action == WorkloadMigrate })
	if !migrating {
		return nil, nil
	}
	if len(in.NetworkPolicies) > 0 {
		res, err := networkpolicy.ApplyIn(ctx, kube, in.VaultNamespace, in.NetworkPolicies, false)
		for _, c := range res.Changes {
			o := Created
			if c.Action == networkpolicy.ActionUpdate {
				o = Updated
			}
			out = append(out, AccessChange{Object: "NetworkPolicy " + c.Object, Outcome: o, Detail: c.Detail})
		}
		if err != nil {
			return out, fmt.Errorf("admitting %s's migrated pods to Vault: %w", in.Namespace, err)
		}
	}
	if in.ClientJWT {
		c, err := ensureClientJWTBinding(ctx, kube, in)
		if c.Object != "" {
			out = append(out, c)
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// ensureClientJWTBinding adds the migrated workloads' ServiceAccounts to the namespace's
// binding; it never removes one (a workload of an earlier run keeps its access).
func ensureClientJWTBinding(ctx context.Context, kube kubernetes.Interface, in GuardRailsInput) (AccessChange, error) {
	name := ClientJWTBindingName(in.Namespace)
	c := AccessChange{Object: "ClusterRoleBinding " + name}
	crbs := kube.RbacV1().ClusterRoleBindings()
	cur, err := crbs.Get(ctx, name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return c, fmt.Errorf("reading %s: %w", c.Object, err)
	}
	var subjects []rbacv1.Subject
	if err == nil {
		subjects = slices.Clone(cur.Subjects)
	}
	var added []string
	for _, wp := range in.Workloads {
		if wp.Action != WorkloadMigrate || wp.ServiceAccount == "" {
			continue
		}
		s := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: wp.ServiceAccount, Namespace: in.Namespace}
		if !slices.Contains(subjects, s) {
			subjects = append(subjects, s)
			added = append(added, wp.ServiceAccount)
		}
	}
	slices.SortFunc(subjects, func(a, b rbacv1.Subject) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	subjects = slices.Compact(subjects)
	switch {
	case apierrors.IsNotFound(err):
		_, err = crbs.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: guardLabels(in.Namespace)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
			Subjects:   subjects,
		}, metav1.CreateOptions{FieldManager: FieldManager})
		c.Outcome, c.Detail = Created, "system:auth-delegator for "+strings.Join(added, ", ")
	case len(added) == 0:
		c.Outcome = Unchanged
		return c, nil
	default:
		cur.Subjects = subjects
		_, err = crbs.Update(ctx, cur, metav1.UpdateOptions{FieldManager: FieldManager})
		c.Outcome, c.Detail = Updated, "adds "+strings.Join(added, ", ")
	}
	if err != nil {
		return c, fmt.Errorf("writing %s: %w", c.Object, err)
	}
	return c, waitReviewer(ctx, kube, in, added)
}

// waitReviewer waits until the API server's authorizer lets each added ServiceAccount create
// TokenReviews: RBAC reaches the authorizer through a watch, and a login in that window fails.
func waitReviewer(ctx context.Context, kube kubernetes.Interface, in GuardRailsInput, sas []string) error {
	wait := in.BindingWait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	for _, sa := range sas {
		user := "system:serviceaccount:" + in.Namespace + ":" + sa
		for {
			r, err := kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:               user,
				Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + in.Namespace, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create"},
			}}, metav1.CreateOptions{})
			if err != nil {
				// Without the right to ask, the binding was written all the same; the proof tells.
				return nil
			}
			if r.Status.Allowed {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s may not create TokenReviews %s after binding it to system:auth-delegator (%s): Vault cannot review its logins in client-jwt mode", user, wait, r.Status.Reason)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// ensureRoleBindingCopy grants the workload's new ServiceAccount what RoleBinding rb grants
// default, as a binding of its own (rb itself, the team's, is never changed).
func ensureRoleBindingCopy(ctx context.Context, kube kubernetes.Interface, ns, rb, sa, workload string) (AccessChange, error) {
	name := CopiedRoleBindingName(rb, sa)
	c := AccessChange{Workload: workload, Object: "RoleBinding " + ns + "/" + name}
	rbs := kube.RbacV1().RoleBindings(ns)
	src, err := rbs.Get(ctx, rb, metav1.GetOptions{})
	if err != nil {
		return c, fmt.Errorf("reading RoleBinding %s/%s to copy it for %s: %w", ns, rb, workload, err)
	}
	want := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: guardLabels(ns),
			Annotations: map[string]string{WorkloadAnnotation: workload, CopiedFromAnnotation: rb}},
		RoleRef:  src.RoleRef,
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
	}
	cur, err := rbs.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = rbs.Create(ctx, want, metav1.CreateOptions{FieldManager: FieldManager})
		c.Outcome, c.Detail = Created, fmt.Sprintf("%s/%s, copied from %s", src.RoleRef.Kind, src.RoleRef.Name, rb)
	case err != nil:
	case cur.Annotations[CopiedFromAnnotation] != rb:
		return c, fmt.Errorf("%s exists and is not migrate's copy of %s: rename it, or copy the binding by hand", c.Object, rb)
	case apiequality.Semantic.DeepEqual(cur.RoleRef, want.RoleRef) && apiequality.Semantic.DeepEqual(cur.Subjects, want.Subjects):
		c.Outcome = Unchanged
		return c, nil
	case cur.RoleRef != want.RoleRef:
		// roleRef is immutable: replace the copy.
		if err = rbs.Delete(ctx, name, metav1.DeleteOptions{}); err == nil {
			_, err = rbs.Create(ctx, want, metav1.CreateOptions{FieldManager: FieldManager})
		}
		c.Outcome, c.Detail = Updated, "roleRef"
	default:
		cur.Subjects = want.Subjects
		_, err = rbs.Update(ctx, cur, metav1.UpdateOptions{FieldManager: FieldManager})
		c.Outcome, c.Detail = Updated, "subjects"
	}
	if err != nil {
		return c, fmt.Errorf("writing %s: %w", c.Object, err)
	}
	return c, nil
}

// CopiedFromAnnotation names the RoleBinding a copy was made from.
const CopiedFromAnnotation = "vaultctl.io/copied-from"

// RemoveGuardRails deletes what EnsureGuardRails and the RoleBinding copies made for ns
// (--purge): found by their labels, so an interrupted purge is finished by the next.
func RemoveGuardRails(ctx context.Context, kube kubernetes.Interface, ns, vaultNamespace string) error {
	sel := metav1.ListOptions{LabelSelector: ManagedByLabel + "=vaultctl," + networkpolicy.MigratedNamespaceLabel + "=" + ns}
	for _, where := range []string{vaultNamespace, ns} {
		if where == "" {
			continue
		}
		l, err := kube.NetworkingV1().NetworkPolicies(where).List(ctx, sel)
		if err != nil {
			return fmt.Errorf("listing %s's NetworkPolicies in %s: %w", ns, where, err)
		}
		for _, p := range l.Items {
			if err := kube.NetworkingV1().NetworkPolicies(where).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting NetworkPolicy %s/%s: %w", where, p.Name, err)
			}
		}
	}
	rbs, err := kube.RbacV1().RoleBindings(ns).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("listing RoleBindings in %s: %w", ns, err)
	}
	for _, rb := range rbs.Items {
		if err := kube.RbacV1().RoleBindings(ns).Delete(ctx, rb.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting RoleBinding %s/%s: %w", ns, rb.Name, err)
		}
	}
	crb := ClientJWTBindingName(ns)
	if cur, err := kube.RbacV1().ClusterRoleBindings().Get(ctx, crb, metav1.GetOptions{}); err == nil && cur.Labels[networkpolicy.MigratedNamespaceLabel] == ns {
		if err := kube.RbacV1().ClusterRoleBindings().Delete(ctx, crb, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting ClusterRoleBinding %s: %w", crb, err)
		}
	} else if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading ClusterRoleBinding %s: %w", crb, err)
	}
	return nil
}
