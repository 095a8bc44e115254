package sandbox

// The pod side of the runner: a short-lived re-exec of this binary that is born in fresh mount
// and UTS namespaces, lays out the pod's filesystem view and then execs vault (same PID), so the
// paths of the chart (/vault/config, /vault/userconfig/tls, /vault/data, /vault/audit,
// /var/run/secrets/kubernetes.io/serviceaccount, /etc/hosts) are what Vault opens, while the
// host's filesystem is left untouched. It checks first that it really was born in a mount
// namespace of its own (not its parent's), and refuses otherwise: VAULTCTL_SANDBOX_POD_INIT set
// by mistake in some shell must never mount over the host.
//
// The view: a tmpfs root whose entries are bind mounts of the host's "/" entries (so binaries,
// libraries, /proc, /dev, the tools and sandbox directories stay where they are). A mount point
// that does not exist on the host (/vault, /var/run/secrets/...) is made by "shadowing" its
// nearest existing parent: a tmpfs over it in this namespace, refilled with bind mounts of the
// host entries, plus the new directory. Nothing is created outside the pod's own directory.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// podInitEnv names the launch spec of a pod process; set only in that process's environment.
const podInitEnv = "VAULTCTL_SANDBOX_POD_INIT"

// podInitFailed is the exit code of a pod process whose setup failed before vault ran (the
// runner reports it as RunContainerError, not as a crash of Vault).
const podInitFailed = 125

// podMount binds Src (a host path) at Dst (a path inside the pod).
type podMount struct {
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// launchSpec is what the pod process needs besides its environment.
type launchSpec struct {
	Root     string     `json:"root"` // an empty directory of the pod, mounted over with a tmpfs
	Hostname string     `json:"hostname"`
	Mounts   []podMount `json:"mounts"`
	Argv     []string   `json:"argv"`
	Dir      string     `json:"dir,omitempty"`
}

// podInitMain sets up the namespaces of a pod process and execs its program; it never returns.
func podInitMain(specPath string) {
	err := podInit(specPath)
	fmt.Fprintf(os.Stderr, "vaultctl-sandbox runner: pod setup failed: %v\n", err)
	os.Exit(podInitFailed)
}

func podInit(specPath string) error {
	// First of all: everything below mounts, and in the caller's namespace that would be the
	// host's mounts. Only the runner's CLONE_NEWNS child may go on.
	if err := requireNewMountNamespace("/proc/self/ns/mnt", fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid())); err != nil {
		return err
	}
	b, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var spec launchSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("%s: %w", specPath, err)
	}
	if len(spec.Argv) == 0 {
		return errors.New("no command")
	}
	// Private first: no mount made below may ever propagate to the host's namespace.
	if err := syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private (is this a new mount namespace?): %w", err)
	}
	if spec.Hostname != "" {
		if err := syscall.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	v := &podView{root: spec.Root, shadowed: map[string]bool{}}
	if err := v.shadow("/"); err != nil {
		return err
	}
	mounts := append([]podMount(nil), spec.Mounts...)
	// Parents before children: /vault/data before anything inside it.
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(path.Clean(mounts[i].Dst), "/") < strings.Count(path.Clean(mounts[j].Dst), "/")
	})
	for _, m := range mounts {
		if err := v.bind(m); err != nil {
			return fmt.Errorf("mount %s at %s: %w", m.Src, m.Dst, err)
		}
	}
	if err := syscall.Chroot(spec.Root); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	if err := os.Chdir(dir); err != nil {
		return fmt.Errorf("chdir %s: %w", dir, err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, podInitEnv+"=") {
			env = append(env, kv)
		}
	}
	return syscall.Exec(spec.Argv[0], spec.Argv, env)
}

// requireNewMountNamespace fails unless the namespace links self and parent (/proc/PID/ns/mnt)
// name different mount namespaces; it also fails when either cannot be read.
func requireNewMountNamespace(self, parent string) error {
	a, err := os.Stat(self)
	if err != nil {
		return fmt.Errorf("refusing to set up a pod: cannot read this process's mount namespace: %w", err)
	}
	b, err := os.Stat(parent)
	if err != nil {
		return fmt.Errorf("refusing to set up a pod: cannot read the parent's mount namespace: %w", err)
	}
	return checkNewMountNamespace(a, b)
}

// checkNewMountNamespace compares two stats of namespace links: a namespace is identified by
// the device and inode its link resolves to.
func checkNewMountNamespace(self, parent fs.FileInfo) error {
	s, ok1 := self.Sys().(*syscall.Stat_t)
	p, ok2 := parent.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return errors.New("refusing to set up a pod: no inode numbers for the mount namespaces")
	}
	if s.Dev == p.Dev && s.Ino == p.Ino {
		return fmt.Errorf("refusing to set up a pod: this process shares its parent's mount namespace (mnt:[%d]), "+
			"so its mounts would change the parent's; %s is meant only for processes the sandbox runner starts in a new mount namespace",
			s.Ino, podInitEnv)
	}
	return nil
}

// podView builds the pod's root. Paths in its methods are pod paths ("/vault/data"); root+p is
// where that path is in the current namespace, and p itself is the same path on the host.
type podView struct {
	root string
	// shadowed holds pod directories that live on a tmpfs of this namespace (new entries may be
	// created in them without touching the host).
	shadowed map[string]bool
}

func (v *podView) at(p string) string { return filepath.Join(v.root, p) }

// shadow puts a tmpfs over pod directory p and refills it with bind mounts of the host's
// entries of p.
func (v *podView) shadow(p string) error {
	entries, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	dst := v.at(p)
	if err := syscall.Mount("tmpfs", dst, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755,size=16m"); err != nil {
		return fmt.Errorf("tmpfs at %s: %w", dst, err)
	}
	for _, e := range entries {
		src, to := filepath.Join(p, e.Name()), filepath.Join(dst, e.Name())
		switch {
		case e.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
		case e.IsDir():
			if err := os.Mkdir(to, 0o755); err != nil {
				return err
			}
			if err := syscall.Mount(src, to, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
				return fmt.Errorf("bind %s: %w", src, err)
			}
		default:
			f, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			f.Close()
			if err := syscall.Mount(src, to, "", syscall.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind %s: %w", src, err)
			}
		}
	}
	v.shadowed[p] = true
	return nil
}

// mountPoint makes pod path p exist (a directory, or a file when file is set) and returns it
// resolved: symlinks inside the view are followed the way the kernel would inside the chroot.
func (v *podView) mountPoint(p string, file bool) (string, error) {
	comps := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for hops := 0; len(comps) > 0; {
		if comps[0] == "" {
			comps = comps[1:]
			continue
		}
		next := path.Join(cur, comps[0])
		last := len(comps) == 1
		fi, err := os.Lstat(v.at(next))
		switch {
		case err == nil && fi.Mode()&os.ModeSymlink != 0:
			if hops++; hops > 40 {
				return "", fmt.Errorf("too many symlinks resolving %s", p)
			}
			target, err := os.Readlink(v.at(next))
			if err != nil {
				return "", err
			}
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest := append(strings.Split(strings.Trim(path.Clean(target), "/"), "/"), comps[1:]...)
			comps, cur = rest, "/"
			continue
		case err == nil:
		case errors.Is(err, os.ErrNotExist):
			if !v.shadowed[cur] {
				if err := v.shadow(cur); err != nil {
					return "", err
				}
			}
			if last && file {
				f, err := os.OpenFile(v.at(next), os.O_CREATE|os.O_WRONLY, 0o644)
				if err != nil {
					return "", err
				}
				f.Close()
			} else {
				if err := os.Mkdir(v.at(next), 0o755); err != nil {
					return "", err
				}
				v.shadowed[next] = true
			}
		default:
			return "", err
		}
		cur, comps = next, comps[1:]
	}
	return cur, nil
}

// bind mounts m.Src at m.Dst in the view, read-only when asked.
func (v *podView) bind(m podMount) error {
	fi, err := os.Stat(m.Src)
	if err != nil {
		return err
	}
	p, err := v.mountPoint(m.Dst, !fi.IsDir())
	if err != nil {
		return err
	}
	dst := v.at(p)
	if err := syscall.Mount(m.Src, dst, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return err
	}
	if m.ReadOnly {
		if err := syscall.Mount("none", dst, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("read-only remount: %w", err)
		}
	}
	return nil
}
