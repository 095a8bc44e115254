package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// A rolling upgrade of the in-cluster Vault restarts, one at a time, the server pods whose
// template changed (the StatefulSet is OnDelete, so nothing else does): the standbys first,
// each waiting until it is back, unsealed, a Raft voter and healthy by autopilot; then the
// leader steps down, a new leader takes over (and the active Service's label moves to it), and
// only then is the old leader restarted. A cluster that loses one member at a time keeps its
// quorum, and clients of the active Service see one leader election, not an outage.

// Node is one Vault server pod as the upgrade sees it.
type Node struct {
	Pod      string
	UID      string
	Outdated bool // runs an older pod template than the StatefulSet's
	Leader   bool
}

// StepKind is what a step does.
type StepKind string

const (
	StepRestart  StepKind = "restart"
	StepStepDown StepKind = "step-down"
)

// Step is one action of an upgrade.
type Step struct {
	Kind StepKind `json:"kind"`
	Pod  string   `json:"pod"`
	UID  string   `json:"-"` // the pod restarted: a restart deletes only this pod, not its successor
	// Role is the pod's role when the plan was made: "standby" or "leader".
	Role string `json:"role"`
}

func (s Step) String() string {
	switch s.Kind {
	case StepStepDown:
		return fmt.Sprintf("step-down %s (leader): wait for a new leader", s.Pod)
	default:
		return fmt.Sprintf("restart %s (%s): wait until unsealed, a voter and healthy", s.Pod, s.Role)
	}
}

// PlanRestarts orders the restarts of the outdated pods: standbys one at a time (by name),
// then, when the leader is outdated, its step-down and its restart.
func PlanRestarts(nodes []Node) []Step {
	sorted := append([]Node(nil), nodes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Pod < sorted[j].Pod })
	var steps []Step
	var leader *Node
	for i := range sorted {
		n := &sorted[i]
		switch {
		case !n.Outdated:
		case n.Leader:
			leader = n
		default:
			steps = append(steps, Step{Kind: StepRestart, Pod: n.Pod, UID: n.UID, Role: "standby"})
		}
	}
	if leader != nil {
		steps = append(steps,
			Step{Kind: StepStepDown, Pod: leader.Pod, UID: leader.UID, Role: "leader"},
			Step{Kind: StepRestart, Pod: leader.Pod, UID: leader.UID, Role: "leader"})
	}
	return steps
}

// Cluster is what an upgrade observes and does; the action layer implements it over the
// Kubernetes API and a port-forward to each pod.
type Cluster interface {
	// Healthy reports whether every replica is a healthy voter and there is a leader; when
	// not, problems says why.
	Healthy(ctx context.Context) (ok bool, problems string, err error)
	// DeletePod deletes the pod if it still has uid (the StatefulSet recreates it with the
	// current template).
	DeletePod(ctx context.Context, pod, uid string) error
	// Rejoined reports whether pod was recreated (its UID is not oldUID) and is back: Running
	// and Ready, unsealed, a voter and healthy by autopilot, with the whole cluster healthy.
	// When not, waiting says what is missing.
	Rejoined(ctx context.Context, pod, oldUID string) (ok bool, waiting string, err error)
	// StepDown asks pod, the leader, to step down.
	StepDown(ctx context.Context, pod string) error
	// NewLeader reports whether a pod other than old leads, and carries the active label
	// while old no longer does.
	NewLeader(ctx context.Context, old string) (leader, waiting string, err error)
}

// StepResult is how one step went.
type StepResult struct {
	Step
	Status   string        `json:"status"` // done, failed, not run
	Started  time.Time     `json:"started,omitzero"`
	Duration time.Duration `json:"durationNs"`
	Detail   string        `json:"detail,omitempty"`
}

// Step statuses.
const (
	StepDone   = "done"
	StepFailed = "failed"
	StepNotRun = "not run"
)

// StepError is an upgrade stopped at a step: what failed, what state the cluster is in, and
// the command that goes on.
type StepError struct {
	Step  Step   `json:"step"`
	What  string `json:"what"`
	State string `json:"state"`
	Next  string `json:"next"`
}

func (e *StepError) Error() string {
	return fmt.Sprintf("upgrade stopped at %q: %s", e.Step.String(), e.What)
}

// Upgrader runs the steps of a plan.
type Upgrader struct {
	Cluster Cluster
	// Poll is how often a wait looks again; Timeout bounds each wait.
	Poll, Timeout time.Duration
	// Progress hears what the upgrade waits for; nil: nobody.
	Progress func(line string)
	// Resume is the command that continues after a failure, for messages.
	Resume string
}

func (u *Upgrader) progressf(format string, args ...any) {
	if u.Progress != nil {
		u.Progress(fmt.Sprintf(format, args...))
	}
}

// Run performs the steps in order and stops at the first problem; every step after it is
// "not run". The error is a *StepError.
func (u *Upgrader) Run(ctx context.Context, steps []Step) ([]StepResult, error) {
	res := make([]StepResult, len(steps))
	for i, s := range steps {
		res[i] = StepResult{Step: s, Status: StepNotRun}
	}
	for i, s := range steps {
		t0 := time.Now()
		detail, err := u.run(ctx, s)
		res[i].Started, res[i].Duration, res[i].Detail = t0, time.Since(t0), detail
		if err != nil {
			res[i].Status = StepFailed
			return res, u.stopped(s, err, res)
		}
		res[i].Status = StepDone
	}
	return res, nil
}

func (u *Upgrader) run(ctx context.Context, s Step) (string, error) {
	switch s.Kind {
	case StepRestart:
		// Never take a member away from a cluster that is short of one: that is how quorum is
		// lost. Right after a restart or a new leader, autopilot reports servers unhealthy
		// until it has fresh stats from each, so wait for it rather than fail.
		err := u.wait(ctx, "the cluster to be healthy before restarting "+s.Pod, func() (bool, string, error) {
			return u.Cluster.Healthy(ctx)
		})
		if err != nil {
			return "", &notStarted{err}
		}
		u.progressf("restarting %s (%s)", s.Pod, s.Role)
		if err := u.Cluster.DeletePod(ctx, s.Pod, s.UID); err != nil {
			return "", err
		}
		var last string
		err = u.wait(ctx, fmt.Sprintf("%s to come back", s.Pod), func() (bool, string, error) {
			ok, waiting, err := u.Cluster.Rejoined(ctx, s.Pod, s.UID)
			if !ok && waiting != last {
				u.progressf("%s: waiting for %s", s.Pod, waiting)
				last = waiting
			}
			return ok, waiting, err
		})
		if err != nil {
			return "", err
		}
		return "unsealed, voter, healthy", nil
	case StepStepDown:
		u.progressf("%s steps down", s.Pod)
		if err := u.Cluster.StepDown(ctx, s.Pod); err != nil {
			return "", fmt.Errorf("step-down of %s: %w", s.Pod, err)
		}
		var leader string
		err := u.wait(ctx, "a new leader", func() (bool, string, error) {
			l, waiting, err := u.Cluster.NewLeader(ctx, s.Pod)
			leader = l
			return l != "", waiting, err
		})
		if err != nil {
			return "", err
		}
		return "new leader " + leader, nil
	}
	return "", fmt.Errorf("unknown step %q", s.Kind)
}

// wait polls cond until it holds, the timeout passes or ctx ends. Errors from cond are retried
// (a pod that is restarting refuses connections) and reported if the wait times out.
func (u *Upgrader) wait(ctx context.Context, what string, cond func() (bool, string, error)) error {
	timeout, poll := u.Timeout, u.Poll
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	for {
		ok, waiting, err := cond()
		if ok && err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			why := waiting
			if err != nil {
				why = err.Error()
			}
			return fmt.Errorf("waited %s for %s: %s", timeout, what, why)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(poll):
		}
	}
}

func (u *Upgrader) stopped(s Step, err error, res []StepResult) error {
	var done []string
	for _, r := range res {
		if r.Status == StepDone {
			done = append(done, r.Kind.verb()+" "+r.Pod)
		}
	}
	state := "nothing done yet"
	if len(done) > 0 {
		state = "done: " + strings.Join(done, ", ")
	}
	var ns *notStarted
	switch {
	case errors.As(err, &ns):
		state += fmt.Sprintf("; %s was not restarted", s.Pod)
	case s.Kind == StepRestart:
		state += fmt.Sprintf("; %s was deleted and has not rejoined (kubectl get pod %s; kubectl logs %s)", s.Pod, s.Pod, s.Pod)
	case s.Kind == StepStepDown:
		state += fmt.Sprintf("; %s was asked to step down", s.Pod)
	}
	resume := u.Resume
	if resume == "" {
		resume = "vaultctl upgrade"
	}
	next := fmt.Sprintf("fix the cause, check `vaultctl status` shows the cluster healthy, then run `%s` again: it restarts only the pods still on the old template", resume)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		next = fmt.Sprintf("run `%s` again: it restarts only the pods still on the old template", resume)
	}
	return &StepError{Step: s, What: err.Error(), State: state, Next: next}
}

// notStarted is a step that failed before it changed anything.
type notStarted struct{ err error }

func (e *notStarted) Error() string { return e.err.Error() }
func (e *notStarted) Unwrap() error { return e.err }

func (k StepKind) verb() string {
	if k == StepStepDown {
		return "stepped down"
	}
	return "restarted"
}
