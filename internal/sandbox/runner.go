package sandbox

// The in-cluster runner: a small kubelet for Vault pods. kwok fakes every other pod; the server
// pods of a Vault StatefulSet (RunnerSelector, which kwok is told to leave alone) become real
// `vault server` processes running the configuration the chart rendered:
//
//   - one process per pod, born in its own mount and UTS namespaces (runner_ns.go): the pod's
//     volumes (ConfigMaps, Secrets, projected ServiceAccount token, emptyDirs, the hostPath
//     PersistentVolumes bound to its claims) are bind-mounted at the pod's mount paths, and the
//     pod gets its own /etc/hosts;
//   - one loopback address per pod (127.A.B.N, runner_pod.go). Only listener addresses are
//     rewritten (0.0.0.0:8200 -> 127.A.B.N:8200); retry_join, VAULT_API_ADDR and
//     VAULT_CLUSTER_ADDR keep the pod DNS names (vault-1.vault-internal), which each pod's
//     /etc/hosts maps to the peers' addresses, so leader_tls_servername and the certificate's
//     SANs are exercised as in a cluster;
//   - the pod status (phase, podIP, containerStatuses with restartCount, Ready from the pod's
//     readiness probe) is the runner's to write; a process that dies is restarted with backoff;
//     a deleted pod's process gets SIGTERM, SIGKILL after the grace period, and then the pod
//     object is deleted with grace 0, as a kubelet does. The StatefulSet's replacement pod gets
//     a new process on the same data (its claim's PersistentVolume);
//   - kwok's PortForward and Logs objects (runner_kwok.go) make `kubectl port-forward` and
//     `kubectl logs` of the pod reach the process.
//
// The runner is a long-lived sandbox process like the others (recorded in state.json, stopped
// by `down`): Up re-executes the current binary with VAULTCTL_SANDBOX_RUNNER=DIR, and the
// binary's main (or TestMain) hands over to RunnerMain first thing.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

// runnerEnv carries the sandbox directory to the re-executed runner.
const runnerEnv = "VAULTCTL_SANDBOX_RUNNER"

// compRunner is the runner's name in state.json and of its log, DIR/logs/runner.log.
const compRunner = "runner"

const (
	runnerWorkers   = 6
	volumeRefresh   = time.Minute
	runnerStopGrace = 10 * time.Second
	podPath         = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

func (l layout) runnerDir() string    { return filepath.Join(l.dir, "runner") }
func (l layout) runnerConfig() string { return filepath.Join(l.runnerDir(), "config.json") }
func (l layout) runnerState() string  { return filepath.Join(l.runnerDir(), "ips.json") }
func (l layout) runnerReady() string  { return filepath.Join(l.runnerDir(), "ready") }
func (l layout) podDir(ns, name string) string {
	return filepath.Join(l.dir, "pods", podDirName(ns, name))
}

// PodLog is the log of the Vault process(es) of pod ns/name in a sandbox directory.
func PodLog(dir, ns, name string) string {
	return layout{dir: dir}.log("pod-" + ns + "-" + name)
}

// PodPID returns the PID of the Vault process of pod ns/name, 0 when none runs.
func PodPID(dir, ns, name string) int {
	b, err := os.ReadFile(filepath.Join(layout{dir: dir}.podDir(ns, name), "pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// runnerConfig is what Up tells the runner (DIR/runner/config.json).
type runnerConfig struct {
	Kubeconfig   string `json:"kubeconfig"`
	ToolsDir     string `json:"toolsDir"`
	APIServerURL string `json:"apiServerURL"`
	HostIP       string `json:"hostIP"`
}

// runnerState survives runner restarts (DIR/runner/ips.json): a restarted sandbox gives its
// pods the addresses they had.
type runnerState struct {
	Block string            `json:"block"`
	Pods  map[string]string `json:"pods"`
}

// RunnerMain runs the sandbox's in-cluster runner (or one pod's process setup) when this process
// was started as one, and reports whether it did: the caller then returns at once. Call it
// first thing in main and in the TestMain of packages that start a sandbox:
//
//	if sandbox.RunnerMain() { return }
func RunnerMain() (ran bool) {
	if spec := os.Getenv(podInitEnv); spec != "" {
		podInitMain(spec) // never returns
	}
	dir := os.Getenv(runnerEnv)
	if dir == "" {
		return false
	}
	os.Unsetenv(runnerEnv)
	if err := runRunner(dir); err != nil {
		fmt.Fprintf(os.Stderr, "%s runner: fatal: %v\n", time.Now().Format("2006-01-02T15:04:05.000"), err)
		os.Exit(1)
	}
	return true
}

type runner struct {
	l        layout
	cfg      runnerConfig
	log      *log.Logger
	cs       kubernetes.Interface
	dc       dynamic.Interface
	vaultBin string
	apiHost  string
	apiPort  string

	queue   workqueue.TypedRateLimitingInterface[string]
	indexer cache.Indexer

	mu   sync.Mutex
	ips  *ipAllocator
	pods map[string]*podProc
}

func runRunner(dir string) error {
	logger := log.New(os.Stderr, "runner ", log.LstdFlags|log.Lmicroseconds)
	l := layout{dir: dir}
	var cfg runnerConfig
	b, err := os.ReadFile(l.runnerConfig())
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("%s: %w", l.runnerConfig(), err)
	}
	u, err := url.Parse(cfg.APIServerURL)
	if err != nil || u.Hostname() == "" || u.Port() == "" {
		return fmt.Errorf("bad API server URL %q", cfg.APIServerURL)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return err
	}
	rc.WarningHandler = rest.NoWarnings{}
	rc.QPS, rc.Burst = 50, 100
	rc.Timeout = 30 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}

	var st runnerState
	if b, err := os.ReadFile(l.runnerState()); err == nil {
		_ = json.Unmarshal(b, &st)
	}
	block, lock, err := claimIPBlock(st.Block)
	if err != nil {
		return err
	}
	defer lock.Close()

	r := &runner{
		l: l, cfg: cfg, log: logger, cs: cs, dc: dc,
		vaultBin: filepath.Join(cfg.ToolsDir, "vault"),
		apiHost:  u.Hostname(), apiPort: u.Port(),
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		ips:   newIPAllocator(block, st.Pods),
		pods:  map[string]*podProc{},
	}
	if err := r.saveState(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger.Printf("pid %d; pods %q get addresses in %s; vault binary %s", os.Getpid(), RunnerSelector, block, r.vaultBin)
	return r.run(ctx)
}

// claimIPBlock takes the preferred block if no other runner holds it, else a random free one.
func claimIPBlock(prefer string) (ipBlock, net.Listener, error) {
	try := func(b ipBlock) net.Listener {
		l, err := net.Listen("tcp", b.lockAddr())
		if err != nil {
			return nil
		}
		return l
	}
	if b, err := parseIPBlock(prefer); err == nil {
		if l := try(b); l != nil {
			return b, l, nil
		}
	}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	for range 200 {
		b := randomIPBlock(rnd)
		if l := try(b); l != nil {
			return b, l, nil
		}
	}
	return ipBlock{}, nil, errors.New("no free loopback /24 for pod addresses")
}

func (r *runner) saveState() error {
	r.mu.Lock()
	st := runnerState{Block: r.ips.block.String(), Pods: r.ips.snapshot()}
	r.mu.Unlock()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(r.l.runnerState(), append(b, '\n'), 0o600)
}

// podIP returns the (stable) address of pod key.
func (r *runner) podIP(key string) (string, error) {
	r.mu.Lock()
	n := len(r.ips.byKey)
	ip, err := r.ips.get(key)
	grew := len(r.ips.byKey) != n
	r.mu.Unlock()
	if err == nil && grew {
		if err := r.saveState(); err != nil {
			r.log.Printf("saving %s: %v", r.l.runnerState(), err)
		}
	}
	return ip, err
}

func (r *runner) run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(r.cs, 30*time.Second,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = RunnerSelector }))
	inf := factory.Core().V1().Pods().Informer()
	r.indexer = inf.GetIndexer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.enqueue(obj, true) },
		UpdateFunc: func(_, obj any) { r.enqueue(obj, false) },
		DeleteFunc: func(obj any) { r.enqueue(obj, true) },
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return errors.New("pod cache never synced")
	}
	r.deleteOrphanKwokObjects(ctx)

	var wg sync.WaitGroup
	for range runnerWorkers {
		wg.Go(func() {
			for r.processNext(ctx) {
			}
		})
	}
	if err := os.WriteFile(r.l.runnerReady(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	r.log.Printf("watching pods")
	<-ctx.Done()
	r.log.Printf("stopping: terminating every Vault process")
	r.queue.ShutDown()
	wg.Wait()
	factory.Shutdown()
	r.stopAll()
	os.Remove(r.l.runnerReady())
	r.log.Printf("stopped")
	return nil
}

// enqueue queues the pod; a pod that appears or goes also changes its namespace peers' /etc/hosts.
func (r *runner) enqueue(obj any, peers bool) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	r.queue.Add(key)
	if !peers {
		return
	}
	ns, _, _ := strings.Cut(key, "/")
	others, _ := r.indexer.ByIndex(cache.NamespaceIndex, ns)
	for _, o := range others {
		if k, err := cache.MetaNamespaceKeyFunc(o); err == nil && k != key {
			r.queue.Add(k)
		}
	}
}

func (r *runner) processNext(ctx context.Context) bool {
	key, shutdown := r.queue.Get()
	if shutdown {
		return false
	}
	defer r.queue.Done(key)
	if err := r.sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			r.log.Printf("%s: %v (will retry)", key, err)
			r.queue.AddRateLimited(key)
		}
		return true
	}
	r.queue.Forget(key)
	return true
}

// podProc is the runner's record of one pod (one UID) and its process.
type podProc struct {
	key, ns, name string
	uid           types.UID
	ip            string
	dir           string
	start         time.Time

	mu        sync.Mutex // guards the fields below, shared with the process's goroutines
	cs        containerState
	pid       int
	done      chan struct{} // closed when the current process has exited
	cancel    context.CancelFunc
	stopping  bool
	nextStart time.Time

	// Touched only by the pod's sync (never concurrent for one key).
	kwokReady   bool
	lastStatus  []byte
	hosts       string
	tokens      map[string]cachedToken
	refreshedAt time.Time
}

type cachedToken struct {
	token     string
	refreshAt time.Time
}

func (p *podProc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cs.Running
}

func (r *runner) sync(ctx context.Context, key string) error {
	if ctx.Err() != nil {
		return nil
	}
	obj, exists, err := r.indexer.GetByKey(key)
	if err != nil {
		return err
	}
	r.mu.Lock()
	p := r.pods[key]
	r.mu.Unlock()
	if !exists {
		if p != nil {
			r.log.Printf("%s: pod gone: stopping its process", key)
			r.stopProc(p, runnerStopGrace)
			r.forget(ctx, p, true)
		}
		return nil
	}
	pod := obj.(*corev1.Pod)
	if p != nil && p.uid != pod.UID {
		r.log.Printf("%s: uid %s replaced by %s: stopping the old process", key, p.uid, pod.UID)
		r.stopProc(p, runnerStopGrace)
		r.forget(ctx, p, false)
		p = nil
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	if len(pod.Spec.Containers) == 0 {
		return nil
	}
	if p == nil {
		if p, err = r.newPodProc(pod); err != nil {
			return err
		}
	}
	if pod.DeletionTimestamp != nil {
		grace := runnerStopGrace
		if g := pod.DeletionGracePeriodSeconds; g != nil {
			grace = time.Duration(*g) * time.Second
		}
		r.log.Printf("%s: pod deleted: stopping its process (grace %s)", key, grace)
		r.stopProc(p, grace)
		zero := int64(0)
		err := r.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting the pod: %w", err)
		}
		r.forget(ctx, p, true)
		return nil
	}
	if err := r.writeHosts(pod, p); err != nil {
		return fmt.Errorf("/etc/hosts: %w", err)
	}
	if !p.kwokReady {
		if err := r.ensureKwokObjects(ctx, pod, p); err != nil {
			return err
		}
		p.kwokReady = true
	}
	p.mu.Lock()
	running, stopping, wait := p.cs.Running, p.stopping, time.Until(p.nextStart)
	p.mu.Unlock()
	switch {
	case stopping:
	case !running && wait > 0:
		r.queue.AddAfter(key, wait)
	case !running:
		if err := r.startContainer(ctx, pod, p); err != nil {
			r.log.Printf("%s: cannot start vault: %v", key, err)
			p.mu.Lock()
			p.cs.WaitingReason, p.cs.WaitingMessage = "CreateContainerConfigError", err.Error()
			p.nextStart = time.Now().Add(backoff(p.cs.RestartCount + 1))
			p.mu.Unlock()
			r.queue.AddAfter(key, time.Until(p.nextStart))
		}
	case time.Since(p.refreshedAt) > volumeRefresh:
		// A kubelet keeps projected tokens, ConfigMaps and Secrets of running pods current.
		if _, err := r.materializeVolumes(ctx, pod, p, &pod.Spec.Containers[0]); err != nil {
			r.log.Printf("%s: refreshing volumes: %v", key, err)
		}
		p.refreshedAt = time.Now()
	}
	return r.patchStatus(ctx, pod, p)
}

func (r *runner) newPodProc(pod *corev1.Pod) (*podProc, error) {
	key := podKey(pod.Namespace, pod.Name)
	ip, err := r.podIP(key)
	if err != nil {
		return nil, err
	}
	p := &podProc{
		key: key, ns: pod.Namespace, name: pod.Name, uid: pod.UID, ip: ip,
		dir: r.l.podDir(pod.Namespace, pod.Name), start: time.Now(),
		tokens: map[string]cachedToken{},
	}
	if t := pod.Status.StartTime; t != nil {
		p.start = t.Time
	}
	// A pod that ran under an earlier runner (sandbox down, then up) keeps its restart count,
	// and the process that died with the runner counts as a restart.
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name != pod.Spec.Containers[0].Name {
			continue
		}
		p.cs.RestartCount = s.RestartCount
		p.cs.Last = s.LastTerminationState.Terminated
		if s.State.Running != nil {
			p.cs.RestartCount++
			p.cs.Last = &corev1.ContainerStateTerminated{
				ExitCode: 137, Reason: "ContainerStatusUnknown", Message: "the sandbox runner stopped",
				StartedAt: s.State.Running.StartedAt, FinishedAt: metav1.NewTime(time.Now().UTC().Truncate(time.Second)),
				ContainerID: s.ContainerID,
			}
		}
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.pods[key] = p
	r.mu.Unlock()
	return p, nil
}

// forget drops a pod's record; with kwokObjects its PortForward and Logs go too.
func (r *runner) forget(ctx context.Context, p *podProc, kwokObjects bool) {
	r.mu.Lock()
	if r.pods[p.key] == p {
		delete(r.pods, p.key)
	}
	r.mu.Unlock()
	os.Remove(filepath.Join(p.dir, "pid"))
	if kwokObjects {
		for _, gvr := range kwokObjectGVRs() {
			if err := deleteIgnoringMissing(ctx, r.dc, gvr, p.ns, p.name); err != nil && ctx.Err() == nil {
				r.log.Printf("%s: deleting its kwok %s: %v", p.key, gvr.Resource, err)
			}
		}
	}
}

func (r *runner) criLogs(p *podProc, container string) (current, previous string) {
	return filepath.Join(p.dir, container+".log"), filepath.Join(p.dir, container+".previous.log")
}

func (r *runner) ensureKwokObjects(ctx context.Context, pod *corev1.Pod, p *podProc) error {
	c := &pod.Spec.Containers[0]
	var ports []int32
	for _, cp := range c.Ports {
		ports = append(ports, cp.ContainerPort)
	}
	if len(ports) == 0 {
		ports = []int32{8200, 8201}
	}
	if err := upsert(ctx, r.dc, portForwardGVR, portForwardObject(pod.Namespace, pod.Name, p.ip, ports)); err != nil {
		return fmt.Errorf("kwok PortForward: %w", err)
	}
	cur, prev := r.criLogs(p, c.Name)
	if err := upsert(ctx, r.dc, logsGVR, logsObject(pod.Namespace, pod.Name, cur, prev)); err != nil {
		return fmt.Errorf("kwok Logs: %w", err)
	}
	return nil
}

// deleteOrphanKwokObjects removes PortForward and Logs objects of pods that no longer exist
// (the runner was down when they went).
func (r *runner) deleteOrphanKwokObjects(ctx context.Context) {
	for _, gvr := range kwokObjectGVRs() {
		list, err := r.dc.Resource(gvr).Namespace("").List(ctx, metav1.ListOptions{LabelSelector: managedByLabel + "=" + runnerManagedBy})
		if err != nil {
			r.log.Printf("listing %s: %v", gvr.Resource, err)
			continue
		}
		for _, o := range list.Items {
			if _, ok, _ := r.indexer.GetByKey(podKey(o.GetNamespace(), o.GetName())); ok {
				continue
			}
			if err := deleteIgnoringMissing(ctx, r.dc, gvr, o.GetNamespace(), o.GetName()); err != nil {
				r.log.Printf("deleting orphan %s %s/%s: %v", gvr.Resource, o.GetNamespace(), o.GetName(), err)
			}
		}
	}
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
	content := hostsFile(self, peers)
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

// ---- volumes ----

type projFile struct {
	data []byte
	mode os.FileMode
}

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
	files := map[string]projFile{}
	mode := func(item *int32, def *int32, fallback os.FileMode) os.FileMode {
		switch {
		case item != nil:
			return os.FileMode(*item)
		case def != nil:
			return os.FileMode(*def)
		}
		return fallback
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
			if strings.HasSuffix(it.Path, ".hcl") {
				text, changes := rewriteListeners(string(b), p.ip)
				b = []byte(text)
				if p.refreshedAt.IsZero() {
					for _, c := range changes {
						r.log.Printf("%s: %s/%s: %s", p.key, name, it.Key, c)
					}
				}
			}
			files[it.Path] = projFile{data: b, mode: mode(it.Mode, def, 0o644)}
		}
		return nil
	}
	configMap := func(name string, optional bool) (map[string][]byte, error) {
		cm, err := r.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
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
		s, err := r.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
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
	facts := podFacts{pod: pod, podIP: p.ip, hostIP: r.cfg.HostIP}
	downward := func(items []corev1.DownwardAPIVolumeFile, def *int32) error {
		for _, it := range items {
			val := "0"
			if it.FieldRef != nil {
				var err error
				if val, err = facts.field(it.FieldRef.FieldPath); err != nil {
					return err
				}
			}
			files[it.Path] = projFile{data: []byte(val), mode: mode(it.Mode, def, 0o644)}
		}
		return nil
	}
	opt := func(b *bool) bool { return b != nil && *b }
	switch {
	case v.ConfigMap != nil:
		data, err := configMap(v.ConfigMap.Name, opt(v.ConfigMap.Optional))
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
	}
	def := v.Projected.DefaultMode
	for _, src := range v.Projected.Sources {
		switch {
		case src.ConfigMap != nil:
			data, err := configMap(src.ConfigMap.Name, opt(src.ConfigMap.Optional))
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
			tok, err := r.serviceAccountToken(ctx, pod, p, src.ServiceAccountToken)
			if err != nil {
				return nil, err
			}
			files[src.ServiceAccountToken.Path] = projFile{data: []byte(tok), mode: mode(nil, def, 0o644)}
		default:
			return nil, errors.New("projected source not supported by the sandbox runner")
		}
	}
	return files, nil
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

// ---- the process ----

func (r *runner) baseEnv(pod *corev1.Pod) []string {
	host := pod.Spec.Hostname
	if host == "" {
		host = pod.Name
	}
	return []string{
		"PATH=" + podPath,
		"HOSTNAME=" + host,
		"HOME=/root",
		// The awskms seal's credentials: IRSA in production, dummy ones for the KMS emulator.
		"AWS_ACCESS_KEY_ID=" + dummyAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + dummySecretKey,
		"AWS_EC2_METADATA_DISABLED=true",
		// The kubernetes Service's links, pointing at the sandbox API server.
		"KUBERNETES_SERVICE_HOST=" + r.apiHost,
		"KUBERNETES_SERVICE_PORT=" + r.apiPort,
		"KUBERNETES_SERVICE_PORT_HTTPS=" + r.apiPort,
		"KUBERNETES_PORT=tcp://" + net.JoinHostPort(r.apiHost, r.apiPort),
	}
}

func (r *runner) lookup(ctx context.Context, ns string) lookupFunc {
	return func(kind, name, key string) (string, bool, error) {
		data := map[string][]byte{}
		switch kind {
		case "configmap":
			cm, err := r.cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
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
			s, err := r.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
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
			var parts []string
			for _, k := range keys {
				parts = append(parts, k+"="+string(data[k]))
			}
			return strings.Join(parts, "\x00"), true, nil
		}
		v, ok := data[key]
		return string(v), ok, nil
	}
}

// startContainer prepares the pod's files and starts its process.
func (r *runner) startContainer(ctx context.Context, pod *corev1.Pod, p *podProc) error {
	c := &pod.Spec.Containers[0]
	if len(pod.Spec.Containers) > 1 || len(pod.Spec.InitContainers) > 0 {
		r.log.Printf("%s: runs only container %q; other containers are ignored", p.key, c.Name)
	}
	// A new pod (a new UID under the same name) starts with fresh emptyDirs and files.
	uidFile := filepath.Join(p.dir, "uid")
	if b, _ := os.ReadFile(uidFile); string(b) != string(pod.UID) {
		if err := os.RemoveAll(filepath.Join(p.dir, "volumes")); err != nil {
			return err
		}
		if err := writeFileAtomic(uidFile, []byte(pod.UID), 0o600); err != nil {
			return err
		}
	}
	mounts, err := r.materializeVolumes(ctx, pod, p, c)
	if err != nil {
		return err
	}
	p.refreshedAt = time.Now()
	env, err := containerEnv(podFacts{pod: pod, podIP: p.ip, hostIP: r.cfg.HostIP}, c, r.baseEnv(pod), r.lookup(ctx, pod.Namespace))
	if err != nil {
		return err
	}
	argv, err := containerArgv(c, envMap(env), r.vaultBin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(r.vaultBin); err != nil {
		return fmt.Errorf("no Vault binary (build the tools with `make tools`): %w", err)
	}
	hasHosts := false
	for _, m := range mounts {
		hasHosts = hasHosts || filepath.Clean(m.Dst) == "/etc/hosts"
	}
	if !hasHosts {
		mounts = append(mounts, podMount{Src: filepath.Join(p.dir, "hosts"), Dst: "/etc/hosts", ReadOnly: true})
	}
	root := filepath.Join(p.dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	host := pod.Spec.Hostname
	if host == "" {
		host = pod.Name
	}
	spec, err := json.MarshalIndent(launchSpec{Root: root, Hostname: host, Mounts: mounts, Argv: argv, Dir: c.WorkingDir}, "", "  ")
	if err != nil {
		return err
	}
	specPath := filepath.Join(p.dir, "launch.json")
	if err := writeFileAtomic(specPath, spec, 0o600); err != nil {
		return err
	}
	return r.launch(pod, p, c, specPath, env)
}

// launch starts the pod process (this binary in pod-init mode, which execs vault) in new mount
// and UTS namespaces and its own process group, killed if the runner dies. Its output goes to
// DIR/logs/pod-NS-NAME.log and, in the container-runtime format kwok reads, to the pod's
// directory.
func (r *runner) launch(pod *corev1.Pod, p *podProc, c *corev1.Container, specPath string, env []string) error {
	cur, prev := r.criLogs(p, c.Name)
	if _, err := os.Stat(cur); err == nil {
		if err := os.Rename(cur, prev); err != nil {
			return err
		}
	}
	plain, err := os.OpenFile(PodLog(r.l.dir, p.ns, p.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cri, err := os.OpenFile(cur, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		plain.Close()
		return err
	}
	p.mu.Lock()
	restarts := p.cs.RestartCount
	p.mu.Unlock()
	fmt.Fprintf(plain, "---- %s: runner: starting vault for pod %s (uid %s, address %s, restart %d)\n",
		time.Now().Format(time.RFC3339), p.key, pod.UID, p.ip, restarts)
	outR, outW, err := os.Pipe()
	if err != nil {
		plain.Close()
		cri.Close()
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		plain.Close()
		cri.Close()
		outR.Close()
		outW.Close()
		return err
	}
	// /proc/self/exe: this very binary, even if the file was replaced since it started.
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(append([]string(nil), env...), podInitEnv+"="+specPath)
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	}
	err = spawn(cmd, true) // forks from a locked thread: Pdeathsig follows the runner's life
	outW.Close()
	errW.Close()
	if err != nil {
		plain.Close()
		cri.Close()
		outR.Close()
		errR.Close()
		return err
	}
	pid := cmd.Process.Pid
	now := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p.mu.Lock()
	p.pid, p.done, p.cancel, p.stopping = pid, done, cancel, false
	p.cs.Running, p.cs.StartedAt, p.cs.Ready, p.cs.ReadySince = true, now, false, now
	p.cs.WaitingReason, p.cs.WaitingMessage = "", ""
	p.cs.ContainerID = fmt.Sprintf("vaultctl-sandbox://%s-%d", pod.UID, pid)
	p.mu.Unlock()
	if err := os.WriteFile(filepath.Join(p.dir, "pid"), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		r.log.Printf("%s: writing pid file: %v", p.key, err)
	}
	r.log.Printf("%s: started vault (pid %d) at %s", p.key, pid, p.ip)

	var logMu sync.Mutex
	var pumps sync.WaitGroup
	pump := func(rd *os.File, stream string) {
		defer rd.Close()
		br := bufio.NewReaderSize(rd, 64<<10)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				text := strings.TrimRight(line, "\n")
				logMu.Lock()
				_, _ = plain.WriteString(text + "\n")
				_, _ = cri.WriteString(criLine(time.Now(), stream, text))
				logMu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}
	pumps.Go(func() { pump(outR, "stdout") })
	pumps.Go(func() { pump(errR, "stderr") })

	if pr := c.ReadinessProbe; pr != nil {
		go r.probeLoop(ctx, p, c, pr, true)
	} else {
		p.mu.Lock()
		p.cs.Ready = true
		p.mu.Unlock()
	}
	if pr := c.LivenessProbe; pr != nil {
		go r.probeLoop(ctx, p, c, pr, false)
	}
	go func() {
		waitErr := cmd.Wait()
		pumps.Wait()
		plain.Close()
		cri.Close()
		r.exited(p, cmd.ProcessState, waitErr, done)
	}()
	return nil
}

// exited records how the process ended and, unless it was stopped on purpose, schedules a
// restart with backoff.
func (r *runner) exited(p *podProc, ps *os.ProcessState, waitErr error, done chan struct{}) {
	now := time.Now()
	code := -1
	reason := "Error"
	if ps != nil {
		code = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	if code == 0 {
		reason = "Completed"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := func(x time.Time) metav1.Time { return metav1.NewTime(x.UTC().Truncate(time.Second)) }
	p.cs.Last = &corev1.ContainerStateTerminated{
		ExitCode: int32(code), Reason: reason, StartedAt: t(p.cs.StartedAt), FinishedAt: t(now), ContainerID: p.cs.ContainerID,
	}
	if code == podInitFailed {
		p.cs.Last.Reason, p.cs.Last.Message = "StartError", "pod setup failed; see the pod log"
	}
	ranFor := now.Sub(p.cs.StartedAt)
	p.cs.Running, p.cs.Ready, p.cs.ReadySince = false, false, now
	if p.cancel != nil {
		p.cancel()
	}
	p.pid = 0
	close(done)
	if p.stopping {
		return
	}
	p.cs.RestartCount++
	d := backoff(p.cs.RestartCount)
	if ranFor > 2*time.Minute {
		d = time.Second
	}
	p.nextStart = now.Add(d)
	p.cs.WaitingReason = "CrashLoopBackOff"
	p.cs.WaitingMessage = fmt.Sprintf("back-off %s restarting failed container (exit code %d)", d, code)
	r.log.Printf("%s: vault exited (code %d, %v) after %s; restarting in %s", p.key, code, waitErr, ranFor.Round(time.Millisecond), d)
	r.queue.Add(p.key)
	r.queue.AddAfter(p.key, d)
}

// stopProc terminates the pod's process: SIGTERM to its group, SIGKILL after grace.
func (r *runner) stopProc(p *podProc, grace time.Duration) {
	p.mu.Lock()
	p.stopping = true
	if p.cancel != nil {
		p.cancel()
	}
	pid, done := p.pid, p.done
	p.mu.Unlock()
	if pid == 0 || done == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-done:
		r.log.Printf("%s: vault (pid %d) stopped", p.key, pid)
		return
	case <-time.After(grace):
	}
	r.log.Printf("%s: vault (pid %d) still running after %s: SIGKILL", p.key, pid, grace)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.log.Printf("%s: vault (pid %d) did not exit after SIGKILL", p.key, pid)
	}
}

// stopAll stops every process at runner shutdown, in parallel. Pod objects stay: the sandbox is
// going down, not the pods.
func (r *runner) stopAll() {
	r.mu.Lock()
	var all []*podProc
	for _, p := range r.pods {
		all = append(all, p)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Go(func() { r.stopProc(p, runnerStopGrace) })
	}
	wg.Wait()
}

// ---- probes ----

// probeLoop runs a readiness (or liveness) probe against the running process with the probe's
// timing, as the kubelet does. A liveness failure makes the process restart.
func (r *runner) probeLoop(ctx context.Context, p *podProc, c *corev1.Container, pr *corev1.Probe, readiness bool) {
	period := time.Duration(max(pr.PeriodSeconds, 1)) * time.Second
	if pr.PeriodSeconds == 0 {
		period = 10 * time.Second
	}
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	success, failure := max(pr.SuccessThreshold, 1), pr.FailureThreshold
	if failure == 0 {
		failure = 3
	}
	delay := time.Duration(pr.InitialDelaySeconds) * time.Second
	var okRun, failRun int32
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = period
		err := r.probeOnce(ctx, p, c, pr, timeout)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
		} else {
			okRun, failRun = 0, failRun+1
		}
		p.mu.Lock()
		switch {
		case readiness && !p.cs.Ready && okRun >= success:
			p.cs.Ready, p.cs.ReadySince = true, time.Now()
			p.mu.Unlock()
			r.queue.Add(p.key)
			continue
		case readiness && p.cs.Ready && failRun >= failure:
			p.cs.Ready, p.cs.ReadySince = false, time.Now()
			p.mu.Unlock()
			r.log.Printf("%s: readiness probe failed %d times: %v", p.key, failRun, err)
			r.queue.Add(p.key)
			continue
		case !readiness && failRun >= failure:
			pid := p.pid
			p.mu.Unlock()
			r.log.Printf("%s: liveness probe failed %d times (%v): restarting vault (pid %d)", p.key, failRun, err, pid)
			if pid != 0 {
				_ = syscall.Kill(-pid, syscall.SIGTERM)
			}
			return
		}
		p.mu.Unlock()
	}
}

var probeTransport = &http.Transport{
	// The kubelet does not verify probe certificates either.
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet probe semantics, loopback only
	DisableKeepAlives: true,
}

func (r *runner) probeOnce(ctx context.Context, p *podProc, c *corev1.Container, pr *corev1.Probe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port := func(ps intstr.IntOrString) (string, error) {
		if ps.Type == intstr.Int {
			return strconv.Itoa(ps.IntValue()), nil
		}
		for _, cp := range c.Ports {
			if cp.Name == ps.StrVal {
				return strconv.Itoa(int(cp.ContainerPort)), nil
			}
		}
		return "", fmt.Errorf("no container port named %q", ps.StrVal)
	}
	switch {
	case pr.HTTPGet != nil:
		g := pr.HTTPGet
		pt, err := port(g.Port)
		if err != nil {
			return err
		}
		host := g.Host
		if host == "" {
			host = p.ip
		}
		scheme := strings.ToLower(string(g.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, pt)+path, nil)
		if err != nil {
			return err
		}
		for _, h := range g.HTTPHeaders {
			req.Header.Add(h.Name, h.Value)
		}
		resp, err := (&http.Client{Transport: probeTransport}).Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil:
		pt, err := port(pr.TCPSocket.Port)
		if err != nil {
			return err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.ip, pt))
		if err != nil {
			return err
		}
		return conn.Close()
	}
	// exec and gRPC probes would need to run inside the pod: counted as passing.
	return nil
}

// ---- status ----

func (r *runner) patchStatus(ctx context.Context, pod *corev1.Pod, p *podProc) error {
	p.mu.Lock()
	cs := p.cs
	p.mu.Unlock()
	st := buildPodStatus(pod, &pod.Spec.Containers[0], cs, p.ip, r.cfg.HostIP, p.start)
	// metadata.uid makes the patch conditional: it never lands on a newer pod of the same name.
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": pod.UID}, "status": st})
	if err != nil {
		return err
	}
	if bytes.Equal(body, p.lastStatus) {
		return nil
	}
	_, err = r.cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, body, metav1.PatchOptions{}, "status")
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return nil
	case err != nil:
		return fmt.Errorf("patching status: %w", err)
	}
	p.lastStatus = body
	return nil
}

// ---- the sandbox side: install and start ----

// installKwokCRDs installs kwok's PortForward and Logs CRDs with the admin identity.
func (u *upper) installKwokCRDs(ctx context.Context) error {
	rc, err := clientcmd.BuildConfigFromFlags("", u.l.kubeconfig())
	if err != nil {
		return err
	}
	rc.WarningHandler = rest.NoWarnings{}
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	return installKwokCRDs(ctx, dc)
}

// startRunner starts the runner (this binary, re-executed) and waits until it watches pods.
func (u *upper) startRunner(ctx context.Context) error {
	l := u.l
	if err := os.MkdirAll(l.runnerDir(), 0o700); err != nil {
		return err
	}
	cfg, err := json.MarshalIndent(runnerConfig{
		Kubeconfig: l.kubeconfig(), ToolsDir: u.o.ToolsDir, APIServerURL: u.s.APIServerURL, HostIP: "127.0.0.1",
	}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.runnerConfig(), append(cfg, '\n'), 0o600); err != nil {
		return err
	}
	_ = os.Remove(l.runnerReady())
	st, err := u.start(procSpec{
		name: compRunner, path: "/proc/self/exe",
		// A binary whose main forgot RunnerMain must not do its usual job as "the runner": a
		// test binary then runs no test, vaultctl rejects the flag, and Up reports the exit.
		args: []string{"-test.run=^$"},
		env:  cleanEnv(runnerEnv + "=" + l.dir),
	})
	if err != nil {
		return err
	}
	return u.waitReady(ctx, st, func(context.Context) error {
		if _, err := os.Stat(l.runnerReady()); err != nil {
			return errors.New("not watching pods yet (does this binary call sandbox.RunnerMain first?)")
		}
		return nil
	})
}
