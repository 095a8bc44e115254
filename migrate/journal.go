package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/internal/kube"
)

// JournalConfigMap is the ConfigMap, in the migrated namespace, that records what migrate did:
// object names, hashes of templates, KV and backup versions; never a value (those are in Vault).
// A run killed anywhere reads it to resume, --rollback and --purge read it to know what is
// vaultctl's, and `migrate status` reads it to report the state. One key per Secret and per
// workload, so concurrent writers of different records never undo each other.
const JournalConfigMap = "vaultctl-migrate-journal"

const (
	journalSecretPrefix   = "secret."
	journalWorkloadPrefix = "workload."
	journalNamespaceKey   = "namespace"
)

// SecretState is how far a Secret has come.
type SecretState string

const (
	SecretCopied   SecretState = "copied"   // in KV, read back equal, backed up
	SecretPruned   SecretState = "pruned"   // the Kubernetes Secret was deleted
	SecretRestored SecretState = "restored" // rolled back: the Kubernetes Secret is back
)

// SecretRecord is the journal's line for one Secret.
type SecretRecord struct {
	State         SecretState `json:"state"`
	KVPath        string      `json:"kvPath"`
	KVVersion     int         `json:"kvVersion"`
	BackupVersion int         `json:"backupVersion"`
	UID           string      `json:"uid"`                 // of the Secret copied
	Version       string      `json:"resourceVersion"`     // of the Secret copied: a later change means copy again
	Consumers     []string    `json:"consumers,omitempty"` // its readers when copied: after the switch they no longer name it
	At            time.Time   `json:"at"`
}

// WorkloadState is how far a workload has come.
type WorkloadState string

const (
	WorkloadBackedUp   WorkloadState = "backed-up"   // original fields saved in Vault
	WorkloadAccess     WorkloadState = "access"      // ServiceAccount, policy and role in place
	WorkloadProved     WorkloadState = "proved"      // logged in with its role and read every value back
	WorkloadPatched    WorkloadState = "patched"     // its template reads through the injector
	WorkloadVerified   WorkloadState = "verified"    // rolled out, Ready, sees what it saw before
	WorkloadFailed     WorkloadState = "failed"      // stopped at a step; Reason says why
	WorkloadRolledBack WorkloadState = "rolled-back" // original fields restored
)

// WorkloadRecord is the journal's line for one workload. The names are what migrate created
// (CreatedServiceAccount says whether the ServiceAccount is one of them).
type WorkloadRecord struct {
	State                 WorkloadState `json:"state"`
	ServiceAccount        string        `json:"serviceAccount,omitempty"`
	CreatedServiceAccount bool          `json:"createdServiceAccount,omitempty"`
	Role                  string        `json:"role,omitempty"`
	Policy                string        `json:"policy,omitempty"`
	KVPaths               []string      `json:"kvPaths,omitempty"`
	OriginalHash          string        `json:"originalHash,omitempty"` // of the pod template before the first patch
	PatchedHash           string        `json:"patchedHash,omitempty"`  // of the template migrate wrote
	BackupVersion         int           `json:"backupVersion,omitempty"`
	Reason                string        `json:"reason,omitempty"` // why it failed or was rolled back
	At                    time.Time     `json:"at"`
}

// NamespaceRecord is the namespace-wide line: the label prune sets.
type NamespaceRecord struct {
	Labelled bool      `json:"labelled"`
	At       time.Time `json:"at"`
}

// Journal is the whole record of a namespace.
type Journal struct {
	Secrets   map[string]SecretRecord   // by Secret name
	Workloads map[string]WorkloadRecord // by WorkloadID.String()
	Namespace NamespaceRecord
	namespace string
	// Unreadable lists keys that did not parse: reported, and treated as "not done", so the
	// step is observed and redone rather than trusted.
	Unreadable []string
}

// JournalStore reads and writes a namespace's journal.
type JournalStore struct {
	Kube      kubernetes.Interface
	Namespace string
	Now       func() time.Time

	batch *journalBatch // set by grouped: records of concurrent writers share ConfigMap updates
}

// grouped returns the store with its writes committed in groups (see journalBatch); ctx bounds
// the updates it makes.
func (s JournalStore) grouped(ctx context.Context) JournalStore {
	s.batch = &journalBatch{ctx: ctx, cm: s.cm(), pending: map[string]string{}}
	return s
}

// journalBatch is a group commit of journal records. Each record is one read-modify-write of
// the whole ConfigMap; 16 Secret copies or 8 workloads writing theirs side by side mostly
// conflicted and retried with backoff (a 50-Secret run spent most of its time there). Instead,
// every record queued while one update is in flight goes into the next, in one update: writers
// never conflict with each other, and the number of updates follows the API server's speed, not
// the number of records. put still returns only once its record is stored, so a step that must
// be journaled before the next one (a proof before a patch) stays ordered.
type journalBatch struct {
	ctx     context.Context
	cm      kube.KeyedConfigMap
	mu      sync.Mutex
	pending map[string]string
	waiters []chan error
	busy    bool // a flush goroutine is running
}

func (b *journalBatch) put(ctx context.Context, key, value string) error {
	done := make(chan error, 1)
	b.mu.Lock()
	// One key has one writer (a Secret's copy, a workload's steps, each waiting for its last put),
	// so a key is never queued twice with different values.
	b.pending[key] = value
	b.waiters = append(b.waiters, done)
	if !b.busy {
		b.busy = true
		go b.flush()
	}
	b.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// write stores kv with a merge patch of just those keys: one request, where a read-modify-write
// downloads the whole journal (hundreds of KB with 1,000 Secrets) first, and no conflict with
// another writer's keys. The first records create the ConfigMap.
func (b *journalBatch) write(kv map[string]string) error {
	patch, err := json.Marshal(map[string]any{"data": kv})
	if err != nil {
		return err
	}
	_, err = b.cm.Client.CoreV1().ConfigMaps(b.cm.Namespace).Patch(b.ctx, b.cm.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return b.cm.Put(b.ctx, kv)
	}
	return err
}

func (b *journalBatch) flush() {
	for {
		b.mu.Lock()
		if len(b.waiters) == 0 {
			b.busy = false
			b.mu.Unlock()
			return
		}
		kv, waiters := b.pending, b.waiters
		b.pending, b.waiters = map[string]string{}, nil
		b.mu.Unlock()
		err := b.write(kv)
		for _, w := range waiters {
			w <- err
		}
	}
}

func (s JournalStore) cm() kube.KeyedConfigMap {
	return kube.KeyedConfigMap{Client: s.Kube, Namespace: s.Namespace, Name: JournalConfigMap,
		Labels: map[string]string{ManagedByLabel: "vaultctl"}}
}

func (s JournalStore) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Load reads the journal; none yet is an empty one.
func (s JournalStore) Load(ctx context.Context) (*Journal, error) {
	data, err := s.cm().Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the migration journal (ConfigMap %s/%s): %w", s.Namespace, JournalConfigMap, err)
	}
	j := &Journal{Secrets: map[string]SecretRecord{}, Workloads: map[string]WorkloadRecord{}, namespace: s.Namespace}
	for k, v := range data {
		var bad error
		switch {
		case strings.HasPrefix(k, journalSecretPrefix):
			var r SecretRecord
			if bad = json.Unmarshal([]byte(v), &r); bad == nil {
				j.Secrets[strings.TrimPrefix(k, journalSecretPrefix)] = r
			}
		case strings.HasPrefix(k, journalWorkloadPrefix):
			var r WorkloadRecord
			if bad = json.Unmarshal([]byte(v), &r); bad == nil {
				// ConfigMap keys allow no "/": workload.KIND.NAME (a kind has no dot).
				kind, name, ok := strings.Cut(strings.TrimPrefix(k, journalWorkloadPrefix), ".")
				if ok {
					j.Workloads[WorkloadID{Kind: kind, Name: name}.String()] = r
				} else {
					bad = fmt.Errorf("no kind in %q", k)
				}
			}
		case k == journalNamespaceKey:
			bad = json.Unmarshal([]byte(v), &j.Namespace)
		}
		if bad != nil {
			j.Unreadable = append(j.Unreadable, k)
		}
	}
	sort.Strings(j.Unreadable)
	return j, nil
}

// PutSecret records a Secret's state, stamped now.
func (s JournalStore) PutSecret(ctx context.Context, name string, r SecretRecord) error {
	r.At = s.now()
	return s.put(ctx, journalSecretPrefix+name, r)
}

// PutWorkload records a workload's state, stamped now.
func (s JournalStore) PutWorkload(ctx context.Context, id WorkloadID, r WorkloadRecord) error {
	r.At = s.now()
	return s.put(ctx, workloadKey(id), r)
}

// PutNamespace records the namespace-wide state, stamped now.
func (s JournalStore) PutNamespace(ctx context.Context, r NamespaceRecord) error {
	r.At = s.now()
	return s.put(ctx, journalNamespaceKey, r)
}

// Forget drops the whole journal's records (after --rollback --purge nothing is vaultctl's).
func (s JournalStore) Forget(ctx context.Context, j *Journal) error {
	var keys []string
	for n := range j.Secrets {
		keys = append(keys, journalSecretPrefix+n)
	}
	for w := range j.Workloads {
		if id, err := ParseWorkload(w); err == nil {
			keys = append(keys, workloadKey(id))
		}
	}
	keys = append(keys, journalNamespaceKey)
	keys = append(keys, j.Unreadable...)
	return s.cm().Delete(ctx, keys...)
}

// workloadKey is a workload's journal key; ConfigMap keys allow letters, digits, "-", "_" and
// ".", so the kind and name are joined by a dot.
func workloadKey(id WorkloadID) string { return journalWorkloadPrefix + id.Kind + "." + id.Name }

func (s JournalStore) put(ctx context.Context, key string, rec any) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if s.batch != nil {
		err = s.batch.put(ctx, key, string(b))
	} else {
		err = s.cm().Put(ctx, map[string]string{key: string(b)})
	}
	if err != nil {
		return fmt.Errorf("writing the migration journal (ConfigMap %s/%s, %s): %w", s.Namespace, JournalConfigMap, key, err)
	}
	return nil
}

// TemplateHash identifies a pod template (or any object) by its canonical JSON. Templates hold
// Secret names, never values, so the hash reveals nothing.
func TemplateHash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Owned is what migrate created in a namespace, from its journal: what --purge removes and what
// nothing else (apply --prune included) may delete.
type Owned struct {
	ServiceAccounts []string
	Policies        []string
	Roles           []string
	KVPaths         []string
}

// Owned lists, sorted and without duplicates, the objects the journal says migrate created.
func (j *Journal) Owned() Owned {
	set := func(m map[string]bool) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			if k != "" {
				out = append(out, k)
			}
		}
		sort.Strings(out)
		return out
	}
	sas, pols, roles, paths := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, w := range j.Workloads {
		if w.CreatedServiceAccount {
			sas[w.ServiceAccount] = true
		}
		pols[w.Policy], roles[w.Role] = true, true
	}
	for _, s := range j.Secrets {
		paths[s.KVPath] = true
	}
	return Owned{ServiceAccounts: set(sas), Policies: set(pols), Roles: set(roles), KVPaths: set(paths)}
}
