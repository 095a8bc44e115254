package e2e

// Helpers of the kill -9 tests: kill `vaultctl apply` at a known point, prove it died there,
// and prove the re-run finished the work the killed run left.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/phases"
)

// killedRun is a `vaultctl apply` killed with SIGKILL the moment the recovery keys reached
// custody: inside the initialize phase, after operator init, before anything later ran.
type killedRun struct {
	Output  string            // what it printed before it died (never a secret: the scan checks)
	Holder  string            // the apply Lease's holder it left behind (machine/pid)
	Custody map[string][]byte // the custody Secret's data as the killed run stored it
}

// applyKilledAtCustody starts `vaultctl apply` on cfgPath, watches the custody Secret in ns and
// sends SIGKILL on the event that creates it (a watch, not a poll, so the run has no time to
// move on). It fails unless the run was still going at that moment, died of the signal, and
// had converged no phase from kubernetes-auth on (no checkpoint for it), and unless it left
// the apply Lease held by its own PID.
func applyKilledAtCustody(t *testing.T, cfgPath, ns string, timeout time.Duration) killedRun {
	t.Helper()
	cs := kube(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	secrets := cs.CoreV1().Secrets(ns)
	sel := fields.OneTermEqualSelector("metadata.name", phases.CustodySecret).String()
	// List, then watch from the list's resourceVersion, so the creation cannot fall between.
	list, err := secrets.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Fatalf("Secret %s/%s exists before the first apply", ns, phases.CustodySecret)
	}
	rv := list.ResourceVersion
	w, err := secrets.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { w.Stop() }()

	cmd := exec.Command(vaultctlBinary(t), "apply", "-c", cfgPath)
	cmd.Env = append(append(os.Environ(), sb.Env()...), "CI=true")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	killed := false
	defer func() {
		if !killed { // a failed wait below must not leave the run going
			_ = cmd.Process.Kill()
			<-exited
			recordOutput(out.String())
		}
	}()

	var stored map[string][]byte
	for stored == nil {
		select {
		case err := <-exited:
			killed = true // nothing left to kill
			recordOutput(out.String())
			t.Fatalf("apply ended (%v) before the recovery keys reached custody:\n%s", err, out.String())
		case <-ctx.Done():
			t.Fatalf("the custody Secret did not appear within %s:\n%s", timeout, out.String())
		case ev, ok := <-w.ResultChan():
			if !ok { // the API server ends watches now and then: resume where it stopped
				if w, err = secrets.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if ev.Type == watch.Error {
				t.Fatalf("watching the custody Secret: %v", ev.Object)
			}
			s, isSecret := ev.Object.(*corev1.Secret)
			if !isSecret {
				continue
			}
			rv = s.ResourceVersion
			if (ev.Type == watch.Added || ev.Type == watch.Modified) && len(s.Data["recovery-keys.enc"]) > 0 {
				stored = s.Data
			}
		}
	}
	// Signal fails (os.ErrProcessDone) if the run was already reaped; a run that exited but was
	// not yet reaped accepts the signal, and its wait status below says it exited.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v: the run had ended before the kill point:\n%s", err, out.String())
	}
	killed = true
	waitErr := <-exited
	recordOutput(out.String())
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) {
		t.Fatalf("wait after SIGKILL: %v, want the exit error of a killed process", waitErr)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("apply did not die of SIGKILL (%s): it finished before the kill point:\n%s", cmd.ProcessState, out.String())
	}
	if !strings.Contains(out.String(), "--> initialize:") {
		t.Fatalf("the killed run had not started initialize:\n%s", out.String())
	}

	// The kill point: nothing from kubernetes-auth on had converged.
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), phases.CheckpointConfigMap, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("checkpoints after the kill: %v", err)
	}
	var checkpoints map[string]string
	if err == nil {
		checkpoints = cm.Data
	}
	for _, p := range []string{"kubernetes-auth", "bootstrap", "raft", "injector", "policies", "roles", "network-policies", "audit"} {
		if _, ok := checkpoints[p]; ok {
			t.Fatalf("the kill landed after %s had converged (it has a checkpoint):\n%s", p, out.String())
		}
	}

	// It died holding the apply lock: the re-run must take it over, at once.
	le, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), action.ApplyLease, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the killed run's apply Lease: %v", err)
	}
	holder := ""
	if le.Spec.HolderIdentity != nil {
		holder = *le.Spec.HolderIdentity
	}
	if !strings.HasSuffix(holder, "/"+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("the apply Lease is held by %q, not by the killed run (pid %d)", holder, cmd.Process.Pid)
	}
	return killedRun{Output: out.String(), Holder: holder, Custody: stored}
}

// applyDoc is `vaultctl apply -o json` with the phases' changes.
type applyDoc struct {
	OK      bool            `json:"ok"`
	Changes int             `json:"changes"`
	Phases  []phases.Result `json:"phases"`
	Error   string          `json:"error"`
}

func (d applyDoc) phase(name string) phases.Result {
	for _, p := range d.Phases {
		if p.Phase == name {
			return p
		}
	}
	return phases.Result{Phase: name}
}

// hasChange reports whether phase made a change with action on an object containing object.
func (d applyDoc) hasChange(phase string, a phases.Action, object string) bool {
	for _, c := range d.phase(phase).Changes {
		if c.Action == a && strings.Contains(c.Object, object) {
			return true
		}
	}
	return false
}

// deletions lists every delete the run made, as "phase: object".
func (d applyDoc) deletions() []string {
	var out []string
	for _, p := range d.Phases {
		for _, c := range p.Changes {
			if c.Action == phases.Delete {
				out = append(out, p.Phase+": "+c.Object)
			}
		}
	}
	return out
}

func parseApply(t *testing.T, r cliResult) applyDoc {
	t.Helper()
	var d applyDoc
	if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
		t.Fatalf("output is not one JSON document: %v\n%s", err, r)
	}
	return d
}

// rerunAfterKill runs `vaultctl -v apply -o json` after k and checks that it took the dead
// run's Lease over at once (the README: a holder that died on the same machine is taken over
// at once), did not initialize again, and had work left: every phase of leftWork changed.
func rerunAfterKill(t *testing.T, cfgPath string, k killedRun, leftWork ...string) applyDoc {
	t.Helper()
	r := vaultctl(t, "-v", "apply", "-c", cfgPath, "-o", "json")
	if want := "took over from " + k.Holder + " (a process of this machine that no longer runs)"; !strings.Contains(r.Stderr, want) {
		t.Fatalf("the re-run did not take the killed run's lock over at once (want %q):\n%s", want, r)
	}
	d := parseApply(t, r)
	if !d.OK {
		t.Fatalf("re-run after kill failed:\n%s", r)
	}
	if s := d.phase("initialize").Status; s != phases.UpToDate {
		t.Fatalf("re-run re-initialized: initialize = %q", s)
	}
	for _, p := range leftWork {
		if s := d.phase(p).Status; s != phases.Changed {
			t.Errorf("re-run: %s = %q, want changed (the killed run left it undone)", p, s)
		}
	}
	return d
}
