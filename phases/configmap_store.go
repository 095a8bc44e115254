package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/internal/kube"
)

// CheckpointConfigMap is the ConfigMap, in the Vault namespace, that holds one JSON checkpoint
// per phase. Keeping it in the cluster lets a fresh CI runner resume where the last one stopped.
const CheckpointConfigMap = "vaultctl-checkpoints"

// OwnershipConfigMap records which Vault objects vaultctl created. Vault policies and roles carry
// no labels, so ownership is recorded per installation; --prune deletes only what is listed here
// and still carries vaultctl's mark in Vault, never a policy someone wrote by hand.
const OwnershipConfigMap = "vaultctl-ownership"

// ManagedByLabel marks every object vaultctl created.
const ManagedByLabel = kube.ManagedByLabel

// configMapStore is vaultctl's bookkeeping in one ConfigMap of the Vault namespace, creating
// the namespace on first write.
type configMapStore struct {
	client    kubernetes.Interface
	namespace string
	name      string
}

func (s configMapStore) keyed() kube.KeyedConfigMap {
	return kube.KeyedConfigMap{Client: s.client, Namespace: s.namespace, Name: s.name, Labels: map[string]string{ManagedByLabel: "vaultctl"}}
}

// get returns the data; a missing namespace or ConfigMap means none yet.
func (s configMapStore) get(ctx context.Context) (map[string]string, error) {
	return s.keyed().Get(ctx)
}

// put sets the given keys; it writes nothing when they already hold these values.
func (s configMapStore) put(ctx context.Context, kv map[string]string) error {
	if err := ensureNamespace(ctx, s.client, s.namespace); err != nil {
		return err
	}
	return s.keyed().Put(ctx, kv)
}

// ConfigMapStore keeps checkpoints in CheckpointConfigMap.
type ConfigMapStore struct {
	Client    kubernetes.Interface
	Namespace string
}

func (s *ConfigMapStore) store() configMapStore {
	return configMapStore{client: s.Client, namespace: s.Namespace, name: CheckpointConfigMap}
}

// CorruptCheckpointsError names checkpoints that could not be parsed. Get returns it with the
// readable ones: the phases concerned are re-observed and their checkpoints rewritten.
type CorruptCheckpointsError struct{ Phases []string }

func (e *CorruptCheckpointsError) Error() string {
	return fmt.Sprintf("unreadable checkpoints in ConfigMap %s for %s (they are rewritten when those phases converge)", CheckpointConfigMap, strings.Join(e.Phases, ", "))
}

// Get returns the checkpoints; a missing namespace or ConfigMap means none yet.
func (s *ConfigMapStore) Get(ctx context.Context) (map[string]Checkpoint, error) {
	data, err := s.store().get(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]Checkpoint{}
	var bad []string
	for k, v := range data {
		var c Checkpoint
		if err := json.Unmarshal([]byte(v), &c); err != nil || c.Phase != k {
			bad = append(bad, k)
			continue
		}
		out[k] = c
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return out, &CorruptCheckpointsError{Phases: bad}
	}
	return out, nil
}

// Put writes one checkpoint, creating the namespace and ConfigMap on first use.
func (s *ConfigMapStore) Put(ctx context.Context, c Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.store().put(ctx, map[string]string{c.Phase: string(b)})
}

// ownershipStore reads and writes the ownership record, one sorted JSON list per kind.
type ownershipStore struct{ store configMapStore }

// Owners is the ownership record: which objects of a kind vaultctl created.
type Owners interface {
	list(ctx context.Context, kind string) ([]string, error)
	set(ctx context.Context, kind string, names []string) error
}

func (o *ownershipStore) list(ctx context.Context, kind string) ([]string, error) {
	data, err := o.store.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading ownership record %s/%s: %w", o.store.namespace, o.store.name, err)
	}
	var names []string
	if s := data[kind]; s != "" {
		if err := json.Unmarshal([]byte(s), &names); err != nil {
			return nil, Fail(fmt.Sprintf("repair or delete key %q of ConfigMap %s/%s (vaultctl then owns only what it creates from now on)", kind, o.store.namespace, o.store.name),
				"ownership record %s of ConfigMap %s/%s is unreadable: %v", kind, o.store.namespace, o.store.name, err)
		}
	}
	return names, nil
}

// set records names as owned for kind (sorted, so re-recording the same set changes nothing).
func (o *ownershipStore) set(ctx context.Context, kind string, names []string) error {
	names = slices.Clone(names)
	slices.Sort(names)
	names = slices.Compact(names)
	if names == nil {
		names = []string{}
	}
	b, err := json.Marshal(names)
	if err != nil {
		return err
	}
	return o.store.put(ctx, map[string]string{kind: string(b)})
}

// ensureNamespace creates a namespace when it is missing.
func ensureNamespace(ctx context.Context, client kubernetes.Interface, name string) error {
	_, err := client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{ManagedByLabel: "vaultctl"}}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// namespaceStep returns a step creating the namespace when it is missing, so that a phase's
// Check observes without creating anything.
func namespaceStep(ctx context.Context, client kubernetes.Interface, ns string) (*step, error) {
	_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return nil, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	return &step{change: Change{Create, "Namespace " + ns, ""}, apply: func(ctx context.Context) error { return ensureNamespace(ctx, client, ns) }}, nil
}
