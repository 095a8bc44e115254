package migrate

import (
	"context"
	"testing"
)

// A run killed after patching a workload leaves it reading no Secret: only the journal says
// its rollout is still to verify, and the next plan resumes it with the template it runs.
func TestWithJournalResumesAPatchedWorkload(t *testing.T) {
	ctx := context.Background()
	r := newEngineRig(t)
	id := WorkloadID{Kind: "Deployment", Name: "api"}
	if _, _, err := SetTemplate(ctx, r.cs, "team-a", id, r.target); err != nil {
		t.Fatal(err)
	}
	if err := r.e.Journal.PutWorkload(ctx, id, WorkloadRecord{State: WorkloadPatched, ServiceAccount: "api", Role: "role-api", Policy: "pol-api",
		KVPaths: []string{"secret/team-a/db"}, PatchedHash: TemplateHash(r.target)}); err != nil {
		t.Fatal(err)
	}
	// Discovery leaves it out: it reads no Secret any more.
	np := &NamespacePlan{Plan: &Plan{Namespace: "team-a"},
		Inventory: r.inv(t), Rewrites: map[WorkloadID]RewriteResult{}}
	j, err := r.e.Journal.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := np.WithJournal(ctx, r.cs, j); err != nil {
		t.Fatal(err)
	}
	wp := np.Plan.Workloads[0]
	if wp.Action != WorkloadMigrate || wp.Role != "role-api" || wp.ServiceAccount != "api" || !np.Plan.HasWork() {
		t.Fatalf("resumed plan %+v, want migrate with the journal's identity", wp)
	}
	if rw, ok := np.Rewrites[id]; !ok || TemplateHash(rw.Template) != TemplateHash(r.target) {
		t.Fatal("the resumed workload's target is not the template it runs")
	}

	// Once verified, it is skipped and the namespace has nothing to do.
	if err := r.e.Journal.PutWorkload(ctx, id, WorkloadRecord{State: WorkloadVerified, ServiceAccount: "api", Role: "role-api", Policy: "pol-api", PatchedHash: TemplateHash(r.target)}); err != nil {
		t.Fatal(err)
	}
	j, _ = r.e.Journal.Load(ctx)
	np.Plan.Workloads = nil
	if err := np.WithJournal(ctx, r.cs, j); err != nil {
		t.Fatal(err)
	}
	if wp := np.Plan.Workloads[0]; wp.Action != WorkloadSkip || wp.State != string(WorkloadVerified) || np.Plan.HasWork() {
		t.Fatalf("verified workload planned as %+v", wp)
	}
}
