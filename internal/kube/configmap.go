package kube

import (
	"context"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// KeyedConfigMap is bookkeeping kept in one ConfigMap, one key per record, so writers that touch
// different records never undo each other: Put and Delete re-read and retry on conflict.
// vaultctl's checkpoints, ownership record and migration journals all live in one.
type KeyedConfigMap struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	Labels    map[string]string // set when the ConfigMap is created
}

// Get returns the data; a missing namespace or ConfigMap means none yet.
func (s KeyedConfigMap) Get(ctx context.Context) (map[string]string, error) {
	cm, err := s.Client.CoreV1().ConfigMaps(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	return maps.Clone(cm.Data), nil
}

// Put sets the given keys, creating the ConfigMap on first use (not its namespace); it writes
// nothing when they already hold these values.
func (s KeyedConfigMap) Put(ctx context.Context, kv map[string]string) error {
	return s.change(ctx, func(data map[string]string) bool {
		changed := false
		for k, v := range kv {
			if cur, ok := data[k]; !ok || cur != v {
				data[k], changed = v, true
			}
		}
		return changed
	})
}

// Delete removes the given keys; missing ones are fine.
func (s KeyedConfigMap) Delete(ctx context.Context, keys ...string) error {
	return s.change(ctx, func(data map[string]string) bool {
		changed := false
		for _, k := range keys {
			if _, ok := data[k]; ok {
				delete(data, k)
				changed = true
			}
		}
		return changed
	})
}

// contended is the retry budget for one change: several writers (a migration's workloads run
// side by side) may each need a few rounds.
var contended = wait.Backoff{Steps: 60, Duration: 5 * time.Millisecond, Factor: 1.2, Jitter: 1, Cap: 500 * time.Millisecond}

func (s KeyedConfigMap) change(ctx context.Context, edit func(map[string]string) bool) error {
	cms := s.Client.CoreV1().ConfigMaps(s.Namespace)
	return retry.RetryOnConflict(contended, func() error {
		cm, err := cms.Get(ctx, s.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			data := map[string]string{}
			if !edit(data) {
				return nil
			}
			_, err = cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels},
				Data:       data,
			}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("configmaps"), s.Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		if !edit(cm.Data) {
			return nil
		}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
}
