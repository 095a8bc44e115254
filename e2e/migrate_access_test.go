package e2e

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/migrate"
)

// This test's own namespace and mounts, so it shares nothing with the other tests.
const (
	migAccessNS    = "migaccess"
	migAccessAuth  = "k8s-migaccess"
	migAccessKV    = "kv-migaccess"
	migAccessRoleA = "migaccess-deployment-api"
	migAccessRoleR = "migaccess-cronjob-report"
)

// recordingClient records which calls a proof made as the workload.
type recordingClient struct {
	vault.Client
	mu    sync.Mutex
	calls []string
}

func (c *recordingClient) record(m string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, m)
}

func (c *recordingClient) Login(ctx context.Context, mount string, body map[string]any) (string, error) {
	c.record("Login")
	return c.Client.Login(ctx, mount, body)
}

func (c *recordingClient) KVRead(ctx context.Context, mount, path string) (*vault.KVSecret, error) {
	c.record("KVRead")
	return c.Client.KVRead(ctx, mount, path)
}

func (c *recordingClient) CapabilitiesSelf(ctx context.Context, paths ...string) (map[string][]string, error) {
	c.record("CapabilitiesSelf")
	return c.Client.CapabilitiesSelf(ctx, paths...)
}

// Issue 18 §3 and §4 on the real Vault and API server: a workload's policy, role and
// ServiceAccount are created, the proof logs in with a real TokenRequest token, reads its
// KV paths and is denied a sibling; a second run changes nothing; and a role bound to another
// ServiceAccount is caught at the login, before the proof reads anything.
func TestMigrateAccess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := kube(t)
	ensureNamespace(t, cs, migAccessNS)
	for _, sa := range []string{"vault-reviewer", "api"} {
		ensureServiceAccount(t, cs, migAccessNS, sa)
	}
	_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "migaccess-vault-reviewer-delegator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vault-reviewer", Namespace: migAccessNS}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	kubeCA, err := os.ReadFile(sb.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	vaultCA, err := os.ReadFile(sb.VaultCACert)
	if err != nil {
		t.Fatal(err)
	}
	ep := vault.Endpoint{Address: sb.VaultAddrs[0], CAPEM: vaultCA}
	admin, err := vault.HTTPDialer{Timeout: 30 * time.Second}.Dial(ep)
	if err != nil {
		t.Fatal(err)
	}
	admin.SetToken(vaultRoot(t, sb.VaultAddrs[0]).Token())

	eventually(t, time.Minute, "enable auth/"+migAccessAuth+" and "+migAccessKV, func() error {
		auths, err := admin.ListAuthMethods(ctx)
		if err != nil {
			return err
		}
		if _, ok := auths[migAccessAuth+"/"]; !ok {
			if err := admin.EnableAuthMethod(ctx, migAccessAuth, vault.MountInfo{Type: "kubernetes"}); err != nil {
				return err
			}
		}
		mounts, err := admin.ListMounts(ctx)
		if err != nil {
			return err
		}
		if _, ok := mounts[migAccessKV+"/"]; !ok {
			return admin.EnableMount(ctx, migAccessKV, vault.MountInfo{Type: "kv", Options: map[string]string{"version": "2"}})
		}
		return nil
	})
	if err := admin.WriteAuthConfig(ctx, migAccessAuth, map[string]any{
		"kubernetes_host":    sb.APIServerURL,
		"kubernetes_ca_cert": string(kubeCA),
		"token_reviewer_jwt": saToken(t, cs, migAccessNS, "vault-reviewer"),
	}); err != nil {
		t.Fatalf("auth/%s/config: %v", migAccessAuth, err)
	}

	secrets := map[string]map[string][]byte{
		"db":       {"username": []byte("app_user"), "password": []byte(`p'a"s$ word`), "keystore.p12": {0x30, 0x82, 0xff, 0xfe, 0x00}},
		"api-keys": {"stripe.key": []byte("sk_test_migaccess")},
	}
	plan := &migrate.Plan{Namespace: migAccessNS}
	for _, name := range []string{"api-keys", "db"} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: migAccessNS}, Data: secrets[name]}
		created, err := cs.CoreV1().Secrets(migAccessNS).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create Secret %s: %v", name, err)
		}
		if _, err := migrate.CopySecret(ctx, admin, migAccessKV, migAccessNS+"/"+name, created, false); err != nil {
			t.Fatalf("copy Secret %s: %v", name, err)
		}
		plan.Secrets = append(plan.Secrets, migrate.SecretPlan{Name: name, Action: migrate.SecretMigrate, KVPath: migAccessKV + "/" + migAccessNS + "/" + name})
	}
	plan.Workloads = []migrate.WorkloadPlan{
		{Kind: "Deployment", Name: "api", Action: migrate.WorkloadMigrate, ServiceAccount: "api", Role: migAccessRoleA, Policy: migAccessRoleA,
			KVPaths: []string{migAccessKV + "/migaccess/db", migAccessKV + "/migaccess/api-keys"}},
		{Kind: "CronJob", Name: "report", Action: migrate.WorkloadMigrate, ServiceAccount: "report", CreateServiceAccount: true,
			Role: migAccessRoleR, Policy: migAccessRoleR, KVPaths: []string{migAccessKV + "/migaccess/db"}},
	}
	in := migrate.AccessInput{Namespace: migAccessNS, AuthMount: migAccessAuth, KVMounts: []string{migAccessKV},
		Defaults:  config.MigrationDefaults{TTL: config.Duration{Duration: time.Hour}, MaxTTL: config.Duration{Duration: 4 * time.Hour}},
		Workloads: plan.Workloads}

	rep, err := migrate.EnsureAccess(ctx, cs, admin, in)
	if err != nil {
		t.Fatalf("EnsureAccess: %v", err)
	}
	if len(rep.Changes) != 5 || slices.ContainsFunc(rep.Changes, func(c migrate.AccessChange) bool { return c.Outcome != migrate.Created }) {
		t.Fatalf("first EnsureAccess: %+v, want ServiceAccount report and two policies and roles created", rep.Changes)
	}

	var last *recordingClient
	proof := migrate.ProofInput{Kube: cs, Admin: admin, Namespace: migAccessNS, AuthMount: migAccessAuth, KVMounts: []string{migAccessKV}, Plan: plan,
		NewClient: func() (migrate.ProofClient, error) {
			c, err := vault.HTTPDialer{Timeout: 30 * time.Second}.Dial(ep)
			last = &recordingClient{Client: c}
			return last, err
		}}
	for _, wp := range plan.Workloads {
		if err := migrate.Prove(ctx, proof, wp); err != nil {
			t.Fatalf("proof of %s/%s: %v", wp.Kind, wp.Name, err)
		}
	}

	again, err := migrate.EnsureAccess(ctx, cs, admin, in)
	if err != nil {
		t.Fatalf("second EnsureAccess: %v", err)
	}
	if again.Changed() {
		t.Fatalf("second EnsureAccess changed %+v", again.Changes)
	}

	// The api role, bound by mistake to the report ServiceAccount: the login of api's pods
	// would be refused and they would hang in Init:0/1.
	wrong := map[string]any{"bound_service_account_names": []string{"report"}}
	if err := admin.WriteRole(ctx, migAccessAuth, migAccessRoleA, wrong); err != nil {
		t.Fatal(err)
	}
	err = migrate.Prove(ctx, proof, plan.Workloads[0])
	var pe *migrate.ProofError
	if !errors.As(err, &pe) || pe.Step != migrate.StepLogin || pe.Workload != "Deployment/api" || !strings.Contains(pe.Cause, "not authorized") {
		t.Fatalf("proof with the role bound to another ServiceAccount = %v, want a refused login whose cause says not authorized", err)
	}
	if !strings.Contains(err.Error(), "login as migaccess/api with role "+migAccessRoleA+" at auth/"+migAccessAuth+" refused") {
		t.Errorf("error does not say which login was refused: %v", err)
	}
	if !slices.Equal(last.calls, []string{"Login"}) {
		t.Errorf("the proof went on past the refused login: %v", last.calls)
	}
	for _, data := range secrets {
		for _, v := range data {
			if strings.Contains(err.Error(), string(v)) {
				t.Errorf("error shows a value: %v", err)
			}
		}
	}

	// EnsureAccess repairs exactly the binding, and the proof passes again.
	fixed, err := migrate.EnsureAccess(ctx, cs, admin, in)
	if err != nil {
		t.Fatal(err)
	}
	var updated []string
	for _, c := range fixed.Changes {
		if c.Outcome != migrate.Unchanged {
			updated = append(updated, c.Object+": "+string(c.Outcome)+" "+c.Detail)
		}
	}
	if !slices.Equal(updated, []string{"role auth/" + migAccessAuth + "/role/" + migAccessRoleA + ": updated bound_service_account_names"}) {
		t.Errorf("repair changed %v", updated)
	}
	if err := migrate.Prove(ctx, proof, plan.Workloads[0]); err != nil {
		t.Fatalf("proof after the repair: %v", err)
	}

	// Vault itself judges the policy: one that grants the whole folder fails at the sibling,
	// one that misses a path fails at that path's read.
	for _, c := range []struct{ rules, step, cause string }{
		{"path \"" + migAccessKV + "/data/migaccess/*\" {\n  capabilities = [\"read\"]\n}\n", migrate.StepSibling,
			"checking that " + migAccessKV + "/data/migaccess/vaultctl-proof-sibling is denied: the token has read there"},
		{"path \"" + migAccessKV + "/data/migaccess/db\" {\n  capabilities = [\"read\"]\n}\n", migrate.StepRead,
			"reading " + migAccessKV + "/migaccess/api-keys as migaccess/api: permission denied"},
	} {
		if err := admin.WritePolicy(ctx, migAccessRoleA, c.rules); err != nil {
			t.Fatal(err)
		}
		err := migrate.Prove(ctx, proof, plan.Workloads[0])
		if !errors.As(err, &pe) || pe.Step != c.step || !strings.Contains(err.Error(), c.cause) {
			t.Errorf("proof with policy %q = %v, want step %s: %s", c.rules, err, c.step, c.cause)
		}
		if _, err := migrate.EnsureAccess(ctx, cs, admin, in); err != nil {
			t.Fatal(err)
		}
		if err := migrate.Prove(ctx, proof, plan.Workloads[0]); err != nil {
			t.Fatalf("proof after EnsureAccess rewrote the policy: %v", err)
		}
	}
	// Every proof, passed or failed, gave its login back.
	if leases, err := admin.ListLeases(ctx, "auth/"+migAccessAuth+"/login/"); err != nil || len(leases) != 0 {
		t.Errorf("login leases left by the proofs: %v (%v)", leases, err)
	}
}
