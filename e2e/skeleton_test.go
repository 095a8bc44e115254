package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// articlePolicies and articleRoles are the origin article's access example (webapp-sa in
// production, read on two KV paths, ttl 1h / max_ttl 4h), shared by every e2e config.
const (
	articlePolicies = `policies:
  - name: app-db-readonly
    rules:
      - {path: secret/production/db-credentials, capabilities: [read]}
      - {path: secret/production/api-keys, capabilities: [read]}
`
	articleRoles = `roles:
  - name: webapp-production
    serviceAccounts: [webapp-sa]
    namespaces: [production]
    policies: [app-db-readonly]
    ttl: 1h
    maxTTL: 4h
`
)

// sandboxConfig writes a vaultctl config pointing at the sandbox: external Vault, the KMS
// emulator, the sandbox kubeconfig. namespace keeps tests' checkpoints apart.
func sandboxConfig(t *testing.T, namespace, kmsEndpoint, keyAlias string, createKey bool) string {
	t.Helper()
	cfg := fmt.Sprintf(`apiVersion: vaultctl.io/v1alpha1
kind: Platform
cluster:
  kubeconfig: %s
vault:
  mode: external
  address: %s
  namespace: %s
  tls:
    caCert: %s
  seal:
    awskms:
      region: %s
      kmsKeyId: %s
      endpoint: %s
      createKey: %t
`+articlePolicies+articleRoles+`audit:
  devices:
    - {path: file, type: file, options: {file_path: %s/audit.log}}
    - {path: file-stdout, type: file, options: {file_path: stdout}}
`, sb.Kubeconfig, sb.VaultAddrs[0], namespace, sb.VaultCACert, sb.KMSRegion, keyAlias, kmsEndpoint, createKey, t.TempDir())
	p := filepath.Join(t.TempDir(), "vaultctl.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// only scopes the engine tests to the phases that need no Vault: the Vault phases have their
// own tests, each on a fresh Vault cluster.
const only = "preflight,kms"

type runJSON struct {
	OK      bool `json:"ok"`
	Changes int  `json:"changes"`
	Phases  []struct {
		Phase   string `json:"phase"`
		Status  string `json:"status"`
		Failure *struct {
			What string `json:"error"`
			Hint string `json:"hint"`
		} `json:"failure"`
	} `json:"phases"`
}

func parseRun(t *testing.T, r cliResult) runJSON {
	t.Helper()
	var out runJSON
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("output is not one JSON document: %v\n%s", err, r)
	}
	return out
}

func statusOf(out runJSON) map[string]string {
	m := map[string]string{}
	for _, p := range out.Phases {
		m[p.Phase] = p.Status
	}
	return m
}

func TestPlanApplyIdempotentAndResumable(t *testing.T) {
	const ns = "vault-e2e-skeleton"
	cfg := sandboxConfig(t, ns, sb.KMSEndpoint, sb.KMSKeyAlias, false)
	ctx := context.Background()

	plan := vaultctl(t, "plan", "-c", cfg, "--only", "preflight")
	if plan.Code != 0 || !strings.Contains(plan.Stdout, "preflight") || !strings.Contains(plan.Stdout, "Kubernetes v1.36") {
		t.Fatalf("plan of preflight should pass and name the cluster version:\n%s", plan)
	}

	first := parseRun(t, vaultctl(t, "apply", "-c", cfg, "--only", only, "-o", "json", "--non-interactive"))
	if !first.OK {
		t.Fatalf("first apply failed: %+v", first)
	}
	cm, err := kube(t).CoreV1().ConfigMaps(ns).Get(ctx, "vaultctl-checkpoints", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("checkpoint ConfigMap missing after apply: %v", err)
	}
	for _, phase := range []string{"preflight", "kms"} {
		if !strings.Contains(cm.Data[phase], `"inputHash"`) {
			t.Errorf("no checkpoint for %s: %v", phase, cm.Data)
		}
	}

	second := vaultctl(t, "apply", "-c", cfg, "--only", only, "-o", "json")
	out := parseRun(t, second)
	if !out.OK || out.Changes != 0 {
		t.Fatalf("second apply must change nothing: %s", second)
	}
	for phase, st := range statusOf(out) {
		if st != "up to date" && st != "skipped" {
			t.Errorf("second apply: %s is %q, want up to date", phase, st)
		}
	}
	after, _ := kube(t).CoreV1().ConfigMaps(ns).Get(ctx, "vaultctl-checkpoints", metav1.GetOptions{})
	if after.ResourceVersion != cm.ResourceVersion {
		t.Errorf("second apply rewrote the checkpoints (resourceVersion %s -> %s)", cm.ResourceVersion, after.ResourceVersion)
	}
	text := vaultctl(t, "apply", "-c", cfg, "--only", only)
	if text.Code != 0 || !strings.Contains(text.Stdout, "Nothing to do") {
		t.Fatalf("text apply should say nothing to do:\n%s", text)
	}

	// A fresh machine has no local state; with the checkpoints gone too, apply must re-observe
	// everything and still change nothing.
	if err := kube(t).CoreV1().ConfigMaps(ns).Delete(ctx, "vaultctl-checkpoints", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again := parseRun(t, vaultctl(t, "apply", "-c", cfg, "--only", only, "-o", "json"))
	if !again.OK || again.Changes != 0 {
		t.Fatalf("apply after losing checkpoints changed something: %+v", again)
	}
	if _, err := kube(t).CoreV1().ConfigMaps(ns).Get(ctx, "vaultctl-checkpoints", metav1.GetOptions{}); err != nil {
		t.Fatalf("checkpoints not re-recorded: %v", err)
	}

	// status reads the checkpoints back (its Vault health part has its own tests).
	st := vaultctl(t, "status", "-c", cfg, "-o", "json")
	var sj struct {
		Phases []struct {
			Phase   string `json:"phase"`
			Applied bool   `json:"applied"`
			Stale   bool   `json:"inputsChanged"`
		} `json:"phases"`
	}
	if err := json.Unmarshal([]byte(st.Stdout), &sj); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, st)
	}
	for _, p := range sj.Phases {
		if wantApplied := p.Phase == "preflight" || p.Phase == "kms"; p.Applied != wantApplied || p.Stale {
			t.Errorf("status: %s applied=%v stale=%v", p.Phase, p.Applied, p.Stale)
		}
	}
}

func TestPreflightFailsClearlyWhenKMSIsDown(t *testing.T) {
	const ns = "vault-e2e-kmsdown"
	// A port nothing listens on: bind, note it, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	cfg := sandboxConfig(t, ns, dead, sb.KMSKeyAlias, false)

	res := vaultctl(t, "apply", "-c", cfg, "--only", only)
	if res.Code != 1 {
		t.Fatalf("want exit 1 for a failed preflight:\n%s", res)
	}
	all := res.Stdout + res.Stderr
	for _, want := range []string{"preflight", "KMS endpoint " + dead + " is unreachable", "fix:", "vault.seal.awskms.endpoint"} {
		if !strings.Contains(all, want) {
			t.Errorf("output lacks %q:\n%s", want, res)
		}
	}
	out := parseRun(t, vaultctl(t, "apply", "-c", cfg, "--only", only, "-o", "json"))
	if out.OK || statusOf(out)["preflight"] != "failed" || statusOf(out)["kms"] != "not run" {
		t.Fatalf("json result: %+v", out)
	}
	_, err = kube(t).CoreV1().ConfigMaps(ns).Get(context.Background(), "vaultctl-checkpoints", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("a failed preflight must record no checkpoint, got err=%v", err)
	}
}

func TestKMSPhaseCreatesKeyOnlyWhenAllowed(t *testing.T) {
	const alias = "alias/e2e-created-by-vaultctl"
	denied := sandboxConfig(t, "vault-e2e-kms", sb.KMSEndpoint, alias, false)
	res := vaultctl(t, "apply", "-c", denied, "--only", only)
	if res.Code != 1 || !strings.Contains(res.Stdout, "aws kms create-key") || !strings.Contains(res.Stdout, "createKey: true") {
		t.Fatalf("missing key without createKey must fail with the exact steps:\n%s", res)
	}

	allowed := sandboxConfig(t, "vault-e2e-kms", sb.KMSEndpoint, alias, true)
	plan := vaultctl(t, "plan", "-c", allowed, "--only", only)
	if plan.Code != 3 || !strings.Contains(plan.Stdout, "create KMS alias "+alias) {
		t.Fatalf("plan should list the key to create and exit 3:\n%s", plan)
	}
	first := parseRun(t, vaultctl(t, "apply", "-c", allowed, "--only", only, "-o", "json"))
	if !first.OK || statusOf(first)["kms"] != "changed" {
		t.Fatalf("apply should create the key: %+v", first)
	}
	second := parseRun(t, vaultctl(t, "apply", "phase", "kms", "-c", allowed, "-o", "json"))
	if !second.OK || statusOf(second)["kms"] != "up to date" || second.Changes != 0 {
		t.Fatalf("second apply of kms must be up to date: %+v", second)
	}
}

func TestBadConfigExitsTwoWithFileAndLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("apiVersion: vaultctl.io/v1alpha1\nkind: Platform\nvault:\n  replicas: 2\n  seal: {awskms: {region: us-east-1, kmsKeyId: nope}}\n"), 0o644)
	res := vaultctl(t, "apply", "-c", p)
	if res.Code != 2 {
		t.Fatalf("want exit 2:\n%s", res)
	}
	for _, want := range []string{p + ":4: vault.replicas: must be odd", p + ":5: vault.seal.awskms.kmsKeyId: must be a key ID, ARN or alias/"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res)
		}
	}
}

func TestConcurrentApplyIsRefused(t *testing.T) {
	const ns = "vault-e2e-lock"
	cfg := sandboxConfig(t, ns, sb.KMSEndpoint, sb.KMSKeyAlias, false)
	ensureNamespace(t, kube(t), ns)
	holder, secs := "ci-runner-7/4242", int32(900)
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "vaultctl-apply", Namespace: ns},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now}}
	if _, err := kube(t).CoordinationV1().Leases(ns).Create(context.Background(), lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	res := vaultctl(t, "apply", "-c", cfg, "--only", only)
	if res.Code != 1 || !strings.Contains(res.Stderr, "another vaultctl apply (ci-runner-7/4242)") || !strings.Contains(res.Stderr, "kubectl delete lease") {
		t.Fatalf("a held lock must refuse apply and say how to recover:\n%s", res)
	}
	if plan := vaultctl(t, "plan", "-c", cfg, "--only", only); plan.Code != 0 {
		t.Fatalf("plan changes nothing and needs no lock:\n%s", plan)
	}
	if err := kube(t).CoordinationV1().Leases(ns).Delete(context.Background(), "vaultctl-apply", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if ok := vaultctl(t, "apply", "-c", cfg, "--only", only); ok.Code != 0 {
		t.Fatalf("apply after the lock is gone:\n%s", ok)
	}
	// A finished apply releases the lock, so the next one runs.
	if again := vaultctl(t, "apply", "-c", cfg, "--only", only); again.Code != 0 {
		t.Fatalf("second apply blocked by its own released lock:\n%s", again)
	}
}
