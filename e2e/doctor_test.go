package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/auditlog"
	"github.com/vaultctl/vaultctl/doctor"
	"github.com/vaultctl/vaultctl/internal/sandbox"
)

// doctorDoc is `vaultctl doctor -o json`.
type doctorDoc struct {
	Command  string           `json:"command"`
	OK       bool             `json:"ok"`
	Pods     []string         `json:"pods"`
	Findings []doctor.Finding `json:"findings"`
	Warnings []string         `json:"warnings"`
}

// doctorEstate is an estate installed by vaultctl apply, on which each case breaks one thing
// with the admin identity, as an operator's mistake would.
type doctorEstate struct {
	*migrateEstate
	cs    kubernetes.Interface
	admin *vaultapi.Client
}

func (d *doctorEstate) namespace(t *testing.T, ns string, labelled bool) {
	t.Helper()
	if labelled {
		d.appNamespace(t, d.cs, ns)
	} else {
		ensureNamespace(t, d.cs, ns)
		t.Cleanup(func() { deleteNamespace(t, d.cs, ns) })
	}
	ensureServiceAccount(t, d.cs, ns, "app")
}

func (d *doctorEstate) write(t *testing.T, path string, data map[string]any) {
	t.Helper()
	if _, err := d.admin.Logical().Write(path, data); err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
}

func (d *doctorEstate) policy(t *testing.T, name, hcl string) {
	t.Helper()
	if err := d.admin.Sys().PutPolicy(name, hcl); err != nil {
		t.Fatalf("policy %s: %v", name, err)
	}
}

// pod creates a bare pod as ServiceAccount app that renders secret/data/doctor/NS.
func (d *doctorEstate) pod(t *testing.T, ns, role string, extra map[string]string) *corev1.Pod {
	t.Helper()
	ann := mergeMaps(map[string]string{
		"vault.hashicorp.com/agent-inject":             "true",
		"vault.hashicorp.com/role":                     role,
		"vault.hashicorp.com/agent-inject-secret-conf": "secret/data/doctor/" + ns,
	}, extra)
	p, err := d.cs.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: ann, Labels: map[string]string{"app": "app"}},
		Spec: corev1.PodSpec{ServiceAccountName: "app",
			Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/app:1", Command: []string{"/app/start"}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/app: %v", ns, err)
	}
	return p
}

// access writes the secret the case's pod reads, a policy on it and a role bound to app in ns.
func (d *doctorEstate) access(t *testing.T, ns string, role map[string]any) {
	t.Helper()
	if _, err := d.admin.KVv2("secret").Put(context.Background(), "doctor/"+ns, map[string]any{"token": "doctor-" + ns}); err != nil {
		t.Fatal(err)
	}
	d.policy(t, ns, `path "secret/data/doctor/`+ns+`" { capabilities = ["read"] }`)
	d.write(t, "auth/kubernetes/role/"+ns, mergeAny(map[string]any{
		"bound_service_account_names": "app", "bound_service_account_namespaces": ns, "token_policies": ns, "token_ttl": "1h",
	}, role))
}

func mergeAny(a, b map[string]any) map[string]any {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func (d *doctorEstate) doctor(t *testing.T, env []string, args ...string) (doctorDoc, cliResult) {
	t.Helper()
	args = append([]string{"doctor", "-c", d.cfg, "-o", "json"}, args...)
	var r cliResult
	if len(env) == 0 {
		r = vaultctl(t, args...)
	} else {
		r = vaultctlEnv(t, env, args...)
	}
	var doc doctorDoc
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
		t.Fatalf("doctor output is not one JSON document: %v\n%s", err, r)
	}
	return doc, r
}

// vaultctlEnv is vaultctl with extra environment variables (VAULT_TOKEN).
func vaultctlEnv(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(vaultctlBinary(t), args...)
	cmd.Env = append(append(append(os.Environ(), sb.Env()...), "CI=true"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running vaultctl: %v", err)
	}
	recordOutput(res.Stdout + res.Stderr)
	return res
}

// expectFinding asserts doctor exited 1 naming code for the pod, with evidence containing
// each of evidence and a fix containing fix; it returns the finding.
func expectFinding(t *testing.T, doc doctorDoc, r cliResult, code string, evidence []string, fix string) doctor.Finding {
	t.Helper()
	if r.Code != 1 || doc.OK {
		t.Fatalf("doctor on a broken pod: exit %d ok=%v, want 1 and false\n%s", r.Code, doc.OK, r)
	}
	for _, f := range doc.Findings {
		if f.Code != code {
			continue
		}
		all := strings.Join(f.Evidence, "\n")
		for _, e := range evidence {
			if !strings.Contains(all, e) {
				t.Errorf("finding %s: evidence lacks %q:\n%s", code, e, all)
			}
		}
		if !strings.Contains(f.Fix, fix) {
			t.Errorf("finding %s: fix %q lacks %q", code, f.Fix, fix)
		}
		if f.Severity != doctor.Error || f.Message == "" {
			t.Errorf("finding %s: %+v, want an error with a message", code, f)
		}
		return f
	}
	t.Fatalf("doctor did not name %s:\n%s", code, r.Stdout)
	return doctor.Finding{}
}

// waitPodRunning waits until ns/app is Running and Ready and checks it is the same pod.
func (d *doctorEstate) waitPodRunning(t *testing.T, p *corev1.Pod, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "pod "+p.Namespace+"/"+p.Name+" Running after the fix", func() error {
		cur, err := d.cs.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != p.UID {
			return fmt.Errorf("the pod was replaced")
		}
		if s := podDisplayStatus(cur); s != "Running" || !podReady(cur) {
			log, _ := d.cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: "vault-agent-init"}).DoRaw(context.Background())
			return fmt.Errorf("status %s; vault-agent-init log: %s", s, tail(string(log), 400))
		}
		return nil
	})
}

// waitLog waits until the pod's vault-agent-init log contains want.
func (d *doctorEstate) waitLog(t *testing.T, p *corev1.Pod, want string) {
	t.Helper()
	eventually(t, 2*time.Minute, "vault-agent-init of "+p.Namespace+"/app logging "+want, func() error {
		b, err := d.cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: "vault-agent-init"}).DoRaw(context.Background())
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), want) {
			return fmt.Errorf("log so far: %s", tail(string(b), 400))
		}
		return nil
	})
}

// Issue 13's "Done when": for causes 2, 3, 4, 5 and 8 a real broken pod, the right cause
// with evidence and a fix, and the fix makes the pod Running; a healthy pod gives exit 0.
func TestDoctorNamesEachCauseAndTheFixWorks(t *testing.T) {
	t.Parallel()
	e := newMigrateEstate(t, "doctor-vault")
	d := &doctorEstate{migrateEstate: e, cs: kube(t), admin: adminClient(t, e.vc.Addrs[0], e.vns)}

	t.Run("group", func(t *testing.T) {
		t.Run("healthy", func(t *testing.T) {
			t.Parallel()
			const ns = "doc-healthy"
			d.namespace(t, ns, true)
			d.access(t, ns, nil)
			p := d.pod(t, ns, ns, nil)
			d.waitPodRunning(t, p, 3*time.Minute)
			doc, r := d.doctor(t, nil, "-n", ns, "app")
			if r.Code != 0 || !doc.OK {
				t.Fatalf("doctor on a healthy pod: exit %d, want 0\n%s", r.Code, r)
			}
			for _, f := range doc.Findings {
				if f.Severity != doctor.Info {
					t.Errorf("healthy pod: unexpected %s finding %s: %s", f.Severity, f.Code, f.Message)
				}
			}
			if len(doc.Pods) != 1 || doc.Pods[0] != ns+"/app" {
				t.Errorf("pods examined: %v", doc.Pods)
			}
			// Text output says so too.
			if tr := vaultctl(t, "doctor", "-c", d.cfg, "-n", ns); tr.Code != 0 || !strings.Contains(tr.Stdout, "no problem found") {
				t.Errorf("doctor text on a healthy namespace:\n%s", tr)
			}
		})
		t.Run("service-account-not-bound", func(t *testing.T) {
			t.Parallel()
			const ns = "doc-sa"
			d.namespace(t, ns, true)
			d.access(t, ns, map[string]any{"bound_service_account_names": "someone-else"})
			p := d.pod(t, ns, ns, nil)
			d.waitLog(t, p, "service account name not authorized")
			doc, r := d.doctor(t, nil, "-n", ns, "app")
			expectFinding(t, doc, r, doctor.CodeSANotBound,
				[]string{"spec.serviceAccountName: app", "bound_service_account_names: [someone-else]", "service account name not authorized"},
				"vault write auth/kubernetes/role/"+ns+" bound_service_account_names=someone-else,app")
			if tr := vaultctl(t, "doctor", "-c", d.cfg, "-n", ns, "app"); tr.Code != 1 || !strings.Contains(tr.Stdout, "[service-account-not-bound]") {
				t.Errorf("doctor text on the broken pod:\n%s", tr)
			} else {
				t.Logf("doctor text:\n%s", tr.Stdout)
			}
			d.write(t, "auth/kubernetes/role/"+ns, map[string]any{"bound_service_account_names": "someone-else,app"})
			d.waitPodRunning(t, p, 4*time.Minute)
		})
		t.Run("role-missing", func(t *testing.T) {
			t.Parallel()
			const ns = "doc-norole"
			d.namespace(t, ns, true)
			p := d.pod(t, ns, ns, nil)
			d.waitLog(t, p, "error authenticating")
			doc, r := d.doctor(t, nil, "deployment/none", "-n", ns)
			if r.Code != 2 || !strings.Contains(r.Stderr, "not found") {
				t.Errorf("doctor on a missing workload: exit %d, want 2 naming it\n%s", r.Code, r)
			}
			doc, r = d.doctor(t, nil, "-n", ns)
			expectFinding(t, doc, r, doctor.CodeRoleMissing, []string{`vault.hashicorp.com/role: "` + ns + `"`, "no such role"}, "add role "+ns)
			d.access(t, ns, nil)
			d.waitPodRunning(t, p, 4*time.Minute)
		})
		t.Run("audience", func(t *testing.T) {
			t.Parallel()
			const ns = "doc-aud"
			d.namespace(t, ns, true)
			d.access(t, ns, map[string]any{"audience": "vault-doctor"})
			p := d.pod(t, ns, ns, nil)
			d.waitLog(t, p, "audience")
			doc, r := d.doctor(t, nil, "-n", ns, "pod/app")
			f := expectFinding(t, doc, r, doctor.CodeAudience, []string{`audience: "vault-doctor"`, "invalid audience"}, "audience=")
			// The fix names the token's audience: set the role's to it.
			aud := strings.TrimSpace(strings.SplitN(strings.SplitN(f.Fix, "audience=", 2)[1], " ", 2)[0])
			d.write(t, "auth/kubernetes/role/"+ns, map[string]any{"audience": aud})
			d.waitPodRunning(t, p, 4*time.Minute)
		})
		t.Run("kv-v2-data-segment", func(t *testing.T) {
			t.Parallel()
			const ns = "doc-path"
			d.namespace(t, ns, true)
			d.access(t, ns, nil)
			d.policy(t, ns, `path "secret/doctor/`+ns+`" { capabilities = ["read"] }`) // the CLI path: no data/
			p := d.pod(t, ns, ns, nil)
			d.waitLog(t, p, "permission denied")
			doc, r := d.doctor(t, nil, "-n", ns)
			expectFinding(t, doc, r, doctor.CodeDataSegment,
				[]string{"API path secret/data/doctor/" + ns, "role " + ns + " policies: default, " + ns, "permission denied",
					"Vault (sys/capabilities-accessor, the agent's live token)", "secret/data/doctor/" + ns + ": [deny]"},
				`path "secret/data/doctor/`+ns+`"`)
			d.policy(t, ns, `path "secret/data/doctor/`+ns+`" { capabilities = ["read"] }`)
			d.waitPodRunning(t, p, 4*time.Minute)
		})
		// Cause 8 as the sandbox can show it whatever other estates run beside this one: every
		// vault-k8s injector refuses a pod without a ServiceAccount token, so the Deployment has
		// none. (A namespace no injector selects is the unit tests': a catch-all injector left by
		// another test would select it here.)
		t.Run("injection-refused-no-token", func(t *testing.T) {
			t.Parallel()
			const ns = "doc-notoken"
			d.namespace(t, ns, true)
			d.access(t, ns, nil)
			ctx := context.Background()
			labels := map[string]string{"app": "web"}
			dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
				Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
						"vault.hashicorp.com/agent-inject":             "true",
						"vault.hashicorp.com/role":                     ns,
						"vault.hashicorp.com/agent-inject-secret-conf": "secret/data/doctor/" + ns,
					}},
					Spec: corev1.PodSpec{ServiceAccountName: "app", AutomountServiceAccountToken: ptr(false),
						Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/app:1", Command: []string{"/app/start"}}}},
				}}}
			if _, err := d.cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			var doc doctorDoc
			var r cliResult
			eventually(t, time.Minute, "the ReplicaSet reporting the refused pod", func() error {
				doc, r = d.doctor(t, nil, "-n", ns, "deployment/web")
				for _, f := range doc.Findings {
					if f.Code == doctor.CodeNoTokenMount && strings.Contains(strings.Join(f.Evidence, "\n"), "failed to find service account volume mount") {
						return nil
					}
				}
				return fmt.Errorf("findings so far: %v", doc.Findings)
			})
			expectFinding(t, doc, r, doctor.CodeNoTokenMount,
				[]string{"spec.automountServiceAccountToken: false", "denied the request", "failed to find service account volume mount"},
				"remove automountServiceAccountToken: false")
			if len(doc.Pods) != 1 || doc.Pods[0] != "Deployment/web" {
				t.Errorf("examined %v, want the Deployment's template", doc.Pods)
			}
			cur, err := d.cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cur.Spec.Template.Spec.AutomountServiceAccountToken = nil
			if _, err := d.cs.AppsV1().Deployments(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 3*time.Minute, "a Running pod of Deployment web after the fix", func() error {
				list, err := d.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
				if err != nil {
					return err
				}
				for _, p := range list.Items {
					if p.Annotations[sandbox.InjectedByAnnotation] != "" && podDisplayStatus(&p) == "Running" && podReady(&p) {
						return nil
					}
				}
				return fmt.Errorf("%d pods, none injected and Running", len(list.Items))
			})
			if doc, r := d.doctor(t, nil, "-n", ns, "deployment/web"); r.Code != 0 {
				t.Errorf("doctor after the fix: exit %d\n%v", r.Code, doc.Findings)
			}
		})
	})

	// audit analyze over the estate's real audit log: the failed logins of the cases above under
	// their roles (in clear: the kubernetes-auth phase tuned audit_non_hmac_request_keys). Every
	// agent reaches Vault from 127.0.0.1 here (no network namespaces), so no ServiceAccount may
	// be named from the remote address.
	t.Run("audit-analyze", func(t *testing.T) {
		r := vaultctl(t, "audit", "analyze", "-o", "json", "--top", "1000", filepath.Join(e.auditDir, "audit.log"))
		var out struct {
			Report auditlog.Report `json:"report"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || r.Code != 1 {
			t.Fatalf("audit analyze: exit %d, %v\n%s", r.Code, err, r)
		}
		got := map[string]auditlog.AuthFailure{}
		for _, f := range out.Report.AuthFailures {
			got[f.Role] = f
		}
		for _, role := range []string{"doc-sa", "doc-aud"} {
			f, ok := got[role]
			if !ok || f.Count < 1 || f.Mount != "auth/kubernetes/" {
				t.Errorf("failed logins of role %s: %+v\nall: %+v", role, f, out.Report.AuthFailures)
			}
			if f.ServiceAccount != "" && (f.ServiceAccount != "app" || f.Namespace != role) {
				t.Errorf("role %s's failures pinned on %s/%s, not the failing pod's %s/app", role, f.Namespace, f.ServiceAccount, role)
			}
		}
	})

	// The stale CA breaks every login of the estate, vaultctl-admin's included: it runs alone,
	// after the others, with the admin token taken before (VAULT_TOKEN, as the fix says).
	t.Run("stale-ca", func(t *testing.T) {
		const ns = "doc-ca"
		d.namespace(t, ns, true)
		d.access(t, ns, nil)
		cur, err := d.admin.Logical().Read("auth/kubernetes/config")
		if err != nil {
			t.Fatal(err)
		}
		d.write(t, "auth/kubernetes/config", map[string]any{
			"kubernetes_host": cur.Data["kubernetes_host"], "kubernetes_ca_cert": otherCA(t), "token_reviewer_jwt": "keep-set-so-only-the-CA-differs",
		})
		p := d.pod(t, ns, ns, nil)
		d.waitLog(t, p, "error authenticating")
		env := []string{"VAULT_TOKEN=" + d.admin.Token()}
		doc, r := d.doctor(t, env, "-n", ns, "app")
		expectFinding(t, doc, r, doctor.CodeStaleCA,
			[]string{"auth/kubernetes/config kubernetes_ca_cert: CN=rotated-cluster-ca", "cluster CA (ConfigMap " + ns + "/kube-root-ca.crt)"},
			"vaultctl apply --only kubernetes-auth")
		fix := vaultctlEnv(t, env, "apply", "-c", d.cfg, "--only", "kubernetes-auth", "-o", "json")
		if !parseRun(t, fix).OK {
			t.Fatalf("the fix failed:\n%s", fix)
		}
		d.waitPodRunning(t, p, 4*time.Minute)
		if doc, r := d.doctor(t, nil, "-n", ns, "app"); r.Code != 0 {
			t.Errorf("doctor after the CA fix: exit %d\n%v", r.Code, doc.Findings)
		}
	})
	// Doctor printed evidence and fixes: never the token it was given.
	scanForSecrets(t, e.vns, []string{d.admin.Token()}, externalVault(e.vc, e.auditDir))
}
