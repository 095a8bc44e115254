package action

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

// UpgradeOptions are upgrade's choices.
type UpgradeOptions struct {
	// Plan shows what would be done, in order, and does nothing.
	Plan bool
	// LockTimeout is how long to wait for another run's apply lock; 0 refuses at once.
	LockTimeout time.Duration
	// WaitTimeout bounds each wait (a pod rejoining, a new leader); 0 means 5 minutes.
	WaitTimeout time.Duration
	// Poll is how often the waits look; 0 means 500ms.
	Poll time.Duration
}

// UpgradeResult is what upgrade did, or (with Plan) would do.
type UpgradeResult struct {
	Plan bool `json:"plan"`
	// NothingToDo: the chart is current and every pod runs the StatefulSet's template.
	NothingToDo bool `json:"nothingToDo"`
	// Preflight is set when it failed: nothing else ran.
	Preflight *phases.Result `json:"preflight,omitempty"`
	// Server is the server phase: its check (plan) or its apply (the Helm upgrade).
	Server *phases.Result `json:"server,omitempty"`
	// ChartChanges lists what the Helm upgrade changes; with Plan and chart changes, Steps
	// restart every pod (the new template is not known before the upgrade).
	ChartChanges []string `json:"chartChanges,omitempty"`
	// Snapshot is the Raft snapshot taken first (its file and record).
	SnapshotPath string                    `json:"snapshotPath,omitempty"`
	Snapshot     *lifecycle.SnapshotRecord `json:"snapshot,omitempty"`
	Steps        []lifecycle.StepResult    `json:"steps"`
	Health       *phases.ClusterHealth     `json:"health,omitempty"`
	// Failure is where the upgrade stopped, with the state and the next command.
	Failure  *lifecycle.StepError `json:"failure,omitempty"`
	Warnings []string             `json:"warnings,omitempty"`
}

// Upgrade applies a changed server chart to the in-cluster Vault and restarts the pods whose
// template changed, without an outage: a Raft snapshot first, then the Helm upgrade (the server
// phase), then the standbys one at a time, each back, unsealed, a voter and healthy before the
// next, then the leader's step-down, a new leader, and the old leader's restart. It holds the
// apply lock throughout and stops at the first problem (a *lifecycle.StepError, also in the
// result's Failure). A second run finds nothing to do.
func Upgrade(ctx context.Context, c *Configuration, o UpgradeOptions) (*UpgradeResult, error) {
	cfg := c.config()
	if cfg.External() {
		return nil, phases.Fail("upgrade Vault where it runs; vaultctl upgrade restarts the pods of the Vault it installed (vault.mode: in-cluster)",
			"vault.mode is external: there are no Vault pods to upgrade")
	}
	res := &UpgradeResult{Plan: o.Plan, Steps: []lifecycle.StepResult{}}
	sc := scope{name: "upgrade", preflight: true, lease: ApplyLease, lockWait: o.LockTimeout}
	if o.Plan {
		sc.lease = ""
	}
	ss, err := c.run(ctx, sc, func(ctx context.Context, ss *session) error {
		return c.upgrade(ctx, ss, o, res)
	})
	if ss != nil {
		res.Warnings = append(res.Warnings, ss.warnings...)
		if ss.preflightFailed() {
			res.Preflight = ss.preflight
			return res, ss.preflight.Error
		}
	}
	return res, err
}

func (c *Configuration) upgrade(ctx context.Context, ss *session, o UpgradeOptions, res *UpgradeResult) error {
	env := ss.env
	ns := env.Config.Vault.Namespace
	srv, ok := find(ss.phases, "server").(*phases.Server)
	if !ok {
		return errors.New("this build has no server phase")
	}
	diff, err := srv.Check(ctx)
	if err != nil {
		return err
	}
	for _, ch := range diff.Changes {
		if ch.Object == "Vault pods" {
			return phases.Fail("run `vaultctl apply` and wait for every pod; upgrade starts only from a running cluster", "not every Vault pod runs: %s", ch.Detail)
		}
		if ch.Action == phases.Create {
			return phases.Fail("run `vaultctl apply` to install Vault first", "Vault is not installed in namespace %s", ns)
		}
		res.ChartChanges = append(res.ChartChanges, ch.String())
	}
	pending, err := srv.PendingRestarts(ctx)
	if err != nil {
		return err
	}
	health, err := env.Health(ctx)
	if err != nil {
		return err
	}
	res.Health = health
	if len(res.ChartChanges) == 0 && len(pending) == 0 {
		res.NothingToDo = true
		res.Server = &phases.Result{Phase: srv.Name(), Status: phases.UpToDate, Facts: diff.Facts}
		return nil
	}
	if !health.Healthy {
		return phases.Fail("make the cluster healthy first (vaultctl status; vaultctl apply --only raft waits for joining nodes): restarting a member of a degraded cluster can lose the quorum",
			"the Vault cluster is not healthy: %s", joinProblems(health.Problems))
	}
	pods, err := env.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: charts.ServerSelector})
	if err != nil {
		return phases.Fail("check that your kube credentials may list pods in namespace "+ns, "listing Vault pods: %v", err)
	}
	if o.Plan {
		res.Server = &phases.Result{Phase: srv.Name(), Status: phases.WouldChange, Changes: diff.Changes, Facts: diff.Facts}
		outdated := podsOf(pending)
		for _, p := range pods.Items {
			if len(res.ChartChanges) > 0 {
				outdated[p.Name] = true
			}
		}
		for _, s := range lifecycle.PlanRestarts(nodesOf(pods.Items, outdated, health.Leader)) {
			res.Steps = append(res.Steps, lifecycle.StepResult{Step: s, Status: lifecycle.StepNotRun})
		}
		return nil
	}

	admin, err := env.Vault.Admin(ctx)
	if err != nil {
		return err
	}
	if err := c.upgradeSnapshot(ctx, env, admin, res); err != nil {
		return err
	}
	if len(res.ChartChanges) > 0 {
		r := &phases.Runner{Phases: []phases.Phase{srv}, Store: store(env), Reporter: c.reporter(ctx, ""), Version: c.Version}
		rs, err := r.Apply(ctx, phases.Selection{})
		if len(rs) == 1 {
			rs[0] = explainLoss(ctx, rs[0])
			res.Server = &rs[0]
			if rs[0].Status == phases.Failed && err == nil {
				err = rs[0].Error
			}
		}
		if err != nil {
			return err
		}
		if pending, err = c.pendingAfterUpgrade(ctx, env, srv); err != nil {
			return err
		}
		if pods, err = env.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: charts.ServerSelector}); err != nil {
			return phases.Fail("check that your kube credentials may list pods in namespace "+ns, "listing Vault pods: %v", err)
		}
	} else {
		res.Server = &phases.Result{Phase: srv.Name(), Status: phases.UpToDate, Facts: diff.Facts}
	}

	secret, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, env.Config.Vault.TLS.SecretName, metav1.GetOptions{})
	if err != nil {
		return phases.Fail("check that your kube credentials may read Secrets in namespace "+ns, "reading Vault's TLS Secret %s/%s: %v", ns, env.Config.Vault.TLS.SecretName, err)
	}
	cluster := newPodCluster(env, admin.Token(), secret.Data["ca.crt"])
	defer cluster.close()
	steps := lifecycle.PlanRestarts(nodesOf(pods.Items, podsOf(pending), health.Leader))
	u := &lifecycle.Upgrader{Cluster: cluster, Poll: o.Poll, Timeout: o.WaitTimeout, Resume: "vaultctl upgrade",
		Progress: func(line string) { phases.Progressf(ctx, "%s", line) }}
	res.Steps, err = u.Run(ctx, steps)
	if h, herr := cluster.health(ctx, ""); herr == nil {
		res.Health = h
	}
	var stop *lifecycle.StepError
	if errors.As(err, &stop) {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, ErrLockLost) {
			stop.What = fmt.Sprintf("interrupted: %v (%s)", cause, stop.What)
		}
		res.Failure = stop
		return stop
	}
	return err
}

// upgradeSnapshot takes the Raft snapshot every upgrade starts with, into vault.snapshots.dir.
func (c *Configuration) upgradeSnapshot(ctx context.Context, env *phases.Env, admin vault.Client, res *UpgradeResult) error {
	cfg := env.Config
	name := fmt.Sprintf("vault-%s-%s-before-upgrade.snap", cfg.Vault.Namespace, time.Now().UTC().Format("20060102T150405Z"))
	path := filepath.Join(cfg.Vault.Snapshots.Dir, name)
	phases.Progressf(ctx, "taking a Raft snapshot into %s", path)
	rec, err := saveSnapshot(ctx, env, admin, path)
	if err != nil {
		return phases.Fail("fix the cause (vault.snapshots.dir must be writable; vaultctl-admin needs sys/storage/raft/snapshot: `vaultctl apply` grants it), then run vaultctl upgrade again; nothing was changed",
			"upgrade takes a Raft snapshot first, and that failed: %v", err)
	}
	res.SnapshotPath, res.Snapshot = path, rec
	return nil
}

// pendingAfterUpgrade waits until the StatefulSet controller has seen the new template (its
// revision decides which pods are outdated), then lists the pods to restart.
func (c *Configuration) pendingAfterUpgrade(ctx context.Context, env *phases.Env, srv *phases.Server) ([]phases.Change, error) {
	ns := env.Config.Vault.Namespace
	deadline := time.Now().Add(time.Minute)
	for {
		sts, err := env.Kube.AppsV1().StatefulSets(ns).Get(ctx, charts.FullName, metav1.GetOptions{})
		if err != nil {
			return nil, phases.Fail("check that your kube credentials may read StatefulSets in namespace "+ns, "reading StatefulSet %s/%s: %v", ns, charts.FullName, err)
		}
		if sts.Status.ObservedGeneration >= sts.Generation && sts.Status.UpdateRevision != "" {
			break
		}
		if time.Now().After(deadline) {
			c.debugf("upgrade: the StatefulSet controller has not observed generation %d yet; deciding by the config checksum", sts.Generation)
			break
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return srv.PendingRestarts(ctx)
}

// podsOf names the pods of Restart changes ("pod NS/NAME").
func podsOf(cs []phases.Change) map[string]bool {
	out := map[string]bool{}
	for _, c := range cs {
		obj := strings.TrimPrefix(c.Object, "pod ")
		if i := strings.LastIndex(obj, "/"); i >= 0 {
			obj = obj[i+1:]
		}
		out[obj] = true
	}
	return out
}

func nodesOf(pods []corev1.Pod, outdated map[string]bool, leader string) []lifecycle.Node {
	var nodes []lifecycle.Node
	for _, p := range pods {
		nodes = append(nodes, lifecycle.Node{Pod: p.Name, UID: string(p.UID), Outdated: outdated[p.Name], Leader: p.Name == leader})
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Pod < nodes[j].Pod })
	return nodes
}
