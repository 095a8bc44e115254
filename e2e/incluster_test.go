package e2e

// Issue 4's "Done when" in in-cluster mode: vaultctl Helm-installs its chart into the sandbox
// cluster and the sandbox runner turns each server pod into a real Vault process (the HCL the
// chart rendered, listener addresses mapped to the pod's loopback address).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/internal/sandbox"
	"github.com/vaultctl/vaultctl/phases"
)

// writeInClusterConfig is the origin article's setup with Vault installed by vaultctl: three
// replicas, KMS auto-unseal through the sandbox's emulator, the webapp-production role and its
// policy, two file audit devices on the pods' audit volumes.
func writeInClusterConfig(t *testing.T, path, ns string, keepRoot bool) {
	t.Helper()
	writeInClusterConfigWith(t, path, ns, keepRoot, inClusterExtras{})
}

// inClusterExtras are entries added to writeInClusterConfig's: more roles and audit devices
// (YAML list items, indented as the lists) and whole top-level sections.
type inClusterExtras struct{ Roles, AuditDevices, Sections string }

func writeInClusterConfigWith(t *testing.T, path, ns string, keepRoot bool, x inClusterExtras) {
	t.Helper()
	cfg := fmt.Sprintf(`apiVersion: vaultctl.io/v1alpha1
kind: Platform
cluster:
  kubeconfig: %[1]s
vault:
  mode: in-cluster
  namespace: %[2]s
  replicas: 3
  raft:
    autopilotStabilizationTime: 1s
  seal:
    awskms:
      region: %[3]s
      kmsKeyId: %[4]s
      endpoint: %[5]s
  init:
    recoveryShares: 3
    recoveryThreshold: 2
    keepRootToken: %[6]t
kubernetesAuth:
  host: %[7]s
`+articlePolicies+articleRoles+x.Roles+`audit:
  devices:
    - {path: file, type: file, options: {file_path: /vault/audit/audit.log}}
    - {path: file-backup, type: file, options: {file_path: /vault/audit/audit-backup.log}}
`+x.AuditDevices+x.Sections+injectorScope(ns), sb.Kubeconfig, ns, sb.KMSRegion, sb.KMSKeyAlias, sb.KMSEndpoint, keepRoot, sb.APIServerURL)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// inClusterClaims are the volume claims of the chart's StatefulSet for 3 replicas.
func inClusterClaims() []string {
	var c []string
	for i := range 3 {
		c = append(c, fmt.Sprintf("data-vault-%d", i), fmt.Sprintf("audit-vault-%d", i))
	}
	return c
}

// statusJSON runs `vaultctl status -o json`.
func statusJSON(t *testing.T, cfgPath string) (phases.ClusterHealth, cliResult) {
	t.Helper()
	r := vaultctl(t, "status", "-c", cfgPath, "-o", "json")
	var sj struct {
		Vault *phases.ClusterHealth `json:"vault"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &sj); err != nil || sj.Vault == nil {
		return phases.ClusterHealth{}, r
	}
	return *sj.Vault, r
}

// serverCA reads the CA vaultctl put in the server TLS Secret.
func serverCA(t *testing.T, cs kubernetes.Interface, ns string) []byte {
	t.Helper()
	s, err := cs.CoreV1().Secrets(ns).Get(context.Background(), "vault-server-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("server TLS Secret: %v", err)
	}
	return s.Data["ca.crt"]
}

func setNodesUnschedulable(t *testing.T, cs kubernetes.Interface, on bool) {
	t.Helper()
	patch := []byte(fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, on))
	for i := range 3 {
		if _, err := cs.CoreV1().Nodes().Patch(context.Background(), sandbox.FakeNodeName(i), types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatalf("cordon=%t %s: %v", on, sandbox.FakeNodeName(i), err)
		}
	}
}

func TestInClusterVaultInstallAndIdempotence(t *testing.T) {
	const ns = "vault-ic"
	cs := kube(t)
	ctx := context.Background()
	claimPVs(t, cs, ns, inClusterClaims())
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
	cfgPath := filepath.Join(t.TempDir(), "vaultctl.yaml")
	writeInClusterConfig(t, cfgPath, ns, false)

	t0 := time.Now()
	rootToken := watchRootToken(t, ns)
	first := vaultctl(t, "apply", "-c", cfgPath, "-o", "json")
	out := parseRun(t, first)
	if !out.OK {
		t.Fatalf("apply from empty failed:\n%s", first)
	}
	t.Logf("apply from empty: %s", time.Since(t0).Round(100*time.Millisecond))
	root := rootToken()
	st := statusOf(out)
	for _, p := range []string{"tls", "server", "initialize", "kubernetes-auth", "bootstrap", "policies", "roles", "audit"} {
		if st[p] != "changed" {
			t.Errorf("first apply: %s = %q, want changed", p, st[p])
		}
	}

	// Three pods, each a real Vault process, initialized and unsealed (KMS), 3 Raft voters.
	ca := serverCA(t, cs, ns)
	for i := range 3 {
		pod := fmt.Sprintf("vault-%d", i)
		if pid := sandbox.PodPID(sb.Dir, ns, pod); pid == 0 || !processAlive(pid) {
			t.Fatalf("%s has no Vault process", pod)
		}
		h, err := portForwardVault(t, ns, pod, ca).Sys().Health()
		if err != nil || !h.Initialized || h.Sealed {
			t.Fatalf("%s not initialized+unsealed: %+v %v", pod, h, err)
		}
	}
	// The default path: bootstrap revoked the initial root token, so Vault refuses it.
	rc := portForwardVault(t, ns, "vault-0", ca)
	rc.SetToken(root)
	if _, err := rc.Auth().Token().LookupSelf(); !isForbidden(err) {
		t.Errorf("the initial root token still works after apply (lookup-self: %v), want 403", err)
	}
	health, r := statusJSON(t, cfgPath)
	if r.Code != 0 || !health.Healthy || health.Voters != 3 || health.Leader == "" {
		t.Fatalf("want 3 healthy voters and a leader:\n%s", r)
	}
	// Service registration runs in every pod (ServiceAccount mount, API server): one is active.
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "vault-active=true"})
	if err != nil || len(pods.Items) != 1 {
		t.Errorf("want exactly one pod labelled vault-active=true, got %d (%v)", len(pods.Items), err)
	}

	second := vaultctl(t, "apply", "-c", cfgPath)
	if second.Code != 0 || !regexp.MustCompile(`Nothing to do: \d+ phases up to date\.`).MatchString(second.Stdout) {
		t.Fatalf("second apply must change nothing and say so:\n%s", second)
	}
	again := parseRun(t, vaultctl(t, "apply", "-c", cfgPath, "-o", "json"))
	if !again.OK || again.Changes != 0 {
		t.Fatalf("third apply (json) must change nothing: %+v", again)
	}

	t.Run("audit devices write to the pods' audit volumes", func(t *testing.T) {
		var found []string
		eventually(t, 30*time.Second, "audit logs on the audit volumes", func() error {
			found = nil
			for i := range 3 {
				for _, f := range []string{"audit.log", "audit-backup.log"} {
					p := filepath.Join(sb.Dir, "e2e-pv", ns, fmt.Sprintf("audit-vault-%d", i), f)
					if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(`"type":"request"`)) {
						found = append(found, fmt.Sprintf("audit-vault-%d/%s", i, f))
					}
				}
			}
			if len(found) < 2 {
				return fmt.Errorf("found %v", found)
			}
			return nil
		})
		t.Logf("audit logs: %v", found)
	})

	t.Run("a deleted pod shows degraded, then healthy once it rejoins", func(t *testing.T) {
		old, err := cs.CoreV1().Pods(ns).Get(ctx, "vault-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		oldPID := sandbox.PodPID(sb.Dir, ns, "vault-1")
		// The StatefulSet recreates the pod within a second and Vault rejoins as fast, quicker
		// than autopilot's last-contact threshold: keep the replacement Pending (nodes cordoned,
		// as during node maintenance) until status has seen the cluster degraded.
		setNodesUnschedulable(t, cs, true)
		t.Cleanup(func() { setNodesUnschedulable(t, cs, false) })
		t0 := time.Now()
		if err := cs.CoreV1().Pods(ns).Delete(ctx, "vault-1", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "vault-1's process stopped", func() error {
			if processAlive(oldPID) {
				return fmt.Errorf("pid %d still running", oldPID)
			}
			return nil
		})
		eventually(t, 90*time.Second, "status reports degraded", func() error {
			r := vaultctl(t, "status", "-c", cfgPath)
			if r.Code != 1 || !strings.Contains(r.Stdout, "DEGRADED") {
				return fmt.Errorf("%s", r)
			}
			return nil
		})
		t.Logf("DEGRADED reported %s after the delete", time.Since(t0).Round(100*time.Millisecond))
		setNodesUnschedulable(t, cs, false)
		pod := waitPodRunning(t, cs, ns, "vault-1", old.UID, false)
		if pod.Status.PodIP != old.Status.PodIP {
			t.Errorf("replacement pod address %s, was %s", pod.Status.PodIP, old.Status.PodIP)
		}
		eventually(t, 90*time.Second, "status healthy again", func() error {
			r := vaultctl(t, "status", "-c", cfgPath)
			if r.Code != 0 || !strings.Contains(r.Stdout, "Vault: healthy (3/3 voters") {
				return fmt.Errorf("%s", r)
			}
			return nil
		})
		t.Logf("healthy again %s after the delete", time.Since(t0).Round(100*time.Millisecond))
		h, err := portForwardVault(t, ns, "vault-1", ca).Sys().Health()
		if err != nil || !h.Initialized || h.Sealed {
			t.Errorf("the new vault-1 (same data) should be initialized and unsealed: %+v %v", h, err)
		}
	})

	t.Run("no recovery key or root token leaks", func(t *testing.T) {
		sec, err := cs.CoreV1().Secrets(ns).Get(ctx, phases.CustodySecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		keys, kept := openCustody(t, sec.Data)
		if len(keys) != 3 || kept != "" {
			t.Fatalf("custody holds %d keys and a root token (%v); want 3 keys and no root token", len(keys), kept != "")
		}
		scanForSecrets(t, ns, append(keys, root))
	})
}

// TestInClusterApplyKilledAfterInitializeLosesNothing kills vaultctl the moment the recovery
// keys land in custody, re-runs it, and checks that the re-run takes the dead run's lock over at
// once, does not initialize Vault twice and loses no key; with keepRootToken the custody also
// holds the root token, so the scan covers it too. The installation then serves the CLI prune
// test (it carries one extra role, audit device and allowed client to drop).
func TestInClusterApplyKilledAfterInitializeLosesNothing(t *testing.T) {
	const ns = "vault-ic-kill"
	cs := kube(t)
	ctx := context.Background()
	claimPVs(t, cs, ns, inClusterClaims())
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
	cfgPath := filepath.Join(t.TempDir(), "vaultctl.yaml")
	writeConfig := func(dropped bool) { writeInClusterConfigWith(t, cfgPath, ns, true, pruneExtras(dropped)) }
	prepareClientNamespaces(t, cs, ns)
	writeConfig(false)

	killed := applyKilledAtCustody(t, cfgPath, ns, 4*time.Minute)
	// No fallback: a lock the re-run cannot take over at once fails the test (README: a holder
	// that died on the same machine is taken over at once).
	rerunAfterKill(t, cfgPath, killed, "kubernetes-auth", "bootstrap", "policies", "roles", "network-policies", "audit")
	s, err := cs.CoreV1().Secrets(ns).Get(ctx, phases.CustodySecret, metav1.GetOptions{})
	if err != nil || !bytes.Equal(s.Data["recovery-keys.enc"], killed.Custody["recovery-keys.enc"]) {
		t.Fatalf("recovery keys changed or vanished after the re-run: %v", err)
	}
	keys, root := openCustody(t, s.Data)
	if len(keys) != 3 || root == "" {
		t.Fatalf("custody holds %d keys, root token set=%v", len(keys), root != "")
	}
	// The custody copy is the real thing: the root token works (through a port-forward).
	vc := portForwardVault(t, ns, "vault-0", serverCA(t, cs, ns))
	vc.SetToken(root)
	if _, err := vc.Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("root token from custody does not work: %v", err)
	}
	health, r := statusJSON(t, cfgPath)
	if !health.Healthy || health.Voters != 3 {
		t.Errorf("after the re-run: want 3 healthy voters:\n%s", r)
	}
	scanForSecrets(t, ns, append(keys, root))

	t.Run("apply --prune deletes only what vaultctl created and the config dropped", func(t *testing.T) {
		testPruneThroughCLI(t, cfgPath, ns, vc, writeConfig)
	})
}
