package sandbox

// The runner's controller: watch the Vault pods and reconcile each one with its process.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

func (r *runner) run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(r.cs, 30*time.Second,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = RunnerSelector }))
	inf := factory.Core().V1().Pods().Informer()
	r.indexer = inf.GetIndexer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.enqueue(obj, true) },
		UpdateFunc: func(old, obj any) { r.enqueue(obj, false); r.vaultPodChanged(old, obj) },
		DeleteFunc: func(obj any) { r.enqueue(obj, true); r.enqueueInjected() },
	})
	if err != nil {
		return err
	}
	// Injected application pods carry an annotation, which no list can select on: watch every
	// pod and keep those. Services tell which Vault pods an in-cluster Vault address means.
	all := informers.NewSharedInformerFactory(r.cs, 30*time.Second)
	appInf := all.Core().V1().Pods().Informer()
	r.appPods = appInf.GetIndexer()
	_, err = appInf.AddEventHandler(cache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			pod, ok := obj.(*corev1.Pod)
			return ok && isInjected(pod)
		},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { r.enqueue(obj, false) },
			UpdateFunc: func(_, obj any) { r.enqueue(obj, false) },
			DeleteFunc: func(obj any) { r.enqueue(obj, false) },
		},
	})
	if err != nil {
		return err
	}
	svcInf := all.Core().V1().Services().Informer()
	r.services = svcInf.GetIndexer()
	// A Service changes what an in-cluster Vault address resolves to in injected pods.
	_, err = svcInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.enqueueInjected() },
		UpdateFunc: func(any, any) { r.enqueueInjected() },
		DeleteFunc: func(any) { r.enqueueInjected() },
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	all.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced, appInf.HasSynced, svcInf.HasSynced) {
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
	r.log.Printf("stopping: terminating every pod process")
	r.queue.ShutDown()
	wg.Wait()
	factory.Shutdown()
	all.Shutdown()
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

// vaultPodChanged requeues the injected pods when a Vault pod's readiness or labels (which
// Services select it, vault-active) change: their /etc/hosts names it.
func (r *runner) vaultPodChanged(old, cur any) {
	o, ok1 := old.(*corev1.Pod)
	n, ok2 := cur.(*corev1.Pod)
	if ok1 && ok2 && podIsReady(o) == podIsReady(n) && maps.Equal(o.Labels, n.Labels) {
		return
	}
	r.enqueueInjected()
}

// enqueueInjected queues every injected pod.
func (r *runner) enqueueInjected() {
	if r.appPods == nil {
		return
	}
	for _, o := range r.appPods.List() {
		if pod, ok := o.(*corev1.Pod); ok && isInjected(pod) {
			r.queue.Add(podKey(pod.Namespace, pod.Name))
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

// podProc is the runner's record of one pod (one UID) and its containers.
type podProc struct {
	key, ns, name string
	uid           types.UID
	ip            string
	dir           string
	start         time.Time
	// injected: an application pod the sandbox webhook injected (runner_agent.go), not a
	// Vault server pod.
	injected bool

	mu   sync.Mutex          // guards every container's state, shared with the processes' goroutines
	ctrs map[string]*ctrProc // by container name, init containers included

	// Touched only by the pod's sync (never concurrent for one key).
	kwokReady   bool
	prepared    bool
	lastStatus  []byte
	hosts       string
	tokens      map[string]cachedToken
	refreshedAt time.Time
}

// ctrProc is one container of a pod: a real process (Vault, the agents) or a simulated one
// (an application container, whose image the sandbox does not have). Its fields are guarded by
// the pod's mu.
type ctrProc struct {
	name string
	init bool // an init container

	cs        containerState
	pid       int
	done      chan struct{} // closed when the current process has exited
	cancel    context.CancelFunc
	stopping  bool
	nextStart time.Time
	// completed: the container terminated for good (an init container that succeeded, an
	// application container of a Job); it is not started again.
	completed bool
}

// ctr returns the record of container name, creating it.
func (p *podProc) ctr(name string, init bool) *ctrProc {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.ctrs[name]
	if c == nil {
		c = &ctrProc{name: name, init: init}
		p.ctrs[name] = c
	}
	return c
}

func (r *runner) sync(ctx context.Context, key string) error {
	if ctx.Err() != nil {
		return nil
	}
	obj, exists, err := r.indexer.GetByKey(key)
	if err != nil {
		return err
	}
	if !exists {
		if obj, exists, err = r.appPods.GetByKey(key); err != nil {
			return err
		}
		exists = exists && isInjected(obj.(*corev1.Pod))
	}
	r.mu.Lock()
	p := r.pods[key]
	r.mu.Unlock()
	if !exists {
		if p != nil {
			r.log.Printf("%s: pod gone: stopping its processes", key)
			r.stopProc(p, runnerStopGrace)
			r.forget(ctx, p, true)
		}
		return nil
	}
	pod := obj.(*corev1.Pod)
	if p != nil && p.uid != pod.UID {
		r.log.Printf("%s: uid %s replaced by %s: stopping the old processes", key, p.uid, pod.UID)
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
		r.log.Printf("%s: pod deleted: stopping its processes (grace %s)", key, grace)
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
	if p.injected && !p.prepared {
		// Before the kwok Logs object points at this pod's log files.
		if err := r.preparePodDir(pod, p); err != nil {
			return err
		}
		p.prepared = true
	}
	if p.injected {
		if err := r.writeAgentHosts(pod, p); err != nil {
			return fmt.Errorf("/etc/hosts: %w", err)
		}
	} else if err := r.writeHosts(pod, p); err != nil {
		return fmt.Errorf("/etc/hosts: %w", err)
	}
	if !p.kwokReady {
		if err := r.ensureKwokObjects(ctx, pod, p); err != nil {
			return err
		}
		p.kwokReady = true
	}
	if p.injected {
		return r.syncInjected(ctx, pod, p)
	}
	c := &pod.Spec.Containers[0]
	cp := p.ctr(c.Name, false)
	p.mu.Lock()
	running, stopping, wait := cp.cs.Running, cp.stopping, time.Until(cp.nextStart)
	p.mu.Unlock()
	switch {
	case stopping:
	case !running && wait > 0:
		r.queue.AddAfter(key, wait)
	case !running:
		if err := r.startContainer(ctx, pod, p, cp); err != nil {
			r.startFailed(p, cp, err)
		}
	case time.Since(p.refreshedAt) > volumeRefresh:
		// A kubelet keeps projected tokens, ConfigMaps and Secrets of running pods current.
		if _, err := r.materializeVolumes(ctx, pod, p, c); err != nil {
			r.log.Printf("%s: refreshing volumes: %v", key, err)
		}
		p.refreshedAt = time.Now()
	}
	return r.patchStatus(ctx, pod, p)
}

// startFailed records that a container could not be started and schedules another try.
func (r *runner) startFailed(p *podProc, cp *ctrProc, err error) {
	r.log.Printf("%s: cannot start container %s: %v", p.key, cp.name, err)
	p.mu.Lock()
	cp.cs.WaitingReason, cp.cs.WaitingMessage = "CreateContainerConfigError", err.Error()
	cp.nextStart = time.Now().Add(backoff(cp.cs.RestartCount + 1))
	wait := time.Until(cp.nextStart)
	p.mu.Unlock()
	r.queue.AddAfter(p.key, wait)
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
		injected: isInjected(pod) && !runnerSelects(pod),
		ctrs:     map[string]*ctrProc{},
		tokens:   map[string]cachedToken{},
	}
	if t := pod.Status.StartTime; t != nil {
		p.start = t.Time
	}
	// A pod that ran under an earlier runner (sandbox down, then up) keeps its restart counts,
	// and a process that died with the runner counts as a restart. Completed init containers
	// stay completed, as a kubelet restart does not rerun them.
	resume := func(statuses []corev1.ContainerStatus, init bool) {
		for _, s := range statuses {
			cp := &ctrProc{name: s.Name, init: init}
			cp.cs.RestartCount = s.RestartCount
			cp.cs.Last = s.LastTerminationState.Terminated
			if t := s.State.Terminated; t != nil && t.ExitCode == 0 && (init || p.injected) {
				cp.completed, cp.cs.Last = true, t
			}
			if s.State.Running != nil {
				cp.cs.RestartCount++
				cp.cs.Last = &corev1.ContainerStateTerminated{
					ExitCode: 137, Reason: "ContainerStatusUnknown", Message: "the sandbox runner stopped",
					StartedAt: s.State.Running.StartedAt, FinishedAt: metav1.NewTime(time.Now().UTC().Truncate(time.Second)),
					ContainerID: s.ContainerID,
				}
			}
			p.ctrs[s.Name] = cp
		}
	}
	resume(pod.Status.InitContainerStatuses, true)
	resume(pod.Status.ContainerStatuses, false)
	if !p.injected {
		// A Vault pod has one process; the statuses of other containers are not its.
		for name := range p.ctrs {
			if name != pod.Spec.Containers[0].Name {
				delete(p.ctrs, name)
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

func (r *runner) ensureKwokObjects(ctx context.Context, pod *corev1.Pod, p *podProc) error {
	var ports []int32
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			ports = append(ports, cp.ContainerPort)
		}
		if !p.injected {
			break
		}
	}
	if len(ports) == 0 && !p.injected {
		ports = []int32{8200, 8201}
	}
	if len(ports) > 0 {
		if err := upsert(ctx, r.dc, portForwardGVR, portForwardObject(pod.Namespace, pod.Name, p.ip, ports)); err != nil {
			return fmt.Errorf("kwok PortForward: %w", err)
		}
	}
	var logs *unstructured.Unstructured
	if p.injected {
		var entries []containerLogs
		for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
			cur, prev := r.criLogs(p, c.Name)
			// kwok fails a log request for a file that does not exist: a container that has not
			// run yet has an empty log, as with a container runtime.
			for _, f := range []string{cur, prev} {
				if err := touch(f); err != nil {
					return err
				}
			}
			entries = append(entries, containerLogs{Container: c.Name, Current: cur, Previous: prev})
		}
		logs = containerLogsObject(pod.Namespace, pod.Name, entries)
	} else {
		cur, prev := r.criLogs(p, pod.Spec.Containers[0].Name)
		logs = logsObject(pod.Namespace, pod.Name, cur, prev)
	}
	if err := upsert(ctx, r.dc, logsGVR, logs); err != nil {
		return fmt.Errorf("kwok Logs: %w", err)
	}
	return nil
}

// touch creates an empty file unless it exists.
func touch(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
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
			key := podKey(o.GetNamespace(), o.GetName())
			if _, ok, _ := r.indexer.GetByKey(key); ok {
				continue
			}
			if obj, ok, _ := r.appPods.GetByKey(key); ok && isInjected(obj.(*corev1.Pod)) {
				continue
			}
			if err := deleteIgnoringMissing(ctx, r.dc, gvr, o.GetNamespace(), o.GetName()); err != nil {
				r.log.Printf("deleting orphan %s %s/%s: %v", gvr.Resource, o.GetNamespace(), o.GetName(), err)
			}
		}
	}
}
