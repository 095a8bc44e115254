package migrate

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/policy"
)

const (
	accessNS    = "team-a"
	accessMount = "k8s-migrate"
)

// Values of the access rig's Secrets: none may appear in an error.
var accessValues = map[string]map[string][]byte{
	"db":  {"username": []byte("app_user"), "password": []byte(`p'a"s$ word`)},
	"bin": {"keystore.p12": {0x30, 0x82, 0xff, 0xfe, 0x00}, "note": []byte("plain-note-value")},
}

// accessRig is a namespace with two migrated workloads, its Secrets copied into the Vault
// Fake's KV, and a fake API server whose TokenRequest gives "jwt-<ns>-<sa>[-<audience>]".
type accessRig struct {
	vault *vault.FakeServer
	admin vault.Client
	kube  *fake.Clientset
	plan  *Plan
}

func accessJWT(ns, sa string, audiences ...string) string {
	return strings.Join(append([]string{"jwt", ns, sa}, audiences...), "-")
}

func newAccessRig(t *testing.T) *accessRig {
	t.Helper()
	ctx := context.Background()
	r := &accessRig{vault: vault.NewFakeServer(), kube: fake.NewClientset()}
	r.admin = r.vault.RootClient()
	if err := r.admin.EnableAuthMethod(ctx, accessMount, vault.MountInfo{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if err := r.admin.WriteAuthConfig(ctx, accessMount, map[string]any{"kubernetes_host": "https://127.0.0.1:6443"}); err != nil {
		t.Fatal(err)
	}
	if err := r.admin.EnableMount(ctx, "secret", vault.MountInfo{Type: "kv-v2"}); err != nil {
		t.Fatal(err)
	}
	r.kube.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		create := a.(k8stesting.CreateActionImpl)
		if _, err := r.kube.Tracker().Get(schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, a.GetNamespace(), create.Name); err != nil {
			return true, nil, err
		}
		tr := create.GetObject().(*authenticationv1.TokenRequest)
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{
			Token: accessJWT(a.GetNamespace(), create.Name, tr.Spec.Audiences...)}}, nil
	})
	if _, err := r.kube.CoreV1().ServiceAccounts(accessNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "api"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.plan = &Plan{Namespace: accessNS}
	for _, name := range []string{"bin", "db"} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: accessNS, Name: name, UID: types.UID("uid-" + name)}, Data: accessValues[name]}
		if _, err := r.kube.CoreV1().Secrets(accessNS).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := CopySecret(ctx, r.admin, "secret", accessNS+"/"+name, s, false); err != nil {
			t.Fatal(err)
		}
		r.plan.Secrets = append(r.plan.Secrets, SecretPlan{Name: name, Action: SecretMigrate, KVPath: "secret/" + accessNS + "/" + name})
	}
	r.plan.Workloads = []WorkloadPlan{
		{Kind: "Deployment", Name: "api", Action: WorkloadMigrate, ServiceAccount: "api", Role: "team-a-deployment-api", Policy: "team-a-deployment-api",
			KVPaths: []string{"secret/team-a/db", "secret/team-a/bin"}},
		{Kind: "CronJob", Name: "report", Action: WorkloadMigrate, ServiceAccount: "report", CreateServiceAccount: true,
			Role: "team-a-cronjob-report", Policy: "team-a-cronjob-report", KVPaths: []string{"secret/team-a/db"}},
		{Kind: "Deployment", Name: "legacy", Action: WorkloadManual, ServiceAccount: "legacy", Role: "team-a-deployment-legacy", Policy: "team-a-deployment-legacy",
			KVPaths: []string{"secret/team-a/db"}},
	}
	r.vault.AllowLogin(accessMount, "team-a-deployment-api", accessJWT(accessNS, "api"))
	r.vault.AllowLogin(accessMount, "team-a-cronjob-report", accessJWT(accessNS, "report"))
	return r
}

func (r *accessRig) input() AccessInput {
	return AccessInput{Namespace: accessNS, AuthMount: accessMount, KVMounts: []string{"secret"},
		Defaults:  config.MigrationDefaults{TTL: config.Duration{Duration: time.Hour}, MaxTTL: config.Duration{Duration: 4 * time.Hour}},
		Workloads: r.plan.Workloads}
}

func (r *accessRig) ensure(t *testing.T) AccessReport {
	t.Helper()
	rep, err := EnsureAccess(context.Background(), r.kube, r.admin, r.input())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestPolicyForReadsExactlyTheWorkloadsPaths(t *testing.T) {
	wp := WorkloadPlan{Policy: "team-a-deployment-api", KVPaths: []string{"secret/team-a/db", "secret/team-a/bin", "secret/team-a/db"}}
	name, hcl := PolicyFor(wp, []string{"secret"})
	if name != "team-a-deployment-api" || !strings.HasPrefix(hcl, policy.Header) {
		t.Fatalf("name %q, header missing:\n%s", name, hcl)
	}
	for _, want := range []string{
		"path \"secret/data/team-a/db\" {\n  capabilities = [\"read\"]\n}",
		"path \"secret/data/team-a/bin\" {\n  capabilities = [\"read\"]\n}",
		"path \"secret/data/team-a/*\" {\n  capabilities = [\"deny\"]\n}",
		"path \"secret/metadata/team-a/*\" {\n  capabilities = [\"deny\"]\n}",
	} {
		if !strings.Contains(hcl, want) {
			t.Errorf("policy lacks %s:\n%s", want, hcl)
		}
	}
	if strings.Count(hcl, `"read"`) != 2 {
		t.Errorf("read granted on more than the two paths:\n%s", hcl)
	}
	wp.KVPaths = []string{"secret/team-a/bin", "secret/team-a/db"}
	if _, again := PolicyFor(wp, []string{"secret"}); again != hcl {
		t.Errorf("the same paths in another order render another policy:\n%s\n---\n%s", again, hcl)
	}
}

func TestRoleForBindsExactlyTheWorkload(t *testing.T) {
	defaults := config.MigrationDefaults{TTL: config.Duration{Duration: time.Hour}, MaxTTL: config.Duration{Duration: 4 * time.Hour}}
	wp := WorkloadPlan{Kind: "Deployment", Name: "api", ServiceAccount: "api", Role: "r", Policy: "p"}
	role, err := RoleFor(wp, accessNS, accessMount, defaults)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"bound_service_account_names": []string{"api"}, "bound_service_account_namespaces": []string{accessNS},
		"token_policies": []string{"p"}, "token_ttl": int64(3600), "token_max_ttl": int64(14400), "audience": "",
	}
	if role.Mount != accessMount || role.Name != "r" || len(policy.RoleDiff(want, role.Data)) != 0 || len(role.Data) != len(want) {
		t.Fatalf("role = %+v, want %v at auth/%s/role/r", role, want, accessMount)
	}
	// The roles phase writes the same shape, so a config role and a migrated one read alike.
	phase := policy.RoleData(config.Role{ServiceAccounts: []string{"api"}, Namespaces: []string{accessNS}, Policies: []string{"p"}, TTL: defaults.TTL, MaxTTL: defaults.MaxTTL})
	if d := policy.RoleDiff(phase, role.Data); len(d) != 0 {
		t.Errorf("differs from the roles phase's shape on %v", d)
	}
	for _, sa := range []string{"default", ""} {
		wp.ServiceAccount = sa
		if _, err := RoleFor(wp, accessNS, accessMount, defaults); err == nil || !strings.Contains(err.Error(), "every pod in team-a") {
			t.Errorf("ServiceAccount %q: err = %v, want a refusal that says why", sa, err)
		}
	}
}

func TestEnsureAccessCreatesOnceThenChangesNothing(t *testing.T) {
	ctx := context.Background()
	r := newAccessRig(t)
	rep := r.ensure(t)
	var got []string
	for _, c := range rep.Changes {
		got = append(got, c.Workload+" "+c.Object+" "+string(c.Outcome))
	}
	want := []string{
		"Deployment/api policy team-a-deployment-api created",
		"Deployment/api role auth/k8s-migrate/role/team-a-deployment-api created",
		"CronJob/report ServiceAccount team-a/report created",
		"CronJob/report policy team-a-cronjob-report created",
		"CronJob/report role auth/k8s-migrate/role/team-a-cronjob-report created",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("first run:\n%s\nwant (the manual workload gets nothing):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	sa, err := r.kube.CoreV1().ServiceAccounts(accessNS).Get(ctx, "report", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sa.Labels[CreatedByLabel] != "migrate" || sa.Labels[ManagedByLabel] != "vaultctl" || sa.Annotations[WorkloadAnnotation] != "CronJob/report" {
		t.Errorf("created ServiceAccount is not marked as migrate's: labels %v annotations %v", sa.Labels, sa.Annotations)
	}
	role, _ := r.admin.ReadRole(ctx, accessMount, "team-a-cronjob-report")
	if !policy.SameRoleValue(role["bound_service_account_names"], []string{"report"}) || !policy.SameRoleValue(role["token_policies"], []string{"team-a-cronjob-report"}) {
		t.Errorf("role binds %v with policies %v", role["bound_service_account_names"], role["token_policies"])
	}
	if !rep.Changed() {
		t.Error("first run reports no change")
	}

	r.vault.ResetCalls()
	again := r.ensure(t)
	if again.Changed() || !strings.Contains(again.Summary(), "already in place") {
		t.Errorf("second run: %s: %+v", again.Summary(), again.Changes)
	}
	for _, call := range r.vault.Calls() {
		if strings.HasPrefix(call, "Write") {
			t.Errorf("second run wrote to Vault: %s", call)
		}
	}

	// Drift on one field is repaired, and only that object is written.
	if err := r.admin.WriteRole(ctx, accessMount, "team-a-deployment-api", map[string]any{"token_ttl": 60}); err != nil {
		t.Fatal(err)
	}
	third := r.ensure(t)
	var changed []string
	for _, c := range third.Changes {
		if c.Outcome != Unchanged {
			changed = append(changed, c.Object+" "+string(c.Outcome)+" ("+c.Detail+")")
		}
	}
	if !slices.Equal(changed, []string{"role auth/k8s-migrate/role/team-a-deployment-api updated (token_ttl)"}) {
		t.Errorf("after drift: %v", changed)
	}
}

func TestEnsureAccessNeverBindsDefault(t *testing.T) {
	r := newAccessRig(t)
	in := r.input()
	in.Workloads = append(slices.Clone(in.Workloads), WorkloadPlan{Kind: "Deployment", Name: "web", Action: WorkloadMigrate, ServiceAccount: "default",
		Role: "team-a-deployment-web", Policy: "team-a-deployment-web", KVPaths: []string{"secret/team-a/db"}})
	r.vault.ResetCalls()
	_, err := EnsureAccess(context.Background(), r.kube, r.admin, in)
	if err == nil || !strings.Contains(err.Error(), "Deployment/web") || !strings.Contains(err.Error(), `"default"`) {
		t.Fatalf("err = %v, want a refusal naming Deployment/web and default", err)
	}
	// Refused before anything of any workload is written.
	for _, call := range r.vault.Calls() {
		if strings.HasPrefix(call, "Write") {
			t.Errorf("wrote %s before refusing", call)
		}
	}
	if _, err := r.kube.CoreV1().ServiceAccounts(accessNS).Get(context.Background(), "report", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ServiceAccount report created before the refusal (err %v)", err)
	}
}

func TestEnsureAccessLeavesAServiceAccountItDidNotCreate(t *testing.T) {
	ctx := context.Background()
	r := newAccessRig(t)
	if _, err := r.kube.CoreV1().ServiceAccounts(accessNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "report"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := EnsureAccess(ctx, r.kube, r.admin, r.input())
	if err == nil || !strings.Contains(err.Error(), "ServiceAccount team-a/report already exists and migrate did not create it") {
		t.Fatalf("err = %v", err)
	}
	if role, _ := r.admin.ReadRole(ctx, accessMount, "team-a-cronjob-report"); role != nil {
		t.Error("role bound to a ServiceAccount migrate does not own")
	}
}

func TestEnsureAccessNeedsEveryPathOnAKVMount(t *testing.T) {
	r := newAccessRig(t)
	in := r.input()
	in.KVMounts = []string{"kv"}
	_, err := EnsureAccess(context.Background(), r.kube, r.admin, in)
	if err == nil || !strings.Contains(err.Error(), "Deployment/api reads secret/team-a/db, which is on none of the kv mounts [kv]") {
		t.Fatalf("err = %v", err)
	}
}
