package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestFailedPreflightWritesNothing: apply must prove the estate workable before it creates
// anything. Taking the apply lock first would create the Vault namespace and the Lease, so a
// preflight failure (a KMS key that does not exist and may not be created) must leave neither.
func TestFailedPreflightWritesNothing(t *testing.T) {
	ns := fmt.Sprintf("vault-e2e-nopreflight-%d", time.Now().UnixNano()%1_000_000)
	cs := kube(t)
	ctx := context.Background()
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}) })
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace %s must not exist before the test: %v", ns, err)
	}
	bad := sandboxConfig(t, ns, sb.KMSEndpoint, "alias/does-not-exist", false)

	// --only kms does not select preflight: it runs first all the same.
	res := vaultctl(t, "apply", "-c", bad, "--only", "kms")
	if res.Code != 1 || !strings.Contains(res.Stdout, "preflight") || !strings.Contains(res.Stdout, "KMS key alias/does-not-exist does not exist") {
		t.Fatalf("want exit 1 naming preflight and the missing key:\n%s", res)
	}
	out := parseRun(t, vaultctl(t, "apply", "-c", bad, "-o", "json"))
	if out.OK || statusOf(out)["preflight"] != "failed" || statusOf(out)["kms"] != "not run" || statusOf(out)["audit"] != "not run" {
		t.Fatalf("json result: %+v", out)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a failed preflight created the Vault namespace %s (err=%v)", ns, err)
	}
	if _, err := cs.CoordinationV1().Leases(ns).Get(ctx, "vaultctl-apply", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a failed preflight created the apply Lease (err=%v)", err)
	}

	// With the key that exists, the same apply passes preflight, then locks and writes: the
	// namespace appears, the Lease is released, and preflight's checkpoint is recorded even
	// though only kms was selected.
	good := sandboxConfig(t, ns, sb.KMSEndpoint, sb.KMSKeyAlias, false)
	ok := parseRun(t, vaultctl(t, "apply", "-c", good, "--only", "kms", "-o", "json"))
	if !ok.OK || statusOf(ok)["preflight"] != "up to date" || statusOf(ok)["kms"] != "up to date" || statusOf(ok)["tls"] != "skipped" {
		t.Fatalf("apply with a good config: %+v", ok)
	}
	le, err := cs.CoordinationV1().Leases(ns).Get(ctx, "vaultctl-apply", metav1.GetOptions{})
	if err != nil || le.Spec.HolderIdentity == nil || *le.Spec.HolderIdentity != "" {
		t.Fatalf("the apply Lease must exist and be released after the run: %+v %v", le, err)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "vaultctl-checkpoints", metav1.GetOptions{})
	if err != nil || cm.Data["preflight"] == "" || cm.Data["kms"] == "" {
		t.Fatalf("checkpoints after apply --only kms: %v %v", cm, err)
	}
}
