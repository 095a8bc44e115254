// Package action is what vaultctl's commands do, as a library: every action connects to the
// estate, proves with preflight that it can work before anything is written, holds the Lease of
// its scope while it changes things, runs, and closes. The CLI binds flags, calls one action and
// renders what it returns; nothing here prints.
package action

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

// Configuration is what every action shares: the config, how to report, and how to reach the
// estate. The zero values of the hooks are the real thing; tests replace them.
type Configuration struct {
	Config  *config.Config
	Version string // recorded in checkpoints

	// Reporter hears each phase start and finish; nil: nobody.
	Reporter phases.Reporter
	// Progress hears what a long phase is doing; nil: nobody.
	Progress func(line string)
	// Debug hears the action's own steps (connect, preflight, lock taken, renewed, released,
	// each phase's outcome), for -v. It may be called from the lock's renewal goroutine.
	Debug func(line string)

	// Connect opens the estate; nil means phases.Connect.
	Connect func(ctx context.Context, cfg *config.Config) (*phases.Env, error)
	// Phases lists the installer's phases; nil means phases.All.
	Phases func(env *phases.Env) []phases.Phase
	// LockTiming tunes every Lease an action holds; zero fields are the defaults.
	LockTiming LockTiming
}

// ErrInvalidSelection marks an --only/--skip/--from that names no phase: a usage error, found
// before anything is contacted.
var ErrInvalidSelection = errors.New("invalid phase selection")

type selectionError struct{ err error }

func (e *selectionError) Error() string        { return e.err.Error() }
func (e *selectionError) Is(target error) bool { return target == ErrInvalidSelection }

// PhaseNames lists the installer's phases in order; it needs no cluster.
func (c *Configuration) PhaseNames() []string {
	var names []string
	for _, p := range c.phases(&phases.Env{Config: c.config()}) {
		names = append(names, p.Name())
	}
	return names
}

func (c *Configuration) config() *config.Config {
	if c.Config != nil {
		return c.Config
	}
	return &config.Config{}
}

func (c *Configuration) phases(env *phases.Env) []phases.Phase {
	if c.Phases != nil {
		return c.Phases(env)
	}
	return phases.All(env)
}

func (c *Configuration) debugf(format string, args ...any) {
	if c.Debug != nil {
		c.Debug(fmt.Sprintf(format, args...))
	}
}

// selected says which phases sel picks. It asks the runner itself, on stand-ins that do nothing,
// so that selection has one definition and an unknown name is refused before connecting.
func (c *Configuration) selected(sel phases.Selection) (map[string]bool, error) {
	var stubs []phases.Phase
	for _, n := range c.PhaseNames() {
		stubs = append(stubs, stub(n))
	}
	rs, err := (&phases.Runner{Phases: stubs}).Plan(context.Background(), sel)
	if err != nil {
		return nil, &selectionError{err}
	}
	on := map[string]bool{}
	for _, r := range rs {
		on[r.Phase] = r.Status != phases.Skipped
	}
	return on, nil
}

type stub string

func (s stub) Name() string                               { return string(s) }
func (s stub) Description() string                        { return "" }
func (s stub) Inputs() any                                { return nil }
func (s stub) Check(context.Context) (phases.Diff, error) { return phases.Diff{}, nil }
func (s stub) Apply(context.Context, phases.Diff) error   { return nil }

// scope is what an action holds around its work.
type scope struct {
	name      string // the command, in messages: "apply"
	preflight bool   // run the preflight phase first: nothing is written before it passes
	prune     bool   // build the phases with Prune: they take it when they are built
	lease     string // hold this Lease in the Vault namespace while the work runs; "" = none
	lockWait  time.Duration
}

// session is one action's hold on the estate.
type session struct {
	env       *phases.Env
	phases    []phases.Phase
	preflight *phases.Result // preflight's outcome, when the scope asks for it
	warnings  []string       // problems that did not change the outcome (lock not released)
}

func (s *session) preflightFailed() bool {
	return s.preflight != nil && s.preflight.Status == phases.Failed
}

// run is the life every action shares: connect, preflight, lock, work, release, close. work runs
// only once preflight passed and the lock is held; its context is cancelled, with a *LostError
// as the cause, when the lock is lost. The session comes back whenever connecting succeeded.
func (c *Configuration) run(ctx context.Context, s scope, work func(ctx context.Context, ss *session) error) (*session, error) {
	if c.Progress != nil || c.Debug != nil {
		ctx = phases.WithProgress(ctx, func(line string) {
			if c.Progress != nil {
				c.Progress(line)
			}
			c.debugf("progress: %s", line)
		})
	}
	c.debugf("%s: connecting (kubeconfig, KMS client; nothing is contacted yet)", s.name)
	connect := c.Connect
	if connect == nil {
		connect = phases.Connect
	}
	env, err := connect(ctx, c.config())
	if err != nil {
		return nil, err
	}
	defer func() {
		env.Close(context.WithoutCancel(ctx))
		c.debugf("%s: closed", s.name)
	}()
	env.Prune = s.prune
	ss := &session{env: env, phases: c.phases(env), warnings: env.Warnings}
	if s.preflight {
		c.runPreflight(ctx, ss)
		if ss.preflightFailed() {
			return ss, nil
		}
	}
	if s.lease != "" {
		lock := &Lock{
			Client: env.Kube, Namespace: env.Config.Vault.Namespace, Name: s.lease, Purpose: s.name,
			Wait: s.lockWait, LockTiming: c.LockTiming, Log: c.Debug,
		}
		runCtx, err := lock.Acquire(ctx)
		if err != nil {
			return ss, err
		}
		env.PreviousRunDied = lock.TookOverDead
		parent := ctx // release even when the run's context ended with the lock
		defer func() {
			if err := lock.Release(parent); err != nil {
				ss.warnings = append(ss.warnings, err.Error())
			}
		}()
		ctx = runCtx
	}
	return ss, work(ctx, ss)
}

// runPreflight runs the preflight phase on its own, without a checkpoint store: checkpoints
// live in the Vault namespace, and nothing may be created before preflight has passed.
func (c *Configuration) runPreflight(ctx context.Context, ss *session) {
	pre := find(ss.phases, preflightPhase)
	if pre == nil {
		return
	}
	c.debugf("preflight: before anything is written")
	rs, _ := (&phases.Runner{Phases: []phases.Phase{pre}, Reporter: c.reporter(ctx, ""), Version: c.Version}).Apply(ctx, phases.Selection{})
	if len(rs) == 1 {
		ss.preflight = &rs[0]
	}
}

const preflightPhase = "preflight"

func find(ps []phases.Phase, name string) phases.Phase {
	for _, p := range ps {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// RunResult is what plan and apply return.
type RunResult struct {
	Command  string
	OK       bool
	Changes  int
	Phases   []phases.Result
	Failure  *phases.Error // the first failed phase
	Warnings []string      // did not change the outcome, but the user should know
}

func (r *RunResult) finish(err error) {
	r.OK, r.Changes, r.Failure = err == nil, 0, nil
	for _, p := range r.Phases {
		r.Changes += len(p.Changes)
		if p.Status == phases.Failed && r.Failure == nil {
			r.OK, r.Failure = false, p.Error
		}
	}
}

// PlanOptions are plan's choices.
type PlanOptions struct {
	Selection phases.Selection
	// Prune also lists what apply --prune would delete; plan deletes nothing.
	Prune bool
}

// Plan observes every selected phase and lists what apply would change. It takes no lock and
// writes nothing. Like apply, it runs preflight first, selected or not: an unreachable or
// hanging cluster is then explained (and shown as preflight running) before anything else
// waits on it, and a failed preflight leaves the others "not run".
func Plan(ctx context.Context, c *Configuration, o PlanOptions) (*RunResult, error) {
	on, err := c.selected(o.Selection)
	if err != nil {
		return nil, err
	}
	return c.runSelected(ctx, scope{name: "plan", preflight: true, prune: o.Prune}, on, false)
}

// ApplyOptions are apply's choices.
type ApplyOptions struct {
	Selection phases.Selection
	// Prune deletes what vaultctl created and the config no longer lists.
	Prune bool
	// LockTimeout is how long to wait for another apply's lock; 0 refuses at once.
	LockTimeout time.Duration
}

// Apply converges the selected phases. Preflight always runs first, selected or not, and
// nothing is written (not even the Vault namespace or the lock) unless it passes; then the
// apply Lease is taken and the phases run. A failed preflight leaves the others "not run".
func Apply(ctx context.Context, c *Configuration, o ApplyOptions) (*RunResult, error) {
	on, err := c.selected(o.Selection)
	if err != nil {
		return nil, err
	}
	return c.runSelected(ctx, scope{name: "apply", preflight: true, prune: o.Prune, lease: ApplyLease, lockWait: o.LockTimeout}, on, true)
}

// runSelected is plan and apply: preflight (run by c.run), then the phases on selects, checked
// (plan) or converged (apply).
func (c *Configuration) runSelected(ctx context.Context, s scope, on map[string]bool, apply bool) (*RunResult, error) {
	res := &RunResult{Command: s.name}
	ss, err := c.run(ctx, s, func(ctx context.Context, ss *session) error {
		list, skip := make([]phases.Phase, 0, len(ss.phases)), []string(nil)
		for _, p := range ss.phases {
			switch {
			case p.Name() == preflightPhase && ss.preflight != nil:
				// Its Check already ran: replay it, so that (in apply) its checkpoint is
				// recorded now that the lock is held, without probing everything twice.
				list = append(list, observed{p, phases.Diff{Facts: ss.preflight.Facts}})
			case !on[p.Name()]:
				list, skip = append(list, p), append(skip, p.Name())
			default:
				list = append(list, p)
			}
		}
		r := &phases.Runner{Phases: list, Store: store(ss.env), Reporter: c.reporter(ctx, preflightPhase), Version: c.Version}
		run := r.Plan
		if apply {
			run = r.Apply
		}
		rs, err := run(ctx, phases.Selection{Skip: skip})
		for i := range rs {
			rs[i] = explainLoss(ctx, rs[i])
			if rs[i].Phase == preflightPhase && rs[i].Status == phases.UpToDate && ss.preflight != nil {
				cp := rs[i].Checkpoint
				rs[i] = *ss.preflight
				rs[i].Checkpoint = cp
			}
		}
		res.Phases = rs
		return err
	})
	if ss != nil {
		if ss.preflight != nil && len(res.Phases) == 0 {
			res.Phases = append(res.Phases, *ss.preflight)
		}
		if ss.preflightFailed() {
			rep := c.reporter(ctx, "")
			for _, p := range ss.phases {
				if p.Name() == preflightPhase {
					continue
				}
				r := phases.Result{Phase: p.Name(), Status: phases.NotRun}
				if !on[p.Name()] {
					r.Status = phases.Skipped
				}
				rep.Finished(r)
				res.Phases = append(res.Phases, r)
			}
		}
		res.Warnings = ss.warnings
	}
	res.finish(err)
	return res, err
}

// observed is a phase whose Check already ran in this process.
type observed struct {
	phases.Phase
	diff phases.Diff
}

func (o observed) Check(context.Context) (phases.Diff, error) { return o.diff, nil }
func (o observed) Apply(context.Context, phases.Diff) error   { return nil }

// explainLoss makes a phase that failed because the lock was lost say so: its own error is
// usually just "context canceled".
func explainLoss(ctx context.Context, r phases.Result) phases.Result {
	cause := context.Cause(ctx)
	var lost *LostError
	if r.Status != phases.Failed || r.Error == nil || !errors.As(cause, &lost) || strings.Contains(r.Error.What, cause.Error()) {
		return r
	}
	e := *r.Error
	e.What = fmt.Sprintf("interrupted: %v (the phase stopped with: %s)", cause, e.What)
	e.Hint = fmt.Sprintf("make sure only one vaultctl %s runs against this cluster, then re-run the same command; finished phases are re-checked, not redone", lost.Purpose)
	r.Error = &e
	return r
}

func store(env *phases.Env) phases.CheckpointStore {
	return &phases.ConfigMapStore{Client: env.Kube, Namespace: env.Config.Vault.Namespace}
}

// reporter passes phase events on to the configured Reporter and the debug log. hide names a
// phase whose events were already reported (preflight, replayed by apply's main run); its
// replayed success is not shown twice. Lost-lock failures are explained before anyone sees them.
func (c *Configuration) reporter(ctx context.Context, hide string) phases.Reporter {
	return &relay{c: c, ctx: ctx, hide: hide}
}

type relay struct {
	c    *Configuration
	ctx  context.Context
	hide string
}

func (r *relay) Started(phase, description string) {
	if phase == r.hide {
		return
	}
	r.c.debugf("phase %s: started", phase)
	if r.c.Reporter != nil {
		r.c.Reporter.Started(phase, description)
	}
}

func (r *relay) Finished(res phases.Result) {
	res = explainLoss(r.ctx, res)
	if res.Phase == r.hide && res.Status == phases.UpToDate {
		return
	}
	line := fmt.Sprintf("phase %s: %s", res.Phase, res.Status)
	if res.Status != phases.Skipped && res.Status != phases.NotRun {
		line += fmt.Sprintf(" (%s)", res.Duration.Round(time.Millisecond))
	}
	r.c.debugf("%s", line)
	if r.c.Reporter != nil {
		r.c.Reporter.Finished(res)
	}
}

// StatusResult is what status returns: the checkpoints and Vault's health.
type StatusResult struct {
	Phases []phases.PhaseStatus
	Vault  *phases.ClusterHealth
	// VaultErr says why Vault's health could not be read.
	VaultErr error
	// Keys is the age record of the keys `vaultctl rotate` rotates (nil when Vault is unreachable).
	Keys []lifecycle.KeyAge
	// Warnings did not change the outcome, but the user should know (the VAULT_* environment).
	Warnings []string
}

// Status reads the checkpoints and Vault's health. It takes no lock and writes nothing. On an
// error only the result's Warnings are set.
func Status(ctx context.Context, c *Configuration) (*StatusResult, error) {
	out := &StatusResult{}
	_, err := c.run(ctx, scope{name: "status"}, func(ctx context.Context, ss *session) error {
		out.Warnings = ss.warnings
		rows, err := ss.env.PhaseStatuses(ctx)
		if err != nil {
			return err
		}
		out.Phases = rows
		out.Vault, out.VaultErr = ss.env.Health(ctx)
		if out.VaultErr == nil {
			out.Keys = KeyAges(ctx, ss.env)
		}
		return nil
	})
	if err != nil {
		return &StatusResult{Warnings: out.Warnings}, err
	}
	return out, nil
}

// RecoveryKeys opens the recovery keys in custody with KMS. The caller decides where they go;
// they are never logged.
func RecoveryKeys(ctx context.Context, c *Configuration) (*phases.RecoveryKeys, error) {
	var keys *phases.RecoveryKeys
	_, err := c.run(ctx, scope{name: "recovery-keys"}, func(ctx context.Context, ss *session) error {
		var err error
		keys, err = ss.env.ReadRecoveryKeys(ctx)
		return err
	})
	return keys, err
}
