package sandbox

// A pod's process: its environment and argv, start, logs, exit and restart, stop.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
	return apiLookup(ctx, r.cs, ns)
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

func (r *runner) criLogs(p *podProc, container string) (current, previous string) {
	return filepath.Join(p.dir, container+".log"), filepath.Join(p.dir, container+".previous.log")
}
