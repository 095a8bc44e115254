package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/internal/testreq"
)

// fakeInfo is a stat result with chosen device and inode numbers.
type fakeInfo struct {
	fs.FileInfo
	sys any
}

func (f fakeInfo) Sys() any { return f.sys }

func nsInfo(dev, ino uint64) fs.FileInfo { return fakeInfo{sys: &syscall.Stat_t{Dev: dev, Ino: ino}} }

func TestCheckNewMountNamespace(t *testing.T) {
	tests := []struct {
		name         string
		self, parent fs.FileInfo
		ok           bool
	}{
		{"same namespace", nsInfo(4, 4026531841), nsInfo(4, 4026531841), false},
		{"new namespace", nsInfo(4, 4026532999), nsInfo(4, 4026531841), true},
		{"same inode on another device", nsInfo(5, 4026531841), nsInfo(4, 4026531841), true},
		{"no inode numbers", fakeInfo{}, nsInfo(4, 1), false},
	}
	for _, tt := range tests {
		err := checkNewMountNamespace(tt.self, tt.parent)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%t", tt.name, err, tt.ok)
		}
	}
	err := checkNewMountNamespace(nsInfo(4, 4026531841), nsInfo(4, 4026531841))
	if err == nil || !strings.Contains(err.Error(), "parent's mount namespace") || !strings.Contains(err.Error(), podInitEnv) {
		t.Errorf("the refusal must say why and name %s: %v", podInitEnv, err)
	}
}

func TestRequireNewMountNamespacePaths(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// /proc/PID/ns/mnt is a link: the namespace is what it resolves to.
	link := filepath.Join(dir, "link-to-a")
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	if err := requireNewMountNamespace(link, a); err == nil {
		t.Error("two links to one namespace must be refused")
	}
	if err := requireNewMountNamespace(a, b); err != nil {
		t.Errorf("different namespaces: %v", err)
	}
	if err := requireNewMountNamespace(a, filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "parent's") {
		t.Errorf("an unreadable parent namespace must be refused: %v", err)
	}
	// This test process runs in its parent's (go test's) mount namespace.
	parent := fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid())
	if _, err := os.Stat(parent); err != nil {
		testreq.Missing(t, "cannot read %s: %v", parent, err)
	}
	if err := requireNewMountNamespace("/proc/self/ns/mnt", parent); err == nil {
		t.Errorf("the test process shares go test's mount namespace, yet the check passed")
	}
}

// nsHelperEnv makes the test binary a helper that runs the pod-init entry as its own child, in
// the helper's namespace, and reports whether the mount table or hostname changed.
const nsHelperEnv = "VAULTCTL_TEST_NS_HELPER"

// nsHelperMain is the helper's side; TestMain calls it.
func nsHelperMain() bool {
	spec := os.Getenv(nsHelperEnv)
	if spec == "" {
		return false
	}
	// As root the helper was born in throwaway mount and UTS namespaces: made private, nothing
	// a broken check mounted could reach the host. Without root nothing can be mounted anyway.
	if os.Geteuid() == 0 {
		if err := syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
			fmt.Printf("helper: %v\n", err)
			os.Exit(3)
		}
	}
	mountsBefore, _ := os.ReadFile("/proc/self/mountinfo")
	hostBefore, _ := os.Hostname()
	self, _ := os.Executable()
	cmd := exec.Command(self, "-test.run=^$") // no tests, should the init entry not take over
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, nsHelperEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, podInitEnv+"="+spec)
	out, err := cmd.CombinedOutput()
	os.Stdout.Write(out)
	mountsAfter, _ := os.ReadFile("/proc/self/mountinfo")
	hostAfter, _ := os.Hostname()
	fmt.Printf("\nmounts-changed=%t hostname-changed=%t\n", !bytes.Equal(mountsBefore, mountsAfter), hostBefore != hostAfter)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.ExitCode())
	case err != nil:
		fmt.Printf("helper: %v\n", err)
		os.Exit(3)
	}
	os.Exit(0)
	return true
}

// The pod-init entry started in its parent's mount namespace (VAULTCTL_SANDBOX_POD_INIT set by
// hand, say) refuses before it mounts anything or sets the hostname.
func TestPodInitRefusesParentsMountNamespace(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	src := filepath.Join(dir, "data")
	for _, d := range []string{root, src} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(launchSpec{
		Root: root, Hostname: "pod-init-must-not-set-this",
		Mounts: []podMount{{Src: src, Dst: "/vaultctl-ns-test/data"}},
		Argv:   []string{"/bin/sh", "-c", "echo vault-started"},
	})
	specPath := filepath.Join(dir, "launch.json")
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), nsHelperEnv+"="+specPath)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS}
	}
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != podInitFailed {
		t.Fatalf("want exit %d, got %v:\n%s", podInitFailed, err, out)
	}
	for _, want := range []string{"shares its parent's mount namespace", "mounts-changed=false", "hostname-changed=false"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "vault-started") {
		t.Errorf("the pod's command ran:\n%s", out)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the pod root was filled (%d entries): something was mounted", len(entries))
	}
}
