package sandbox

// The runner as the kubelet of injected application pods: pods the sandbox webhook
// (runner_webhook.go) mutated as the emulated Vault Agent Injector would, marked with
// InjectedByAnnotation. Their containers run in the kubelet's order:
//
//   - init containers one after the other, in spec order. vault-agent-init is real: its own
//     command (/bin/sh -ec 'echo ${VAULT_CONFIG?} | base64 -d > ... && vault agent ...') in the
//     pod's mount namespace with the container's mounts and environment, and the sandbox's vault
//     binary at /usr/local/bin/vault. The agent retries a failed login by itself, so a role fixed
//     later lets the same process (the same pod) go on. An application init container is not run
//     (its image does not exist): it "completes" at once, and what it would have seen at that
//     moment is saved (computeEffective) in DIR/pods/NS_NAME/effective/CONTAINER.json;
//   - then the containers: the vault-agent sidecar is real and restarted with backoff when it
//     dies; application containers are simulated Running and Ready (a Job's complete at once).
//
// No network namespace: the pod's address is one of the runner's loopback addresses, so the
// agent's cache listener (127.0.0.1:PORT in a pod) is moved to it, and /etc/hosts maps
// in-cluster Vault Service names to a Ready Vault server pod of the runner.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vaultctl/vaultctl/internal/sandbox/agentinject"
)

// podVaultBin is where the agent containers find `vault` (the Vault image's place for it).
const podVaultBin = "/usr/local/bin/vault"

var runnerLabels = func() labels.Selector {
	s, err := labels.Parse(RunnerSelector)
	if err != nil {
		panic(err)
	}
	return s
}()

// ContainerPID returns the PID of the process of container in the injected pod ns/name, 0 when
// none runs.
func ContainerPID(dir, ns, name, container string) int {
	b, err := os.ReadFile(containerPIDFile(layout{dir: dir}.podDir(ns, name), container))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// ContainerMemory is the resident memory, in bytes, of the processes of container in the
// injected pod ns/name (its process group: the shell and the agent it started), and the part of
// it that is the processes' own (RssAnon: not the pages of the vault binary, which every agent
// shares); zeros when none runs.
func ContainerMemory(dir, ns, name, container string) (rss, private uint64) {
	pgid := ContainerPID(dir, ns, name, container)
	if pgid == 0 {
		return 0, 0
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err != nil || st.pgrp != pgid {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		rss += parseVmRSS(string(b))
		private += statusKB(string(b), "RssAnon:")
	}
	return rss, private
}

func containerPIDFile(podDir, container string) string {
	return filepath.Join(podDir, "pid-"+container)
}

// isInjected reports whether the sandbox webhook injected the pod's agents.
func isInjected(pod *corev1.Pod) bool { return pod.Annotations[InjectedByAnnotation] != "" }

// runnerSelects reports whether pod is a Vault server pod of the runner.
func runnerSelects(pod *corev1.Pod) bool { return runnerLabels.Matches(labels.Set(pod.Labels)) }

// isAgentContainer tells the injected agent containers, which run for real, from the
// application's, which are simulated.
func isAgentContainer(c *corev1.Container) bool {
	if c.Name != agentinject.InitContainerName && c.Name != agentinject.SidecarContainerName {
		return false
	}
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "VAULT_CONFIG" })
}

// isJobPod: pods of Jobs complete instead of running forever (as kwok's sandbox-job-pod-succeeded
// stage does for faked pods).
func isJobPod(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.OwnerReferences, func(o metav1.OwnerReference) bool { return o.Kind == "Job" })
}

// syncInjected advances an injected pod: the next init container, or the containers once every
// init container completed; then the status.
func (r *runner) syncInjected(ctx context.Context, pod *corev1.Pod, p *podProc) error {
	initialized := true
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cp := p.ctr(c.Name, true)
		p.mu.Lock()
		completed, failed := cp.completed, cp.completed && cp.cs.Last != nil && cp.cs.Last.ExitCode != 0
		p.mu.Unlock()
		if completed && !failed {
			continue
		}
		initialized = false
		if failed {
			break // restartPolicy Never: the pod has failed
		}
		if isAgentContainer(c) {
			r.runAgent(ctx, pod, p, cp, c)
			break
		}
		if err := r.simulateInit(ctx, pod, p, cp, c); err != nil {
			r.startFailed(p, cp, err)
			break
		}
		initialized = true
	}
	if initialized {
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			cp := p.ctr(c.Name, false)
			if isAgentContainer(c) {
				r.runAgent(ctx, pod, p, cp, c)
			} else {
				r.simulateApp(pod, p, cp)
			}
		}
	}
	if time.Since(p.refreshedAt) > volumeRefresh {
		// A kubelet keeps the projected token and the Secrets of running containers current.
		for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
			p.mu.Lock()
			cp := p.ctrs[c.Name]
			running := cp != nil && cp.cs.Running
			p.mu.Unlock()
			if running && isAgentContainer(&c) {
				if _, err := r.materializeVolumes(ctx, pod, p, &c); err != nil {
					r.log.Printf("%s: refreshing volumes of %s: %v", p.key, c.Name, err)
				}
			}
		}
		p.refreshedAt = time.Now()
	}
	return r.patchStatus(ctx, pod, p)
}

// runAgent starts an agent container unless it runs, has finished, or waits out its backoff.
func (r *runner) runAgent(ctx context.Context, pod *corev1.Pod, p *podProc, cp *ctrProc, c *corev1.Container) {
	p.mu.Lock()
	running, stopping, completed, wait := cp.cs.Running, cp.stopping, cp.completed, time.Until(cp.nextStart)
	p.mu.Unlock()
	switch {
	case running, stopping, completed:
	case wait > 0:
		r.queue.AddAfter(p.key, wait)
	default:
		if err := r.startAgent(ctx, pod, p, cp, c); err != nil {
			r.startFailed(p, cp, err)
		}
	}
}

// startAgent runs an agent container's own command in the pod's mount namespace.
func (r *runner) startAgent(ctx context.Context, pod *corev1.Pod, p *podProc, cp *ctrProc, c *corev1.Container) error {
	if _, err := os.Stat(r.vaultBin); err != nil {
		return fmt.Errorf("no Vault binary (build the tools with `make tools`): %w", err)
	}
	mounts, err := r.materializeVolumes(ctx, pod, p, c)
	if err != nil {
		return err
	}
	p.refreshedAt = time.Now()
	env, err := containerEnv(podFacts{pod: pod, podIP: p.ip, hostIP: r.cfg.HostIP}, c, agentBaseEnv(r.baseEnv(pod)), r.lookup(ctx, pod.Namespace))
	if err != nil {
		return err
	}
	env, changes, err := rewriteAgentConfig(env, p.ip)
	if err != nil {
		return err
	}
	for _, ch := range changes {
		r.log.Printf("%s: %s: agent configuration: %s", p.key, c.Name, ch)
	}
	argv, err := agentArgv(c, envMap(env))
	if err != nil {
		return err
	}
	mounts = append(mounts, podMount{Src: r.vaultBin, Dst: podVaultBin, ReadOnly: true})
	specPath, err := r.writeLaunchSpec(pod, p, c, mounts, argv)
	if err != nil {
		return err
	}
	return r.launch(pod, p, cp, c, specPath, env)
}

// agentBaseEnv is the runtime's environment of an agent container: the Vault image's, without
// the Vault server pods' KMS credentials.
func agentBaseEnv(base []string) []string {
	return slices.DeleteFunc(slices.Clone(base), func(kv string) bool { return strings.HasPrefix(kv, "AWS_") })
}

// agentArgv is the container's command and args with $(VAR) expanded. The program is looked up
// as the image would find it: `vault` is the sandbox's Vault binary at podVaultBin, anything
// else comes from the host's PATH (the pod's view is the host's root).
func agentArgv(c *corev1.Container, env map[string]string) ([]string, error) {
	var argv []string
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		argv = append(argv, expandVars(a, env))
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("container %s has no command (the sandbox runs no image entrypoint)", c.Name)
	}
	switch {
	case argv[0] == "vault":
		argv[0] = podVaultBin
	case !strings.Contains(argv[0], "/"):
		path, err := exec.LookPath(argv[0])
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
		argv[0] = path
	}
	return argv, nil
}

// rewriteAgentConfig moves the listeners of the agent configuration in VAULT_CONFIG (base64 of
// JSON, as the injector sets it) from the pod-local 127.0.0.1 to the pod's own address: without
// a network namespace every pod shares the host's loopback. Nothing else changes; without a
// listener the environment is returned as it was.
func rewriteAgentConfig(env []string, podIP string) ([]string, []string, error) {
	i := slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "VAULT_CONFIG=") })
	if i < 0 {
		return env, nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(env[i], "VAULT_CONFIG="))
	if err != nil {
		return nil, nil, fmt.Errorf("VAULT_CONFIG is not base64: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, nil, fmt.Errorf("VAULT_CONFIG is not a JSON agent configuration: %w", err)
	}
	listeners, _ := cfg["listener"].([]any)
	var changes []string
	for _, l := range listeners {
		m, _ := l.(map[string]any)
		addr, _ := m["address"].(string)
		host, port, err := net.SplitHostPort(addr)
		if err != nil || !slices.Contains(wildcardHosts, host) {
			continue
		}
		m["address"] = net.JoinHostPort(podIP, port)
		changes = append(changes, fmt.Sprintf("listener address %s -> %s", addr, m["address"]))
	}
	if len(changes) == 0 {
		return env, nil, nil
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	out := slices.Clone(env)
	out[i] = "VAULT_CONFIG=" + base64.StdEncoding.EncodeToString(b)
	return out, changes, nil
}

// simulateInit "runs" an application init container: it completes at once, and what it would
// have seen then is saved for Effective.
func (r *runner) simulateInit(ctx context.Context, pod *corev1.Pod, p *podProc, cp *ctrProc, c *corev1.Container) error {
	// The status the runner has not patched yet: the downward API sees the pod's addresses.
	view := pod.DeepCopy()
	view.Status.PodIP, view.Status.HostIP = p.ip, r.cfg.HostIP
	eff, err := computeEffective(ctx, r.cs, r.l.dir, view, c.Name)
	if err != nil {
		return fmt.Errorf("what init container %s sees: %w", c.Name, err)
	}
	if err := saveEffectiveSnapshot(p.dir, pod, c.Name, eff); err != nil {
		return err
	}
	now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	p.mu.Lock()
	cp.completed = true
	cp.cs.ContainerID = simulatedID(pod, c.Name)
	cp.cs.WaitingReason, cp.cs.WaitingMessage = "", ""
	cp.cs.Last = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now, ContainerID: cp.cs.ContainerID}
	p.mu.Unlock()
	r.log.Printf("%s: init container %s simulated (its image is not run); its view saved", p.key, c.Name)
	return nil
}

// simulateApp starts an application container: Running and Ready at once, or Completed for a
// Job's pod.
func (r *runner) simulateApp(pod *corev1.Pod, p *podProc, cp *ctrProc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cp.cs.Running || cp.completed {
		return
	}
	now := time.Now()
	cp.cs.ContainerID = simulatedID(pod, cp.name)
	cp.cs.WaitingReason, cp.cs.WaitingMessage = "", ""
	if isJobPod(pod) {
		at := metav1.NewTime(now.UTC().Truncate(time.Second))
		cp.completed = true
		cp.cs.Last = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: at, FinishedAt: at, ContainerID: cp.cs.ContainerID}
		return
	}
	cp.cs.Running, cp.cs.StartedAt, cp.cs.Ready, cp.cs.ReadySince = true, now, true, now
}

func simulatedID(pod *corev1.Pod, container string) string {
	return fmt.Sprintf("vaultctl-sandbox://%s-%s", pod.UID, container)
}

// ---- /etc/hosts of injected pods ----

// serviceTarget is a Ready Vault server pod of the runner, as a Service would select it.
type serviceTarget struct {
	Namespace, Name, IP string
	Labels              map[string]string
}

// serviceHosts lists /etc/hosts lines for every Service with a selector that selects a target
// of its namespace: its cluster DNS names (and the short ones in the pod's own namespace) point
// at the first such target by name. A real Service would balance over all of them; any Ready
// Vault pod answers (standbys forward to the active node), and vault-active selects the leader.
func serviceHosts(podNS string, svcs []*corev1.Service, targets []serviceTarget) string {
	sorted := slices.Clone(targets)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var lines []string
	for _, s := range svcs {
		if len(s.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		for _, t := range sorted {
			if t.Namespace != s.Namespace || !sel.Matches(labels.Set(t.Labels)) {
				continue
			}
			names := []string{s.Name + "." + s.Namespace + ".svc." + clusterDomain, s.Name + "." + s.Namespace + ".svc", s.Name + "." + s.Namespace}
			if s.Namespace == podNS {
				names = append(names, s.Name)
			}
			lines = append(lines, t.IP+"\t"+strings.Join(names, " "))
			break
		}
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return ""
	}
	return "# Services of the runner's Vault pods (no cluster DNS on the host):\n" + strings.Join(lines, "\n") + "\n"
}

// writeAgentHosts keeps an injected pod's /etc/hosts current: the kubelet's lines and the
// in-cluster Vault Services.
func (r *runner) writeAgentHosts(pod *corev1.Pod, p *podProc) error {
	var targets []serviceTarget
	for _, o := range r.indexer.List() {
		q := o.(*corev1.Pod)
		if q.DeletionTimestamp != nil || !podIsReady(q) {
			continue
		}
		ip, err := r.podIP(podKey(q.Namespace, q.Name))
		if err != nil {
			return err
		}
		targets = append(targets, serviceTarget{Namespace: q.Namespace, Name: q.Name, IP: ip, Labels: q.Labels})
	}
	var svcs []*corev1.Service
	if len(targets) > 0 {
		for _, o := range r.services.List() {
			svcs = append(svcs, o.(*corev1.Service))
		}
	}
	self := hostEntry{Name: pod.Name, Namespace: pod.Namespace, Hostname: pod.Spec.Hostname, Subdomain: pod.Spec.Subdomain, IP: p.ip}
	return p.setHosts(hostsFile(self, nil) + serviceHosts(pod.Namespace, svcs, targets))
}

func podIsReady(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
	})
}
