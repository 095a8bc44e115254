package sandbox

// What an application container would see: its environment and the files under its volume
// mounts. The sandbox does not run application images (they do not exist here), so tests ask
// this view instead of the container.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/internal/sandbox/agentinject"
)

// Effective is the environment and files one container of a pod would see.
//
// Env is what the pod spec gives the container, as the kubelet computes it (the image's own
// ENV and the runtime's HOSTNAME and Service links are not known and not included); when the
// container's command sources files (`sh -c '. /vault/secrets/x && exec app'`), it is the
// environment after a real shell has sourced them. Files holds every regular file under every
// volume mount of the container, by its path in the container, and Modes their permissions.
type Effective struct {
	Env   map[string]string
	Files map[string][]byte
	Modes map[string]fs.FileMode
}

// effectiveJSON is Effective on the wire: files in base64 (encoding/json's []byte), modes as
// octal strings. JSON strings cannot carry bytes that are not UTF-8, so such env values are
// also given exactly, in base64, under envBase64 (env then shows them with U+FFFD).
type effectiveJSON struct {
	UID       string            `json:"uid,omitempty"` // snapshots only: the pod the view belongs to
	Env       map[string]string `json:"env"`
	EnvBase64 map[string][]byte `json:"envBase64,omitempty"`
	Files     map[string][]byte `json:"files"`
	Modes     map[string]string `json:"modes"`
}

func (e Effective) toJSON() effectiveJSON {
	j := effectiveJSON{Env: map[string]string{}, Files: map[string][]byte{}, Modes: map[string]string{}}
	for k, v := range e.Env {
		j.Env[k] = v
		if !utf8.ValidString(v) {
			if j.EnvBase64 == nil {
				j.EnvBase64 = map[string][]byte{}
			}
			j.EnvBase64[k] = []byte(v)
		}
	}
	for p, b := range e.Files {
		if b == nil {
			b = []byte{}
		}
		j.Files[p] = b
	}
	for p, m := range e.Modes {
		j.Modes[p] = fmt.Sprintf("%04o", m.Perm())
	}
	return j
}

func (j effectiveJSON) effective() (*Effective, error) {
	e := &Effective{Env: map[string]string{}, Files: map[string][]byte{}, Modes: map[string]fs.FileMode{}}
	for k, v := range j.Env {
		e.Env[k] = v
	}
	for k, b := range j.EnvBase64 {
		e.Env[k] = string(b)
	}
	for p, b := range j.Files {
		e.Files[p] = b
	}
	for p, s := range j.Modes {
		m, err := strconv.ParseUint(s, 8, 32)
		if err != nil {
			return nil, fmt.Errorf("mode of %s: %q is not octal", p, s)
		}
		e.Modes[p] = fs.FileMode(m)
	}
	return e, nil
}

// MarshalJSON writes {"env": {NAME: VALUE}, "files": {PATH: BASE64}, "modes": {PATH: "0644"}}.
func (e Effective) MarshalJSON() ([]byte, error) { return json.Marshal(e.toJSON()) }

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Effective) UnmarshalJSON(b []byte) error {
	var j effectiveJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	got, err := j.effective()
	if err != nil {
		return err
	}
	*e = *got
	return nil
}

// Effective returns what container of pod ns/name would see. An empty container means the
// first application container (not the injected vault-agent).
func (s *Sandbox) Effective(ctx context.Context, ns, name, container string) (*Effective, error) {
	cs, err := kubeClient(s.Kubeconfig)
	if err != nil {
		return nil, err
	}
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", ns, name, err)
	}
	return computeEffective(ctx, cs, s.Dir, pod, container)
}

// effectiveSnapshotPath is where the runner keeps what an application init container saw at
// the moment it "ran": DIR/pods/NS_NAME/effective/CONTAINER.json.
func effectiveSnapshotPath(podDir, container string) string {
	return filepath.Join(podDir, "effective", container+".json")
}

// saveEffectiveSnapshot records e as what container of pod saw; computeEffective returns it
// from then on for that pod (same UID).
func saveEffectiveSnapshot(podDir string, pod *corev1.Pod, container string, e *Effective) error {
	j := e.toJSON()
	j.UID = string(pod.UID)
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	p := effectiveSnapshotPath(podDir, container)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(p, b, 0o600)
}

// loadEffectiveSnapshot returns the saved view of container, or nil if there is none for this
// pod (a snapshot of an earlier pod with the same name does not count).
func loadEffectiveSnapshot(podDir string, pod *corev1.Pod, container string) (*Effective, error) {
	b, err := os.ReadFile(effectiveSnapshotPath(podDir, container))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var j effectiveJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", effectiveSnapshotPath(podDir, container), err)
	}
	if j.UID != string(pod.UID) {
		return nil, nil
	}
	return j.effective()
}

// computeEffective computes what container (empty: the first application container) of pod
// sees. dir is the sandbox directory: the runner keeps the emptyDirs of the pods it runs under
// DIR/pods/NS_NAME/volumes, valid while DIR/pods/NS_NAME/uid names this pod; every other
// volume is computed from the API as the kubelet would write it. For an application init
// container the runner has "run", the view it saved at that moment is returned.
func computeEffective(ctx context.Context, cs kubernetes.Interface, dir string, pod *corev1.Pod, container string) (*Effective, error) {
	c, isInit, err := effectiveContainer(pod, container)
	if err != nil {
		return nil, err
	}
	podDir := layout{dir: dir}.podDir(pod.Namespace, pod.Name)
	if isInit {
		snap, err := loadEffectiveSnapshot(podDir, pod, c.Name)
		if err != nil || snap != nil {
			return snap, err
		}
	}
	volumesDir := ""
	if b, err := os.ReadFile(filepath.Join(podDir, "uid")); err == nil && pod.UID != "" && string(b) == string(pod.UID) {
		volumesDir = filepath.Join(podDir, "volumes")
	}
	facts := podFacts{pod: pod, podIP: pod.Status.PodIP, hostIP: pod.Status.HostIP, volumesDir: volumesDir}

	files, hostPaths, err := mountedFiles(ctx, cs, facts, c)
	if err != nil {
		return nil, err
	}
	eff := &Effective{Env: map[string]string{}, Files: map[string][]byte{}, Modes: map[string]fs.FileMode{}}
	for p, f := range files {
		eff.Files[p] = f.data
		eff.Modes[p] = f.mode.Perm()
	}

	env, err := containerEnv(facts, c, nil, apiLookup(ctx, cs, pod.Namespace))
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Name, err)
	}
	eff.Env = envMap(env)

	shell, sourced := sourcedFiles(c, eff.Env)
	if len(sourced) > 0 {
		if eff.Env, err = sourceEnv(ctx, shell, env, sourced, files, hostPaths); err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
	}
	return eff, nil
}

// effectiveContainer finds the named container (an app or init container); no name picks the
// first container that is not the injected agent sidecar.
func effectiveContainer(pod *corev1.Pod, name string) (*corev1.Container, bool, error) {
	var names []string
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if (name == "" && c.Name != agentinject.SidecarContainerName) || c.Name == name {
			return c, false, nil
		}
		names = append(names, c.Name)
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if name != "" && c.Name == name {
			return c, true, nil
		}
		names = append(names, c.Name)
	}
	if name == "" {
		return nil, false, fmt.Errorf("pod %s/%s has no application container (only %s)", pod.Namespace, pod.Name, strings.Join(names, ", "))
	}
	return nil, false, fmt.Errorf("pod %s/%s has no container %q (it has %s)", pod.Namespace, pod.Name, name, strings.Join(names, ", "))
}

// mountedFiles lists the regular files under c's volume mounts, by path in the container, and
// for those that exist on the host (emptyDirs of pods the runner runs, hostPaths) where.
// Volume kinds the sandbox cannot see into (PersistentVolumeClaims, CSI, ...) contribute none.
func mountedFiles(ctx context.Context, cs kubernetes.Interface, facts podFacts, c *corev1.Container) (map[string]projFile, map[string]string, error) {
	pod := facts.pod
	byName := map[string]*corev1.Volume{}
	for i := range pod.Spec.Volumes {
		byName[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	files := map[string]projFile{}
	hostPaths := map[string]string{}
	// A later mount at a deeper path hides what an earlier one put there, as in the kernel;
	// mount the shallow ones first.
	mounts := slices.Clone(c.VolumeMounts)
	sort.SliceStable(mounts, func(i, j int) bool {
		return len(path.Clean(mounts[i].MountPath)) < len(path.Clean(mounts[j].MountPath))
	})
	for _, vm := range mounts {
		v, ok := byName[vm.Name]
		if !ok {
			return nil, nil, fmt.Errorf("container %s: volumeMount %q names no volume of the pod", c.Name, vm.Name)
		}
		vfiles, vhost, err := volumeContent(ctx, cs, facts, v)
		if err != nil {
			return nil, nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		mountPath := path.Clean(vm.MountPath)
		for p := range files {
			if p == mountPath || strings.HasPrefix(p, mountPath+"/") {
				delete(files, p)
				delete(hostPaths, p)
			}
		}
		sub := path.Clean("/" + vm.SubPath)[1:] // "" without subPath
		for rel, f := range vfiles {
			var dst string
			switch {
			case sub == "":
				dst = path.Join(mountPath, rel)
			case rel == sub: // the subPath is a file: it is the mount
				dst = mountPath
			case strings.HasPrefix(rel, sub+"/"):
				dst = path.Join(mountPath, strings.TrimPrefix(rel, sub+"/"))
			default:
				continue
			}
			files[dst] = f
			if h, ok := vhost[rel]; ok {
				hostPaths[dst] = h
			}
		}
	}
	return files, hostPaths, nil
}

// volumeContent is a volume's files by relative path, and the host path of those that exist on
// the host.
func volumeContent(ctx context.Context, cs kubernetes.Interface, facts podFacts, v *corev1.Volume) (map[string]projFile, map[string]string, error) {
	switch {
	case v.EmptyDir != nil:
		if facts.volumesDir == "" {
			return nil, nil, nil // nobody ran the pod: its emptyDirs are empty
		}
		return readHostDir(filepath.Join(facts.volumesDir, v.Name))
	case v.HostPath != nil:
		return readHostDir(v.HostPath.Path)
	case v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Projected != nil:
		// A projected token exists only where the runner wrote one for a process it runs.
		token := func(src *corev1.ServiceAccountTokenProjection) ([]byte, bool, error) {
			if facts.volumesDir == "" {
				return nil, false, nil
			}
			b, err := os.ReadFile(filepath.Join(facts.volumesDir, v.Name, filepath.Clean(src.Path)))
			if errors.Is(err, fs.ErrNotExist) {
				return nil, false, nil
			}
			return b, err == nil, err
		}
		files, err := volumeFiles(ctx, cs, facts, v, token, nil)
		return files, nil, err
	}
	return nil, nil, nil
}

// readHostDir reads the regular files under dir (symbolic links followed, as a reader in the
// container would); a missing dir is empty.
func readHostDir(dir string) (map[string]projFile, map[string]string, error) {
	files := map[string]projFile{}
	hostPaths := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return fs.SkipAll
		}
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			return nil // a dangling link or a socket is no file to read
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		files[rel] = projFile{data: b, mode: fi.Mode().Perm()}
		hostPaths[rel] = p
		return nil
	})
	return files, hostPaths, err
}

// sourceRE finds `. FILE` and `source FILE` where a shell command starts: at the start of the
// script or after ; & | ( or a newline.
var sourceRE = regexp.MustCompile(`(?:^|[;&|(\n])\s*(?:\.|source)\s+("[^"]*"|'[^']*'|[^\s;&|)]+)`)

// sourcedFiles returns the shell and the files (container paths, in order) a container's
// command sources, if its command is `SHELL [-opts] -c SCRIPT ...`. Arguments get the kubelet's
// $(VAR) expansion first, as they would in the container.
func sourcedFiles(c *corev1.Container, env map[string]string) (string, []string) {
	var argv []string
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		argv = append(argv, expandVars(a, env))
	}
	if len(argv) < 2 {
		return "", nil
	}
	switch path.Base(argv[0]) {
	case "sh", "bash", "ash", "dash", "ksh", "zsh":
	default:
		return "", nil
	}
	script, withC := "", false
	for _, a := range argv[1:] {
		if strings.HasPrefix(a, "-") || strings.HasPrefix(a, "+") {
			withC = withC || (a[0] == '-' && !strings.HasPrefix(a, "--") && strings.Contains(a, "c"))
			continue
		}
		script = a
		break
	}
	if !withC {
		return "", nil
	}
	var files []string
	for _, m := range sourceRE.FindAllStringSubmatch(script, -1) {
		f := m[1]
		if len(f) >= 2 && (f[0] == '"' || f[0] == '\'') {
			f = f[1 : len(f)-1]
		}
		files = append(files, f)
	}
	return path.Base(argv[0]), files
}

// sourceEnv runs a real shell that, with env as its whole environment, sources the host copies
// of the container files sourced (in order) and prints its environment. Variables the shell
// itself adds (PWD, SHLVL, ...) are left out unless the sourced files set them.
func sourceEnv(ctx context.Context, shell string, env, sourced []string, files map[string]projFile, hostPaths map[string]string) (map[string]string, error) {
	sh, err := exec.LookPath(shell)
	if err != nil {
		sh = "/bin/sh" // every shell named above reads `.` the POSIX way
	}
	envBin, err := exec.LookPath("env")
	if err != nil {
		return nil, fmt.Errorf("sourcing needs env(1) on this host: %w", err)
	}
	var args []string
	var tmp string
	for _, p := range sourced {
		p = path.Clean(p)
		f, ok := files[p]
		if !ok {
			return nil, fmt.Errorf("the command sources %s, which is not (yet) a file in the container: %w", p, fs.ErrNotExist)
		}
		host, ok := hostPaths[p]
		if !ok { // computed from the API: give the shell a copy
			if tmp == "" {
				if tmp, err = os.MkdirTemp("", "vaultctl-effective-"); err != nil {
					return nil, err
				}
				defer os.RemoveAll(tmp)
			}
			host = filepath.Join(tmp, strconv.Itoa(len(args)))
			if err := os.WriteFile(host, f.data, 0o600); err != nil {
				return nil, err
			}
		}
		args = append(args, host)
	}
	run := func(files []string) (map[string]string, error) {
		// `for f` leaves f unexported, so it does not show up in env's output.
		script := `for f; do . "$f"; done; exec ` + shellQuote(envBin) + ` -0`
		cmd := exec.CommandContext(ctx, sh, append([]string{"-c", script, "sh"}, files...)...)
		cmd.Env = slices.Clone(env)
		if cmd.Env == nil {
			cmd.Env = []string{} // nil would mean this process's environment
		}
		cmd.Dir = "/"
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s sourcing %s: %w: %s", shell, strings.Join(sourced, ", "), err, strings.TrimSpace(stderr.String()))
		}
		out := map[string]string{}
		for _, kv := range strings.Split(strings.TrimSuffix(stdout.String(), "\x00"), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				out[k] = v
			}
		}
		return out, nil
	}
	base, err := run(nil)
	if err != nil {
		return nil, err
	}
	got, err := run(args)
	if err != nil {
		return nil, err
	}
	given := envMap(env)
	for k, v := range base {
		if _, ok := given[k]; !ok && got[k] == v {
			delete(got, k)
		}
	}
	return got, nil
}
