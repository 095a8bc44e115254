package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one sandbox process as recorded in state.json.
type Process struct {
	Name string `json:"name"`
	PID  int    `json:"pid"` // 0 once stopped (StopVaultNode)
	// StartTime is field 22 of /proc/PID/stat (clock ticks after boot). A PID whose start time
	// differs is a recycled PID that belongs to someone else, and is never signalled.
	StartTime  uint64 `json:"startTime"`
	Port       int    `json:"port,omitempty"`
	Log        string `json:"log"`
	StopSignal string `json:"stopSignal,omitempty"` // default SIGTERM; postgres uses SIGINT (fast shutdown)
}

// procStat is the part of /proc/PID/stat the sandbox needs.
type procStat struct {
	state     byte
	pgrp      int
	startTime uint64
}

// parseProcStat parses /proc/PID/stat. The command name is in parentheses and may itself
// contain spaces and parentheses, so fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return procStat{}, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field N is f[N-3].
	if len(f) < 20 {
		return procStat{}, errors.New("short stat")
	}
	pgrp, err := strconv.Atoi(f[5-3])
	if err != nil {
		return procStat{}, err
	}
	st, err := strconv.ParseUint(f[22-3], 10, 64)
	if err != nil {
		return procStat{}, err
	}
	return procStat{state: f[0][0], pgrp: pgrp, startTime: st}, nil
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// alive reports whether the recorded process still runs: same PID, same start time, not a zombie.
func (p Process) alive() bool {
	if p.PID <= 0 {
		return false
	}
	st, err := readProcStat(p.PID)
	if err != nil {
		return false
	}
	return st.startTime == p.StartTime && st.state != 'Z' && st.state != 'X'
}

// groupLeader reports whether the process leads its own process group (we start every process
// with Setpgid), so signalling the group reaches its children (postgres backends) and nothing else.
func (p Process) groupLeader() bool {
	st, err := readProcStat(p.PID)
	return err == nil && st.pgrp == p.PID
}

func (p Process) stopSignal() syscall.Signal {
	if p.StopSignal == "SIGINT" {
		return syscall.SIGINT
	}
	return syscall.SIGTERM
}

// signal sends sig to the process group if the process leads one, else to the process alone.
func (p Process) signal(sig syscall.Signal) error {
	if !p.alive() {
		return nil
	}
	if p.groupLeader() {
		return syscall.Kill(-p.PID, sig)
	}
	return syscall.Kill(p.PID, sig)
}

// groupGone reports whether no process is left in p's process group (children of a killed leader
// would otherwise linger).
func groupGone(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err == nil && st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			return false
		}
	}
	return true
}

// stopProcesses sends each process its stop signal, waits up to grace for all of them (and
// their groups) to exit, then SIGKILLs what is left. All are stopped in parallel: shutdown
// order does not matter for a throwaway sandbox and the waits add up otherwise.
func stopProcesses(procs []Process, grace time.Duration) error {
	var live []Process
	leaders := map[int]bool{}
	for _, p := range procs {
		if p.alive() {
			leaders[p.PID] = p.groupLeader()
			live = append(live, p)
		}
	}
	for _, p := range live {
		_ = p.signal(p.stopSignal())
	}
	done := func(p Process) bool {
		if p.alive() {
			return false
		}
		return !leaders[p.PID] || groupGone(p.PID)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		all := true
		for _, p := range live {
			if !done(p) {
				all = false
				break
			}
		}
		if all {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range live {
		if p.alive() {
			_ = p.signal(syscall.SIGKILL)
		} else if leaders[p.PID] && !groupGone(p.PID) {
			// The leader is gone but children remain in its group: the group ID is still ours.
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	}
	deadline = time.Now().Add(5 * time.Second)
	var left []string
	for time.Now().Before(deadline) {
		left = left[:0]
		for _, p := range live {
			if !done(p) {
				left = append(left, fmt.Sprintf("%s (pid %d)", p.Name, p.PID))
			}
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("still running after SIGKILL: %s", strings.Join(left, ", "))
}

// procSpec describes a process to start.
type procSpec struct {
	name       string
	path       string
	args       []string
	env        []string
	dir        string
	logPath    string
	port       int
	stopSignal string
	// cred runs the process as another user (postgres when we are root).
	cred *syscall.Credential
	// userns maps uid/gid 0 outside to these IDs inside a new user namespace (see postgres.go).
	userns *[2]int
}

// started is a process this Go process started: done closes when it has exited and been reaped.
type started struct {
	Process
	done chan struct{}
	err  error // exit status, valid after done

	// logStart is where this run's output begins in the (appended) log; scan tracks portTaken.
	logStart int64
	scanMu   sync.Mutex
	scanned  int64
	carry    []byte
	taken    bool
}

// startProcess starts spec in its own process group (so terminal signals aimed at
// `vaultctl-sandbox up` do not reach it and `down` can signal the whole group), stdout+stderr
// appended to its log. The process is not tied to any context: it outlives `up` on purpose.
func startProcess(spec procSpec, dieWithParent bool) (*started, error) {
	if err := os.MkdirAll(filepath.Dir(spec.logPath), 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "---- %s: starting %s\n", time.Now().Format(time.RFC3339), spec.name)
	var logStart int64
	if fi, err := logf.Stat(); err == nil {
		logStart = fi.Size()
	}

	cmd := exec.Command(spec.path, spec.args...)
	cmd.Env = spec.env
	cmd.Dir = spec.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	attr := &syscall.SysProcAttr{Setpgid: true, Credential: spec.cred}
	if spec.userns != nil {
		attr.Cloneflags = syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: spec.userns[0], HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: spec.userns[1], HostID: os.Getgid(), Size: 1}}
	}
	if dieWithParent {
		attr.Pdeathsig = syscall.SIGKILL
	}
	cmd.SysProcAttr = attr

	if err := spawn(cmd, dieWithParent); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	st, err := readProcStat(cmd.Process.Pid)
	if err != nil {
		// It died instantly; the reaper below still records why.
		st = procStat{}
	}
	s := &started{
		Process: Process{
			Name: spec.name, PID: cmd.Process.Pid, StartTime: st.startTime,
			Port: spec.port, Log: spec.logPath, StopSignal: spec.stopSignal,
		},
		done:     make(chan struct{}),
		logStart: logStart,
		scanned:  logStart,
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// exited reports whether a process started by this Go process has exited.
func (s *started) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// portTakenText is how every sandbox component reports a listen port it cannot bind (Go's
// EADDRINUSE "bind: address already in use", PostgreSQL's "Address already in use").
const portTakenText = "address already in use"

// portTaken reports whether this run of the process has logged that a port it listens on was
// taken. Only output after this run's start is read, and each call reads only what is new.
func (s *started) portTaken() bool {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	if s.taken {
		return true
	}
	f, err := os.Open(s.Log)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := f.ReadAt(buf, s.scanned)
		if n > 0 {
			// Keep the last bytes of each chunk, for a message split across two reads.
			chunk := append(append([]byte(nil), s.carry...), bytes.ToLower(buf[:n])...)
			if bytes.Contains(chunk, []byte(portTakenText)) {
				s.taken = true
				return true
			}
			s.scanned += int64(n)
			s.carry = chunk[max(0, len(chunk)-len(portTakenText)):]
		}
		if err != nil || n == 0 {
			return false
		}
	}
}

// spawner forks from one OS thread that never exits. Pdeathsig fires when the *thread* that
// forked the child exits, and Go may retire threads; a locked, parked thread keeps the signal
// tied to the life of the whole process.
var spawnReq = make(chan spawnJob)

type spawnJob struct {
	cmd *exec.Cmd
	res chan error
}

func init() {
	go func() {
		runtime.LockOSThread() // never unlocked: this thread lives as long as the process
		for j := range spawnReq {
			j.res <- j.cmd.Start()
		}
	}()
}

func spawn(cmd *exec.Cmd, dieWithParent bool) error {
	if !dieWithParent {
		return cmd.Start()
	}
	res := make(chan error, 1)
	spawnReq <- spawnJob{cmd: cmd, res: res}
	return <-res
}

// tailFile returns the last n lines of a log, for error messages.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// rssBytes sums the resident memory of every process in the given process groups.
func rssBytes(pgids []int) uint64 {
	want := map[int]bool{}
	for _, g := range pgids {
		if g > 0 {
			want[g] = true
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total uint64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || !want[st.pgrp] {
			continue
		}
		total += vmRSS(pid)
	}
	return total
}

func vmRSS(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return parseVmRSS(string(b))
}

// parseVmRSS extracts "VmRSS: N kB" from /proc/PID/status, in bytes.
func parseVmRSS(status string) uint64 { return statusKB(status, "VmRSS:") }

// statusKB reads a "Field: N kB" line of /proc/PID/status, in bytes.
func statusKB(status, field string) uint64 {
	for line := range strings.SplitSeq(status, "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// cleanEnv returns the environment minus variables that would reconfigure a component behind
// our back: etcd reads ETCD_* as flags, Vault reads VAULT_* (seal, addresses), the AWS SDK reads
// AWS_* (profiles, real credentials), postgres reads PG*, client tools read KUBECONFIG.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "ETCD_") || strings.HasPrefix(k, "VAULT_") || strings.HasPrefix(k, "AWS_") ||
			strings.HasPrefix(k, "PG") || k == "KUBECONFIG" {
			continue
		}
		env = append(env, kv)
	}
	return overrideEnv(env, extra...)
}

// overrideEnv sets each KEY=VALUE of extra in env, replacing an existing KEY.
func overrideEnv(env []string, extra ...string) []string {
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		out := env[:0]
		for _, e := range env {
			if ek, _, _ := strings.Cut(e, "="); ek != k {
				out = append(out, e)
			}
		}
		env = append(out, kv)
	}
	return env
}
