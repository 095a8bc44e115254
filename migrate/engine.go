package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/manifests"
)

// EngineVault is what the engine needs of Vault: the copies and backups, and for --purge the
// policies and roles it created.
type EngineVault interface {
	vault.KV
	vault.ACL
	vault.AuthRoles
}

// Engine runs a namespace's migration from its plan. It observes before it acts and records
// every step in the journal, so a run killed anywhere is finished by the next one.
type Engine struct {
	Kube      kubernetes.Interface
	Vault     EngineVault
	Namespace string
	KVMounts  []string
	AuthMount string // the Kubernetes auth mount, e.g. "kubernetes"
	Journal   JournalStore

	// Access puts a workload's ServiceAccount, policy and role in place; Prove logs in as the
	// workload and reads back what it will read. Both are idempotent.
	Access func(ctx context.Context, wp WorkloadPlan) error
	Prove  func(ctx context.Context, wp WorkloadPlan) error
	// GuardRails admits the run's workloads through vaultctl's own guard rails (NetworkPolicies,
	// client-jwt's auth-delegator binding) before any of them is proven or patched; nil: none.
	GuardRails func(ctx context.Context, wps []WorkloadPlan) error
	// VaultNamespace is the installation's, where --purge looks for migrate's NetworkPolicies.
	VaultNamespace string

	Overwrite       bool          // replace a conflicting KV entry
	RolloutTimeout  time.Duration // how long a rollout may take before it is rolled back
	RolloutInterval time.Duration
	Concurrency     int // Secrets copied at once (default 16)
	// WorkloadConcurrency is how many workloads are taken through access, proof, patch and
	// rollout at once (default 16: most of a workload's time is waiting on Vault, the API
	// server and its controller, not work).
	WorkloadConcurrency int
	Progress            func(format string, args ...any)
}

// SecretOutcome is what the run did to one Secret.
type SecretOutcome struct {
	Name    string `json:"name"`
	KVPath  string `json:"kvPath"`
	Copy    string `json:"copy"`   // created, unchanged, overwritten
	Backup  string `json:"backup"` // written, unchanged
	Version int    `json:"kvVersion"`
	Error   string `json:"error,omitempty"`
}

// WorkloadOutcome is what the run did to one workload.
type WorkloadOutcome struct {
	Workload string        `json:"workload"`
	State    WorkloadState `json:"state"`
	Changed  bool          `json:"changed"`
	Message  string        `json:"message,omitempty"`
}

// Report is one run's result.
type Report struct {
	Secrets   []SecretOutcome   `json:"secrets"`
	Workloads []WorkloadOutcome `json:"workloads"`
	Pruned    []string          `json:"pruned,omitempty"`
	Kept      []string          `json:"keptForNow,omitempty"` // migrated Secrets prune left, with why
	Labelled  bool              `json:"labelled,omitempty"`
}

// Failed reports whether any Secret or workload failed.
func (r *Report) Failed() bool {
	for _, s := range r.Secrets {
		if s.Error != "" {
			return true
		}
	}
	for _, w := range r.Workloads {
		if w.State == WorkloadFailed {
			return true
		}
	}
	return false
}

func (e *Engine) progress(format string, args ...any) {
	if e.Progress != nil {
		e.Progress(format, args...)
	}
}

func (e *Engine) mountOf(kvPath string) (mount, rest string, err error) {
	mount = config.KVMountOf(e.KVMounts, kvPath)
	if mount == "" {
		return "", "", fmt.Errorf("KV path %s is on no kv mount of the config (%v)", kvPath, e.KVMounts)
	}
	return mount, kvPath[len(mount)+1:], nil
}

// backupMount is where the namespace's backups go: the mount of its first migrated Secret, else
// the first kv mount.
func (e *Engine) backupMount(p *Plan) string {
	for _, s := range p.Secrets {
		if s.Action == SecretMigrate {
			if m, _, err := e.mountOf(s.KVPath); err == nil {
				return m
			}
		}
	}
	if len(e.KVMounts) > 0 {
		return e.KVMounts[0]
	}
	return "secret"
}

// Apply copies and backs up every migrated Secret, then takes each migrated workload through
// backup, access, proof, patch and rollout. targets holds each workload's rewritten template.
// A workload that fails stops alone; one whose rollout cannot finish is rolled back by itself.
func (e *Engine) Apply(ctx context.Context, p *Plan, inv *Inventory, targets map[WorkloadID]corev1.PodTemplateSpec) (*Report, error) {
	j, err := e.Journal.Load(ctx)
	if err != nil {
		return nil, err
	}
	// The Secrets and workloads below write their records side by side: group them.
	run := *e
	run.Journal = e.Journal.grouped(ctx)
	e = &run
	rep := &Report{}
	rep.Secrets = e.copySecrets(ctx, p, inv, j)
	for _, s := range rep.Secrets {
		if s.Error != "" {
			// No workload moves while one of the values it might read is not safely in Vault.
			return rep, fmt.Errorf("Secret %s was not copied: %s", s.Name, s.Error)
		}
	}
	mount := e.backupMount(p)
	var todo []WorkloadPlan
	for _, wp := range p.Workloads {
		if wp.Action != WorkloadMigrate {
			continue
		}
		if _, ok := targets[WorkloadID{Kind: wp.Kind, Name: wp.Name}]; !ok {
			return rep, fmt.Errorf("%s/%s: no rewritten template (internal error)", wp.Kind, wp.Name)
		}
		todo = append(todo, wp)
	}
	if e.GuardRails != nil && len(todo) > 0 {
		if err := e.GuardRails(ctx, todo); err != nil {
			return rep, err
		}
	}
	// Workloads are independent: each stops alone, so several go at once (their rollouts are
	// most of the time).
	rep.Workloads = eachAtOnce(e.WorkloadConcurrency, todo, func(wp WorkloadPlan) WorkloadOutcome {
		id := WorkloadID{Kind: wp.Kind, Name: wp.Name}
		return e.migrateWorkload(ctx, mount, wp, targets[id], j.Workloads[id.String()])
	})
	return rep, ctx.Err()
}

// eachAtOnce runs f for every item, n at once (default 16), and returns the results in the
// items' order. Unlike an errgroup, one item's failure stops nothing else: each outcome
// carries its own error.
func eachAtOnce[T, R any](n int, items []T, f func(T) R) []R {
	if n <= 0 {
		n = 16
	}
	out := make([]R, len(items))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = f(it)
		}()
	}
	wg.Wait()
	return out
}

// copySecrets backs up and copies the migrated Secrets, several at once.
func (e *Engine) copySecrets(ctx context.Context, p *Plan, inv *Inventory, j *Journal) []SecretOutcome {
	var todo []SecretPlan
	for _, s := range p.Secrets {
		if s.Action == SecretMigrate {
			todo = append(todo, s)
		}
	}
	return eachAtOnce(e.Concurrency, todo, func(sp SecretPlan) SecretOutcome {
		return e.copySecret(ctx, sp, inv.Secret(sp.Name), j.Secrets[sp.Name])
	})
}

func (e *Engine) copySecret(ctx context.Context, sp SecretPlan, s *corev1.Secret, prev SecretRecord) SecretOutcome {
	o := SecretOutcome{Name: sp.Name, KVPath: sp.KVPath}
	fail := func(err error) SecretOutcome { o.Error = err.Error(); return o }
	if s == nil {
		if prev.State == SecretPruned {
			o.Copy, o.Backup, o.Version = string(CopyUnchanged), string(BackupUnchanged), prev.KVVersion
			return o
		}
		return fail(errors.New("the Secret is gone and the journal has no copy of it"))
	}
	mount, rest, err := e.mountOf(sp.KVPath)
	if err != nil {
		return fail(err)
	}
	// The backup first: nothing is in Vault under the user's path before the way back is.
	// A Secret the journal has never seen is most likely in Vault neither: write first.
	fresh := prev.State == ""
	b, bv, err := backupSecret(ctx, e.Vault, mount, s, fresh)
	if err != nil {
		return fail(err)
	}
	c, err := copySecret(ctx, e.Vault, mount, rest, s, e.Overwrite, fresh)
	if err != nil {
		return fail(err)
	}
	o.Copy, o.Backup, o.Version = string(c.Outcome), string(b), c.Version
	rec := SecretRecord{State: SecretCopied, KVPath: sp.KVPath, KVVersion: c.Version, BackupVersion: bv, UID: string(s.UID), Version: s.ResourceVersion,
		Consumers: mergeSorted(prev.Consumers, sp.Consumers)}
	if !sameSecretRecord(prev, rec) {
		if err := e.Journal.PutSecret(ctx, sp.Name, rec); err != nil {
			return fail(err)
		}
	}
	if c.Outcome != CopyUnchanged {
		e.progress("copied Secret %s to %s (version %d)", sp.Name, sp.KVPath, c.Version)
	}
	return o
}

func sameWorkloadRecord(a, b WorkloadRecord) bool {
	a.At, b.At = time.Time{}, time.Time{}
	return TemplateHash(a) == TemplateHash(b)
}

func sameSecretRecord(a, b SecretRecord) bool {
	a.At, b.At = time.Time{}, time.Time{}
	return TemplateHash(a) == TemplateHash(b)
}

// mergeSorted is the sorted union of two lists.
func mergeSorted(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// migrateWorkload takes one workload as far as it goes; the outcome says where it stopped.
func (e *Engine) migrateWorkload(ctx context.Context, mount string, wp WorkloadPlan, target corev1.PodTemplateSpec, prev WorkloadRecord) WorkloadOutcome {
	id := WorkloadID{Kind: wp.Kind, Name: wp.Name}
	out := WorkloadOutcome{Workload: id.String()}
	rec := prev
	rec.ServiceAccount, rec.CreatedServiceAccount = wp.ServiceAccount, wp.CreateServiceAccount || prev.CreatedServiceAccount
	rec.Role, rec.Policy, rec.KVPaths = wp.Role, wp.Policy, wp.KVPaths
	last := prev
	// record writes the step to the journal; a step that cannot be recorded is not taken, so
	// a later run never finds work done that the journal does not know of.
	record := func(st WorkloadState, reason string) error {
		rec.State, rec.Reason = st, reason
		if sameWorkloadRecord(last, rec) {
			return nil // a re-run that finds the step done writes nothing
		}
		if err := e.Journal.PutWorkload(ctx, id, rec); err != nil {
			return err
		}
		last = rec
		return nil
	}
	failed := func(step string, err error) WorkloadOutcome {
		msg := fmt.Sprintf("%s: %v", step, err)
		if jerr := record(WorkloadFailed, msg); jerr != nil {
			msg += "; and recording that failed: " + jerr.Error()
		}
		out.State, out.Message = WorkloadFailed, msg
		e.progress("%s: %s", id, msg)
		return out
	}
	// The proof logs in as the ServiceAccount the new pods will run as, so a template and a
	// role that disagree fail here, before the patch.
	wp.ServiceAccount = target.Spec.ServiceAccountName
	if wp.ServiceAccount == "" {
		wp.ServiceAccount = DefaultServiceAccount
	}

	live, err := ReadTemplate(ctx, e.Kube, e.Namespace, id)
	if err != nil {
		return failed("reading the workload", err)
	}
	targetHash, liveHash := TemplateHash(target), TemplateHash(*live)
	// The template migrate stored (defaults filled in by the API server) is in the journal; the
	// target itself (from a resumed plan, the live template) may match too.
	already := liveHash == targetHash || (prev.PatchedHash != "" && liveHash == prev.PatchedHash)
	if already && prev.State == WorkloadVerified {
		// Done by an earlier run: keep its access in place and confirm it still runs, and
		// write nothing when both hold.
		if e.Access != nil {
			if err := e.Access(ctx, wp); err != nil {
				return failed("access", err)
			}
		}
		if st, err := Rollout(ctx, e.Kube, e.Namespace, id); err == nil && st.Done {
			out.State, out.Message = WorkloadVerified, "already migrated: "+st.Message
			return out
		}
	}
	if !already {
		// The backup holds the template before vaultctl's first patch; a later one is kept out.
		res, v, err := BackupWorkload(ctx, e.Vault, mount, e.Namespace, WorkloadBackup{Kind: wp.Kind, Name: wp.Name, Template: *live})
		if err != nil {
			return failed("backing up the workload", err)
		}
		if res != BackupKept || rec.OriginalHash == "" {
			rec.OriginalHash, rec.BackupVersion = liveHash, v
		}
		if err := record(WorkloadBackedUp, ""); err != nil {
			return failed("journal", err)
		}
	}
	if e.Access != nil {
		if err := e.Access(ctx, wp); err != nil {
			return failed("access", err)
		}
	}
	if err := record(WorkloadAccess, ""); err != nil {
		return failed("journal", err)
	}
	// A workload already running the target template was proved before its patch (the journal
	// records the proof first); after prune its Secrets are gone and there is nothing to compare.
	if e.Prove != nil && !already {
		if err := e.Prove(ctx, wp); err != nil {
			return failed("proof", err)
		}
	}
	if err := record(WorkloadProved, ""); err != nil {
		return failed("journal", err)
	}

	changed, stored, err := SetTemplate(ctx, e.Kube, e.Namespace, id, target, func(tpl corev1.PodTemplateSpec) error {
		// Recorded before the write: a run killed just after it finds the template its own.
		rec.PatchedHash = TemplateHash(tpl)
		return e.Journal.PutWorkload(ctx, id, rec)
	})
	if err != nil {
		return failed("patching the workload", err)
	}
	out.Changed = changed
	rec.PatchedHash = TemplateHash(stored)
	if err := record(WorkloadPatched, ""); err != nil {
		return failed("journal", err)
	}
	if changed {
		e.progress("%s: patched; waiting for its rollout", id)
	}

	st, err := WaitRollout(ctx, e.Kube, e.Namespace, id, e.rolloutTimeout(), e.rolloutInterval())
	if err != nil {
		return failed("following the rollout", err)
	}
	if !st.Done {
		// A workload that cannot run with its secrets from Vault goes back to what it was.
		why := "its rollout did not finish: " + st.Message
		if err := e.restoreWorkload(ctx, mount, id); err != nil {
			return failed("rolling back after a failed rollout", fmt.Errorf("%s; and the rollback failed: %w", why, err))
		}
		if err := record(WorkloadFailed, "rolled back by itself: "+why); err != nil {
			return failed("journal", err)
		}
		out.State, out.Message = WorkloadFailed, "rolled back by itself: "+why
		e.progress("%s: %s", id, out.Message)
		return out
	}
	if err := record(WorkloadVerified, ""); err != nil {
		return failed("journal", err)
	}
	out.State, out.Message = WorkloadVerified, st.Message
	return out
}

func (e *Engine) rolloutTimeout() time.Duration {
	if e.RolloutTimeout > 0 {
		return e.RolloutTimeout
	}
	return 5 * time.Minute
}

func (e *Engine) rolloutInterval() time.Duration {
	if e.RolloutInterval > 0 {
		return e.RolloutInterval
	}
	return time.Second
}

// restoreWorkload puts a workload's backed-up template back.
func (e *Engine) restoreWorkload(ctx context.Context, mount string, id WorkloadID) error {
	b, err := ReadWorkloadBackup(ctx, e.Vault, mount, e.Namespace, id)
	if err != nil {
		return err
	}
	if b == nil {
		return fmt.Errorf("no backup of %s in %s/%s", id, mount, BackupPrefix(e.Namespace))
	}
	if _, _, err = SetTemplate(ctx, e.Kube, e.Namespace, id, b.Template); err != nil {
		return err
	}
	if id.Kind == "StatefulSet" {
		// A StatefulSet does not replace a pod that never became Ready with the restored
		// template by itself (the documented forced-rollback step): delete those pods.
		return deleteUnreadyPods(ctx, e.Kube, e.Namespace, id)
	}
	return nil
}

func deleteUnreadyPods(ctx context.Context, cs kubernetes.Interface, ns string, id WorkloadID) error {
	s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, id.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
	if err != nil {
		return err
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if podReady(p) || p.DeletionTimestamp != nil {
			continue
		}
		if err := cs.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting %s's pod %s that cannot start: %w", id, p.Name, err)
		}
	}
	return nil
}

// Prune deletes the migrated Secrets whose every consumer is verified, after checking the KV copy
// still equals the Secret, then labels the namespace when no migrated Secret is left.
func (e *Engine) Prune(ctx context.Context, p *Plan, inv *Inventory) (*Report, error) {
	j, err := e.Journal.Load(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	mount := e.backupMount(p)
	for _, sp := range p.Secrets {
		if sp.Action != SecretMigrate {
			continue
		}
		s := inv.Secret(sp.Name)
		if s == nil {
			continue
		}
		if why := blockingConsumers(sp, j); why != "" {
			rep.Kept = append(rep.Kept, sp.Name+": "+why)
			continue
		}
		m, rest, err := e.mountOf(sp.KVPath)
		if err != nil {
			return rep, err
		}
		if err := VerifyCopy(ctx, e.Vault, m, rest, s.Data); err != nil {
			rep.Kept = append(rep.Kept, sp.Name+": the KV copy no longer equals the Secret ("+err.Error()+"); run migrate again first")
			continue
		}
		if _, _, err := BackupSecret(ctx, e.Vault, m, s); err != nil {
			return rep, err
		}
		uid, rv := s.UID, s.ResourceVersion
		err = e.Kube.CoreV1().Secrets(e.Namespace).Delete(ctx, sp.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		if apierrors.IsConflict(err) {
			rep.Kept = append(rep.Kept, sp.Name+": it changed while pruning; run migrate again first")
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return rep, fmt.Errorf("deleting Secret %s: %w", sp.Name, err)
		}
		rec := j.Secrets[sp.Name]
		rec.State = SecretPruned
		if err := e.Journal.PutSecret(ctx, sp.Name, rec); err != nil {
			return rep, err
		}
		rep.Pruned = append(rep.Pruned, sp.Name)
		e.progress("pruned Secret %s (its values are in %s; the backup is in %s/%s)", sp.Name, sp.KVPath, mount, BackupPrefix(e.Namespace))
	}
	if len(rep.Kept) > 0 {
		return rep, nil
	}
	if err := e.setLabel(ctx, true); err != nil {
		return rep, err
	}
	rep.Labelled = true
	if !j.Namespace.Labelled {
		if err := e.Journal.PutNamespace(ctx, NamespaceRecord{Labelled: true}); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// blockingConsumers says which consumers of a Secret are not verified yet, "" when none.
func blockingConsumers(sp SecretPlan, j *Journal) string {
	var waiting []string
	for _, c := range sp.Consumers {
		if j.Workloads[c].State != WorkloadVerified {
			waiting = append(waiting, c)
		}
	}
	if len(waiting) == 0 {
		return ""
	}
	sort.Strings(waiting)
	return fmt.Sprintf("still read by %v, not migrated and verified", waiting)
}

func (e *Engine) setLabel(ctx context.Context, on bool) error {
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, manifests.MigratedLabel)
	if !on {
		patch = fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, manifests.MigratedLabel)
	}
	_, err := e.Kube.CoreV1().Namespaces().Patch(ctx, e.Namespace, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("labelling namespace %s %s: %w", e.Namespace, manifests.MigratedLabel, err)
	}
	return nil
}

// Rollback restores every Secret the journal knows byte for byte from its backup (recreating
// pruned ones), every workload's original template, and removes the namespace label. With purge
// it also deletes what migrate created: KV entries, backups, policies, roles, ServiceAccounts,
// and the journal.
func (e *Engine) Rollback(ctx context.Context, purge bool) (*Report, error) {
	j, err := e.Journal.Load(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	// The label first: while it is set the admission policy refuses to recreate the Secrets.
	if err := e.setLabel(ctx, false); err != nil {
		return rep, err
	}
	secrets := e.Kube.CoreV1().Secrets(e.Namespace)
	for _, name := range sortedKeys(j.Secrets) {
		rec := j.Secrets[name]
		mount, _, err := e.mountOf(rec.KVPath)
		if err != nil {
			return rep, err
		}
		b, err := ReadSecretBackup(ctx, e.Vault, mount, e.Namespace, name)
		if err != nil {
			return rep, err
		}
		if b == nil {
			return rep, fmt.Errorf("Secret %s: no backup in %s/%s; nothing was restored for it", name, mount, BackupPrefix(e.Namespace))
		}
		o := SecretOutcome{Name: name, KVPath: rec.KVPath}
		live, err := secrets.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = secrets.Create(ctx, b.Secret(e.Namespace), metav1.CreateOptions{FieldManager: FieldManager})
			o.Copy = "recreated"
		case err != nil:
		case b.SameSecret(live):
			o.Copy = "unchanged"
		case live.Type != b.Type || (live.Immutable != nil && *live.Immutable):
			// Type and immutable Secrets cannot be updated in place.
			if err = secrets.Delete(ctx, name, metav1.DeleteOptions{}); err == nil {
				_, err = secrets.Create(ctx, b.Secret(e.Namespace), metav1.CreateOptions{FieldManager: FieldManager})
			}
			o.Copy = "recreated"
		default:
			want := b.Secret(e.Namespace)
			want.ResourceVersion = live.ResourceVersion
			_, err = secrets.Update(ctx, want, metav1.UpdateOptions{FieldManager: FieldManager})
			o.Copy = "restored"
		}
		if err != nil {
			return rep, fmt.Errorf("restoring Secret %s: %w", name, err)
		}
		rep.Secrets = append(rep.Secrets, o)
		if rec.State != SecretRestored {
			rec.State = SecretRestored
			if err := e.Journal.PutSecret(ctx, name, rec); err != nil {
				return rep, err
			}
		}
	}
	mount := "secret"
	if len(e.KVMounts) > 0 {
		mount = e.KVMounts[0]
	}
	for _, s := range j.Secrets {
		if m, _, err := e.mountOf(s.KVPath); err == nil {
			mount = m
			break
		}
	}
	for _, key := range sortedKeys(j.Workloads) {
		rec := j.Workloads[key]
		id, err := ParseWorkload(key)
		if err != nil {
			return rep, fmt.Errorf("journal entry %s: %w", key, err)
		}
		o := WorkloadOutcome{Workload: key, State: WorkloadRolledBack}
		b, err := ReadWorkloadBackup(ctx, e.Vault, mount, e.Namespace, id)
		if err != nil {
			return rep, err
		}
		if b != nil {
			changed, _, err := SetTemplate(ctx, e.Kube, e.Namespace, id, b.Template)
			switch {
			case apierrors.IsNotFound(errors.Unwrap(err)):
				o.Message = "the workload no longer exists; its original template stays in the backup"
			case err != nil:
				return rep, fmt.Errorf("restoring %s: %w", key, err)
			default:
				o.Changed = changed
				// Restored: the next migration backs up the workload as it is then.
				if err := DeleteWorkloadBackup(ctx, e.Vault, mount, e.Namespace, id); err != nil {
					return rep, err
				}
			}
		}
		rep.Workloads = append(rep.Workloads, o)
		if rec.State != WorkloadRolledBack {
			rec.State, rec.Reason = WorkloadRolledBack, ""
			rec.PatchedHash = ""
			if err := e.Journal.PutWorkload(ctx, id, rec); err != nil {
				return rep, err
			}
		}
	}
	if j.Namespace.Labelled {
		if err := e.Journal.PutNamespace(ctx, NamespaceRecord{Labelled: false}); err != nil {
			return rep, err
		}
	}
	if purge {
		if err := e.purge(ctx, j); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// purge deletes what the journal says migrate created, then the journal itself.
func (e *Engine) purge(ctx context.Context, j *Journal) error {
	owned := j.Owned()
	for _, p := range owned.KVPaths {
		mount, rest, err := e.mountOf(p)
		if err != nil {
			return err
		}
		if err := e.Vault.KVDeleteAll(ctx, mount, rest); err != nil {
			return fmt.Errorf("deleting %s: %w", p, err)
		}
	}
	for name := range j.Secrets {
		for _, m := range e.KVMounts {
			if err := e.Vault.KVDeleteAll(ctx, m, secretBackupPath(e.Namespace, name)); err != nil && !vault.IsNotFound(err) {
				return err
			}
		}
	}
	for _, r := range owned.Roles {
		if err := e.Vault.DeleteRole(ctx, e.AuthMount, r); err != nil && !vault.IsNotFound(err) {
			return fmt.Errorf("deleting role %s: %w", r, err)
		}
	}
	for _, p := range owned.Policies {
		if err := e.Vault.DeletePolicy(ctx, p); err != nil && !vault.IsNotFound(err) {
			return fmt.Errorf("deleting policy %s: %w", p, err)
		}
	}
	if err := RemoveGuardRails(ctx, e.Kube, e.Namespace, e.VaultNamespace); err != nil {
		return err
	}
	for _, sa := range owned.ServiceAccounts {
		if err := e.Kube.CoreV1().ServiceAccounts(e.Namespace).Delete(ctx, sa, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting ServiceAccount %s: %w", sa, err)
		}
	}
	return e.Journal.Forget(ctx, j)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
