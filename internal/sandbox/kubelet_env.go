package sandbox

// A container's environment as the kubelet computes it from the pod spec. Shared by the runner
// (processes it starts) and Effective (what an application container would see).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// lookupFunc reads key of a ConfigMap ("configmap") or Secret ("secret") in the pod's namespace.
// An empty key asks for every key, as NUL-separated "k=v" pairs in key order.
type lookupFunc func(kind, name, key string) (string, bool, error)

// apiLookup is a lookupFunc reading from the API server. A ConfigMap's binaryData is not
// offered: the kubelet takes env values from data only.
func apiLookup(ctx context.Context, cs kubernetes.Interface, ns string) lookupFunc {
	return func(kind, name, key string) (string, bool, error) {
		data := map[string][]byte{}
		switch kind {
		case "configmap":
			cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return "", false, nil
			}
			if err != nil {
				return "", false, err
			}
			for k, v := range cm.Data {
				data[k] = []byte(v)
			}
		case "secret":
			s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return "", false, nil
			}
			if err != nil {
				return "", false, err
			}
			data = s.Data
		}
		if key == "" {
			keys := make([]string, 0, len(data))
			for k := range data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, 0, len(keys))
			for _, k := range keys {
				parts = append(parts, k+"="+string(data[k]))
			}
			return strings.Join(parts, "\x00"), true, nil
		}
		v, ok := data[key]
		return string(v), ok, nil
	}
}

// podFacts are the values the downward API exposes, and where the pod's volumes live on the host.
type podFacts struct {
	pod    *corev1.Pod
	podIP  string
	hostIP string
	// volumesDir holds the pod's emptyDirs by volume name (DIR/pods/NS_NAME/volumes); fileKeyRef
	// reads its env files there. Empty: there are no files yet (a pod the runner does not run).
	volumesDir string
}

func (f podFacts) field(path string) (string, error) {
	p := f.pod
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.nodeName":
		return p.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return f.podIP, nil
	case "status.hostIP", "status.hostIPs":
		return f.hostIP, nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": p.Labels, "metadata.annotations": p.Annotations} {
		if rest, ok := strings.CutPrefix(path, prefix+"['"); ok && strings.HasSuffix(rest, "']") {
			return m[strings.TrimSuffix(rest, "']")], nil
		}
		if path == prefix {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var b strings.Builder
			for _, k := range keys {
				fmt.Fprintf(&b, "%s=%q\n", k, m[k])
			}
			return b.String(), nil
		}
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// expandVars expands $(VAR) references the way the kubelet does: defined variables are
// replaced, undefined references stay as written, and $$ escapes a $.
func expandVars(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// containerEnv builds a container's environment in the kubelet's order: the runtime's base,
// the service links of the default kubernetes Service (here the sandbox API server), envFrom,
// then env with $(VAR) expansion against what came before. base comes first so the pod spec
// can override any of it.
func containerEnv(f podFacts, c *corev1.Container, base []string, lookup lookupFunc) ([]string, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, from := range c.EnvFrom {
		kind, name, optional := "", "", false
		switch {
		case from.ConfigMapRef != nil:
			kind, name = "configmap", from.ConfigMapRef.Name
			optional = from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
		case from.SecretRef != nil:
			kind, name = "secret", from.SecretRef.Name
			optional = from.SecretRef.Optional != nil && *from.SecretRef.Optional
		default:
			continue
		}
		all, ok, err := lookup(kind, name, "")
		if err != nil {
			return nil, err
		}
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("envFrom: %s %q not found", kind, name)
		}
		// An empty key asks for every key, encoded as "k=v" lines (values may hold newlines, so
		// lookup returns them NUL-separated).
		for _, kv := range strings.Split(all, "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				set(from.Prefix+k, v)
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, expandVars(e.Value, vars))
		case e.ValueFrom.FieldRef != nil:
			v, err := f.field(e.ValueFrom.FieldRef.FieldPath)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			set(e.Name, v)
		case e.ValueFrom.ConfigMapKeyRef != nil, e.ValueFrom.SecretKeyRef != nil:
			kind, sel := "configmap", corev1.LocalObjectReference{}
			key, optional := "", false
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				sel, key, optional = r.LocalObjectReference, r.Key, r.Optional != nil && *r.Optional
			} else {
				r := e.ValueFrom.SecretKeyRef
				kind, sel, key, optional = "secret", r.LocalObjectReference, r.Key, r.Optional != nil && *r.Optional
			}
			v, ok, err := lookup(kind, sel.Name, key)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			if !ok {
				if optional {
					continue
				}
				return nil, fmt.Errorf("env %s: key %q of %s %q not found", e.Name, key, kind, sel.Name)
			}
			set(e.Name, v)
		case e.ValueFrom.FileKeyRef != nil:
			r := e.ValueFrom.FileKeyRef
			optional := r.Optional != nil && *r.Optional
			v, ok, err := f.envFileValue(r.VolumeName, r.Path, r.Key)
			if errors.Is(err, fs.ErrNotExist) && optional {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			if !ok {
				if optional {
					continue
				}
				return nil, fmt.Errorf("env %s: key %q not found in env file %s of volume %q", e.Name, r.Key, r.Path, r.VolumeName)
			}
			set(e.Name, v)
		case e.ValueFrom.ResourceFieldRef != nil:
			// Limits are not enforced on the host; report none, as an unlimited container would.
			set(e.Name, "0")
		default:
			return nil, fmt.Errorf("env %s: unsupported valueFrom", e.Name)
		}
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env, nil
}

// envFileValue reads key from the env file at path in the pod's emptyDir volume (EnvFiles,
// fileKeyRef). ok is false when the key is missing; a missing file is an fs.ErrNotExist error.
func (f podFacts) envFileValue(volume, path, key string) (string, bool, error) {
	rel := filepath.Clean(path)
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false, fmt.Errorf("fileKeyRef: bad path %q", path)
	}
	notYet := fmt.Errorf("env file %s of volume %q does not exist (yet): %w", path, volume, fs.ErrNotExist)
	if f.volumesDir == "" {
		return "", false, notYet
	}
	b, err := os.ReadFile(filepath.Join(f.volumesDir, volume, rel))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, notYet
	}
	if err != nil {
		return "", false, err
	}
	return parseEnvFile(b, key)
}

// parseEnvFile finds key in an env file the way the kubelet reads EnvFiles (the .env format of
// pkg/kubelet/util/env in Kubernetes 1.35): lines have their leading blanks dropped; blank lines
// and lines starting with # are skipped; a line ending in a backslash continues on the next one,
// joined by one space; every other line is NAME=VALUE with blanks around both trimmed. Quotes are
// NOT special: they stay in the value. The first line naming key wins, and a malformed line
// before it is an error (the container would not start).
func parseEnvFile(b []byte, key string) (string, bool, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	var pending string
	continuing := false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			if continuing {
				return "", false, fmt.Errorf("env file line %d: a blank line or comment inside a continued line", n)
			}
			continue
		}
		line = strings.TrimRight(line, " \t")
		if cut, ok := strings.CutSuffix(line, "\\"); ok {
			part := strings.TrimRight(cut, " \t")
			if continuing {
				pending += " " + part
			} else {
				pending = part
			}
			continuing = true
			continue
		}
		if continuing {
			line, pending, continuing = pending+" "+line, "", false
		}
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return "", false, fmt.Errorf("env file line %d: want NAME=VALUE", n)
		}
		if name == key {
			return strings.TrimSpace(value), true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", false, fmt.Errorf("env file: %w", err)
	}
	if continuing {
		return "", false, errors.New("env file ends inside a continued line")
	}
	return "", false, nil
}
