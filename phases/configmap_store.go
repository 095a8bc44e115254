package phases

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// CheckpointConfigMap is the ConfigMap, in the Vault namespace, that holds one JSON checkpoint
// per phase. Keeping it in the cluster lets a fresh CI runner resume where the last one stopped.
const CheckpointConfigMap = "vaultctl-checkpoints"

// ManagedByLabel marks every object vaultctl created.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// ConfigMapStore keeps checkpoints in CheckpointConfigMap.
type ConfigMapStore struct {
	Client    kubernetes.Interface
	Namespace string
}

// Get returns the checkpoints; a missing namespace or ConfigMap means none yet.
func (s *ConfigMapStore) Get(ctx context.Context) (map[string]Checkpoint, error) {
	out := map[string]Checkpoint{}
	cm, err := s.Client.CoreV1().ConfigMaps(s.Namespace).Get(ctx, CheckpointConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for k, v := range cm.Data {
		var c Checkpoint
		if json.Unmarshal([]byte(v), &c) == nil {
			out[k] = c
		}
	}
	return out, nil
}

// Put writes one checkpoint, creating the namespace and ConfigMap on first use.
func (s *ConfigMapStore) Put(ctx context.Context, c Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := s.ensureNamespace(ctx); err != nil {
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cms := s.Client.CoreV1().ConfigMaps(s.Namespace)
		cm, err := cms.Get(ctx, CheckpointConfigMap, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: CheckpointConfigMap, Namespace: s.Namespace, Labels: map[string]string{ManagedByLabel: "vaultctl"}},
				Data:       map[string]string{c.Phase: string(b)},
			}
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[c.Phase] = string(b)
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
}

func (s *ConfigMapStore) ensureNamespace(ctx context.Context) error {
	_, err := s.Client.CoreV1().Namespaces().Get(ctx, s.Namespace, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.Namespace, Labels: map[string]string{ManagedByLabel: "vaultctl"}}}
	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", s.Namespace, err)
	}
	return nil
}

// ensureNamespace creates the Vault namespace when it is missing.
func (e *Env) ensureNamespace(ctx context.Context) error {
	return (&ConfigMapStore{Client: e.Kube, Namespace: e.Config.Vault.Namespace}).ensureNamespace(ctx)
}

// namespaceStep returns a step creating the Vault namespace when it is missing, so that a
// phase's Check observes without creating anything.
func (e *Env) namespaceStep(ctx context.Context) (*step, error) {
	ns := e.Config.Vault.Namespace
	_, err := e.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return nil, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	return &step{Change{Create, "Namespace " + ns, ""}, e.ensureNamespace}, nil
}
