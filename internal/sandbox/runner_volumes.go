package sandbox

// The files a pod's process sees: its volumes, ServiceAccount tokens and /etc/hosts.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// materializeVolumes writes the volumes the container mounts under the pod's directory and
// returns the bind mounts that put them at their mount paths.
func (r *runner) materializeVolumes(ctx context.Context, pod *corev1.Pod, p *podProc, c *corev1.Container) ([]podMount, error) {
	byName := map[string]*corev1.Volume{}
	for i := range pod.Spec.Volumes {
		byName[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	dirs := map[string]string{}
	var mounts []podMount
	for _, vm := range c.VolumeMounts {
		v, ok := byName[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %q: no such volume", vm.Name)
		}
		dir, ok := dirs[vm.Name]
		if !ok {
			var err error
			if dir, err = r.volume(ctx, pod, p, v); err != nil {
				return nil, fmt.Errorf("volume %q: %w", vm.Name, err)
			}
			dirs[vm.Name] = dir
		}
		src := dir
		if vm.SubPathExpr != "" {
			return nil, fmt.Errorf("volumeMount %q: subPathExpr is not supported by the sandbox runner", vm.Name)
		}
		if vm.SubPath != "" {
			rel := filepath.Clean(vm.SubPath)
			if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
				return nil, fmt.Errorf("volumeMount %q: bad subPath %q", vm.Name, vm.SubPath)
			}
			src = filepath.Join(dir, rel)
			if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
				if err := os.MkdirAll(src, 0o755); err != nil {
					return nil, err
				}
			}
		}
		mounts = append(mounts, podMount{Src: src, Dst: vm.MountPath, ReadOnly: vm.ReadOnly})
	}
	return mounts, nil
}

// volume returns the host directory backing v, writing its files for projected kinds.
func (r *runner) volume(ctx context.Context, pod *corev1.Pod, p *podProc, v *corev1.Volume) (string, error) {
	dir := filepath.Join(p.dir, "volumes", v.Name)
	switch {
	case v.EmptyDir != nil:
		return dir, os.MkdirAll(dir, 0o777)
	case v.PersistentVolumeClaim != nil:
		return r.claimPath(ctx, pod.Namespace, v.PersistentVolumeClaim.ClaimName)
	case v.HostPath != nil:
		if t := v.HostPath.Type; t != nil && (*t == corev1.HostPathDirectoryOrCreate) {
			if err := os.MkdirAll(v.HostPath.Path, 0o755); err != nil {
				return "", err
			}
		}
		return v.HostPath.Path, nil
	case v.ConfigMap != nil, v.Secret != nil, v.Projected != nil, v.DownwardAPI != nil:
		files, err := r.projectedFiles(ctx, pod, p, v)
		if err != nil {
			return "", err
		}
		return dir, syncDir(dir, files)
	}
	return "", errors.New("volume type not supported by the sandbox runner")
}

func (r *runner) claimPath(ctx context.Context, ns, claim string) (string, error) {
	pvc, err := r.cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("PersistentVolumeClaim %s: %w", claim, err)
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return "", fmt.Errorf("PersistentVolumeClaim %s is not bound", claim)
	}
	pv, err := r.cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("PersistentVolume %s: %w", pvc.Spec.VolumeName, err)
	}
	var path string
	switch {
	case pv.Spec.HostPath != nil:
		path = pv.Spec.HostPath.Path
	case pv.Spec.Local != nil:
		path = pv.Spec.Local.Path
	default:
		return "", fmt.Errorf("PersistentVolume %s is neither hostPath nor local", pv.Name)
	}
	return path, os.MkdirAll(path, 0o755)
}

// projectedFiles computes the files of a ConfigMap, Secret, downward API or projected volume.
// Server configurations (*.hcl) from ConfigMaps and Secrets get their listener addresses mapped
// to the pod's address: the only change made to what the chart rendered.
func (r *runner) projectedFiles(ctx context.Context, pod *corev1.Pod, p *podProc, v *corev1.Volume) (map[string]projFile, error) {
	facts := podFacts{pod: pod, podIP: p.ip, hostIP: r.cfg.HostIP}
	token := func(src *corev1.ServiceAccountTokenProjection) ([]byte, bool, error) {
		tok, err := r.serviceAccountToken(ctx, pod, p, src)
		return []byte(tok), err == nil, err
	}
	rewrite := func(name, key, path string, b []byte) []byte {
		if !strings.HasSuffix(path, ".hcl") {
			return b
		}
		text, changes := rewriteListeners(string(b), p.ip)
		if p.refreshedAt.IsZero() {
			for _, c := range changes {
				r.log.Printf("%s: %s/%s: %s", p.key, name, key, c)
			}
		}
		return []byte(text)
	}
	return volumeFiles(ctx, r.cs, facts, v, token, rewrite)
}

// serviceAccountToken returns a pod-bound token, requested again once 80% of its life is gone
// (the kubelet's rule).
func (r *runner) serviceAccountToken(ctx context.Context, pod *corev1.Pod, p *podProc, src *corev1.ServiceAccountTokenProjection) (string, error) {
	ck := src.Path + "\x00" + src.Audience
	if t, ok := p.tokens[ck]; ok && time.Now().Before(t.refreshAt) {
		return t.token, nil
	}
	exp := int64(3600)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	var aud []string
	if src.Audience != "" {
		aud = []string{src.Audience}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	issued := time.Now()
	tr, err := r.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		Audiences: aud, ExpirationSeconds: &exp,
		BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenRequest for ServiceAccount %s/%s: %w", pod.Namespace, sa, err)
	}
	life := tr.Status.ExpirationTimestamp.Sub(issued)
	p.tokens[ck] = cachedToken{token: tr.Status.Token, refreshAt: issued.Add(life * 8 / 10)}
	return tr.Status.Token, nil
}

// syncDir makes dir hold exactly files (relative paths), rewriting only what changed; files are
// replaced atomically, so a reader sees the old or the new content.
func syncDir(dir string, files map[string]projFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for rel, f := range files {
		clean := filepath.Clean(rel)
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("bad path %q", rel)
		}
		full := filepath.Join(dir, clean)
		if cur, err := os.ReadFile(full); err == nil && bytes.Equal(cur, f.data) {
			if fi, err := os.Stat(full); err == nil && fi.Mode().Perm() == f.mode.Perm() {
				continue
			}
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := writeFileAtomic(full, f.data, f.mode.Perm()); err != nil {
			return err
		}
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if _, ok := files[rel]; !ok {
			return os.Remove(path)
		}
		return nil
	})
}

type cachedToken struct {
	token     string
	refreshAt time.Time
}

// writeHosts keeps the pod's /etc/hosts current. The file is bind-mounted into the pod, so it
// is rewritten in place (same inode), never replaced.
func (r *runner) writeHosts(pod *corev1.Pod, p *podProc) error {
	self := hostEntry{Name: pod.Name, Namespace: pod.Namespace, Hostname: pod.Spec.Hostname, Subdomain: pod.Spec.Subdomain, IP: p.ip}
	var peers []hostEntry
	objs, _ := r.indexer.ByIndex(cache.NamespaceIndex, pod.Namespace)
	for _, o := range objs {
		q := o.(*corev1.Pod)
		if q.UID == pod.UID || q.DeletionTimestamp != nil || q.Spec.Subdomain == "" {
			continue
		}
		ip, err := r.podIP(podKey(q.Namespace, q.Name))
		if err != nil {
			return err
		}
		peers = append(peers, hostEntry{Name: q.Name, Namespace: q.Namespace, Hostname: q.Spec.Hostname, Subdomain: q.Spec.Subdomain, IP: ip})
	}
	return p.setHosts(hostsFile(self, peers))
}

// setHosts rewrites the pod's hosts file when its content changes. The file is bind-mounted
// into the pod's processes, so it is rewritten in place (same inode), never replaced.
func (p *podProc) setHosts(content string) error {
	if content == p.hosts {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(p.dir, "hosts"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	p.hosts = content
	return nil
}
