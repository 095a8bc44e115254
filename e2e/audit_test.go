package e2e

// `vaultctl audit analyze` over a real audit log: the sandbox's Vault writes it through a file
// audit device of this test's own, while a ServiceAccount that its role does not bind fails to
// log in, first on a mount that HMACs the role and then after the tune the kubernetes-auth
// phase makes (audit_non_hmac_request_keys=role).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/auditlog"
	"github.com/vaultctl/vaultctl/internal/vault"
)

func TestAuditAnalyzeReportsFailedLoginsByRole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	suffix := make([]byte, 3)
	rand.Read(suffix)
	id := hex.EncodeToString(suffix)
	ns, mount, device, role := "audit-e2e", "k8s-audit-"+id, "audit-analyze-"+id, "audit-web"
	logFile := filepath.Join(t.TempDir(), "audit.log")

	cs := kube(t)
	ensureNamespace(t, cs, ns)
	for _, sa := range []string{"web-sa", "intruder-sa"} {
		ensureServiceAccount(t, cs, ns, sa)
	}
	// Vault reviews each login with the client's own JWT, so web-sa may create TokenReviews.
	_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "audit-e2e-web-sa-delegator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "web-sa", Namespace: ns}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(sb.CACertFile)
	if err != nil {
		t.Fatal(err)
	}

	root := vaultRoot(t, sb.VaultAddrs[0])
	eventually(t, time.Minute, "enable the audit device "+device, func() error {
		return root.Sys().EnableAuditWithOptionsWithContext(ctx, device, &vaultapi.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": logFile}})
	})
	t.Cleanup(func() { _ = root.Sys().DisableAudit(device) })
	if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Sys().DisableAuth(mount) })
	if _, err := root.Logical().WriteWithContext(ctx, "auth/"+mount+"/config", map[string]any{
		"kubernetes_host": sb.APIServerURL, "kubernetes_ca_cert": string(ca), "disable_local_ca_jwt": true,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/"+role, map[string]any{
		"bound_service_account_names": "web-sa", "bound_service_account_namespaces": ns, "token_policies": "default", "token_ttl": "10m",
	}); err != nil {
		t.Fatal(err)
	}

	anon := vaultClient(t, sb.VaultAddrs[0])
	intruder := saToken(t, cs, ns, "intruder-sa")
	failLogin := func() {
		t.Helper()
		_, err := anon.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{"role": role, "jwt": intruder})
		var re *vaultapi.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 403 {
			t.Fatalf("login as %s/intruder-sa: want a 403, got %v", ns, err)
		}
	}
	failLogin() // the role is HMAC'd in the audit log

	// The tune the kubernetes-auth phase makes, through vaultctl's own adapter.
	va, err := vault.HTTPDialer{}.Dial(vault.Endpoint{Address: sb.VaultAddrs[0], CAPEM: ca})
	if err != nil {
		t.Fatal(err)
	}
	va.SetToken(vaultRootTok)
	if err := va.TuneAuthMethod(ctx, mount, vault.AuthTune{AuditNonHMACRequestKeys: []string{"role"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		failLogin()
	}
	// web-sa itself logs in: its token's requests carry its identity, not the intruder's.
	if _, err := anon.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{"role": role, "jwt": saToken(t, cs, ns, "web-sa")}); err != nil {
		t.Fatalf("login as %s/web-sa: %v", ns, err)
	}

	res := vaultctl(t, "audit", "analyze", "-o", "json", "--top", "1000", logFile)
	if res.Code != 1 {
		t.Fatalf("want exit 1 (findings):\n%s", res)
	}
	var out struct {
		OK       bool               `json:"ok"`
		Findings []auditlog.Finding `json:"findings"`
		Report   auditlog.Report    `json:"report"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, res)
	}
	var clear, hashed *auditlog.AuthFailure
	for i, f := range out.Report.AuthFailures {
		if f.Mount != "auth/"+mount+"/" {
			continue
		}
		switch {
		case f.Role == role:
			clear = &out.Report.AuthFailures[i]
		case f.RoleHMAC:
			hashed = &out.Report.AuthFailures[i]
		}
	}
	if clear == nil || clear.Count != 3 || !strings.Contains(clear.Error, "service account name not authorized") && !strings.Contains(clear.Error, "permission denied") {
		t.Fatalf("failed logins for role %s after the tune: %+v\nall: %+v", role, clear, out.Report.AuthFailures)
	}
	// Every request here comes from 127.0.0.1, shared with the root token: the failure must not
	// be pinned on web-sa, the ServiceAccount the role binds, which logged in successfully.
	if clear.ServiceAccount == "web-sa" {
		t.Errorf("failed logins of intruder-sa attributed to web-sa: %+v", clear)
	}
	if hashed == nil || hashed.Count != 1 || !strings.HasPrefix(hashed.Role, "hmac:") {
		t.Errorf("the failed login before the tune, role HMAC'd: %+v\nall: %+v", hashed, out.Report.AuthFailures)
	}
	if out.OK || len(out.Findings) == 0 || out.Findings[0].Code != "auth-failures" {
		t.Errorf("findings: ok=%v %+v", out.OK, out.Findings)
	}

	// The text report names the mount, the role and the error on one row.
	text := vaultctl(t, "audit", "analyze", logFile)
	if text.Code != 1 || !strings.Contains(text.Stdout, "auth/"+mount+"/") || !strings.Contains(text.Stdout, role) {
		t.Errorf("text report:\n%s", text)
	}
	t.Logf("failed logins: %+v", clear)
}

// --from-pods reads what the Vault pods write to their log through the Kubernetes API (kubectl
// logs; the sandbox's kwok serves it from the runner's real process): an audit device with
// file_path stdout puts the entries there, between the server's own messages.
func TestAuditAnalyzeFromPods(t *testing.T) {
	const ns = "audit-pods"
	cs := kube(t)
	ensureNamespace(t, cs, ns)
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })

	caPEM := createRunnerVault(t, cs, ns)
	waitPodRunning(t, cs, ns, "vault-0", "", true)
	vc := portForwardVault(t, ns, "vault-0", caPEM)
	init, err := vc.Sys().Init(&vaultapi.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vc.Sys().Unseal(init.Keys[0]); err != nil {
		t.Fatal(err)
	}
	vc.SetToken(init.RootToken)
	eventually(t, time.Minute, "a stdout audit device on the active node", func() error {
		return vc.Sys().EnableAuditWithOptions("stdout", &vaultapi.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": "stdout"}})
	})
	const mount, role = "kubernetes", "pod-web"
	if err := vc.Sys().EnableAuthWithOptions(mount, &vaultapi.EnableAuthOptions{Type: "kubernetes", Config: vaultapi.AuthConfigInput{AuditNonHMACRequestKeys: []string{"role"}}}); err != nil {
		t.Fatal(err)
	}
	// The role is checked against the JWT's claims before any TokenReview, so the pod's Vault
	// refuses the intruder without reaching the API server.
	if _, err := vc.Logical().Write("auth/"+mount+"/config", map[string]any{"kubernetes_host": sb.APIServerURL, "disable_local_ca_jwt": true}); err != nil {
		t.Fatal(err)
	}
	if _, err := vc.Logical().Write("auth/"+mount+"/role/"+role, map[string]any{"bound_service_account_names": "web-sa", "bound_service_account_namespaces": ns, "token_policies": "default"}); err != nil {
		t.Fatal(err)
	}
	ensureServiceAccount(t, cs, ns, "intruder-sa")
	jwt := saToken(t, cs, ns, "intruder-sa")
	anon, _ := vc.Clone()
	anon.ClearToken()
	for range 2 {
		if _, err := anon.Logical().Write("auth/"+mount+"/login", map[string]any{"role": role, "jwt": jwt}); err == nil {
			t.Fatal("the intruder logged in")
		}
	}

	var out struct {
		Report auditlog.Report `json:"report"`
	}
	eventually(t, 30*time.Second, "the failed logins in the pods' logs", func() error {
		res := vaultctl(t, "audit", "analyze", "--from-pods", "-n", ns, "-o", "json")
		if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
			return fmt.Errorf("%v\n%s", err, res)
		}
		for _, f := range out.Report.AuthFailures {
			if f.Mount == "auth/"+mount+"/" && f.Role == role && f.Count == 2 && strings.Contains(f.Error, "service account name not authorized") {
				return nil
			}
		}
		return fmt.Errorf("failed logins %+v (stats %+v)", out.Report.AuthFailures, out.Report.Stats)
	})
	if out.Report.Stats.NotJSON == 0 || len(out.Report.Inputs) != 1 || out.Report.Inputs[0] != "pod/vault-0" {
		t.Errorf("want the server's own log lines counted, not analysed, from pod/vault-0: %+v %v", out.Report.Stats, out.Report.Inputs)
	}
}
