package waves

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/manifests"
)

// MigrateFunc runs `migrate namespace NS --yes` (limited to workloads, KIND/NAME, when given)
// and says whether every workload it touched is verified; the action layer provides it.
type MigrateFunc func(ctx context.Context, ns string, workloads []string) (failed []string, err error)

// Runner runs waves.
type Runner struct {
	Observer
	Migrate MigrateFunc
	// Progress hears each step; nil: nobody.
	Progress func(format string, args ...any)
}

// Step is one thing running a wave does.
type Step struct {
	What string `json:"what"`
	// Done is filled in by a run: what changed ("" when it was already so).
	Done string `json:"done,omitempty"`
}

// RunResult is what `migrate next` or `migrate wave NAME` did or would do.
type RunResult struct {
	Wave    string       `json:"wave"` // "" when every wave is complete
	Planned bool         `json:"planned"`
	Steps   []Step       `json:"steps"`
	Blocked []GateResult `json:"blocked"` // failing gates: nothing was run
	// Before is the wave's status when the run started; After once it ended (nil for a plan
	// or a blocked run).
	Before *WaveStatus `json:"before,omitempty"`
	After  *WaveStatus `json:"after,omitempty"`
	// AlreadyComplete: the wave was complete; the run only re-applied what it establishes.
	AlreadyComplete bool `json:"alreadyComplete,omitempty"`
}

// ErrBlocked marks a run stopped by failing gates.
var ErrBlocked = errors.New("gates failing")

// ErrUnknownWave marks `migrate wave NAME` with a name the config does not define.
var ErrUnknownWave = errors.New("unknown wave")

// Run runs the named wave, or the first incomplete one when name is "". With plan it only says
// what it would do. A wave whose gates fail is not started: the result lists them and the error
// is ErrBlocked.
func (r *Runner) Run(ctx context.Context, name string, plan bool) (*RunResult, error) {
	st, err := r.Status(ctx)
	if err != nil {
		return nil, err
	}
	res := &RunResult{Planned: plan, Steps: []Step{}, Blocked: []GateResult{}}
	if name == "" {
		name = st.Next
		if name == "" {
			return res, nil
		}
	}
	ws := st.Wave(name)
	if ws == nil {
		var names []string
		for _, w := range r.Config.Migration.Waves {
			names = append(names, w.Name)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%w %q: the config has no migration.waves", ErrUnknownWave, name)
		}
		return nil, fmt.Errorf("%w %q: the config's waves are %s", ErrUnknownWave, name, strings.Join(names, ", "))
	}
	var w config.Wave
	idx := 0
	for i, cw := range r.Config.Migration.Waves {
		if cw.Name == name {
			w, idx = cw, i
		}
	}
	res.Wave, res.Before, res.AlreadyComplete = name, ws, ws.Complete
	res.Steps = r.steps(st, idx, w)
	if b := ws.Blocking(); len(b) > 0 {
		res.Blocked = b
		if plan {
			return res, nil // the plan shows what blocks it; running it would stop here
		}
		return res, fmt.Errorf("wave %s: %w: %s", name, ErrBlocked, gateNames(b))
	}
	if plan {
		return res, nil
	}
	for i := range res.Steps {
		done, err := r.runStep(ctx, w, res.Steps[i])
		res.Steps[i].Done = done
		if err != nil {
			return res, fmt.Errorf("wave %s: %s: %w", name, res.Steps[i].What, err)
		}
	}
	after, err := r.Status(ctx)
	if err != nil {
		return res, err
	}
	res.After = after.Wave(name)
	if !res.After.Complete {
		return res, fmt.Errorf("wave %s ran but is not complete: %s", name, res.After.Detail)
	}
	if err := r.recordFinished(ctx, w); err != nil {
		return res, err
	}
	if final, err := r.Status(ctx); err == nil {
		res.After = final.Wave(name)
	}
	return res, nil
}

func gateNames(gs []GateResult) string {
	var names []string
	for _, g := range gs {
		names = append(names, g.Gate)
	}
	return strings.Join(names, ", ")
}

// guardOn says whether a CI guard wave before i is complete: from then on every wave's
// namespaces are labelled when they are migrated.
func guardOn(st *Status, i int) bool {
	for _, w := range st.Waves[:i] {
		if w.Kind == KindGuard && w.Complete {
			return true
		}
	}
	return false
}

const (
	stepMigrate   = "migrate namespace "
	stepAdmission = "install the admission policy and binding (" + manifests.AdmissionPolicyFile + ")"
	stepLabel     = "label namespace "
	stepGates     = "confirm the gates hold"
)

// steps is what running wave i does, in order.
func (r *Runner) steps(st *Status, i int, w config.Wave) []Step {
	var out []Step
	switch KindOf(w) {
	case KindNamespaces:
		for _, ns := range namespacesOf(w) {
			s := stepMigrate + ns
			if wl := workloadsIn(w, ns); len(wl) > 0 {
				s += " --workload " + strings.Join(wl, " --workload ")
			}
			out = append(out, Step{What: s})
		}
		if guardOn(st, i) {
			for _, ns := range namespacesOf(w) {
				out = append(out, Step{What: stepLabel + ns + " " + manifests.MigratedLabel + "=true"})
			}
		}
	case KindGuard:
		out = append(out, Step{What: stepAdmission})
		for _, prev := range st.Waves[:i] {
			// Only completed waves: a label on a namespace still to migrate would deny the
			// Secrets its workloads still need.
			if prev.Kind != KindNamespaces || !prev.Complete {
				continue
			}
			for _, s := range prev.States {
				out = append(out, Step{What: stepLabel + s.Namespace + " " + manifests.MigratedLabel + "=true"})
			}
		}
	case KindGates:
		out = append(out, Step{What: stepGates})
	}
	return out
}

func (r *Runner) progress(format string, args ...any) {
	if r.Progress != nil {
		r.Progress(format, args...)
	}
}

func (r *Runner) runStep(ctx context.Context, w config.Wave, s Step) (string, error) {
	switch {
	case strings.HasPrefix(s.What, stepMigrate):
		ns := strings.Fields(strings.TrimPrefix(s.What, stepMigrate))[0]
		r.progress("wave %s: migrating namespace %s", w.Name, ns)
		failed, err := r.Migrate(ctx, ns, workloadsIn(w, ns))
		if err != nil {
			return "", err
		}
		if len(failed) > 0 {
			return "", fmt.Errorf("not verified: %s (vaultctl migrate namespace %s --plan shows where it stands)", strings.Join(failed, ", "), ns)
		}
		return "migrated", nil
	case s.What == stepAdmission:
		r.progress("wave %s: installing the admission policy", w.Name)
		changed, err := EnsureAdmissionPolicy(ctx, r.Kube)
		return strings.Join(changed, "; "), err
	case strings.HasPrefix(s.What, stepLabel):
		ns := strings.Fields(strings.TrimPrefix(s.What, stepLabel))[0]
		changed, err := labelMigrated(ctx, r.Kube, ns)
		if changed {
			return "labelled", err
		}
		return "", err
	}
	return "", nil
}
