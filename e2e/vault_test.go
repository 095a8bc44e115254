package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/auditlog"
	"github.com/vaultctl/vaultctl/phases"
)

// externalConfig is the origin article's setup against a fresh external Vault cluster: the
// webapp-production role, its policy on two KV paths, two file audit devices.
type externalConfig struct {
	Namespace    string
	Addr         string
	AuditDir     string
	KeepRoot     bool
	ExtraPolicy  bool // a second policy, dropped later to test --prune
	ExtraRoleFor string
	// TokenReviewer is kubernetesAuth.tokenReviewer; empty: the default (reviewer-jwt).
	TokenReviewer string
}

func writeExternalConfig(t *testing.T, path string, c externalConfig) {
	t.Helper()
	extra := ""
	if c.ExtraPolicy {
		extra = `
  - name: scratch-readonly
    rules:
      - {path: secret/scratch/notes, capabilities: [read]}`
	}
	cfg := fmt.Sprintf(`apiVersion: vaultctl.io/v1alpha1
kind: Platform
cluster:
  kubeconfig: %[1]s
vault:
  mode: external
  address: %[2]s
  namespace: %[3]s
  replicas: 3
  raft:
    autopilotStabilizationTime: 1s
  tls:
    caCert: %[4]s
  seal:
    awskms:
      region: %[5]s
      kmsKeyId: %[6]s
      endpoint: %[7]s
  init:
    recoveryShares: 3
    recoveryThreshold: 2
    keepRootToken: %[8]t
kubernetesAuth:
  host: %[9]s
`+reviewerLine(c.TokenReviewer)+articlePolicies+`%[10]s
`+articleRoles+`audit:
  devices:
    - {path: file, type: file, options: {file_path: %[11]s/audit.log}}
    - {path: file-backup, type: file, options: {file_path: %[11]s/audit-backup.log}}
`+injectorScope(c.Namespace), sb.Kubeconfig, c.Addr, c.Namespace, sb.VaultCACert, sb.KMSRegion, sb.KMSKeyAlias, sb.KMSEndpoint, c.KeepRoot, sb.APIServerURL, extra, c.AuditDir)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// injectorScope keeps an estate's injector to the namespaces labelled for it: the e2e estates
// share one cluster, and an injector that selects every namespace would inject the other
// estates' pods when its webhook sorts first by name, as the API server calls them.
func injectorScope(vns string) string {
	return "injector:\n  namespaceLabels:\n    " + injectorLabel + ": " + vns + "\n"
}

func reviewerLine(mode string) string {
	if mode == "" {
		return ""
	}
	return "  tokenReviewer: " + mode + "\n"
}

// otherCA returns a fresh self-signed CA certificate: valid PEM, but not the cluster's.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "rotated-cluster-ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// adminClient logs in the way vaultctl does on later runs: a TokenRequest for the vaultctl
// ServiceAccount, exchanged at the Kubernetes auth method for a vaultctl-admin token.
func adminClient(t *testing.T, addr, ns string) *vaultapi.Client {
	t.Helper()
	c := vaultClient(t, addr)
	s, err := c.Logical().Write("auth/kubernetes/login", map[string]any{"role": phases.AdminRole, "jwt": saToken(t, kube(t), ns, phases.AdminServiceAccount)})
	if err != nil {
		t.Fatalf("vaultctl-admin login: %v", err)
	}
	c.SetToken(s.Auth.ClientToken)
	return c
}

func TestExternalVaultInstallAccessAndIdempotence(t *testing.T) {
	vc := startVaultCluster(t)
	const ns = "vault-ext"
	auditDir := t.TempDir()
	os.Chmod(auditDir, 0o777)
	cfgPath := filepath.Join(t.TempDir(), "vaultctl.yaml")
	writeExternalConfig(t, cfgPath, externalConfig{Namespace: ns, Addr: vc.Addrs[0], AuditDir: auditDir, ExtraPolicy: true})
	ctx := context.Background()

	plan := vaultctl(t, "plan", "-c", cfgPath)
	if plan.Code != 3 || !strings.Contains(plan.Stdout, "create Vault initialization") {
		t.Fatalf("plan on an empty Vault should propose init and exit 3:\n%s", plan)
	}

	rootToken := watchRootToken(t, ns)
	first := vaultctl(t, "apply", "-c", cfgPath, "-o", "json")
	out := parseRun(t, first)
	if !out.OK {
		t.Fatalf("apply from empty failed:\n%s", first)
	}
	// The default path: bootstrap revoked the initial root token, so Vault refuses it.
	root := rootToken()
	rc := vaultClient(t, vc.Addrs[0])
	rc.SetToken(root)
	if _, err := rc.Auth().Token().LookupSelf(); !isForbidden(err) {
		t.Errorf("the initial root token still works after apply (lookup-self: %v), want 403", err)
	}
	st := statusOf(out)
	if st["server"] != "up to date" {
		t.Errorf("external mode installs no server: server = %q", st["server"])
	}
	for _, p := range []string{"initialize", "kubernetes-auth", "bootstrap", "injector", "policies", "roles", "audit"} {
		if st[p] != "changed" {
			t.Errorf("first apply: %s = %q, want changed", p, st[p])
		}
	}

	// 3 unsealed voters, as vaultctl status reports them.
	status := vaultctl(t, "status", "-c", cfgPath, "-o", "json")
	var sj struct {
		Vault phases.ClusterHealth `json:"vault"`
	}
	if err := json.Unmarshal([]byte(status.Stdout), &sj); err != nil || status.Code != 0 {
		t.Fatalf("status: %v\n%s", err, status)
	}
	if !sj.Vault.Healthy || sj.Vault.Voters != 3 || sj.Vault.Leader == "" {
		t.Fatalf("want 3 healthy voters and a leader, got %+v", sj.Vault)
	}
	for i, a := range vc.Addrs {
		h, err := vaultClient(t, a).Sys().Health()
		if err != nil || !h.Initialized || h.Sealed {
			t.Fatalf("node %d not initialized+unsealed: %+v %v", i, h, err)
		}
	}

	// Custody: recovery keys KMS-encrypted in the cluster, the root token gone from it.
	sec, err := kube(t).CoreV1().Secrets(ns).Get(ctx, phases.CustodySecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("custody Secret: %v", err)
	}
	if len(sec.Data["recovery-keys.enc"]) == 0 || len(sec.Data["pending-root-token.enc"]) != 0 {
		t.Fatalf("custody Secret keys: %v", keysOf(sec.Data))
	}
	keys, _ := openCustody(t, sec.Data)
	if len(keys) != 3 {
		t.Fatalf("custody holds %d recovery keys, want 3", len(keys))
	}

	second := parseRun(t, vaultctl(t, "apply", "-c", cfgPath, "-o", "json"))
	if !second.OK || second.Changes != 0 {
		t.Fatalf("second apply must change nothing: %+v", second)
	}
	for p, s := range statusOf(second) {
		if s != "up to date" {
			t.Errorf("second apply: %s = %q", p, s)
		}
	}

	t.Run("webapp reads only its paths", func(t *testing.T) {
		admin := adminClient(t, vc.Addrs[0], ns)
		for _, p := range []string{"production/db-credentials", "production/api-keys", "production/other"} {
			if _, err := admin.KVv2("secret").Put(ctx, p, map[string]any{"password": "pw-" + strings.ReplaceAll(p, "/", "-")}); err != nil {
				t.Fatalf("seeding %s: %v", p, err)
			}
		}
		ensureNamespace(t, kube(t), "production")
		ensureServiceAccount(t, kube(t), "production", "webapp-sa")
		ensureServiceAccount(t, kube(t), "production", "other-sa")
		ensureNamespace(t, kube(t), "staging")
		ensureServiceAccount(t, kube(t), "staging", "webapp-sa")

		app := vaultClient(t, vc.Addrs[1]) // a standby forwards to the leader
		login, err := app.Logical().Write("auth/kubernetes/login", map[string]any{"role": "webapp-production", "jwt": saToken(t, kube(t), "production", "webapp-sa")})
		if err != nil {
			t.Fatalf("webapp-sa login: %v", err)
		}
		app.SetToken(login.Auth.ClientToken)
		for _, p := range []string{"production/db-credentials", "production/api-keys"} {
			s, err := app.KVv2("secret").Get(ctx, p)
			if err != nil || s.Data["password"] == nil {
				t.Errorf("read %s: %v", p, err)
			}
		}
		if _, err := app.KVv2("secret").Get(ctx, "production/other"); !isForbidden(err) {
			t.Errorf("read production/other must be denied, got %v", err)
		}
		if _, err := app.Logical().List("secret/metadata/production"); !isForbidden(err) {
			t.Errorf("list secret/metadata/production must be denied, got %v", err)
		}
		if _, err := app.KVv2("secret").Put(ctx, "production/db-credentials", map[string]any{"password": "x"}); !isForbidden(err) {
			t.Errorf("write must be denied, got %v", err)
		}
		// Vault's own view agrees with the rendered policy.
		caps, err := admin.Sys().CapabilitiesWithContext(ctx, login.Auth.ClientToken, "secret/data/production/other")
		if err != nil || len(caps) != 1 || caps[0] != "deny" {
			t.Errorf("sys/capabilities on production/other = %v (%v), want [deny]", caps, err)
		}
		// TTL 1h, and renewal stops at max_ttl 4h.
		self, err := app.Auth().Token().LookupSelf()
		if err != nil {
			t.Fatal(err)
		}
		ttl, _ := self.TokenTTL()
		if ttl < 59*time.Minute || ttl > time.Hour {
			t.Errorf("token TTL = %s, want 1h", ttl)
		}
		renewed, err := app.Auth().Token().RenewSelf(int((10 * time.Hour).Seconds()))
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Duration(renewed.Auth.LeaseDuration) * time.Second; d > 4*time.Hour {
			t.Errorf("renewal granted %s, beyond max_ttl 4h", d)
		}

		for _, bad := range []struct{ ns, sa string }{{"production", "other-sa"}, {"staging", "webapp-sa"}} {
			_, err := vaultClient(t, vc.Addrs[0]).Logical().Write("auth/kubernetes/login", map[string]any{"role": "webapp-production", "jwt": saToken(t, kube(t), bad.ns, bad.sa)})
			if !isForbidden(err) {
				t.Errorf("login as %s/%s must be denied, got %v", bad.ns, bad.sa, err)
			}
		}

		// Both audit devices logged the response to the read, its values HMAC'd. Client tokens
		// are always HMAC'd, so "hmac-sha256:" somewhere in the file proves nothing: the
		// response record itself must be there, and every value of the secret in it HMAC'd.
		for _, f := range []string{"audit.log", "audit-backup.log"} {
			b, err := os.ReadFile(filepath.Join(auditDir, f))
			if err != nil {
				t.Fatalf("audit device %s: %v", f, err)
			}
			values, err := auditedReadResponse(b, "secret/data/production/db-credentials")
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if _, ok := values["password"]; !ok {
				t.Errorf("%s: the response record of the read has no password field (fields: %v)", f, sortedKeys(values))
			}
			for k, v := range values {
				if s, ok := v.(string); !ok || !strings.HasPrefix(s, "hmac-sha256:") {
					t.Errorf("%s: response.data.data.%s of the read is not HMAC'd", f, k)
				}
			}
			if bytes.Contains(b, []byte("pw-production-db-credentials")) {
				t.Errorf("%s holds the secret's plaintext", f)
			}
		}
	})

	// The kubernetes-auth phase listed "role" in audit_non_hmac_request_keys, so the audit log
	// written by the subtest above names the role the two refused ServiceAccounts asked for.
	t.Run("audit analyze reports the refused logins under their role", func(t *testing.T) {
		res := vaultctl(t, "audit", "analyze", "-o", "json", "--top", "1000", filepath.Join(auditDir, "audit.log"))
		var out struct {
			Report auditlog.Report `json:"report"`
		}
		if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil || res.Code != 1 {
			t.Fatalf("want the JSON report and exit 1: %v\n%s", err, res)
		}
		var got []string
		var refused int64
		for _, f := range out.Report.AuthFailures {
			got = append(got, fmt.Sprintf("%d %s %s %q", f.Count, f.Mount, f.Role, f.Error))
			if f.Mount == "auth/kubernetes/" && f.Role == "webapp-production" && !f.RoleHMAC {
				refused += f.Count
			}
		}
		if refused != 2 {
			t.Errorf("failed logins for role webapp-production: %d, want 2 (production/other-sa, staging/webapp-sa): %v", refused, got)
		}
		denied := false
		for _, d := range out.Report.Denied {
			denied = denied || (d.Path == "secret/data/production/other" && d.Operation == "read" && strings.HasPrefix(d.Client, "sa:production/webapp-sa") && len(d.Policies) > 0)
		}
		if !denied {
			t.Errorf("the denied read of production/other is missing: %+v", out.Report.Denied)
		}
	})

	t.Run("drift is repaired and prune removes only what vaultctl owns", func(t *testing.T) {
		admin := adminClient(t, vc.Addrs[0], ns)
		if _, err := admin.Logical().Delete("auth/kubernetes/role/webapp-production"); err != nil {
			t.Fatal(err)
		}
		if err := admin.Sys().PutPolicy("hand-written", `path "secret/data/hand/*" { capabilities = ["read"] }`); err != nil {
			t.Fatal(err)
		}
		fix := parseRun(t, vaultctl(t, "apply", "-c", cfgPath, "-o", "json"))
		if !fix.OK || statusOf(fix)["roles"] != "changed" {
			t.Fatalf("apply should restore the deleted role: %+v", fix)
		}
		writeExternalConfig(t, cfgPath, externalConfig{Namespace: ns, Addr: vc.Addrs[0], AuditDir: auditDir})
		keep := parseRun(t, vaultctl(t, "apply", "-c", cfgPath, "-o", "json"))
		if p, _ := admin.Sys().GetPolicy("scratch-readonly"); !keep.OK || p == "" {
			t.Fatalf("without --prune a dropped policy stays: ok=%v policy=%q", keep.OK, p)
		}
		pruned := parseRun(t, vaultctl(t, "apply", "-c", cfgPath, "--prune", "-o", "json"))
		if !pruned.OK {
			t.Fatalf("apply --prune: %+v", pruned)
		}
		if p, _ := admin.Sys().GetPolicy("scratch-readonly"); p != "" {
			t.Error("apply --prune left the dropped policy in Vault")
		}
		if p, _ := admin.Sys().GetPolicy("hand-written"); p == "" {
			t.Error("apply --prune deleted a policy vaultctl did not create")
		}
	})

	t.Run("a stale cluster CA is detected and repaired", func(t *testing.T) {
		admin := adminClient(t, vc.Addrs[0], ns)
		cur, err := admin.Logical().Read("auth/kubernetes/config")
		if err != nil {
			t.Fatal(err)
		}
		// What a cluster upgrade that rotated the API server CA looks like from Vault's side.
		if _, err := admin.Logical().Write("auth/kubernetes/config", map[string]any{
			"kubernetes_host": cur.Data["kubernetes_host"], "kubernetes_ca_cert": otherCA(t),
			"token_reviewer_jwt": "keep-set-so-only-the-CA-differs",
		}); err != nil {
			t.Fatal(err)
		}
		// Logins now fail, so vaultctl's own identity fails too: it says how to get in.
		locked := vaultctl(t, "plan", "-c", cfgPath)
		if locked.Code != 1 || !strings.Contains(locked.Stdout, "VAULT_TOKEN") {
			t.Fatalf("plan with a broken auth config should fail and name VAULT_TOKEN:\n%s", locked)
		}
		cmd := exec.Command(vaultctlBinary(t), "apply", "-c", cfgPath, "-o", "json")
		cmd.Env = append(append(os.Environ(), sb.Env()...), "CI=true", "VAULT_TOKEN="+admin.Token())
		var buf bytes.Buffer
		cmd.Stdout = &buf
		cmd.Run()
		recordOutput(buf.String())
		fixed := parseRun(t, cliResult{Stdout: buf.String()})
		if !fixed.OK || statusOf(fixed)["kubernetes-auth"] != "changed" {
			t.Fatalf("apply with VAULT_TOKEN should repair the CA: %s", buf.String())
		}
		if !strings.Contains(buf.String(), "cluster CA differs") {
			t.Errorf("the change should say why: %s", buf.String())
		}
		after := parseRun(t, vaultctl(t, "apply", "-c", cfgPath, "-o", "json"))
		if !after.OK || after.Changes != 0 {
			t.Fatalf("after the repair vaultctl-admin logs in again and nothing changes: %+v", after)
		}
	})

	t.Run("a killed node shows degraded, then healthy after it rejoins", func(t *testing.T) {
		if err := vc.StopNode(1); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "status reports degraded", func() error {
			r := vaultctl(t, "status", "-c", cfgPath)
			if r.Code != 1 || !strings.Contains(r.Stdout, "DEGRADED") {
				return fmt.Errorf("%s", r)
			}
			return nil
		})
		if err := vc.StartNode(ctx, 1); err != nil {
			t.Fatal(err)
		}
		eventually(t, 90*time.Second, "status healthy again", func() error {
			r := vaultctl(t, "status", "-c", cfgPath)
			if r.Code != 0 || !strings.Contains(r.Stdout, "Vault: healthy (3/3 voters") {
				return fmt.Errorf("%s", r)
			}
			return nil
		})
	})

	// Last, once every command of this test has run: neither the recovery keys nor the revoked
	// root token are anywhere vaultctl's runs or this Vault could have written them.
	t.Run("no recovery key or root token leaks", func(t *testing.T) {
		scanForSecrets(t, ns, append(keys, root), externalVault(vc, auditDir))
	})
}

// auditedReadResponse finds, in a file audit device's log, the response record of a successful
// KV v2 read of path and returns its response.data.data.
func auditedReadResponse(log []byte, path string) (map[string]any, error) {
	var requests int
	for _, line := range bytes.Split(log, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec struct {
			Type    string `json:"type"`
			Error   string `json:"error"`
			Request struct {
				Path      string `json:"path"`
				Operation string `json:"operation"`
			} `json:"request"`
			Response struct {
				Data map[string]any `json:"data"`
			} `json:"response"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("an audit record is not JSON: %v", err)
		}
		if rec.Request.Path != path || rec.Request.Operation != "read" {
			continue
		}
		if rec.Type == "request" {
			requests++
			continue
		}
		if data, ok := rec.Response.Data["data"].(map[string]any); rec.Type == "response" && rec.Error == "" && ok && len(data) > 0 {
			return data, nil
		}
	}
	return nil, fmt.Errorf("no response record with data for a read of %s (%d request records)", path, requests)
}

// TestApplyKilledAfterInitializeLosesNothing kills vaultctl the moment the recovery keys land
// in custody, on the default path (keepRootToken false), re-runs it, and checks that Vault is
// not initialized twice, the keys are the ones first stored, and the re-run resumed with the
// root token the killed run left in custody and revoked it (README: "A run killed in between
// resumes with it and revokes it"). The test opens custody before the re-run to learn that
// token, so it can check the revocation and scan everything vaultctl produced for it.
func TestApplyKilledAfterInitializeLosesNothing(t *testing.T) {
	vc := startVaultCluster(t)
	const ns = "vault-kill"
	cfgPath := filepath.Join(t.TempDir(), "vaultctl.yaml")
	auditDir := t.TempDir()
	writeExternalConfig(t, cfgPath, externalConfig{Namespace: ns, Addr: vc.Addrs[0], AuditDir: auditDir})
	ctx := context.Background()

	killed := applyKilledAtCustody(t, cfgPath, ns, 2*time.Minute)
	keys, root := openCustody(t, killed.Custody)
	if len(keys) != 3 || root == "" {
		t.Fatalf("custody after the kill holds %d keys, root token set=%v; want 3 keys and the pending root token", len(keys), root != "")
	}
	// Killed before bootstrap revoked it: the pending root token is live.
	rc := vaultClient(t, vc.Addrs[0])
	rc.SetToken(root)
	if _, err := rc.Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the root token pending in custody does not work before the re-run: %v", err)
	}

	out := rerunAfterKill(t, cfgPath, killed, "kubernetes-auth", "bootstrap", "injector", "policies", "roles", "audit")
	if !out.hasChange("bootstrap", phases.Delete, "initial root token") {
		t.Errorf("the re-run's bootstrap did not revoke the initial root token: %+v", out.phase("bootstrap").Changes)
	}
	if _, err := rc.Auth().Token().LookupSelf(); !isForbidden(err) {
		t.Fatalf("after the re-run a lookup with the initial root token = %v, want 403 (revoked)", err)
	}
	s, err := kube(t).CoreV1().Secrets(ns).Get(ctx, phases.CustodySecret, metav1.GetOptions{})
	if err != nil || !bytes.Equal(s.Data["recovery-keys.enc"], killed.Custody["recovery-keys.enc"]) {
		t.Fatalf("recovery keys changed or vanished after the re-run: %v", err)
	}
	if _, ok := s.Data["pending-root-token.enc"]; ok {
		t.Errorf("custody still holds the revoked root token: %v", keysOf(s.Data))
	}
	if again, _ := openCustody(t, s.Data); !slices.Equal(again, keys) {
		t.Errorf("custody opens to other recovery keys after the re-run")
	}

	// A run killed between the revoke and the drop leaves the dead token in custody: put the
	// killed run's envelope back to make that state, and the next apply must drop it, not fail.
	s.Data["pending-root-token.enc"] = killed.Custody["pending-root-token.enc"]
	if _, err := kube(t).CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if dead := parseApply(t, vaultctl(t, "apply", "-c", cfgPath, "-o", "json")); !dead.OK || dead.Changes != 0 {
		t.Fatalf("apply with a revoked root token in custody: %+v", dead)
	}
	if s, err = kube(t).CoreV1().Secrets(ns).Get(ctx, phases.CustodySecret, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Data["pending-root-token.enc"]; ok {
		t.Errorf("apply left the revoked root token in custody: %v", keysOf(s.Data))
	}

	vaultctl(t, "status", "-c", cfgPath)
	// The operator's way back: the keys land in a 0600 file, never on stdout.
	keyFile := filepath.Join(t.TempDir(), "recovery.json")
	rk := vaultctl(t, "recovery-keys", "-c", cfgPath, "--out", keyFile)
	if rk.Code != 0 {
		t.Fatalf("recovery-keys: %s", rk)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("recovery key file: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(keyFile); !bytes.Contains(b, []byte(keys[0])) {
		t.Fatal("the written file does not hold the recovery keys")
	}
	// The revoked root token must not have leaked either.
	scanForSecrets(t, ns, append(keys, root), externalVault(vc, auditDir))
}
