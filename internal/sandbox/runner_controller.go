package sandbox

// The runner's controller: watch the Vault pods and reconcile each one with its process.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
