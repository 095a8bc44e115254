package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/networkpolicy"
)

// guardedApp is a namespace with one Deployment running as default that reads a Secret through
// env, and a RoleBinding that grants default the view ClusterRole.
func guardedApp(ns, password string) []runtime.Object {
	one := int32(1)
	labels := map[string]string{"app": "api"}
	return []runtime.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "api-creds", Namespace: ns},
			Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"password": []byte(password)}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "default-view", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: ns}}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns}, Spec: appsv1.DeploymentSpec{
			Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "api", Image: "registry.example.com/api:1", Command: []string{"/usr/bin/api"},
					Env: []corev1.EnvVar{{Name: "API_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "api-creds"}, Key: "password"}}}}}},
			}},
		}},
	}
}

// In client-jwt mode Vault reviews each login with the client's own token, so a workload migrate
// moves to a ServiceAccount of its own can log in only once that ServiceAccount may create
// TokenReviews: migrate binds it, the proof and the real agent then log in, and --purge takes the
// binding away again. --copy-role-bindings gives the new ServiceAccount what default had.
func TestMigrateClientJWTBindsReviewers(t *testing.T) {
	t.Parallel()
	const vns, ns = "mig-cjwt-vault", "mig-cjwt"
	e := newMigrateEstateWith(t, vns, externalConfig{TokenReviewer: "client-jwt"})
	cs := kube(t)
	ctx := context.Background()
	e.appNamespace(t, cs, ns)
	createObjects(t, cs, guardedApp(ns, "cj pass '\"$"))
	before := podView(t, cs, ns, "api-", "api", false, 2*time.Minute)
	if before.Env["API_PASSWORD"] != "cj pass '\"$" {
		t.Fatalf("before the migration the container sees API_PASSWORD=%q", before.Env["API_PASSWORD"])
	}

	doc, r := e.migrate(t, ns, "--plan", "--copy-role-bindings")
	if r.Code != 3 {
		t.Fatalf("plan: exit %d\n%s", r.Code, r)
	}
	wp := planned(t, doc.Workloads, "Deployment/api")
	if !slices.ContainsFunc(wp.Changes, func(c string) bool { return strings.Contains(c, "system:auth-delegator") }) ||
		!slices.Equal(wp.CopyRoleBindings, []string{"default-view"}) {
		t.Errorf("plan does not say it binds the reviewer and copies default-view: %+v", wp)
	}

	doc, r = e.migrate(t, ns, "--yes", "--copy-role-bindings")
	if r.Code != 0 || doc.Report == nil || len(doc.Report.Workloads) != 1 || doc.Report.Workloads[0].State != migrate.WorkloadVerified {
		t.Fatalf("migrate in client-jwt mode: exit %d\n%s", r.Code, r)
	}
	sameView(t, "Deployment/api", before, podView(t, cs, ns, "api-", "api", true, 3*time.Minute))

	crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, migrate.ClientJWTBindingName(ns), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no auth-delegator binding for the migrated ServiceAccount: %v", err)
	}
	if want := (rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: wp.ServiceAccount, Namespace: ns}); !slices.Equal(crb.Subjects, []rbacv1.Subject{want}) || crb.RoleRef.Name != "system:auth-delegator" {
		t.Errorf("binding %s grants %s to %v, want system:auth-delegator to %v", crb.Name, crb.RoleRef.Name, crb.Subjects, want)
	}
	cp, err := cs.RbacV1().RoleBindings(ns).Get(ctx, migrate.CopiedRoleBindingName("default-view", wp.ServiceAccount), metav1.GetOptions{})
	if err != nil || cp.RoleRef.Name != "view" || len(cp.Subjects) != 1 || cp.Subjects[0].Name != wp.ServiceAccount {
		t.Errorf("copied RoleBinding: %v %+v", err, cp)
	}

	// The binding is what makes the logins work: without it Vault's review of the workload's
	// own token is refused.
	login := func() error {
		c := vaultClient(t, e.vc.Addrs[0])
		_, err := c.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{"role": wp.Role, "jwt": saToken(t, cs, ns, wp.ServiceAccount)})
		return err
	}
	if err := login(); err != nil {
		t.Fatalf("login as the migrated workload: %v", err)
	}
	crb.Subjects = nil
	if crb, err = cs.RbacV1().ClusterRoleBindings().Update(ctx, crb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "login refused without the reviewer binding", func() error {
		if login() == nil {
			return fmt.Errorf("the migrated workload still logs in")
		}
		return nil
	})

	// --purge removes what migrate made, and leaves the team's own binding.
	if _, r := e.migrate(t, ns, "--rollback", "--purge", "--yes"); r.Code != 0 {
		t.Fatalf("rollback --purge: exit %d\n%s", r.Code, r)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, migrate.ClientJWTBindingName(ns), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("auth-delegator binding after --purge: %v", err)
	}
	rbs, err := cs.RbacV1().RoleBindings(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rb := range rbs.Items {
		names = append(names, rb.Name)
	}
	if !slices.Equal(names, []string{"default-view"}) {
		t.Errorf("RoleBindings after --purge: %v, want the team's default-view alone", names)
	}
}

// An in-cluster Vault behind vaultctl's NetworkPolicies: a namespace migrate switches is
// admitted by a policy of its own (the config lists other clients), its pods reach Vault through
// the in-cluster Service with the real agent, and apply --prune leaves that policy alone. The
// sandbox does not enforce NetworkPolicies: the flows are judged by vaultctl's evaluator over
// the policies live in the API server.
func testMigrateAdmittedByNetworkPolicies(t *testing.T, cs kubernetes.Interface, cfgPath, vns, ns string) {
	ctx := context.Background()
	ensureNamespace(t, cs, ns, map[string]string{injectorLabel: vns})
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
	objs := guardedApp(ns, "ic-migrated-pass")
	createObjects(t, cs, objs)
	before := podView(t, cs, ns, "api-", "api", false, 2*time.Minute)
	if before.Env["API_PASSWORD"] != "ic-migrated-pass" {
		t.Fatalf("before the migration the container sees API_PASSWORD=%q", before.Env["API_PASSWORD"])
	}

	r := vaultctl(t, "migrate", "namespace", ns, "-c", cfgPath, "--yes")
	if r.Code != 0 {
		t.Fatalf("migrate namespace %s on the in-cluster Vault: exit %d\n%s", ns, r.Code, r)
	}
	sameView(t, "Deployment/api", before, podView(t, cs, ns, "api-", "api", true, 3*time.Minute))

	live := func() []networkingv1.NetworkPolicy {
		l, err := cs.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: networkpolicy.VaultClientLabel + "=" + networkpolicy.VaultClientValue})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("no pod of %s labelled %s: %v", ns, networkpolicy.VaultClientLabel, err)
	}
	migrated := networkpolicy.Endpoint{Namespace: ns, PodLabels: pods.Items[0].Labels}
	other := networkpolicy.Endpoint{Namespace: ns, PodLabels: map[string]string{"app": "batch"}}
	servers, err := cs.CoreV1().Pods(vns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=vault,component=server"})
	if err != nil || len(servers.Items) == 0 {
		t.Fatalf("no Vault server pods in %s: %v", vns, err)
	}
	vault0 := networkpolicy.Endpoint{Namespace: vns, PodLabels: servers.Items[0].Labels}
	judge := func(when string) {
		ps := live()
		if ok, why := networkpolicy.Explain(ps, migrated, vault0, 8200, corev1.ProtocolTCP); !ok {
			t.Errorf("%s: the migrated pod may not reach Vault on 8200: %s", when, why)
		}
		if networkpolicy.Allowed(ps, other, vault0, 8200, corev1.ProtocolTCP) {
			t.Errorf("%s: a pod of %s that was not migrated reaches Vault", when, ns)
		}
		if !networkpolicy.Allowed(ps, migrated, networkpolicy.Endpoint{Namespace: "kube-system", PodLabels: map[string]string{"k8s-app": "kube-dns"}}, 53, corev1.ProtocolUDP) {
			t.Errorf("%s: the migrated pod cannot resolve names (appEgress)", when)
		}
	}
	judge("after migrate")
	if res := vaultctl(t, "apply", "-c", cfgPath, "--prune", "-o", "json"); !parseRun(t, res).OK {
		t.Fatalf("apply --prune: %s", res)
	}
	judge("after apply --prune")
	if _, err := cs.NetworkingV1().NetworkPolicies(vns).Get(ctx, networkpolicy.MigratedClientsName(ns), metav1.GetOptions{}); err != nil {
		t.Errorf("apply --prune removed migrate's policy: %v", err)
	}
}

// planned is the plan's entry for workload KIND/NAME.
func planned(t *testing.T, wps []migrate.WorkloadPlan, id string) migrate.WorkloadPlan {
	t.Helper()
	for _, wp := range wps {
		if wp.Kind+"/"+wp.Name == id {
			return wp
		}
	}
	t.Fatalf("%s not in the plan: %+v", id, wps)
	return migrate.WorkloadPlan{}
}
