package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/vaultctl/vaultctl/policy"
)

func (r *accessRig) proofInput() ProofInput {
	return ProofInput{
		Kube: r.kube, Admin: r.admin, Namespace: accessNS, AuthMount: accessMount, KVMounts: []string{"secret"}, Plan: r.plan,
		NewClient: func() (ProofClient, error) { return r.vault.Client(""), nil },
	}
}

// proofFailure proves wp and returns its *ProofError, failing the test when it passes or
// fails otherwise, or when the error shows a value, a JWT or a Vault token.
func (r *accessRig) proofFailure(t *testing.T, wp WorkloadPlan) *ProofError {
	t.Helper()
	err := Prove(context.Background(), r.proofInput(), wp)
	var pe *ProofError
	if !errors.As(err, &pe) {
		t.Fatalf("Prove = %v, want a *ProofError", err)
	}
	msg := err.Error()
	for _, data := range accessValues {
		for k, v := range data {
			if len(v) > 0 && strings.Contains(msg, string(v)) {
				t.Errorf("error shows the value of %s: %s", k, msg)
			}
		}
	}
	if strings.Contains(msg, "jwt-") || strings.Contains(msg, "hvs.") {
		t.Errorf("error shows a token: %s", msg)
	}
	return pe
}

func TestProvePassesForEachMigratedWorkload(t *testing.T) {
	r := newAccessRig(t)
	r.ensure(t)
	for _, wp := range r.plan.Workloads[:2] {
		if err := Prove(context.Background(), r.proofInput(), wp); err != nil {
			t.Errorf("%s/%s: %v", wp.Kind, wp.Name, err)
		}
	}
	// Each proof gives its login back instead of leaving a lease for the role's ttl.
	if leases := r.vault.Leases(); len(leases) != 0 {
		t.Errorf("leases left after the proofs: %v", leases)
	}
}

func TestProveAsksForTheRolesAudience(t *testing.T) {
	ctx := context.Background()
	r := newAccessRig(t)
	r.ensure(t)
	if err := r.admin.WriteRole(ctx, accessMount, "team-a-deployment-api", map[string]any{"audience": "vault"}); err != nil {
		t.Fatal(err)
	}
	// The fake method accepts only the token made for audience vault.
	r.vault.AllowLogin(accessMount, "team-a-deployment-api", accessJWT(accessNS, "api", "vault"))
	if err := Prove(ctx, r.proofInput(), r.plan.Workloads[0]); err != nil {
		t.Fatal(err)
	}
}

func TestProveStopsAtALoginTheRoleRefuses(t *testing.T) {
	r := newAccessRig(t)
	r.ensure(t)
	wp := r.plan.Workloads[0]
	wp.ServiceAccount = "report" // a token for another ServiceAccount: the role refuses it
	r.vault.ResetCalls()
	pe := r.proofFailure(t, wp)
	if pe.Step != StepLogin || pe.Workload != "Deployment/api" ||
		!strings.Contains(pe.Error(), "login as team-a/report with role team-a-deployment-api at auth/k8s-migrate refused: permission denied") {
		t.Fatalf("got %q (step %s)", pe.Error(), pe.Step)
	}
	for _, call := range r.vault.Calls() {
		if strings.HasPrefix(call, "KVRead ") || strings.HasPrefix(call, "CapabilitiesSelf") {
			t.Errorf("%s after the refused login", call)
		}
	}
}

func TestProveCatchesAValueThatDiffers(t *testing.T) {
	ctx := context.Background()
	r := newAccessRig(t)
	r.ensure(t)
	if _, err := r.admin.KVWrite(ctx, "secret", "team-a/db", map[string]any{"username": "app_user", "password": "another-password"}, -1); err != nil {
		t.Fatal(err)
	}
	pe := r.proofFailure(t, r.plan.Workloads[0])
	if pe.Step != StepCompare || !strings.Contains(pe.Error(), "comparing secret/team-a/db (version 2) with Secret team-a/db: keys password differ") {
		t.Fatalf("got %q (step %s)", pe.Error(), pe.Step)
	}
	if strings.Contains(pe.Error(), "another-password") {
		t.Error("error shows the KV value")
	}
}

func TestProveReadsBinaryValuesByTheirMarker(t *testing.T) {
	ctx := context.Background()
	r := newAccessRig(t)
	r.ensure(t)
	// Without the marker the stored base64 text is compared as it stands, and differs.
	if err := r.admin.KVWriteMetadata(ctx, "secret", "team-a/bin", map[string]string{MetaBase64Keys: ""}); err != nil {
		t.Fatal(err)
	}
	pe := r.proofFailure(t, r.plan.Workloads[0])
	if pe.Step != StepCompare || !strings.Contains(pe.Error(), "keys keystore.p12 differ") {
		t.Fatalf("got %q (step %s)", pe.Error(), pe.Step)
	}
}

func TestProveFindsAPolicyThatGrantsTheSibling(t *testing.T) {
	ctx := context.Background()
	r := newAccessRig(t)
	r.ensure(t)
	broad := policy.Header + "\npath \"secret/data/team-a/*\" {\n  capabilities = [\"read\"]\n}\n"
	if err := r.admin.WritePolicy(ctx, "team-a-deployment-api", broad); err != nil {
		t.Fatal(err)
	}
	pe := r.proofFailure(t, r.plan.Workloads[0])
	if pe.Step != StepSibling || !strings.Contains(pe.Error(), "checking that secret/data/team-a/vaultctl-proof-sibling is denied: the token has read there") {
		t.Fatalf("got %q (step %s)", pe.Error(), pe.Step)
	}
}

func TestProveFindsAPolicyThatMissesAPath(t *testing.T) {
	ctx := context.Background()
	r := newAccessRig(t)
	r.ensure(t)
	_, narrow := PolicyFor(WorkloadPlan{Policy: "team-a-deployment-api", KVPaths: []string{"secret/team-a/db"}}, []string{"secret"})
	if err := r.admin.WritePolicy(ctx, "team-a-deployment-api", narrow); err != nil {
		t.Fatal(err)
	}
	// The Fake does not enforce policies; a real Vault's answer to the read is a 403.
	r.vault.Fail("KVRead", &vaultapi.ResponseError{HTTPMethod: "GET", StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}})
	pe := r.proofFailure(t, r.plan.Workloads[0])
	if pe.Step != StepRead || !strings.Contains(pe.Error(), "policy team-a-deployment-api does not grant read on secret/data/team-a/bin") {
		t.Fatalf("got %q (step %s)", pe.Error(), pe.Step)
	}
}

func TestProveNeedsTheRoleAndTheServiceAccount(t *testing.T) {
	r := newAccessRig(t)
	pe := r.proofFailure(t, r.plan.Workloads[0])
	if pe.Step != StepRole || !strings.Contains(pe.Error(), "role team-a-deployment-api at auth/k8s-migrate: the role does not exist") {
		t.Fatalf("got %q (step %s)", pe.Error(), pe.Step)
	}
	r.ensure(t)
	wp := r.plan.Workloads[0]
	wp.ServiceAccount = "gone"
	pe = r.proofFailure(t, wp)
	if pe.Step != StepToken || !strings.Contains(pe.Error(), "requesting a token for ServiceAccount team-a/gone") {
		t.Fatalf("got %q (step %s)", pe.Error(), pe.Step)
	}
}

func TestSiblingPathsAvoidTheWorkloadsOwn(t *testing.T) {
	got := siblingPaths([]string{"secret/a/vaultctl-proof-sibling", "secret/a/db", "secret/top", "kv/x/y/z"}, []string{"secret", "kv"})
	want := []string{"kv/data/x/y/vaultctl-proof-sibling", "secret/data/a/vaultctl-proof-sibling-x", "secret/data/vaultctl-proof-sibling"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("siblingPaths = %v, want %v", got, want)
	}
}
