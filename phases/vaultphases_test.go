package phases

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fakediscovery "k8s.io/client-go/discovery/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/policy"
)

func TestPoliciesWriteRenderedHCLOnceAndRecordOwnership(t *testing.T) {
	r := newRig(t, nil)
	r.bootstrapped()
	d := r.check("policies")
	if changesOf(d) != "create policy webapp\nupdate ownership record policies" {
		t.Fatalf("plan: %s", changesOf(d))
	}
	r.apply("policies")
	hcl, found, _ := r.vault.RootClient().ReadPolicy(context.Background(), "webapp")
	if !found || hcl != policy.Render(r.cfg.Policies[0], []string{"secret"}) {
		t.Fatalf("stored policy:\n%s", hcl)
	}
	if got := r.ownership("policies"); got != `["webapp"]` {
		t.Fatalf("ownership record: %s", got)
	}
	r.vault.ResetCalls()
	if d := r.check("policies"); !d.Empty() {
		t.Fatalf("second plan: %s", changesOf(d))
	}
	for _, c := range r.vault.Calls() {
		if strings.HasPrefix(c, "WritePolicy") || strings.HasPrefix(c, "DeletePolicy") {
			t.Fatalf("a no-op check wrote: %s", c)
		}
	}
	// Drift: someone edits the policy by hand; apply restores it.
	_ = r.vault.RootClient().WritePolicy(context.Background(), "webapp", `path "secret/*" { capabilities = ["read"] }`)
	if changesOf(r.check("policies")) != "update policy webapp" {
		t.Fatal("drift not detected")
	}
}

func TestPoliciesPruneDeletesOnlyWhatVaultctlCreatedAndStillMarks(t *testing.T) {
	r := newRig(t, func(c *config.Config) {
		c.Policies = append(c.Policies, config.Policy{Name: "old", Rules: []config.PolicyRule{{Path: "secret/old/x", Capabilities: []string{"read"}}}})
	})
	r.bootstrapped()
	root := r.vault.RootClient()
	ctx := context.Background()
	// A policy a person wrote before vaultctl, with a name the config also uses: updated to the
	// config, never recorded as owned.
	_ = root.WritePolicy(ctx, "webapp", `path "secret/x" { capabilities = ["read"] }`)
	// A hand-written policy that someone lists in the ownership record.
	_ = root.WritePolicy(ctx, "hand-written", `path "secret/y" { capabilities = ["read"] }`)
	r.apply("policies")
	if got := r.ownership("policies"); got != `["old"]` {
		t.Fatalf("only what vaultctl created is owned, got %s", got)
	}
	r.setOwnership("policies", `["hand-written","old"]`)

	// Drop "old" and "webapp" from the config; without --prune nothing is deleted.
	r.cfg.Policies = nil
	d := r.check("policies")
	if len(d.Changes) > 1 || !strings.Contains(strings.Join(d.Facts, "\n"), "apply --prune deletes them") {
		t.Fatalf("without --prune: %s / %v", changesOf(d), d.Facts)
	}
	r.env.Prune = true
	d = r.check("policies")
	if got := changesOf(d); !strings.Contains(got, "delete policy old") || strings.Contains(got, "hand-written") || strings.Contains(got, "delete policy webapp") {
		t.Fatalf("prune plan:\n%s", got)
	}
	if !strings.Contains(strings.Join(d.Facts, "\n"), "[hand-written] listed as owned but without vaultctl's mark") {
		t.Errorf("facts: %v", d.Facts)
	}
	r.apply("policies")
	for name, want := range map[string]bool{"old": false, "hand-written": true, "webapp": true} {
		if _, found, _ := root.ReadPolicy(ctx, name); found != want {
			t.Errorf("policy %s exists=%v after prune, want %v", name, found, want)
		}
	}
	if got := r.ownership("policies"); got != `[]` {
		t.Errorf("ownership after prune: %s", got)
	}
}

func TestPoliciesAWriteFailureNamesThePolicy(t *testing.T) {
	r := newRig(t, nil)
	r.useRootToken()
	r.vault.Fail("WritePolicy", &vaultapi.ResponseError{StatusCode: 500, Errors: []string{"raft apply timeout"}})
	err := r.phase("policies").Apply(context.Background(), Diff{})
	if err == nil || !strings.Contains(err.Error(), "create policy webapp") {
		t.Fatalf("want the failing policy named: %v", err)
	}
	if r.ownership("policies") != "" {
		t.Fatal("a failed write must not record ownership")
	}
}

func TestRolesCarryBindingsAndTTLsAndPruneByRecord(t *testing.T) {
	r := newRig(t, nil)
	r.bootstrapped()
	if changesOf(r.check("roles")) != "create Kubernetes auth role webapp\nupdate ownership record roles" {
		t.Fatal("plan")
	}
	r.apply("roles")
	got, err := r.vault.RootClient().ReadRole(context.Background(), r.cfg.KubernetesAuth.Path, "webapp")
	if err != nil || !policy.SameRoleValue(got["bound_service_account_names"], []string{"webapp-sa"}) || !policy.SameRoleValue(got["token_ttl"], 3600) || !policy.SameRoleValue(got["token_max_ttl"], 14400) {
		t.Fatalf("role: %v %v", got, err)
	}
	if d := r.check("roles"); !d.Empty() {
		t.Fatalf("second plan: %s", changesOf(d))
	}
	r.cfg.Roles[0].MaxTTL.Duration *= 2
	if d := r.check("roles"); changesOf(d) != "update Kubernetes auth role webapp (token_max_ttl)" {
		t.Fatalf("ttl change: %s", changesOf(d))
	}
	r.cfg.Roles = nil
	r.env.Prune = true
	r.apply("roles")
	if got, _ := r.vault.RootClient().ReadRole(context.Background(), r.cfg.KubernetesAuth.Path, "webapp"); got != nil {
		t.Fatal("pruned role still exists")
	}
}

func TestAuditEnablesMarkedDevicesAndNeverPrunesForeignOnes(t *testing.T) {
	r := newRig(t, nil)
	r.bootstrapped()
	ctx := context.Background()
	root := r.vault.RootClient()
	_ = root.EnableAuditDevice(ctx, "siem", vault.AuditDevice{Type: "file", Options: map[string]string{"file_path": "/tmp/siem"}, Description: "the security team's"})
	r.apply("audit")
	live, _ := root.ListAuditDevices(ctx)
	if live["file/"].Description != auditMark || live["file2/"].Type != "file" {
		t.Fatalf("devices: %+v", live)
	}
	// Options changed: re-enabled.
	r.cfg.Audit.Devices[1].Options["file_path"] = "/vault/audit/other.log"
	if d := r.check("audit"); !strings.Contains(changesOf(d), "update audit device file2/") {
		t.Fatalf("option change: %s", changesOf(d))
	}
	// Someone lists the security team's device as ours; prune must still leave it.
	r.setOwnership("audits", `["file","file2","siem"]`)
	r.cfg.Audit.Devices = r.cfg.Audit.Devices[:1]
	r.env.Prune = true
	r.apply("audit")
	live, _ = root.ListAuditDevices(ctx)
	if _, ok := live["siem/"]; !ok {
		t.Fatal("a device vaultctl did not create was disabled")
	}
	if _, ok := live["file2/"]; ok {
		t.Fatal("the dropped vaultctl device is still enabled")
	}
}

func TestKubernetesAuthConfiguresAndRepairsARotatedCA(t *testing.T) {
	r := newRig(t, nil)
	r.useRootToken()
	r.apply("kubernetes-auth")
	cfg, _ := r.vault.RootClient().ReadAuthConfig(context.Background(), r.cfg.KubernetesAuth.Path)
	if cfg["kubernetes_host"] != "https://127.0.0.1:6443" || cfg["kubernetes_ca_cert"] != "cluster-ca" || cfg["token_reviewer_jwt_set"] != true {
		t.Fatalf("auth config: %v", cfg)
	}
	if d := r.check("kubernetes-auth"); !d.Empty() {
		t.Fatalf("second plan: %s", changesOf(d))
	}
	r.env.KubeCA = []byte("rotated-ca")
	if d := r.check("kubernetes-auth"); !strings.Contains(changesOf(d), "cluster CA differs (rotated?)") {
		t.Fatalf("rotation: %s", changesOf(d))
	}
	// An auth path taken by another method is refused with the key to change.
	r.cfg.KubernetesAuth.Path = "userpass"
	_ = r.vault.RootClient().EnableAuthMethod(context.Background(), "userpass", vault.MountInfo{Type: "userpass"})
	if _, err := r.phase("kubernetes-auth").Check(context.Background()); err == nil || !strings.Contains(asPhaseError("x", err).Hint, "kubernetesAuth.path") {
		t.Fatalf("taken path: %v", err)
	}
}

func TestKubernetesAuthLogsTheRoleOfLoginsInClear(t *testing.T) {
	r := newRig(t, nil)
	r.useRootToken()
	ctx := context.Background()
	mount := r.cfg.KubernetesAuth.Path
	if d := r.check("kubernetes-auth"); !strings.Contains(changesOf(d), "sys/auth/"+mount+"/tune") {
		t.Fatalf("first plan does not tune the mount: %s", changesOf(d))
	}
	r.apply("kubernetes-auth")
	tune, err := r.vault.RootClient().ReadAuthTune(ctx, mount)
	if err != nil || !slices.Equal(tune.AuditNonHMACRequestKeys, []string{"role"}) {
		t.Fatalf("tune after apply: %+v, %v; want audit_non_hmac_request_keys [role]", tune, err)
	}
	if d := r.check("kubernetes-auth"); !d.Empty() {
		t.Fatalf("second plan: %s", changesOf(d))
	}
	// Keys someone else listed are kept; a tune that lost "role" is repaired.
	if err := r.vault.RootClient().TuneAuthMethod(ctx, mount, vault.AuthTune{AuditNonHMACRequestKeys: []string{"username"}}); err != nil {
		t.Fatal(err)
	}
	if d := r.check("kubernetes-auth"); !strings.Contains(changesOf(d), "audit_non_hmac_request_keys += role") {
		t.Fatalf("drifted tune not seen: %s", changesOf(d))
	}
	r.apply("kubernetes-auth")
	tune, _ = r.vault.RootClient().ReadAuthTune(ctx, mount)
	if !slices.Equal(tune.AuditNonHMACRequestKeys, []string{"username", "role"}) {
		t.Fatalf("tune after repair: %+v, want [username role]", tune)
	}
	if d := r.check("kubernetes-auth"); !d.Empty() {
		t.Fatalf("plan after repair: %s", changesOf(d))
	}
}

func TestBootstrapRevokesTheRootTokenOnlyAfterTheAdminLoginWorks(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	r.vault.SetInitialized(false)
	r.vault.SetSealed(false)
	r.apply("initialize")
	root := r.vault.RootToken()
	if !r.env.Vault.HasRootToken() {
		t.Fatal("initialize must hand the root token to the session")
	}
	s, _ := r.kube.CoreV1().Secrets("vault").Get(ctx, CustodySecret, metav1.GetOptions{})
	if len(s.Data[custodyRootKey]) == 0 || len(s.Data[custodyRecoveryKey]) == 0 {
		t.Fatal("the keys and root token must be in custody before anything else")
	}
	for _, v := range s.Data {
		if strings.Contains(string(v), root) {
			t.Fatal("custody holds the root token in the clear")
		}
	}
	r.apply("kubernetes-auth", "bootstrap")
	if r.env.Vault.HasRootToken() {
		t.Fatal("the root token outlived bootstrap")
	}
	if err := r.vault.Client(root).LookupSelf(ctx); !vault.IsForbidden(err) {
		t.Fatalf("root token still alive: %v", err)
	}
	s, _ = r.kube.CoreV1().Secrets("vault").Get(ctx, CustodySecret, metav1.GetOptions{})
	if _, ok := s.Data[custodyRootKey]; ok {
		t.Fatal("revoked root token left in custody")
	}
	// A fresh run logs in as vaultctl-admin and finds nothing to do.
	r.session()
	if d := r.check("bootstrap"); !d.Empty() || !slices.Contains(d.Facts, "authenticated as "+AdminRole) {
		t.Fatalf("later run: %s %v", changesOf(d), d.Facts)
	}
}

func TestBootstrapKeepsTheRootTokenWhenTheAdminLoginFails(t *testing.T) {
	r := newRig(t, nil)
	r.vault.SetInitialized(false)
	r.vault.SetSealed(false)
	r.apply("initialize")
	r.apply("kubernetes-auth")
	r.vault.Fail("Login", &vaultapi.ResponseError{StatusCode: 403, Errors: []string{"permission denied"}})
	res, _ := (&Runner{Phases: []Phase{r.phase("bootstrap")}}).Apply(context.Background(), Selection{})
	if res[0].Status != Failed || !strings.Contains(res[0].Error.Hint, "root token was kept") {
		t.Fatalf("want a kept root token: %+v", res[0])
	}
	if !r.env.Vault.HasRootToken() {
		t.Fatal("root token dropped although the admin identity does not work")
	}
}

func TestSessionDropsADeadRootTokenLeftInCustody(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	r.vault.SetInitialized(false)
	r.vault.SetSealed(false)
	r.apply("initialize")
	r.apply("kubernetes-auth")
	// A run killed between revoking and forgetting: custody holds a revoked token.
	r.vault.RevokeToken(r.vault.RootToken())
	r.session()
	r.useRootToken() // a dead one too; the admin login is not set up yet
	r.env.Vault.FallbackToken = ""
	r.vault.AllowLogin(r.cfg.KubernetesAuth.Path, AdminRole, adminJWT)
	_, _ = r.env.Vault.Admin(ctx)
	s, _ := r.kube.CoreV1().Secrets("vault").Get(ctx, CustodySecret, metav1.GetOptions{})
	if _, ok := s.Data[custodyRootKey]; ok {
		t.Fatal("a revoked root token must be dropped from custody")
	}
}

func TestInitializeRefusesASealMismatchAndAForeignCustodySecret(t *testing.T) {
	r := newRig(t, nil)
	r.vault.SetSealType("shamir")
	if _, err := r.phase("initialize").Check(context.Background()); err == nil || !strings.Contains(err.Error(), "seal migration") {
		t.Fatalf("seal mismatch: %v", err)
	}
	r = newRig(t, nil)
	r.vault.SetInitialized(false)
	_ = ensureNamespace(context.Background(), r.kube, "vault")
	_, _ = r.kube.CoreV1().Secrets("vault").Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: CustodySecret, Namespace: "vault"}}, metav1.CreateOptions{})
	if _, err := r.phase("initialize").Check(context.Background()); err == nil || !strings.Contains(err.Error(), "not created by vaultctl") {
		t.Fatalf("foreign Secret: %v", err)
	}
	r.vault.ResetCalls()
	if slices.ContainsFunc(r.vault.Calls(), func(c string) bool { return c == "Init" }) {
		t.Fatal("init ran")
	}
}

func TestRaftReportsMissingVotersAndTunesAutopilot(t *testing.T) {
	r := newRig(t, func(c *config.Config) { c.Vault.Replicas = 5 })
	r.useRootToken()
	d := r.check("raft")
	if !strings.Contains(changesOf(d), "3 of 5 voters") {
		t.Fatalf("plan: %s", changesOf(d))
	}
	r = newRig(t, func(c *config.Config) { c.Vault.Raft.AutopilotStabilizationTime.Duration = 45 * time.Second })
	r.useRootToken()
	if d := r.check("raft"); !strings.Contains(changesOf(d), "update autopilot configuration") {
		t.Fatalf("tuning: %s", changesOf(d))
	}
	r.useRootToken()
	r.apply("raft")
	ap, _ := r.vault.RootClient().AutopilotConfig(context.Background())
	if ap.ServerStabilizationTime != r.cfg.Vault.Raft.AutopilotStabilizationTime.Duration || ap.CleanupDeadServers != r.cfg.Vault.Raft.AutopilotCleanupDeadServers {
		t.Fatalf("autopilot: %+v", ap)
	}
	if d := r.check("raft"); !d.Empty() || !strings.Contains(d.Facts[0], "3 voters") {
		t.Fatalf("second plan: %s %v", changesOf(d), d.Facts)
	}
}

func TestKMSCreatesKeyAliasAndRotationOnlyWhenAllowed(t *testing.T) {
	r := newRig(t, nil)
	r.kms = newMemKMS("")
	r.env.KMS = r.kms
	if _, err := r.phase("kms").Check(context.Background()); err == nil || !strings.Contains(asPhaseError("kms", err).Hint, "aws kms create-key") {
		t.Fatalf("without createKey: %v", err)
	}
	r.cfg.Vault.Seal.AWSKMS.CreateKey = true
	r.apply("kms")
	if d := r.check("kms"); !d.Empty() {
		t.Fatalf("after create: %s", changesOf(d))
	}
	id := r.kms.aliases[r.cfg.Vault.Seal.AWSKMS.KMSKeyID]
	r.kms.rotation[id] = false
	if d := r.check("kms"); !strings.Contains(changesOf(d), "enable automatic rotation") {
		t.Fatalf("rotation off: %s", changesOf(d))
	}
	r.apply("kms")
	if !r.kms.rotation[id] {
		t.Fatal("rotation not enabled")
	}
}

func TestPreflightReportsEveryProblemAtOnce(t *testing.T) {
	r := newRig(t, nil)
	r.denied["create leases"] = true
	r.kms.fail = errors.New("dial tcp: connection refused")
	r.vault.Fail("Health", errors.New("connection refused"))
	_, err := r.phase("preflight").Check(context.Background())
	if err == nil {
		t.Fatal("want failures")
	}
	pe := asPhaseError("preflight", err)
	for _, want := range []string{"missing Kubernetes permissions: create leases.coordination.k8s.io in namespace vault", "KMS endpoint memkms is unreachable", "cannot reach Vault at https://vault.example:8200"} {
		if !strings.Contains(pe.What, want) {
			t.Errorf("missing %q in %s", want, pe.What)
		}
	}
	r = newRig(t, nil)
	d := r.check("preflight")
	if len(d.Facts) != 3 || !strings.Contains(d.Facts[2], "Vault 1.21.1 at https://vault.example:8200 (unsealed)") {
		t.Fatalf("facts: %v", d.Facts)
	}
}

func TestInjectorInstallsItsOwnReleaseWithTheExternalCA(t *testing.T) {
	r := newRig(t, nil)
	d := r.check("injector")
	if len(d.Changes) != 1 || d.Changes[0].Action != Create || !strings.Contains(d.Changes[0].Object, charts.InjectorRelease) {
		t.Fatalf("plan: %s", changesOf(d))
	}
	r.apply("injector")
	if d := r.check("injector"); !d.Empty() {
		t.Fatalf("second plan: %s", changesOf(d))
	}
	r.cfg.Injector.Replicas = 3
	if d := r.check("injector"); len(d.Changes) != 1 || d.Changes[0].Action != Update {
		t.Fatalf("replicas change: %s", changesOf(d))
	}
	f := false
	r.cfg.Injector.Enabled = &f
	if d := r.check("injector"); !d.Empty() || d.Facts[0] != "injector disabled in the config" {
		t.Fatalf("disabled: %+v", d)
	}
}

func TestNetworkPoliciesApplyOnceAndPrune(t *testing.T) {
	r := newRig(t, func(c *config.Config) {
		c.Vault.Mode = config.ModeInCluster
		c.Vault.Address = ""
		c.NetworkPolicies.Enabled = true
		c.NetworkPolicies.AllowedClients = []config.AllowedClient{{Namespace: "production"}}
	})
	d := r.check("network-policies")
	if len(d.Changes) == 0 {
		t.Fatal("nothing planned")
	}
	r.apply("network-policies")
	if d := r.check("network-policies"); !d.Empty() {
		t.Fatalf("second plan: %s", changesOf(d))
	}
}

func TestPreflightBoundsTheWaitForASilentAPIServer(t *testing.T) {
	r := newRig(t, nil)
	hold := make(chan struct{})
	defer close(hold)
	r.kube.Discovery().(*fakediscovery.FakeDiscovery).PrependReactor("get", "version", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-hold // an API server that never answers
		return true, nil, nil
	})
	p := r.phase("preflight").(*Preflight)
	p.ClusterTimeout = 50 * time.Millisecond
	_, err := p.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "accepted the connection but did not answer within 50ms") {
		t.Fatalf("want a bounded wait, got %v", err)
	}
}

func TestPoliciesReadDroppedObjectsMarksOnlyWhenPruning(t *testing.T) {
	r := newRig(t, func(c *config.Config) {
		c.Policies = append(c.Policies, config.Policy{Name: "old", Rules: []config.PolicyRule{{Path: "secret/old/x", Capabilities: []string{"read"}}}})
	})
	r.bootstrapped()
	r.apply("policies")
	r.cfg.Policies = r.cfg.Policies[:1]
	r.vault.ResetCalls()
	r.check("policies")
	if slices.Contains(r.vault.Calls(), "ReadPolicy old") {
		t.Fatal("without --prune a dropped policy's mark must not be read")
	}
	r.env.Prune = true
	r.check("policies")
	if !slices.Contains(r.vault.Calls(), "ReadPolicy old") {
		t.Fatal("with --prune the dropped policy's mark must be checked before the delete")
	}
}

func TestInjectorHandsAgentsTheCATheSessionTrusts(t *testing.T) {
	r := newRig(t, nil)
	ca := "-----BEGIN CERTIFICATE-----\nsession-ca\n-----END CERTIFICATE-----\n"
	r.env.Vault.Locate = func(context.Context) (vault.Endpoint, error) {
		return vault.Endpoint{Address: r.cfg.Vault.Address, CAPEM: []byte(ca)}, nil
	}
	r.check("injector")
	if !strings.Contains(r.helm.lastStatusValues, `"vaultCACert":"-----BEGIN CERTIFICATE-----\nsession-ca`) {
		t.Fatalf("the injector's values lack the session's CA: %s", r.helm.lastStatusValues)
	}
}
