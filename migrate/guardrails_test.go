package migrate

import (
	"context"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/networkpolicy"
)

func planWith(t *testing.T, mutate func(*PlanOptions)) *Plan {
	t.Helper()
	o := fixtureOptions
	mutate(&o)
	p, err := BuildPlan(fixtureInventory(t), o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanKeepServiceAccountSaysWhatItCosts(t *testing.T) {
	wp := workloadPlan(t, planWith(t, func(o *PlanOptions) { o.KeepServiceAccount = true }), KindDeployment, "web")
	if wp.ServiceAccount != DefaultServiceAccount || wp.CreateServiceAccount || !wp.KeepsDefaultServiceAccount {
		t.Fatalf("--keep-service-account: runs as %q (create %v, keeps %v), want default kept", wp.ServiceAccount, wp.CreateServiceAccount, wp.KeepsDefaultServiceAccount)
	}
	i := slices.IndexFunc(wp.Warnings, func(w string) bool { return strings.HasPrefix(w, "--keep-service-account") })
	if i < 0 || !strings.Contains(wp.Warnings[i], "CronJob/backup") {
		t.Errorf("no warning naming the other workloads that run as default: %v", wp.Warnings)
	}
	if _, err := RoleFor(wp, ns, "kubernetes", config.MigrationDefaults{}); err != nil {
		t.Errorf("RoleFor refuses the kept default: %v", err)
	}
	// Without the flag the role is never bound to default.
	plain := workloadPlan(t, planWith(t, func(*PlanOptions) {}), KindDeployment, "web")
	plain.ServiceAccount = DefaultServiceAccount
	if _, err := RoleFor(plain, ns, "kubernetes", config.MigrationDefaults{}); err == nil {
		t.Error("RoleFor bound default without --keep-service-account")
	}
}

func TestPlanCopyRoleBindings(t *testing.T) {
	wp := workloadPlan(t, planWith(t, func(o *PlanOptions) { o.CopyRoleBindings = true }), KindDeployment, "web")
	if !slices.Equal(wp.CopyRoleBindings, []string{"default-view"}) {
		t.Fatalf("CopyRoleBindings = %v, want [default-view]", wp.CopyRoleBindings)
	}
	if slices.ContainsFunc(wp.Warnings, func(w string) bool { return strings.HasPrefix(w, "RoleBinding ") }) {
		t.Errorf("the binding is copied, yet still warned about: %v", wp.Warnings)
	}
	if !slices.ContainsFunc(wp.Changes, func(c string) bool { return strings.Contains(c, "copy RoleBinding default-view") }) {
		t.Errorf("changes do not say the binding is copied: %v", wp.Changes)
	}
}

// allowTokenReviews makes the fake answer SubjectAccessReviews as RBAC would once bound.
func allowTokenReviews(cs *fake.Clientset, allowed func() bool) {
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		r.Status.Allowed = allowed()
		return true, r, nil
	})
}

func TestGuardRailsCreateOnceAndPurge(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(&rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "default-view", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: DefaultServiceAccount, Namespace: ns}},
	})
	allowTokenReviews(cs, func() bool { return true })
	cfg := &config.Config{Vault: config.Vault{Namespace: "vault", Mode: config.ModeInCluster}, NetworkPolicies: config.NetworkPolicies{Enabled: true, AppEgress: true}}
	in := GuardRailsInput{
		Namespace: ns, VaultNamespace: "vault", ClientJWT: true,
		NetworkPolicies: networkpolicy.BuildMigrated(cfg, ns),
		Workloads: []WorkloadPlan{
			{Kind: KindDeployment, Name: "web", Action: WorkloadMigrate, ServiceAccount: "web"},
			{Kind: KindDeployment, Name: "legacy", Action: WorkloadManual, ServiceAccount: "legacy"},
		},
	}
	changes, err := EnsureGuardRails(ctx, cs, in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.Object+" "+string(c.Outcome))
	}
	want := []string{"NetworkPolicy vault/vaultctl-migrated-shop created", "NetworkPolicy shop/vaultctl-migrated-vault-egress created", "ClusterRoleBinding vaultctl-migrate-auth-delegator-shop created"}
	if !slices.Equal(got, want) {
		t.Fatalf("first run: %v\nwant %v", got, want)
	}
	crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, ClientJWTBindingName(ns), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if crb.RoleRef.Name != "system:auth-delegator" || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "web" {
		t.Errorf("binding %v to %v: want only the migrated ServiceAccount web", crb.RoleRef, crb.Subjects)
	}
	again, err := EnsureGuardRails(ctx, cs, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range again {
		if c.Outcome != Unchanged {
			t.Errorf("second run changed %s (%s)", c.Object, c.Outcome)
		}
	}
	// A later run adds its workloads and keeps the earlier ones.
	in.Workloads = []WorkloadPlan{{Kind: KindCronJob, Name: "backup", Action: WorkloadMigrate, ServiceAccount: "backup"}}
	if _, err := EnsureGuardRails(ctx, cs, in); err != nil {
		t.Fatal(err)
	}
	crb, _ = cs.RbacV1().ClusterRoleBindings().Get(ctx, ClientJWTBindingName(ns), metav1.GetOptions{})
	if len(crb.Subjects) != 2 {
		t.Errorf("subjects after a second namespace run: %v", crb.Subjects)
	}

	c, err := ensureRoleBindingCopy(ctx, cs, ns, "default-view", "web", "Deployment/web")
	if err != nil || c.Outcome != Created {
		t.Fatalf("copy: %v %v", c, err)
	}
	if c, err := ensureRoleBindingCopy(ctx, cs, ns, "default-view", "web", "Deployment/web"); err != nil || c.Outcome != Unchanged {
		t.Errorf("copy again: %v %v", c, err)
	}
	cp, _ := cs.RbacV1().RoleBindings(ns).Get(ctx, CopiedRoleBindingName("default-view", "web"), metav1.GetOptions{})
	if cp.RoleRef.Name != "view" || cp.Subjects[0].Name != "web" {
		t.Errorf("copy grants %v to %v", cp.RoleRef, cp.Subjects)
	}

	if err := RemoveGuardRails(ctx, cs, ns, "vault"); err != nil {
		t.Fatal(err)
	}
	nps, _ := cs.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	rbs, _ := cs.RbacV1().RoleBindings(ns).List(ctx, metav1.ListOptions{})
	crbs, _ := cs.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if len(nps.Items) != 0 || len(crbs.Items) != 0 || len(rbs.Items) != 1 || rbs.Items[0].Name != "default-view" {
		t.Errorf("after purge: %d NetworkPolicies, %d ClusterRoleBindings, RoleBindings %v (want only the team's default-view)", len(nps.Items), len(crbs.Items), rbs.Items)
	}
}

func TestGuardRailsWaitForTheAuthorizer(t *testing.T) {
	cs := fake.NewClientset()
	n := 0
	allowTokenReviews(cs, func() bool { n++; return n > 2 })
	in := GuardRailsInput{Namespace: ns, ClientJWT: true, Workloads: []WorkloadPlan{{Kind: KindDeployment, Name: "web", Action: WorkloadMigrate, ServiceAccount: "web"}}}
	if _, err := EnsureGuardRails(context.Background(), cs, in); err != nil || n != 3 {
		t.Fatalf("err %v after %d reviews, want success on the third", err, n)
	}
	cs = fake.NewClientset()
	allowTokenReviews(cs, func() bool { return false })
	in.BindingWait = 300e6
	_, err := EnsureGuardRails(context.Background(), cs, in)
	if err == nil || !strings.Contains(err.Error(), "client-jwt") {
		t.Errorf("never allowed: %v", err)
	}
}
