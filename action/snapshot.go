package action

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

// SnapshotResult is what snapshot save and restore return.
type SnapshotResult struct {
	Path   string                    `json:"file"`
	Record *lifecycle.SnapshotRecord `json:"snapshot,omitempty"`
	// Notes are what restore checked and what the operator was shown before confirming.
	Notes    []string `json:"notes,omitempty"`
	Restored bool     `json:"restored,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// SnapshotSave streams a Raft snapshot of the whole cluster into a new file at path (0600),
// with its record (which cluster, which seal, Raft index, checksum; nothing secret) in
// path.json. It takes no lock: a snapshot changes nothing.
func SnapshotSave(ctx context.Context, c *Configuration, path string) (*SnapshotResult, error) {
	res := &SnapshotResult{Path: path}
	ss, err := c.run(ctx, scope{name: "snapshot save"}, func(ctx context.Context, ss *session) error {
		admin, err := ss.env.Vault.Admin(ctx)
		if err != nil {
			return err
		}
		res.Record, err = saveSnapshot(ctx, ss.env, admin, path)
		return err
	})
	if ss != nil {
		res.Warnings = ss.warnings
	}
	return res, err
}

// saveSnapshot takes the snapshot through admin (the active node) and records where it came
// from: the cluster's ID decides, at restore, whether Vault will accept it.
func saveSnapshot(ctx context.Context, env *phases.Env, admin vault.Client, path string) (*lifecycle.SnapshotRecord, error) {
	target, version, err := targetOf(ctx, env, admin)
	if err != nil {
		return nil, err
	}
	l, err := vault.AsLifecycle(admin)
	if err != nil {
		return nil, err
	}
	rec := lifecycle.SnapshotRecord{
		ClusterID: target.ClusterID, ClusterName: target.ClusterName, SealType: target.SealType, SealKey: target.SealKey,
		VaultVersion: version, Namespace: env.Config.Vault.Namespace, Taken: time.Now().UTC(),
	}
	out, err := lifecycle.Save(ctx, l, path, rec)
	if err != nil && vault.IsForbidden(err) {
		return nil, phases.Fail("run `vaultctl apply` first: it grants vaultctl-admin sys/storage/raft/snapshot (or set VAULT_TOKEN)", "taking the snapshot: permission denied")
	}
	return out, err
}

func targetOf(ctx context.Context, env *phases.Env, c vault.Client) (lifecycle.Target, string, error) {
	st, err := c.SealStatus(ctx)
	if err != nil {
		return lifecycle.Target{}, "", fmt.Errorf("reading Vault's seal status: %w", err)
	}
	if st.Sealed || !st.Initialized {
		return lifecycle.Target{}, "", phases.Fail("run `vaultctl status`; snapshots need an initialized, unsealed Vault", "Vault is sealed or not initialized")
	}
	return lifecycle.Target{ClusterID: st.ClusterID, ClusterName: st.ClusterName, SealType: st.Type, SealKey: env.Config.Vault.Seal.AWSKMS.KMSKeyID}, st.Version, nil
}

// SnapshotRestoreOptions are restore's choices.
type SnapshotRestoreOptions struct {
	// Force restores a snapshot of another cluster (snapshot-force): its data, keys and tokens
	// replace this cluster's.
	Force bool
	// Confirm is asked, after every check and before anything is sent, with what was found;
	// false cancels. nil refuses: a restore is never unconfirmed.
	Confirm func(notes []string) (bool, error)
	// LockTimeout is how long to wait for another run's apply lock; 0 refuses at once.
	LockTimeout time.Duration
}

// ErrNotConfirmed marks a restore the operator did not confirm.
var ErrNotConfirmed = errors.New("restore not confirmed")

// SnapshotRestore replaces the cluster's data with the snapshot at path. Before anything is
// sent it checks the file (a complete Vault snapshot whose checksums match) and its record: a
// snapshot of another cluster is refused unless Force, since Vault would refuse it anyway. It
// holds the apply lock, asks Confirm, restores, and waits until the active node serves again.
func SnapshotRestore(ctx context.Context, c *Configuration, path string, o SnapshotRestoreOptions) (*SnapshotResult, error) {
	// The file first: a damaged one is refused before anything is contacted.
	if _, err := lifecycle.Inspect(path); err != nil {
		return nil, err
	}
	res := &SnapshotResult{Path: path}
	ss, err := c.run(ctx, scope{name: "snapshot restore", preflight: true, lease: ApplyLease, lockWait: o.LockTimeout}, func(ctx context.Context, ss *session) error {
		admin, err := ss.env.Vault.Admin(ctx)
		if err != nil {
			return err
		}
		target, _, err := targetOf(ctx, ss.env, admin)
		if err != nil {
			return err
		}
		check, err := lifecycle.CheckRestore(path, target, o.Force)
		if err != nil {
			return err
		}
		res.Record, res.Notes = check.Record, check.Notes
		if o.Confirm == nil {
			return fmt.Errorf("%w: no way to ask", ErrNotConfirmed)
		}
		ok, err := o.Confirm(check.Notes)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotConfirmed
		}
		l, err := vault.AsLifecycle(admin)
		if err != nil {
			return err
		}
		phases.Progressf(ctx, "restoring %s", path)
		// --force sends snapshot-force only where Vault's check would refuse or vaultctl
		// cannot tell: a snapshot of this very cluster keeps Vault's own verification.
		force := o.Force && (check.Foreign || check.Record == nil)
		if err := lifecycle.Restore(ctx, l, path, force); err != nil {
			if vault.IsForbidden(err) {
				return phases.Fail("run `vaultctl apply` first: it grants vaultctl-admin sys/storage/raft/snapshot (or set VAULT_TOKEN)", "restoring the snapshot: permission denied")
			}
			return err
		}
		res.Restored = true
		if err := waitActive(ctx, admin, 2*time.Minute); err != nil {
			return err
		}
		return waitHealthy(ctx, ss.env, 2*time.Minute)
	})
	if ss != nil {
		res.Warnings = ss.warnings
		if ss.preflightFailed() {
			return res, ss.preflight.Error
		}
	}
	return res, err
}

// waitHealthy waits until autopilot reports every voter healthy: followers catch up with the
// restored store after the leader. It logs in afresh: the run's own token was issued after the
// snapshot was taken, so the restored store does not know it.
func waitHealthy(ctx context.Context, env *phases.Env, timeout time.Duration) error {
	s := env.Vault
	fresh := &phases.Session{Dialer: s.Dialer, Locate: s.Locate, Kube: s.Kube, Namespace: s.Namespace, AuthPath: s.AuthPath, FallbackToken: s.FallbackToken}
	defer fresh.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(timeout)
	for {
		h, err := phases.ClusterHealthOf(ctx, fresh, env.Config.Vault.Replicas)
		if err == nil && h.Healthy {
			return nil
		}
		if time.Now().After(deadline) {
			why := "no answer"
			if err != nil {
				why = err.Error()
			} else {
				why = joinProblems(h.Problems)
			}
			return phases.Fail("run `vaultctl status` until it reports healthy; a follower that never catches up says why in its log",
				"the snapshot was restored and Vault serves, but the cluster is not healthy after %s: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(time.Second):
		}
	}
}

// waitActive waits until the node serves again, unsealed (a standby forwards to the active
// node): a restore reloads its storage and keys.
func waitActive(ctx context.Context, c vault.System, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		h, err := c.Health(ctx)
		if err == nil && h.Initialized && !h.Sealed {
			return nil
		}
		if time.Now().After(deadline) {
			return phases.Fail("run `vaultctl status`; the pods' logs say why Vault does not come back", "the snapshot was restored, but Vault does not serve again after %s (health %+v, %v)", timeout, h, err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
