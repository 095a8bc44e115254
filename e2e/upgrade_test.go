package e2e

// Issue 14 item 1: `vaultctl upgrade` on the in-cluster sandbox (each Vault pod a real Vault
// process). A changed raft.performanceMultiplier changes the server HCL, so the pod template;
// upgrade restarts every pod, standbys first and the leader last, while a client reads a KV
// key in a loop through the active Service.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

// upgradeJSON is `vaultctl upgrade -o json`.
type upgradeJSON struct {
	OK     bool                 `json:"ok"`
	Error  string               `json:"error"`
	Result action.UpgradeResult `json:"result"`
}

func runUpgrade(t *testing.T, args ...string) (upgradeJSON, cliResult) {
	t.Helper()
	r := vaultctl(t, append([]string{"upgrade", "-o", "json"}, args...)...)
	var out upgradeJSON
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("upgrade -o json is not JSON: %v\n%s", err, r)
	}
	return out, r
}

// editConfig replaces old with new in the config file, once.
func editConfig(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("config has no %q", old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// deletionWatch records, in order, each server pod the moment it is marked for deletion, with
// which other pods were Ready then.
type deletionWatch struct {
	mu      sync.Mutex
	order   []string
	readyAt map[string][]string // pod -> the other Ready pods when it was deleted
	ready   map[string]bool
	seen    map[string]bool // by UID
}

func watchDeletions(t *testing.T, cs kubernetes.Interface, ns string) *deletionWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d := &deletionWatch{readyAt: map[string][]string{}, ready: map[string]bool{}, seen: map[string]bool{}}
	opts := metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=vault,component=server"}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		// The API server ends watches after a while: watch again from the last version seen.
		for {
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					opts.ResourceVersion = "" // too old: start over (the dedupe by UID holds)
					continue
				}
				pod, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				opts.ResourceVersion = pod.ResourceVersion
				d.observe(ev.Type, pod)
			}
			if ctx.Err() != nil {
				return
			}
			next, err := cs.CoreV1().Pods(ns).Watch(ctx, opts)
			if err != nil {
				opts.ResourceVersion = ""
				time.Sleep(200 * time.Millisecond)
				next = watch.NewEmptyWatch()
			}
			w = next
		}
	}()
	return d
}

// observe records a pod event; a deletion is the first event of a UID with a deletion
// timestamp, or its DELETED event when the watch missed that.
func (d *deletionWatch) observe(typ watch.EventType, pod *corev1.Pod) {
	d.mu.Lock()
	defer d.mu.Unlock()
	uid := string(pod.UID)
	if (typ == watch.Deleted || pod.DeletionTimestamp != nil) && !d.seen[uid] {
		d.seen[uid] = true
		d.order = append(d.order, pod.Name)
		var others []string
		for n, r := range d.ready {
			if r && n != pod.Name {
				others = append(others, n)
			}
		}
		slices.Sort(others)
		d.readyAt[pod.Name] = others
	}
	switch {
	case typ == watch.Deleted:
		delete(d.ready, pod.Name)
	case pod.DeletionTimestamp != nil:
		d.ready[pod.Name] = false
	default:
		d.ready[pod.Name] = podReady(pod)
	}
}

func (d *deletionWatch) snapshot() ([]string, map[string][]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := map[string][]string{}
	for k, v := range d.readyAt {
		m[k] = slices.Clone(v)
	}
	return slices.Clone(d.order), m
}

// read is one read of the probe key through the active Service.
type read struct {
	at  time.Time
	err error
}

// activeServiceReader reads a KV key in a loop the way a client of the active Service would:
// each request goes to a pod the Service selects (vault-active=true, Ready, not terminating),
// verifying the certificate for the Service's name. It selects the pods itself, as the
// sandbox's runner does for injected pods: the sandbox's EndpointSlices stay empty, since the
// API server refuses the runner's loopback pod addresses in them.
type activeServiceReader struct {
	mu    sync.Mutex
	reads []read
	stop  chan struct{}
	done  chan struct{}
}

func startActiveServiceReader(t *testing.T, cs kubernetes.Interface, ns string, ca []byte, token, kvPath, want string) *activeServiceReader {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("no CA")
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "vault-active." + ns + ".svc"},
		DisableKeepAlives: true, // a Service picks an endpoint per connection
	}}
	r := &activeServiceReader{stop: make(chan struct{}), done: make(chan struct{})}
	readOnce := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=vault,component=server,vault-active=true"})
		if err != nil {
			return err
		}
		ip := ""
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && podReady(&p) && p.Status.PodIP != "" {
				ip = p.Status.PodIP
				break
			}
		}
		if ip == "" {
			return fmt.Errorf("the active Service selects no Ready pod")
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+ip+":8200/v1/secret/data/"+kvPath, nil)
		req.Header.Set("X-Vault-Token", token)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Data map[string]any `json:"data"`
			} `json:"data"`
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d from %s", resp.StatusCode, ip)
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return err
		}
		if got := fmt.Sprint(body.Data.Data["value"]); got != want {
			return fmt.Errorf("read %q, want %q", got, want)
		}
		return nil
	}
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.stop:
				return
			default:
			}
			err := readOnce()
			r.mu.Lock()
			r.reads = append(r.reads, read{at: time.Now(), err: err})
			r.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return r
}

func (r *activeServiceReader) finish() []read {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reads)
}

// longestGap is the longest time between two successful reads with only failures between them.
func longestGap(reads []read) (gap time.Duration, from time.Time, failures int) {
	var lastOK time.Time
	run := 0
	for _, rd := range reads {
		if rd.err != nil {
			failures++
			run++
			continue
		}
		if !lastOK.IsZero() && run > 0 && rd.at.Sub(lastOK) > gap {
			gap, from = rd.at.Sub(lastOK), lastOK
		}
		lastOK, run = rd.at, 0
	}
	return gap, from, failures
}

func TestUpgradeRollsVaultPodsStandbysFirstWithoutOutage(t *testing.T) {
	t.Parallel()
	const ns = "vault-upgrade"
	cs := kube(t)
	ctx := context.Background()
	claimPVs(t, cs, ns, inClusterClaims())
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vaultctl.yaml")
	snapDir := filepath.Join(dir, "snapshots")
	writeInClusterConfig(t, cfgPath, ns, false)
	editConfig(t, cfgPath, "  replicas: 3\n", "  replicas: 3\n  snapshots:\n    dir: "+snapDir+"\n")
	if res := vaultctl(t, "apply", "-c", cfgPath, "-o", "json"); !parseRun(t, res).OK {
		t.Fatalf("in-cluster apply failed:\n%s", res)
	}

	// Nothing changed yet: upgrade has nothing to do, takes no snapshot, and --plan says so.
	if r := vaultctl(t, "upgrade", "--plan", "-c", cfgPath); r.Code != 0 || !strings.Contains(r.Stdout, "Nothing to do") {
		t.Fatalf("upgrade --plan right after apply must have nothing to do (exit 0):\n%s", r)
	}

	ca := serverCA(t, cs, ns)
	vc := portForwardVault(t, ns, "vault-0", ca)
	login, err := vc.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{
		"role": phases.AdminRole, "jwt": saToken(t, cs, ns, phases.AdminServiceAccount),
	})
	if err != nil {
		t.Fatalf("%s login: %v", phases.AdminRole, err)
	}
	token := login.Auth.ClientToken
	vc.SetToken(token)
	if _, err := vc.KVv2("secret").Put(ctx, "upgrade/probe", map[string]any{"value": "before-upgrade"}); err != nil {
		t.Fatal(err)
	}

	editConfig(t, cfgPath, "  raft:\n", "  raft:\n    performanceMultiplier: 2\n")
	health, _ := statusJSON(t, cfgPath)
	leader := health.Leader
	if leader == "" {
		t.Fatal("no leader before the upgrade")
	}
	var standbys []string
	for i := range 3 {
		if p := fmt.Sprintf("vault-%d", i); p != leader {
			standbys = append(standbys, p)
		}
	}
	wantOrder := append(slices.Clone(standbys), leader)

	plan, r := runUpgrade(t, "--plan", "-c", cfgPath)
	if r.Code != 3 || !plan.OK || plan.Result.NothingToDo || len(plan.Result.ChartChanges) == 0 {
		t.Fatalf("upgrade --plan after a config change must list work (exit 3):\n%s", r)
	}
	var planned []string
	for _, s := range plan.Result.Steps {
		planned = append(planned, string(s.Kind)+" "+s.Pod)
	}
	wantPlan := []string{"restart " + standbys[0], "restart " + standbys[1], "step-down " + leader, "restart " + leader}
	if !slices.Equal(planned, wantPlan) {
		t.Fatalf("plan order %v, want %v", planned, wantPlan)
	}
	if entries, _ := os.ReadDir(snapDir); len(entries) != 0 {
		t.Fatalf("--plan took a snapshot: %v", entries)
	}

	before, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=vault,component=server"})
	if err != nil {
		t.Fatal(err)
	}
	oldUIDs := map[string]string{}
	for _, p := range before.Items {
		oldUIDs[p.Name] = string(p.UID)
	}
	deletions := watchDeletions(t, cs, ns)
	reader := startActiveServiceReader(t, cs, ns, ca, token, "upgrade/probe", "before-upgrade")
	up, r := runUpgrade(t, "-c", cfgPath)
	reads := reader.finish()
	if r.Code != 0 || !up.OK {
		t.Fatalf("upgrade failed:\n%s", r)
	}
	for _, s := range up.Result.Steps {
		t.Logf("MEASURED: %s %s (%s): %s in %s", s.Kind, s.Pod, s.Role, s.Status, s.Duration.Round(10*time.Millisecond))
	}

	// The snapshot came first, with its record.
	if up.Result.SnapshotPath == "" || up.Result.Snapshot == nil || up.Result.Snapshot.Index == 0 {
		t.Fatalf("upgrade took no snapshot: %+v", up.Result)
	}
	if _, err := lifecycle.Inspect(up.Result.SnapshotPath); err != nil {
		t.Errorf("the upgrade's snapshot does not check out: %v", err)
	}
	if rec, err := lifecycle.ReadRecord(up.Result.SnapshotPath); err != nil || rec == nil || rec.ClusterID == "" {
		t.Errorf("the upgrade's snapshot has no record naming its cluster: %+v %v", rec, err)
	}
	if up.Result.Server == nil || up.Result.Server.Status != phases.Changed {
		t.Errorf("the server phase should have upgraded the chart: %+v", up.Result.Server)
	}

	// Every pod restarted, in the order: standbys one at a time, then the leader after its
	// step-down; each deletion found the other two pods Ready (the previous one had rejoined).
	var did []string
	var stepDown lifecycle.StepResult
	for _, s := range up.Result.Steps {
		did = append(did, string(s.Kind)+" "+s.Pod)
		if s.Status != lifecycle.StepDone {
			t.Errorf("step %s %s: %s", s.Kind, s.Pod, s.Status)
		}
		if s.Kind == lifecycle.StepStepDown {
			stepDown = s
		}
	}
	if !slices.Equal(did, wantPlan) {
		t.Errorf("steps %v, want %v", did, wantPlan)
	}
	order, readyAt := deletions.snapshot()
	if !slices.Equal(order, wantOrder) {
		t.Errorf("pods were deleted in the order %v, want %v", order, wantOrder)
	}
	for _, p := range wantOrder {
		if len(readyAt[p]) != 2 {
			t.Errorf("when %s was deleted only %v were Ready; the previous pod had not rejoined", p, readyAt[p])
		}
	}
	after, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=vault,component=server"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range after.Items {
		if oldUIDs[p.Name] == string(p.UID) {
			t.Errorf("%s was not restarted", p.Name)
		}
	}

	// The reader: failures only while the leader changed, never during a standby's or the old
	// leader's restart.
	gap, from, failures := longestGap(reads)
	end := stepDown.Started.Add(stepDown.Duration)
	for _, rd := range reads {
		if rd.err != nil && (rd.at.Before(stepDown.Started) || rd.at.After(end)) {
			t.Errorf("a read through the active Service failed outside the leader election (%s .. %s) at %s: %v",
				stepDown.Started.Format("15:04:05.000"), end.Format("15:04:05.000"), rd.at.Format("15:04:05.000"), rd.err)
		}
	}
	if len(reads) < 20 {
		t.Errorf("only %d reads during the upgrade", len(reads))
	}
	t.Logf("MEASURED: %d reads through the active Service during the upgrade, %d failed; longest gap between successful reads %s (from %s); step-down to new leader took %s",
		len(reads), failures, gap.Round(time.Millisecond), from.Format("15:04:05.000"), stepDown.Duration.Round(time.Millisecond))

	// Raft has 3 voters at the end, and the new config is what the pods run.
	h, sr := statusJSON(t, cfgPath)
	if !h.Healthy || h.Voters != 3 {
		t.Fatalf("after the upgrade want 3 healthy voters:\n%s", sr)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "vault-config", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["vault.hcl"], "performance_multiplier = 2") {
		t.Errorf("the server HCL does not carry the new performance multiplier: %v\n%s", err, cm.Data["vault.hcl"])
	}

	// A second upgrade does nothing: no restart, no snapshot.
	snaps, _ := os.ReadDir(snapDir)
	second, r := runUpgrade(t, "-c", cfgPath)
	if r.Code != 0 || !second.OK || !second.Result.NothingToDo || len(second.Result.Steps) != 0 {
		t.Fatalf("second upgrade must do nothing:\n%s", r)
	}
	if again, _ := os.ReadDir(snapDir); len(again) != len(snaps) {
		t.Errorf("the second upgrade took a snapshot: %d files, was %d", len(again), len(snaps))
	}
	if order2, _ := deletions.snapshot(); len(order2) != len(order) {
		t.Errorf("the second upgrade deleted pods: %v", order2[len(order):])
	}

	t.Run("stops at the first problem with the state and the next command, then resumes", func(t *testing.T) {
		checkUpgradeStopsAndResumes(t, cs, ns, cfgPath)
	})

	t.Run("snapshot save then restore", func(t *testing.T) {
		checkSnapshotSaveRestore(t, cfgPath, ns, ca)
	})

	t.Run("no recovery key leaks", func(t *testing.T) {
		sec, err := cs.CoreV1().Secrets(ns).Get(ctx, phases.CustodySecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(sec.Data) == 0 {
			t.Fatal("empty custody Secret")
		}
		// As an operator would: recovery-keys opens custody with KMS (openCustody sets the
		// environment, which a parallel test may not).
		out := filepath.Join(t.TempDir(), "keys.json")
		if r := vaultctl(t, "recovery-keys", "--out", out, "-c", cfgPath); r.Code != 0 {
			t.Fatalf("recovery-keys:\n%s", r)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var keys phases.RecoveryKeys
		if err := json.Unmarshal(b, &keys); err != nil || len(keys.Keys) != 3 {
			t.Fatalf("recovery keys file: %d keys, %v", len(keys.Keys), err)
		}
		os.Remove(out)
		scanForSecrets(t, ns, keys.Keys)
	})
}

// checkUpgradeStopsAndResumes changes the config again and lets the first standby's
// replacement never be created (a ResourceQuota on the namespace's pod count): upgrade stops at
// that pod, touches no other, and says what state it left and what to run; once the quota is
// gone and the cluster healthy again, a second upgrade restarts only the pods still outdated.
func checkUpgradeStopsAndResumes(t *testing.T, cs kubernetes.Interface, ns, cfgPath string) {
	ctx := context.Background()
	editConfig(t, cfgPath, "    performanceMultiplier: 2\n", "    performanceMultiplier: 3\n")
	all, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-more-pods"}, Spec: corev1.ResourceQuotaSpec{
		Hard: corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(int64(len(all.Items)-1), resource.DecimalSI)}}}
	if _, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the quota counted", func() error {
		q, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, quota.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, ok := q.Status.Used[corev1.ResourcePods]; !ok {
			return fmt.Errorf("no usage yet")
		}
		return nil
	})
	h, _ := statusJSON(t, cfgPath)
	uids := func() map[string]string {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=vault,component=server"})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, p := range pods.Items {
			m[p.Name] = string(p.UID)
		}
		return m
	}
	before := uids()
	stopped, r := runUpgrade(t, "-c", cfgPath, "--wait-timeout", "20s")
	if r.Code != 1 || stopped.OK || stopped.Result.Failure == nil {
		t.Fatalf("upgrade must stop when a pod does not come back:\n%s", r)
	}
	f := stopped.Result.Failure
	first := stopped.Result.Steps[0]
	if f.Step.Kind != lifecycle.StepRestart || f.Step.Pod != first.Pod || first.Pod == h.Leader ||
		!strings.Contains(f.What, "the StatefulSet to recreate the pod") ||
		!strings.Contains(f.State, first.Pod+" was deleted and has not rejoined") || !strings.Contains(f.Next, "vaultctl upgrade") {
		t.Errorf("the failure must name the standby, what it waited for, the state and the next command: %+v", f)
	}
	for _, s := range stopped.Result.Steps[1:] {
		if s.Status != lifecycle.StepNotRun {
			t.Errorf("after the failure %s %s ran (%s)", s.Kind, s.Pod, s.Status)
		}
	}
	after := uids()
	for pod, uid := range before {
		if gone := after[pod] != uid; gone != (pod == first.Pod) {
			t.Errorf("%s: replaced %v by the stopped upgrade; want only %s replaced (before %v, after %v)", pod, gone, first.Pod, before, after)
		}
	}

	if err := cs.CoreV1().ResourceQuotas(ns).Delete(ctx, quota.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the cluster healthy again", func() error {
		if h, r := statusJSON(t, cfgPath); !h.Healthy || h.Voters != 3 {
			return fmt.Errorf("%s", r.Stdout)
		}
		return nil
	})
	resumed, r := runUpgrade(t, "-c", cfgPath)
	if r.Code != 0 || !resumed.OK {
		t.Fatalf("the resumed upgrade failed:\n%s", r)
	}
	for _, s := range resumed.Result.Steps {
		if s.Pod == first.Pod && s.Kind == lifecycle.StepRestart {
			t.Errorf("the resumed upgrade restarted %s again, which already runs the new template", first.Pod)
		}
	}
	if len(resumed.Result.Steps) != 3 {
		t.Errorf("the resumed upgrade should restart the other standby and the leader (3 steps), got %+v", resumed.Result.Steps)
	}
	t.Logf("stopped at %s after %s; resumed with %d steps", first.Pod, first.Duration.Round(time.Second), len(resumed.Result.Steps))
}
