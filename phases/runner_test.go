package phases

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// fakePhase converges after one Apply, like a real phase would.
type fakePhase struct {
	name     string
	inSync   bool
	applies  int
	checkErr error
	applyErr error
	input    string
}

func (f *fakePhase) Name() string        { return f.name }
func (f *fakePhase) Description() string { return "fake " + f.name }
func (f *fakePhase) Inputs() any         { return f.input }
func (f *fakePhase) Check(context.Context) (Diff, error) {
	if f.checkErr != nil {
		return Diff{}, f.checkErr
	}
	if f.inSync {
		return Diff{Facts: []string{f.name + " ok"}}, nil
	}
	return Diff{Changes: []Change{{Action: Create, Object: f.name}}}, nil
}
func (f *fakePhase) Apply(context.Context, Diff) error {
	f.applies++
	if f.applyErr != nil {
		return f.applyErr
	}
	f.inSync = true
	return nil
}

func statuses(rs []Result) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Phase+"="+string(r.Status))
	}
	return strings.Join(s, ",")
}

func TestApplyTwiceIsUpToDateAndWritesNothing(t *testing.T) {
	a, b := &fakePhase{name: "a"}, &fakePhase{name: "b", inSync: true}
	store := &MemoryStore{}
	r := &Runner{Phases: []Phase{a, b}, Store: store, Version: "v1"}
	rs, err := r.Apply(context.Background(), Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rs); got != "a=changed,b=up to date" {
		t.Fatalf("first apply: %s", got)
	}
	puts := store.Puts
	rs, _ = r.Apply(context.Background(), Selection{})
	if got := statuses(rs); got != "a=up to date,b=up to date" {
		t.Fatalf("second apply: %s", got)
	}
	if store.Puts != puts || a.applies != 1 {
		t.Fatalf("second apply changed something: puts %d->%d, applies %d", puts, store.Puts, a.applies)
	}
}

func TestInputChangeRewritesCheckpoint(t *testing.T) {
	a := &fakePhase{name: "a", inSync: true, input: "x"}
	store := &MemoryStore{}
	r := &Runner{Phases: []Phase{a}, Store: store, Version: "v1"}
	r.Apply(context.Background(), Selection{})
	first := store.Items["a"].InputHash
	a.input = "y"
	r.Apply(context.Background(), Selection{})
	if store.Items["a"].InputHash == first {
		t.Fatal("checkpoint hash not updated after the inputs changed")
	}
}

func TestFailureStopsLaterPhasesAndRecordsNoCheckpoint(t *testing.T) {
	a := &fakePhase{name: "a", checkErr: Fail("start the KMS endpoint", "KMS unreachable")}
	b := &fakePhase{name: "b"}
	store := &MemoryStore{}
	r := &Runner{Phases: []Phase{a, b}, Store: store}
	rs, _ := r.Apply(context.Background(), Selection{})
	if got := statuses(rs); got != "a=failed,b=not run" {
		t.Fatalf("got %s", got)
	}
	if rs[0].Error.Hint != "start the KMS endpoint" || !strings.Contains(rs[0].Error.Error(), "phase a: KMS unreachable") {
		t.Fatalf("error lacks phase/hint: %+v", rs[0].Error)
	}
	if len(store.Items) != 0 || b.applies != 0 {
		t.Fatal("a failed phase recorded a checkpoint or a later phase ran")
	}
}

func TestPlanAppliesNothing(t *testing.T) {
	a := &fakePhase{name: "a"}
	store := &MemoryStore{}
	rs, _ := (&Runner{Phases: []Phase{a}, Store: store}).Plan(context.Background(), Selection{})
	if rs[0].Status != WouldChange || a.applies != 0 || store.Puts != 0 {
		t.Fatalf("plan changed something: %+v", rs[0])
	}
}

func TestApplyThatDoesNotConvergeFails(t *testing.T) {
	a := &fakePhase{name: "a", applyErr: nil}
	stuck := &stuckPhase{fakePhase: a}
	rs, _ := (&Runner{Phases: []Phase{stuck}}).Apply(context.Background(), Selection{})
	if rs[0].Status != Failed || !strings.Contains(rs[0].Error.What, "still differs after apply") {
		t.Fatalf("got %+v", rs[0])
	}
}

type stuckPhase struct{ *fakePhase }

func (s *stuckPhase) Apply(context.Context, Diff) error { return nil }

func TestSelection(t *testing.T) {
	mk := func() []Phase {
		return []Phase{&fakePhase{name: "a", inSync: true}, &fakePhase{name: "b", inSync: true}, &fakePhase{name: "c", inSync: true}}
	}
	for _, tc := range []struct {
		sel  Selection
		want string
	}{
		{Selection{Only: []string{"b"}}, "a=skipped,b=up to date,c=skipped"},
		{Selection{Skip: []string{"b"}}, "a=up to date,b=skipped,c=up to date"},
		{Selection{From: "b"}, "a=skipped,b=up to date,c=up to date"},
	} {
		rs, err := (&Runner{Phases: mk()}).Apply(context.Background(), tc.sel)
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(rs); got != tc.want {
			t.Errorf("%+v: got %s want %s", tc.sel, got, tc.want)
		}
	}
	_, err := (&Runner{Phases: mk()}).Apply(context.Background(), Selection{Only: []string{"z"}})
	if err == nil || !strings.Contains(err.Error(), `unknown phase "z"; phases are: a, b, c`) {
		t.Fatalf("got %v", err)
	}
}

func TestFailuresKeepsEveryHint(t *testing.T) {
	err := Failures([]error{Fail("h1", "e1"), errors.New("e2"), Fail("h3", "e3")})
	pe := asPhaseError("p", err)
	if pe.What != "e1; e2; e3" || pe.Hint != "h1; h3" {
		t.Fatalf("%+v", pe)
	}
}

func TestPlanWaitsOnlyForNotYet(t *testing.T) {
	first := &fakePhase{name: "initialize"}
	waiting := &fakePhase{name: "roles", checkErr: notYet(Fail("apply first", "Vault is not initialized yet"))}
	broken := &fakePhase{name: "audit", checkErr: Fail("fix it", "permission denied")}
	rs, _ := (&Runner{Phases: []Phase{first, waiting, broken}}).Plan(context.Background(), Selection{})
	if got := statuses(rs); got != "initialize=would change,roles=waits,audit=failed" {
		t.Fatalf("a real failure must not hide behind an earlier change: %s", got)
	}
	rs, _ = (&Runner{Phases: []Phase{waiting}}).Plan(context.Background(), Selection{})
	if rs[0].Status != Failed {
		t.Fatalf("with nothing pending before it, not-yet is a failure: %s", rs[0].Status)
	}
}
