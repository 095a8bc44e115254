package sandbox

// The files of a pod's API-backed volumes as the kubelet writes them. Shared by the runner and
// Effective.

import (
	"context"
	"errors"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

type projFile struct {
	data []byte
	mode os.FileMode
}

// volumeFiles computes the files (by path in the volume) of a ConfigMap, Secret, downward API or
// projected volume: items select and rename keys, an item's mode beats the volume's defaultMode
// beats 0644, and a missing object or key is an error unless the source is optional. token
// supplies a projected ServiceAccount token (ok false: leave the file out); transform, if not
// nil, may change a ConfigMap or Secret value on its way to the file.
func volumeFiles(ctx context.Context, cs kubernetes.Interface, facts podFacts, v *corev1.Volume,
	token func(*corev1.ServiceAccountTokenProjection) ([]byte, bool, error),
	transform func(name, key, path string, b []byte) []byte,
) (map[string]projFile, error) {
	pod := facts.pod
	files := map[string]projFile{}
	mode := func(item *int32, def *int32) os.FileMode {
		switch {
		case item != nil:
			return os.FileMode(*item)
		case def != nil:
			return os.FileMode(*def)
		}
		return 0o644
	}
	addData := func(kind, name string, data map[string][]byte, items []corev1.KeyToPath, optional bool, def *int32) error {
		if data == nil {
			if optional {
				return nil
			}
			return fmt.Errorf("%s %q not found", kind, name)
		}
		if len(items) == 0 {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				if optional {
					continue
				}
				return fmt.Errorf("key %q of %s %q not found", it.Key, kind, name)
			}
			if transform != nil {
				b = transform(name, it.Key, it.Path, b)
			}
			files[it.Path] = projFile{data: b, mode: mode(it.Mode, def)}
		}
		return nil
	}
	configMap := func(name string) (map[string][]byte, error) {
		cm, err := cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		m := map[string][]byte{}
		for k, s := range cm.Data {
			m[k] = []byte(s)
		}
		for k, b := range cm.BinaryData {
			m[k] = b
		}
		return m, nil
	}
	secret := func(name string) (map[string][]byte, error) {
		s, err := cs.CoreV1().Secrets(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		return s.Data, nil
	}
	downward := func(items []corev1.DownwardAPIVolumeFile, def *int32) error {
		for _, it := range items {
			val := "0"
			if it.FieldRef != nil {
				var err error
				if val, err = facts.field(it.FieldRef.FieldPath); err != nil {
					return err
				}
			}
			files[it.Path] = projFile{data: []byte(val), mode: mode(it.Mode, def)}
		}
		return nil
	}
	opt := func(b *bool) bool { return b != nil && *b }
	switch {
	case v.ConfigMap != nil:
		data, err := configMap(v.ConfigMap.Name)
		if err != nil {
			return nil, err
		}
		return files, addData("ConfigMap", v.ConfigMap.Name, data, v.ConfigMap.Items, opt(v.ConfigMap.Optional), v.ConfigMap.DefaultMode)
	case v.Secret != nil:
		data, err := secret(v.Secret.SecretName)
		if err != nil {
			return nil, err
		}
		return files, addData("Secret", v.Secret.SecretName, data, v.Secret.Items, opt(v.Secret.Optional), v.Secret.DefaultMode)
	case v.DownwardAPI != nil:
		return files, downward(v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
	case v.Projected == nil:
		return nil, errors.New("not a ConfigMap, Secret, downward API or projected volume")
	}
	def := v.Projected.DefaultMode
	for _, src := range v.Projected.Sources {
		switch {
		case src.ConfigMap != nil:
			data, err := configMap(src.ConfigMap.Name)
			if err != nil {
				return nil, err
			}
			if err := addData("ConfigMap", src.ConfigMap.Name, data, src.ConfigMap.Items, opt(src.ConfigMap.Optional), def); err != nil {
				return nil, err
			}
		case src.Secret != nil:
			data, err := secret(src.Secret.Name)
			if err != nil {
				return nil, err
			}
			if err := addData("Secret", src.Secret.Name, data, src.Secret.Items, opt(src.Secret.Optional), def); err != nil {
				return nil, err
			}
		case src.DownwardAPI != nil:
			if err := downward(src.DownwardAPI.Items, def); err != nil {
				return nil, err
			}
		case src.ServiceAccountToken != nil:
			tok, ok, err := token(src.ServiceAccountToken)
			if err != nil {
				return nil, err
			}
			if ok {
				files[src.ServiceAccountToken.Path] = projFile{data: tok, mode: mode(nil, def)}
			}
		default:
			return nil, errors.New("projected source not supported by the sandbox")
		}
	}
	return files, nil
}
