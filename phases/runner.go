package phases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Status of a phase in a plan or apply.
type Status string

// Phase statuses, as shown to users and in JSON.
const (
	UpToDate    Status = "up to date"
	WouldChange Status = "would change"
	Changed     Status = "changed"
	Failed      Status = "failed"
	Skipped     Status = "skipped"
	NotRun      Status = "not run" // an earlier phase failed
	Blocked     Status = "waits"   // plan only: cannot be observed before an earlier phase applies
)

// ErrNotYet marks a Check that cannot observe anything until an earlier phase has applied
// (Vault not installed or not initialized yet). In plan, such a phase "waits" instead of failing;
// any other error still fails the plan.
var ErrNotYet = errors.New("not observable until an earlier phase is applied")

// notYet wraps err as ErrNotYet, keeping its message and hint.
func notYet(err error) error { return &notYetError{err} }

type notYetError struct{ err error }

func (n *notYetError) Error() string   { return n.err.Error() }
func (n *notYetError) Unwrap() []error { return []error{n.err, ErrNotYet} }

// Result is the outcome of one phase.
type Result struct {
	Phase      string        `json:"phase"`
	Status     Status        `json:"status"`
	Changes    []Change      `json:"changes,omitempty"`
	Facts      []string      `json:"facts,omitempty"`
	Error      *Error        `json:"failure,omitempty"`
	WaitsFor   string        `json:"waitsFor,omitempty"`
	Duration   time.Duration `json:"durationNs"`
	Checkpoint *Checkpoint   `json:"checkpoint,omitempty"`
}

// Reporter hears about phases as they run; the CLI renders it (live line, plain lines, JSON).
type Reporter interface {
	Started(phase, description string)
	Finished(r Result)
}

// Selection picks phases: --only, --skip, --from.
type Selection struct {
	Only []string
	Skip []string
	From string
}

// Runner runs phases in order.
type Runner struct {
	Phases   []Phase
	Store    CheckpointStore // nil: no checkpoints (plan without a cluster, unit tests)
	Reporter Reporter
	Version  string
	Now      func() time.Time
}

// Names lists the phases in order.
func (r *Runner) Names() []string {
	out := make([]string, len(r.Phases))
	for i, p := range r.Phases {
		out[i] = p.Name()
	}
	return out
}

func (r *Runner) selected(sel Selection) (map[string]bool, error) {
	names := r.Names()
	for _, n := range append(append(slices.Clone(sel.Only), sel.Skip...), sel.From) {
		if n != "" && !slices.Contains(names, n) {
			return nil, fmt.Errorf("unknown phase %q; phases are: %s", n, strings.Join(names, ", "))
		}
	}
	out := map[string]bool{}
	from := sel.From == ""
	for _, n := range names {
		if n == sel.From {
			from = true
		}
		on := from && !slices.Contains(sel.Skip, n)
		if len(sel.Only) > 0 {
			on = on && slices.Contains(sel.Only, n)
		}
		out[n] = on
	}
	return out, nil
}

// Plan runs every selected phase's Check and reports what apply would do.
func (r *Runner) Plan(ctx context.Context, sel Selection) ([]Result, error) {
	return r.run(ctx, sel, false)
}

// Apply checks each selected phase, applies where the diff is not empty, checks again to verify,
// and records a checkpoint. It stops at the first failure.
func (r *Runner) Apply(ctx context.Context, sel Selection) ([]Result, error) {
	return r.run(ctx, sel, true)
}

func (r *Runner) run(ctx context.Context, sel Selection, apply bool) ([]Result, error) {
	on, err := r.selected(sel)
	if err != nil {
		return nil, err
	}
	checkpoints := map[string]Checkpoint{}
	var corrupt *CorruptCheckpointsError
	if r.Store != nil {
		got, err := r.Store.Get(ctx)
		switch {
		case errors.As(err, &corrupt):
			// Said on each phase concerned; its checkpoint is rewritten once it converges.
			checkpoints = got
		case err != nil:
			// An unreachable cluster is preflight's to explain, with a hint; start without
			// checkpoints (they only explain, they never replace observing).
		default:
			checkpoints = got
		}
	}
	var results []Result
	failed := false
	pendingBefore := "" // plan: the first phase that would change
	for _, p := range r.Phases {
		name := p.Name()
		switch {
		case !on[name]:
			results = append(results, r.report(Result{Phase: name, Status: Skipped}))
			continue
		case failed:
			results = append(results, r.report(Result{Phase: name, Status: NotRun}))
			continue
		case ctx.Err() != nil:
			failed = true
			results = append(results, r.report(Result{Phase: name, Status: Failed, Error: &Error{Phase: name, What: "interrupted: " + context.Cause(ctx).Error(), Hint: "re-run the same command; finished phases are skipped"}}))
			continue
		}
		if r.Reporter != nil {
			r.Reporter.Started(name, p.Description())
		}
		res := r.runPhase(ctx, p, apply, checkpoints)
		if corrupt != nil && slices.Contains(corrupt.Phases, name) {
			res.Facts = append(res.Facts, "its checkpoint in ConfigMap "+CheckpointConfigMap+" was unreadable; rewritten when the phase converges")
		}
		switch {
		case res.Status == Blocked && pendingBefore != "":
			// A later phase often cannot be observed until an earlier one applies (Vault is not
			// initialized yet, so no login): that is not a failure of the plan.
			res = Result{Phase: name, Status: Blocked, WaitsFor: pendingBefore, Duration: res.Duration}
		case res.Status == Blocked:
			res.Status, failed = Failed, true
		case res.Status == Failed:
			failed = true
		case res.Status == WouldChange && pendingBefore == "":
			pendingBefore = name
		}
		results = append(results, r.report(res))
	}
	return results, nil
}

func (r *Runner) report(res Result) Result {
	if r.Reporter != nil {
		r.Reporter.Finished(res)
	}
	return res
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) runPhase(ctx context.Context, p Phase, apply bool, checkpoints map[string]Checkpoint) (res Result) {
	name := p.Name()
	start := r.now()
	res = Result{Phase: name}
	defer func() { res.Duration = r.now().Sub(start) }()
	fail := func(err error) Result {
		res.Status = Failed
		res.Error = asPhaseError(name, err)
		return res
	}
	diff, err := p.Check(ctx)
	if err != nil {
		res = fail(err)
		if !apply && errors.Is(err, ErrNotYet) {
			res.Status = Blocked
		}
		return res
	}
	res.Facts = diff.Facts
	hash := InputHash(p.Inputs())
	if prev, ok := checkpoints[name]; ok {
		cp := prev
		res.Checkpoint = &cp
	}
	if diff.Empty() {
		res.Status = UpToDate
		if apply {
			if err := r.record(ctx, name, hash, diff, checkpoints); err != nil {
				return fail(err)
			}
		}
		return res
	}
	res.Changes = diff.Changes
	if !apply {
		res.Status = WouldChange
		return res
	}
	if err := p.Apply(ctx, diff); err != nil {
		return fail(err)
	}
	after, err := p.Check(ctx)
	if err != nil {
		return fail(fmt.Errorf("verifying after apply: %w", err))
	}
	if !after.Empty() {
		return fail(Fail("this is a bug in vaultctl or something changed the estate concurrently; run `vaultctl plan` to see the difference",
			"still differs after apply: %s", after.Changes[0]))
	}
	res.Facts = after.Facts
	res.Status = Changed
	if err := r.record(ctx, name, hash, after, checkpoints); err != nil {
		return fail(err)
	}
	return res
}

// record writes a checkpoint only when it is missing or stale, so a second apply writes nothing.
func (r *Runner) record(ctx context.Context, name, hash string, d Diff, checkpoints map[string]Checkpoint) error {
	if r.Store == nil {
		return nil
	}
	if prev, ok := checkpoints[name]; ok && prev.InputHash == hash && prev.Version == r.Version {
		return nil
	}
	cp := Checkpoint{Phase: name, InputHash: hash, Version: r.Version, Time: r.now().UTC(), Summary: strings.Join(d.Facts, "; ")}
	if err := r.Store.Put(ctx, cp); err != nil {
		return Fail("check that your kube credentials may update ConfigMaps in the Vault namespace", "recording checkpoint: %v", err)
	}
	checkpoints[name] = cp
	return nil
}
