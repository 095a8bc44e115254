package action

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/phases"
)

// fakePhase converges after one Apply. block makes Check wait until the run's context ends,
// like a phase waiting for pods; then it fails with ctx's error, or succeeds with finishAnyway.
type fakePhase struct {
	name         string
	inSync       bool
	checkErr     error
	block        chan struct{} // closed when Check starts waiting
	finishAnyway bool
}

func (f *fakePhase) Name() string        { return f.name }
func (f *fakePhase) Description() string { return "fake " + f.name }
func (f *fakePhase) Inputs() any         { return f.name }
func (f *fakePhase) Check(ctx context.Context) (phases.Diff, error) {
	if f.block != nil {
		close(f.block)
		f.block = nil
		<-ctx.Done()
		if !f.finishAnyway {
			return phases.Diff{}, fmt.Errorf("waiting for pods: %w", ctx.Err())
		}
		return phases.Diff{Facts: []string{"finished its last call"}}, nil
	}
	if f.checkErr != nil {
		return phases.Diff{}, f.checkErr
	}
	if f.inSync {
		return phases.Diff{Facts: []string{f.name + " ok"}}, nil
	}
	return phases.Diff{Changes: []phases.Change{{Action: phases.Create, Object: f.name}}}, nil
}
func (f *fakePhase) Apply(context.Context, phases.Diff) error { f.inSync = true; return nil }

// events records what a Reporter hears.
type events struct {
	mu    sync.Mutex
	lines []string
}

func (e *events) Started(phase, _ string) { e.add("start " + phase) }
func (e *events) Finished(r phases.Result) {
	e.add(fmt.Sprintf("%s=%s", r.Phase, r.Status))
}
func (e *events) add(s string) { e.mu.Lock(); e.lines = append(e.lines, s); e.mu.Unlock() }
func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.lines, ",")
}

type harness struct {
	cs       *fake.Clientset
	clk      *clocktesting.FakeClock
	connects int
	rep      *events
	cfg      *Configuration
}

func newHarness(ps ...phases.Phase) *harness {
	h := &harness{cs: fake.NewClientset(), clk: clocktesting.NewFakeClock(epoch), rep: &events{}}
	c := &config.Config{}
	c.Vault.Namespace = testNS
	h.cfg = &Configuration{
		Config:   c,
		Version:  "v-test",
		Reporter: h.rep,
		Connect: func(_ context.Context, cfg *config.Config) (*phases.Env, error) {
			h.connects++
			return &phases.Env{Config: cfg, Kube: h.cs}, nil
		},
		Phases:     func(*phases.Env) []phases.Phase { return ps },
		LockTiming: LockTiming{Duration: time.Minute, RenewInterval: 20 * time.Second, Clock: h.clk},
	}
	return h
}

func statuses(rs []phases.Result) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Phase+"="+string(r.Status))
	}
	return strings.Join(s, ",")
}

// writes lists every create/update/patch/delete the action sent to the cluster.
func writes(cs *fake.Clientset) []string {
	var out []string
	for _, a := range cs.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
	}
	return out
}

func TestUnknownPhaseIsAUsageErrorBeforeConnecting(t *testing.T) {
	h := newHarness(&fakePhase{name: "preflight"}, &fakePhase{name: "kms"})
	for _, run := range []func() error{
		func() error {
			_, err := Apply(context.Background(), h.cfg, ApplyOptions{Selection: phases.Selection{Only: []string{"NOSUCH"}}})
			return err
		},
		func() error {
			_, err := Plan(context.Background(), h.cfg, PlanOptions{Selection: phases.Selection{Skip: []string{"nosuch"}}})
			return err
		},
		func() error {
			_, err := Apply(context.Background(), h.cfg, ApplyOptions{Selection: phases.Selection{From: "nosuch"}})
			return err
		},
	} {
		err := run()
		if !errors.Is(err, ErrInvalidSelection) || !strings.Contains(err.Error(), "phases are: preflight, kms") {
			t.Errorf("want a selection error listing the phases, got %v", err)
		}
	}
	if h.connects != 0 || len(h.cs.Actions()) != 0 {
		t.Fatalf("a bad selection contacted the estate: %d connects, %v", h.connects, h.cs.Actions())
	}
}

func TestFailedPreflightWritesNothingAndLeavesTheRestNotRun(t *testing.T) {
	h := newHarness(
		&fakePhase{name: "preflight", checkErr: phases.Fail("set createKey", "KMS key alias/nope does not exist")},
		&fakePhase{name: "kms"}, &fakePhase{name: "tls"}, &fakePhase{name: "server"})
	// --only kms,tls: preflight runs anyway.
	res, err := Apply(context.Background(), h.cfg, ApplyOptions{Selection: phases.Selection{Only: []string{"kms", "tls"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res.Phases); got != "preflight=failed,kms=not run,tls=not run,server=skipped" {
		t.Fatalf("results: %s", got)
	}
	if res.OK || res.Failure == nil || res.Failure.Phase != "preflight" || res.Failure.Hint != "set createKey" {
		t.Fatalf("result: %+v", res)
	}
	if got := h.rep.String(); got != "start preflight,preflight=failed,kms=not run,tls=not run,server=skipped" {
		t.Fatalf("reported: %s", got)
	}
	if w := writes(h.cs); len(w) != 0 {
		t.Fatalf("a failed preflight must leave no trace (no namespace, no Lease, no checkpoint), got %v", w)
	}
}

func TestApplyRunsPreflightFirstOnceThenLocksAndRecords(t *testing.T) {
	pre := &fakePhase{name: "preflight", inSync: true}
	h := newHarness(pre, &fakePhase{name: "kms"}, &fakePhase{name: "tls", inSync: true})
	var debug []string
	h.cfg.Debug = func(l string) { debug = append(debug, l) }
	res, err := Apply(context.Background(), h.cfg, ApplyOptions{Selection: phases.Selection{Only: []string{"kms"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res.Phases); got != "preflight=up to date,kms=changed,tls=skipped" || !res.OK || res.Changes != 1 {
		t.Fatalf("results: %s %+v", got, res)
	}
	if len(res.Phases[0].Facts) != 1 || res.Phases[0].Facts[0] != "preflight ok" {
		t.Fatalf("preflight's facts lost: %+v", res.Phases[0])
	}
	if got := h.rep.String(); got != "start preflight,preflight=up to date,start kms,kms=changed,tls=skipped" {
		t.Fatalf("preflight must be reported once, first: %s", got)
	}
	// Nothing was written before preflight finished: the first write is the namespace.
	w := writes(h.cs)
	if len(w) == 0 || w[0] != "create namespaces" {
		t.Fatalf("writes: %v", w)
	}
	cm, err := h.cs.CoreV1().ConfigMaps(testNS).Get(context.Background(), phases.CheckpointConfigMap, metav1.GetOptions{})
	if err != nil || cm.Data["preflight"] == "" || cm.Data["kms"] == "" || cm.Data["tls"] != "" {
		t.Fatalf("checkpoints: %v %v", cm, err)
	}
	if hd := holderNow(t, h.cs); hd != "" {
		t.Fatalf("lock not released: %q", hd)
	}
	all := strings.Join(debug, "\n")
	for _, want := range []string{"preflight: before anything is written", "lock vault/vaultctl-apply: took as", "phase kms: changed", "lock vault/vaultctl-apply: released"} {
		if !strings.Contains(all, want) {
			t.Errorf("debug log lacks %q:\n%s", want, all)
		}
	}
}

func TestApplyRefusesAHeldLockAfterPreflight(t *testing.T) {
	h := newHarness(&fakePhase{name: "preflight", inSync: true}, &fakePhase{name: "kms"})
	putLease(t, h.cs, "ci-runner-7/4242", epoch, 900)
	res, err := Apply(context.Background(), h.cfg, ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "another vaultctl apply (ci-runner-7/4242)") {
		t.Fatalf("err = %v", err)
	}
	if got := statuses(res.Phases); got != "preflight=up to date" || res.OK {
		t.Fatalf("results: %s", got)
	}
}

// lostDuring runs apply with a phase that is in progress when another identity overwrites the
// Lease, and returns the result.
func lostDuring(t *testing.T, work *fakePhase) *RunResult {
	t.Helper()
	work.block = make(chan struct{})
	started := work.block
	h := newHarness(&fakePhase{name: "preflight", inSync: true}, work, &fakePhase{name: "tail"})
	type out struct {
		res *RunResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := Apply(context.Background(), h.cfg, ApplyOptions{})
		done <- out{res, err}
	}()
	<-started
	waitForWaiter(t, h.clk) // the renewal timer
	putLease(t, h.cs, "thief/9", epoch, 900)
	h.clk.Step(20 * time.Second)
	var o out
	select {
	case o = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("apply kept running after losing its lock")
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	if hd := holderNow(t, h.cs); hd != "thief/9" {
		t.Fatalf("the run released the new holder's lock: %q", hd)
	}
	return o.res
}

func TestLostLockStopsTheRunningPhaseAndSaysSo(t *testing.T) {
	res := lostDuring(t, &fakePhase{name: "server"})
	if got := statuses(res.Phases); got != "preflight=up to date,server=failed,tail=not run" {
		t.Fatalf("results: %s", got)
	}
	what := res.Failure.What
	if !strings.Contains(what, "interrupted: lost the apply lock: the Lease vault/vaultctl-apply is now held by thief/9") || !strings.Contains(what, "waiting for pods: context canceled") {
		t.Fatalf("failure does not say the lock was lost: %s", what)
	}
}

func TestLostLockStopsBeforeTheNextPhase(t *testing.T) {
	// The phase finishes its last call anyway; the runner must not start the next one, and it
	// says why with the context's cause.
	res := lostDuring(t, &fakePhase{name: "server", finishAnyway: true})
	if got := statuses(res.Phases); got != "preflight=up to date,server=up to date,tail=failed" {
		t.Fatalf("results: %s", got)
	}
	if what := res.Failure.What; what != "interrupted: lost the apply lock: the Lease vault/vaultctl-apply is now held by thief/9" {
		t.Fatalf("failure: %s", what)
	}
}

func TestReleaseErrorIsAWarning(t *testing.T) {
	h := newHarness(&fakePhase{name: "preflight", inSync: true}, &fakePhase{name: "kms"})
	h.cs.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("etcdserver: request timed out")
	})
	res, err := Apply(context.Background(), h.cfg, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "releasing the apply lock vault/vaultctl-apply: etcdserver: request timed out") {
		t.Fatalf("result: %+v", res)
	}
}

func TestPlanTakesNoLockAndWritesNothing(t *testing.T) {
	h := newHarness(&fakePhase{name: "preflight", inSync: true}, &fakePhase{name: "kms"})
	res, err := Plan(context.Background(), h.cfg, PlanOptions{Selection: phases.Selection{Only: []string{"kms"}}})
	if err != nil {
		t.Fatal(err)
	}
	// Preflight runs first, selected or not, and is reported once.
	if got := statuses(res.Phases); got != "preflight=up to date,kms=would change" || res.Changes != 1 {
		t.Fatalf("results: %s", got)
	}
	if got := h.rep.String(); got != "start preflight,preflight=up to date,start kms,kms=would change" {
		t.Fatalf("reported: %s", got)
	}
	if w := writes(h.cs); len(w) != 0 {
		t.Fatalf("plan wrote %v", w)
	}
}

// A hanging cluster must show preflight running before anything waits on it: the checkpoints
// are read only once preflight has passed, and not at all when it failed.
func TestPlanRunsPreflightBeforeReadingCheckpoints(t *testing.T) {
	h := newHarness(
		&fakePhase{name: "preflight", checkErr: phases.Fail("check that the API server is up", "cannot reach the Kubernetes API at https://10.0.0.1:6443: TLS handshake timeout")},
		&fakePhase{name: "kms"})
	res, err := Plan(context.Background(), h.cfg, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res.Phases); got != "preflight=failed,kms=not run" || res.OK {
		t.Fatalf("results: %s", got)
	}
	if a := h.cs.Actions(); len(a) != 0 {
		t.Fatalf("plan contacted the cluster after a failed preflight: %v", a)
	}
}

// Phases take Prune when they are built: plan --prune must build them with it, so that their
// Check lists what apply --prune would delete.
func TestPlanAndApplyBuildThePhasesWithPrune(t *testing.T) {
	for _, prune := range []bool{false, true} {
		var last bool // how the phases that ran were built
		h := newHarness()
		h.cfg.Phases = func(env *phases.Env) []phases.Phase {
			last = env.Prune
			return []phases.Phase{&fakePhase{name: "preflight", inSync: true}, &fakePhase{name: "policies", inSync: true}}
		}
		if _, err := Plan(context.Background(), h.cfg, PlanOptions{Prune: prune}); err != nil || last != prune {
			t.Errorf("plan prune=%v: phases built with Prune %v (%v)", prune, last, err)
		}
		if _, err := Apply(context.Background(), h.cfg, ApplyOptions{Prune: prune}); err != nil || last != prune {
			t.Errorf("apply prune=%v: phases built with Prune %v (%v)", prune, last, err)
		}
	}
}
