package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/internal/vault"
)

// Backups live in Vault, never in a ConfigMap: they hold the Secrets' values. The path is
// vaultctl's own, under the KV mount the copies go to, so the same Vault ACLs and audit cover
// them and `--rollback` needs nothing but Vault and the cluster.
//
//	MOUNT/vaultctl/backup/NAMESPACE/secret/NAME          the Secret as it was
//	MOUNT/vaultctl/backup/NAMESPACE/workload/KIND/NAME   the workload fields before the first patch
const backupRoot = "vaultctl/backup"

// BackupPrefix is the logical folder (inside the mount) of a namespace's backups.
func BackupPrefix(ns string) string { return backupRoot + "/" + ns + "/" }

func secretBackupPath(ns, name string) string { return BackupPrefix(ns) + "secret/" + name }
func workloadBackupPath(ns string, id WorkloadID) string {
	return BackupPrefix(ns) + "workload/" + strings.ToLower(id.Kind) + "/" + id.Name
}

// backupKey is the one KV key a backup entry holds: the JSON document.
const backupKey = "backup.json"

// SecretBackup is everything a Secret needs to be recreated byte for byte.
type SecretBackup struct {
	Name        string            `json:"name"`
	Type        corev1.SecretType `json:"type"`
	Data        map[string][]byte `json:"data"` // base64 in JSON: exact bytes
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Immutable   *bool             `json:"immutable,omitempty"`
}

// Secret is the backup as an object to create.
func (b SecretBackup) Secret(ns string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: b.Name, Labels: b.Labels, Annotations: b.Annotations},
		Type:       b.Type, Data: b.Data, Immutable: b.Immutable,
	}
}

// SecretBackupOf keeps what the user owns of a Secret; server-set fields (uid, resourceVersion,
// managedFields) are the API server's to choose again.
func SecretBackupOf(s *corev1.Secret) SecretBackup {
	return SecretBackup{Name: s.Name, Type: s.Type, Data: s.Data, Labels: s.Labels, Annotations: s.Annotations, Immutable: s.Immutable}
}

// SameSecret reports whether a live Secret still equals its backup (type, data, labels,
// annotations): what --rollback checks before it leaves one alone.
func (b SecretBackup) SameSecret(s *corev1.Secret) bool {
	o := SecretBackupOf(s)
	norm := func(x SecretBackup) SecretBackup {
		if len(x.Data) == 0 {
			x.Data = nil
		}
		if len(x.Labels) == 0 {
			x.Labels = nil
		}
		if len(x.Annotations) == 0 {
			x.Annotations = nil
		}
		if x.Type == "" {
			x.Type = corev1.SecretTypeOpaque
		}
		return x
	}
	return reflect.DeepEqual(norm(b), norm(o))
}

// BackupOutcome says what a backup call did.
type BackupOutcome string

const (
	BackupWritten   BackupOutcome = "written"
	BackupUnchanged BackupOutcome = "unchanged"
	BackupKept      BackupOutcome = "kept" // an earlier backup exists and is the one that counts
)

// BackupSecret saves s. The backup follows the Secret until it is pruned: vaultctl never changes
// a Secret, so its latest content is what the user meant, and KV v2 keeps the older versions.
func BackupSecret(ctx context.Context, kv vault.KV, mount string, s *corev1.Secret) (BackupOutcome, int, error) {
	return backupSecret(ctx, kv, mount, s, false)
}

// backupSecret is BackupSecret; fresh says no earlier run recorded the Secret, so the backup is
// most likely not there yet (see putBackup).
func backupSecret(ctx context.Context, kv vault.KV, mount string, s *corev1.Secret, fresh bool) (BackupOutcome, int, error) {
	b := SecretBackupOf(s)
	return putBackup(ctx, kv, mount, secretBackupPath(s.Namespace, s.Name), fresh, b, func(cur []byte) (bool, error) {
		var old SecretBackup
		if err := json.Unmarshal(cur, &old); err != nil {
			return false, err
		}
		return old.SameSecret(s), nil
	}, true)
}

// ReadSecretBackup returns the backup of Secret name, nil when there is none.
func ReadSecretBackup(ctx context.Context, kv vault.KV, mount, ns, name string) (*SecretBackup, error) {
	var b SecretBackup
	ok, err := getBackup(ctx, kv, mount, secretBackupPath(ns, name), &b)
	if !ok || err != nil {
		return nil, err
	}
	return &b, nil
}

// WorkloadBackup holds the fields of a workload that migrate changes, as they were before its
// first patch: the pod template (which carries the ServiceAccount, volumes, env, command and
// annotations).
type WorkloadBackup struct {
	Kind     string                 `json:"kind"`
	Name     string                 `json:"name"`
	Template corev1.PodTemplateSpec `json:"template"`
}

// BackupWorkload saves the workload's original fields. Unlike a Secret's, this backup is written
// once: after the first patch the live template is vaultctl's, and only the first backup holds
// what to roll back to. An existing one is kept as it is.
func BackupWorkload(ctx context.Context, kv vault.KV, mount, ns string, b WorkloadBackup) (BackupOutcome, int, error) {
	return putBackup(ctx, kv, mount, workloadBackupPath(ns, WorkloadID{Kind: b.Kind, Name: b.Name}), false, b, nil, false)
}

// ReadWorkloadBackup returns the backup of a workload, nil when there is none.
func ReadWorkloadBackup(ctx context.Context, kv vault.KV, mount, ns string, id WorkloadID) (*WorkloadBackup, error) {
	var b WorkloadBackup
	ok, err := getBackup(ctx, kv, mount, workloadBackupPath(ns, id), &b)
	if !ok || err != nil {
		return nil, err
	}
	return &b, nil
}

// DeleteWorkloadBackup drops a workload's backup once a rollback has restored it, so the next
// migration backs up the workload as it is then.
func DeleteWorkloadBackup(ctx context.Context, kv vault.KV, mount, ns string, id WorkloadID) error {
	return kv.KVDeleteAll(ctx, mount, workloadBackupPath(ns, id))
}

// putBackup writes doc at path: created with cas=0; when an entry exists, same (nil: never
// replace) decides whether it already holds doc; follow says whether a different one is replaced
// (cas on the version compared) or kept. fresh (no earlier run recorded it) tries the cas=0
// write first and observes the entry only when that finds one: a read less per new backup, and
// the same outcome either way, since cas=0 never replaces anything.
func putBackup(ctx context.Context, kv vault.KV, mount, path string, fresh bool, doc any, same func(cur []byte) (bool, error), follow bool) (BackupOutcome, int, error) {
	full := mount + "/" + path
	body, err := json.Marshal(doc)
	if err != nil {
		return "", 0, err
	}
	if fresh {
		v, err := kv.KVWrite(ctx, mount, path, map[string]any{backupKey: string(body)}, 0)
		switch {
		case err == nil:
			return markAndCheckBackup(ctx, kv, mount, path, body, v)
		case !casMismatch(err):
			return "", 0, fmt.Errorf("writing the backup %s: %w", full, err)
		}
	}
	cur, err := kv.KVRead(ctx, mount, path)
	if err != nil {
		return "", 0, fmt.Errorf("reading the backup %s: %w", full, err)
	}
	cas := 0
	if cur != nil {
		s, _ := cur.Data[backupKey].(string)
		if same != nil {
			eq, err := same([]byte(s))
			if err != nil {
				return "", 0, fmt.Errorf("the backup %s is unreadable (%v): move it aside before migrating again", full, err)
			}
			if eq {
				return BackupUnchanged, cur.Version, nil
			}
		} else if s == string(body) {
			return BackupUnchanged, cur.Version, nil
		}
		if !follow {
			return BackupKept, cur.Version, nil
		}
		cas = cur.Version
	}
	v, err := kv.KVWrite(ctx, mount, path, map[string]any{backupKey: string(body)}, cas)
	if err != nil {
		return "", 0, fmt.Errorf("writing the backup %s: %w", full, err)
	}
	return markAndCheckBackup(ctx, kv, mount, path, body, v)
}

// markAndCheckBackup marks a backup just written (version v) as vaultctl's and reads it back.
func markAndCheckBackup(ctx context.Context, kv vault.KV, mount, path string, body []byte, v int) (BackupOutcome, int, error) {
	full := mount + "/" + path
	if err := kv.KVWriteMetadata(ctx, mount, path, map[string]string{MetaManagedBy: managedByValue}); err != nil {
		return "", 0, fmt.Errorf("marking the backup %s: %w", full, err)
	}
	// Read back: a backup that cannot be read is no backup.
	var check json.RawMessage
	if ok, err := getBackup(ctx, kv, mount, path, &check); err != nil || !ok {
		if err == nil {
			err = errors.New("not there")
		}
		return "", 0, fmt.Errorf("reading back the backup %s: %w", full, err)
	}
	if string(check) != string(body) {
		return "", 0, fmt.Errorf("reading back the backup %s: it differs from what was written", full)
	}
	return BackupWritten, v, nil
}

func getBackup(ctx context.Context, kv vault.KV, mount, path string, into any) (bool, error) {
	cur, err := kv.KVRead(ctx, mount, path)
	if err != nil {
		return false, fmt.Errorf("reading the backup %s/%s: %w", mount, path, err)
	}
	if cur == nil {
		return false, nil
	}
	s, ok := cur.Data[backupKey].(string)
	if !ok {
		return false, fmt.Errorf("the backup %s/%s has no %s", mount, path, backupKey)
	}
	if err := json.Unmarshal([]byte(s), into); err != nil {
		return false, fmt.Errorf("the backup %s/%s: %w", mount, path, err)
	}
	return true, nil
}
