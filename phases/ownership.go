package phases

import (
	"context"
	"encoding/json"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// OwnershipConfigMap records which Vault objects vaultctl created. Vault policies and roles carry
// no labels, so ownership is recorded per installation; --prune deletes only what is listed here,
// never a policy someone wrote by hand.
const OwnershipConfigMap = "vaultctl-ownership"

type ownership struct{ env *Env }

func (o ownership) list(ctx context.Context, kind string) ([]string, error) {
	cm, err := o.env.Kube.CoreV1().ConfigMaps(o.env.Config.Vault.Namespace).Get(ctx, OwnershipConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	if s := cm.Data[kind]; s != "" {
		if err := json.Unmarshal([]byte(s), &names); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// set records names as owned for kind (sorted, so re-recording the same set changes nothing).
func (o ownership) set(ctx context.Context, kind string, names []string) error {
	names = slices.Clone(names)
	slices.Sort(names)
	names = slices.Compact(names)
	b, _ := json.Marshal(names)
	ns := o.env.Config.Vault.Namespace
	cms := o.env.Kube.CoreV1().ConfigMaps(ns)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, OwnershipConfigMap, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: OwnershipConfigMap, Namespace: ns, Labels: map[string]string{ManagedByLabel: "vaultctl"}},
				Data:       map[string]string{kind: string(b)},
			}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		if cm.Data[kind] == string(b) {
			return nil
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[kind] = string(b)
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
}
