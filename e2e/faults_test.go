//go:build faults

// The fault suite (issue 15): randomized faults against the real sandbox, kept out of `make
// test` by its build tag. `make faults` runs it; FAULT_TRIALS sets the trials per scenario and
// FAULT_SEED replays a run (each scenario prints the seed it used).
package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/phases"
)

func faultTrials(t *testing.T) int {
	n, err := strconv.Atoi(os.Getenv("FAULT_TRIALS"))
	if err != nil || n < 1 {
		return 3
	}
	return n
}

// faultRand is the scenario's random source; its seed is printed so that a failure replays.
func faultRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("FAULT_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("%s: seed %d (FAULT_SEED=%d replays it)", t.Name(), seed, seed)
	return rand.New(rand.NewPCG(seed, seed>>1|1))
}

// faultNamespace is a namespace of 30 Secrets read by 10 Deployments, each reading three
// through a keyed env ref, envFrom and a volume, with values of random bytes.
func faultNamespace(ns string, rng *rand.Rand) ([]runtime.Object, []migrate.WorkloadID) {
	var objs []runtime.Object
	var ids []migrate.WorkloadID
	for i := range 30 {
		data := map[string][]byte{}
		for k := range 2 {
			v := make([]byte, 8+rng.IntN(24))
			for j := range v {
				v[j] = byte(rng.IntN(256))
			}
			data[fmt.Sprintf("KEY_%d", k)] = append([]byte(fmt.Sprintf("%s-s%d-", ns, i)), v...)
		}
		objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%02d", i), Namespace: ns}, Type: corev1.SecretTypeOpaque, Data: data})
	}
	one := int32(1)
	for w := range 10 {
		name := fmt.Sprintf("w%02d", w)
		labels := map[string]string{"app": name}
		env, from, vol := fmt.Sprintf("s%02d", 3*w), fmt.Sprintf("s%02d", 3*w+1), fmt.Sprintf("s%02d", 3*w+2)
		objs = append(objs, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: appsv1.DeploymentSpec{
			Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/app:1", Command: []string{"/app"},
					Env: []corev1.EnvVar{{Name: "ONE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: env}, Key: "KEY_0"}}}},
					EnvFrom:      []corev1.EnvFromSource{{Prefix: "F_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: from}}}},
					VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/etc/v"}},
				}},
				Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: vol}}}},
			}},
		}})
		ids = append(ids, migrate.WorkloadID{Kind: "Deployment", Name: name})
	}
	return objs, ids
}

// calibrate is how long run takes uninterrupted, or the duration in the environment variable.
func calibrate(t *testing.T, env string, run func()) time.Duration {
	t.Helper()
	if d, err := time.ParseDuration(os.Getenv(env)); err == nil && d > 0 {
		return d
	}
	t0 := time.Now()
	run()
	d := time.Since(t0)
	t.Logf("%s: an uninterrupted run takes %s; kills are uniform in [0, %s)", t.Name(), d.Round(10*time.Millisecond), d.Round(10*time.Millisecond))
	return d
}

func templatesOfIDs(t *testing.T, cs kubernetes.Interface, ns string, ids []migrate.WorkloadID) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, id := range ids {
		tpl, err := migrate.ReadTemplate(context.Background(), cs, ns, id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(tpl)
		out[id.String()] = string(b)
	}
	return out
}

// startMigrate starts `migrate namespace NS --yes --prune` as its own process.
func (e *migrateEstate) startMigrate(t *testing.T, ns string, out *bytes.Buffer, args ...string) (*exec.Cmd, chan error) {
	t.Helper()
	cmd := exec.Command(vaultctlBinary(t), append([]string{"migrate", "namespace", ns, "-c", e.cfg, "--yes", "--prune", "-o", "json"}, args...)...)
	cmd.Env = append(append(os.Environ(), sb.Env()...), "CI=true")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done
}

// rollbackRestoresAll fails unless --rollback gives back every Secret and template as it was.
func (e *migrateEstate) rollbackRestoresAll(t *testing.T, cs kubernetes.Interface, ns string, ids []migrate.WorkloadID, orig map[string]secretState, origTpl map[string]string) {
	t.Helper()
	if _, r := e.migrate(t, ns, "--yes", "--rollback"); r.Code != 0 {
		t.Fatalf("rollback: exit %d\n%s", r.Code, r)
	}
	live := secretsOf(t, cs, ns)
	for name, o := range orig {
		l, ok := live[name]
		if !ok || l.Type != o.Type || !mapsEqualBytes(l.Data, o.Data) || !mapsEqual(l.Labels, o.Labels) || !mapsEqual(l.Annotations, o.Annotations) {
			t.Errorf("Secret %s after rollback differs from the original", name)
		}
	}
	for id, tpl := range templatesOfIDs(t, cs, ns, ids) {
		if tpl != origTpl[id] {
			t.Errorf("%s's template after rollback differs from the original", id)
		}
	}
}

// Scenario 2: kill -9 of migrate at a uniformly random time, then a re-run, --prune and
// --rollback; at every step every original value is readable from a Secret or from Vault.
func TestFaultMigrateKilledAtRandom(t *testing.T) {
	t.Parallel()
	rng := faultRand(t)
	e := newMigrateEstate(t, "fault-mig-vault")
	cs := kube(t)
	// The kill time is uniform over an uninterrupted run's length, measured first on a
	// namespace of its own (FAULT_MAX_DELAY overrides it).
	maxDelay := calibrate(t, "FAULT_MAX_DELAY", func() {
		ns := "fault-mig-calibrate"
		objs, _ := faultNamespace(ns, rng)
		e.appNamespace(t, cs, ns)
		createObjects(t, cs, objs)
		if _, r := e.migrate(t, ns, "--yes", "--prune"); r.Code != 0 {
			t.Fatalf("calibration run: exit %d\n%s", r.Code, r)
		}
	})
	var longest time.Duration
	killed := 0
	for i := range faultTrials(t) {
		ns := fmt.Sprintf("fault-mig-%d", i)
		objs, ids := faultNamespace(ns, rng)
		delay := time.Duration(rng.Int64N(int64(maxDelay)))
		ok := t.Run(fmt.Sprintf("trial-%d-kill-after-%dms", i, delay.Milliseconds()), func(t *testing.T) {
			e.appNamespace(t, cs, ns)
			createObjects(t, cs, objs)
			orig, origTpl := secretsOf(t, cs, ns), templatesOfIDs(t, cs, ns, ids)
			var out bytes.Buffer
			started := time.Now()
			cmd, done := e.startMigrate(t, ns, &out)
			select {
			case err := <-done:
				// Runs get faster once the estate is warm: later delays stay within this one.
				maxDelay = min(maxDelay, time.Since(started))
				t.Logf("migrate finished (%v) in %s, before the kill at %s", err, time.Since(started).Round(time.Millisecond), delay)
			case <-time.After(delay):
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
				killed++
			}
			recordOutput(out.String())
			e.valuesSafe(t, ns, orig, "after the kill")
			t0 := time.Now()
			doc, r := e.migrate(t, ns, "--yes", "--prune")
			took := time.Since(t0)
			longest = max(longest, took)
			if r.Code != 0 || doc.Report == nil || !doc.Report.Labelled {
				dumpPods(t, cs, ns)
				t.Fatalf("re-run after the kill: exit %d\n%s", r.Code, r)
			}
			e.valuesSafe(t, ns, orig, "after the re-run")
			if _, r := e.migrate(t, ns, "--plan"); r.Code != 0 {
				t.Errorf("plan after the re-run: exit %d, want 0 (nothing to do)\n%s", r.Code, r)
			}
			e.rollbackRestoresAll(t, cs, ns, ids, orig, origTpl)
		})
		if !ok {
			t.Logf("trial %d failed", i)
		}
	}
	t.Logf("scenario 2: %d trials, %d killed mid-run, longest recovery (re-run after the kill) %s", faultTrials(t), killed, longest.Round(100*time.Millisecond))
}

// Scenario 6: two migrate runs on one namespace at once. One holds the namespace's Lease; the
// other refuses, naming it. The end state is one run's: every workload verified, every Secret
// pruned, and a further run has nothing to do.
func TestFaultTwoMigratesAtOnce(t *testing.T) {
	t.Parallel()
	rng := faultRand(t)
	e := newMigrateEstate(t, "fault-two-vault")
	cs := kube(t)
	for i := range faultTrials(t) {
		ns := fmt.Sprintf("fault-two-%d", i)
		objs, ids := faultNamespace(ns, rng)
		stagger := time.Duration(rng.Int64N(int64(500 * time.Millisecond)))
		t.Run(fmt.Sprintf("trial-%d-stagger-%dms", i, stagger.Milliseconds()), func(t *testing.T) {
			e.appNamespace(t, cs, ns)
			createObjects(t, cs, objs)
			orig, origTpl := secretsOf(t, cs, ns), templatesOfIDs(t, cs, ns, ids)
			var outs [2]bytes.Buffer
			var errs [2]error
			var wg sync.WaitGroup
			for k := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if k == 1 {
						time.Sleep(stagger)
					}
					_, done := e.startMigrate(t, ns, &outs[k])
					errs[k] = <-done
				}()
			}
			wg.Wait()
			succeeded := 0
			for k := range 2 {
				recordOutput(outs[k].String())
				switch {
				case errs[k] == nil:
					succeeded++
				case !strings.Contains(outs[k].String(), "lock") && !strings.Contains(outs[k].String(), "Lease"):
					t.Errorf("run %d failed without naming the lock: %v\n%s", k, errs[k], outs[k].String())
				}
			}
			if succeeded == 0 {
				t.Fatalf("neither run succeeded:\n%s\n%s", outs[0].String(), outs[1].String())
			}
			e.valuesSafe(t, ns, orig, "after both runs")
			if _, r := e.migrate(t, ns, "--plan"); r.Code != 0 {
				t.Errorf("plan after both runs: exit %d, want 0 (nothing to do)\n%s", r.Code, r)
			}
			left := secretsOf(t, cs, ns)
			for name := range orig {
				if _, ok := left[name]; ok {
					t.Errorf("Secret %s was not pruned", name)
				}
			}
			e.rollbackRestoresAll(t, cs, ns, ids, orig, origTpl)
		})
	}
}

// recoveryKeysWork proves keys are the cluster's recovery keys: generate-root with them yields a
// root token that Vault accepts (it is revoked at once).
func recoveryKeysWork(t *testing.T, addr string, keys []string) {
	t.Helper()
	c := vaultClient(t, addr)
	st, err := c.Sys().GenerateRootStatus()
	if err != nil {
		t.Fatal(err)
	}
	if st.Started {
		_ = c.Sys().GenerateRootCancel()
	}
	otp := make([]byte, st.OTPLength)
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for i := range otp {
		otp[i] = alphabet[rand.IntN(len(alphabet))]
	}
	st, err = c.Sys().GenerateRootInit(string(otp), "")
	if err != nil {
		t.Fatalf("generate-root init: %v", err)
	}
	for _, k := range keys {
		if st, err = c.Sys().GenerateRootUpdate(k, st.Nonce); err != nil {
			t.Fatalf("generate-root with a key from custody: %v", err)
		}
		if st.Complete {
			break
		}
	}
	if !st.Complete {
		t.Fatalf("generate-root did not complete with the %d keys from custody", len(keys))
	}
	enc, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(st.EncodedToken, "="))
	if err != nil || len(enc) != len(otp) {
		t.Fatalf("decoding the generated root token: %v", err)
	}
	for i := range enc {
		enc[i] ^= otp[i]
	}
	c.SetToken(string(enc))
	if _, err := c.Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the root token generated with the custody keys does not work: %v", err)
	}
	if err := c.Auth().Token().RevokeSelf(""); err != nil {
		t.Errorf("revoking the generated root token: %v", err)
	}
}

// Scenario 1 (external mode): kill -9 of apply at a uniformly random time during an install
// from empty, on a fresh Vault cluster each trial. The re-run converges, a third run changes
// nothing, the recovery keys open from custody and work, and the secret scan is clean.
func TestFaultApplyKilledAtRandom(t *testing.T) {
	setSandboxEnv()
	t.Parallel()
	rng := faultRand(t)
	maxDelay := calibrate(t, "FAULT_MAX_DELAY", func() {
		vc := startVaultCluster(t)
		ns := "fault-apply-calibrate"
		t.Cleanup(func() { deleteNamespace(t, kube(t), ns) })
		cfg := t.TempDir() + "/vaultctl.yaml"
		auditDir := t.TempDir()
		os.Chmod(auditDir, 0o777)
		writeExternalConfig(t, cfg, externalConfig{Namespace: ns, Addr: vc.Addrs[0], AuditDir: auditDir})
		if r := vaultctl(t, "apply", "-c", cfg, "-o", "json"); !parseRun(t, r).OK {
			t.Fatalf("calibration apply failed:\n%s", r)
		}
	})
	var longest time.Duration
	killed := 0
	for i := range faultTrials(t) {
		delay := time.Duration(rng.Int64N(int64(maxDelay)))
		t.Run(fmt.Sprintf("trial-%d-kill-after-%dms", i, delay.Milliseconds()), func(t *testing.T) {
			vc := startVaultCluster(t)
			ns := fmt.Sprintf("fault-apply-%d", i)
			cs := kube(t)
			t.Cleanup(func() { deleteNamespace(t, cs, ns) })
			auditDir := t.TempDir()
			os.Chmod(auditDir, 0o777)
			cfg := t.TempDir() + "/vaultctl.yaml"
			writeExternalConfig(t, cfg, externalConfig{Namespace: ns, Addr: vc.Addrs[0], AuditDir: auditDir})
			rootToken := watchRootToken(t, ns)
			var out bytes.Buffer
			cmd := exec.Command(vaultctlBinary(t), "apply", "-c", cfg, "-o", "json")
			cmd.Env = append(append(os.Environ(), sb.Env()...), "CI=true")
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			started := time.Now()
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				maxDelay = min(maxDelay, time.Since(started))
				t.Logf("apply finished (%v) in %s, before the kill at %s", err, time.Since(started).Round(time.Millisecond), delay)
			case <-time.After(delay):
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
				killed++
			}
			recordOutput(out.String())
			t0 := time.Now()
			second := parseRun(t, vaultctl(t, "apply", "-c", cfg, "-o", "json"))
			longest = max(longest, time.Since(t0))
			if !second.OK {
				t.Fatalf("the re-run after the kill did not converge: %+v", second)
			}
			if third := parseRun(t, vaultctl(t, "apply", "-c", cfg, "-o", "json")); !third.OK || third.Changes != 0 {
				t.Fatalf("a third apply changed %d things (ok %v), want 0", third.Changes, third.OK)
			}
			sec, err := cs.CoreV1().Secrets(ns).Get(context.Background(), phases.CustodySecret, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("custody Secret: %v", err)
			}
			keys, _ := openCustody(t, sec.Data)
			recoveryKeysWork(t, vc.Addrs[0], keys)
			scanForSecrets(t, ns, append(slices.Clone(keys), rootToken()), externalVault(vc, auditDir))
		})
	}
	t.Logf("scenario 1: %d trials, %d killed mid-run, longest recovery (re-run after the kill) %s", faultTrials(t), killed, longest.Round(100*time.Millisecond))
}

// setSandboxEnv puts the sandbox's AWS settings (KMS) in this process's environment once, so that
// openCustody (KMS) needs no t.Setenv, which parallel tests may not use. The fault suite alone
// does this: the values are the same for every test.
var sandboxEnvOnce sync.Once

func setSandboxEnv() {
	sandboxEnvOnce.Do(func() {
		for _, kv := range sb.Env() {
			if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
				os.Setenv(k, v)
			}
		}
	})
}

// dumpPods logs each pod's phase and container states, for a failure's post-mortem.
func dumpPods(t *testing.T, cs kubernetes.Interface, ns string) {
	pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Logf("pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		line := fmt.Sprintf("pod %s sa=%s phase=%s injected=%s deleting=%v", p.Name, p.Spec.ServiceAccountName, p.Status.Phase, p.Annotations["vault.hashicorp.com/agent-inject-status"], p.DeletionTimestamp != nil)
		for _, c := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			st := "running"
			switch {
			case c.State.Waiting != nil:
				st = "waiting " + c.State.Waiting.Reason + " " + c.State.Waiting.Message
			case c.State.Terminated != nil:
				st = fmt.Sprintf("terminated %s exit %d", c.State.Terminated.Reason, c.State.Terminated.ExitCode)
			}
			line += fmt.Sprintf(" | %s ready=%v restarts=%d %s", c.Name, c.Ready, c.RestartCount, st)
		}
		t.Log(line)
		if p.Annotations["vault.hashicorp.com/agent-inject-status"] == "injected" {
			if b, err := cs.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: "vault-agent-init"}).DoRaw(context.Background()); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("  vault-agent-init log tail: %s", strings.Join(lines[max(0, len(lines)-3):], " / "))
			}
		}
	}
}
