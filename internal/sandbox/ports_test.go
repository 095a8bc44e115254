package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/internal/testreq"
)

// listenHelperEnv makes this test binary a stand-in component (see TestMain): it listens on the
// address the variable holds, prints it once it does, and serves until killed. A taken address
// ends it the way the sandbox's Go components end: "listen tcp ...: bind: address already in use".
const listenHelperEnv = "SANDBOX_TEST_LISTEN"

func listenHelperMain() bool {
	addr := os.Getenv(listenHelperEnv)
	if addr == "" {
		return false
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(addr)
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		c.Close()
	}
}

// thief takes each component's ports the first time BeforeStart reports them: another program
// winning the race for a port between the sandbox letting go of it and the child binding it.
type thief struct {
	mu     sync.Mutex
	stolen map[string]int // port name -> the port taken
	seen   map[string][]int
	held   []net.Listener
	// only, when set, limits the theft to these port names.
	only map[string]bool
}

func newThief(t *testing.T, only ...string) *thief {
	th := &thief{stolen: map[string]int{}, seen: map[string][]int{}}
	if len(only) > 0 {
		th.only = map[string]bool{}
		for _, n := range only {
			th.only[n] = true
		}
	}
	t.Cleanup(func() {
		for _, l := range th.held {
			l.Close()
		}
	})
	return th
}

func (th *thief) beforeStart(t *testing.T) func(string, map[string]int) {
	return func(_ string, ports map[string]int) {
		th.mu.Lock()
		defer th.mu.Unlock()
		for n, p := range ports {
			th.seen[n] = append(th.seen[n], p)
			if _, done := th.stolen[n]; done || (th.only != nil && !th.only[n]) {
				continue
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				t.Errorf("the port %d of %s was not free right before its start: %v", p, n, err)
				continue
			}
			th.stolen[n], th.held = p, append(th.held, l)
		}
	}
}

// testUpper is an upper for one Up, in dir, on ports for names, with the thief's hook.
func testUpper(t *testing.T, th *thief, names ...string) (*upper, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	logBuf := &syncBuffer{}
	o, err := Options{Dir: dir, StopWithParent: true, ReadyTimeout: 30 * time.Second, Log: logBuf, BeforeStart: th.beforeStart(t)}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := reservePorts(names, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &upper{o: o, l: layout{dir: dir}, ports: ps, t0: time.Now()}
	u.s = &Sandbox{Dir: dir, Ports: ps.snapshot(), dieWithParent: true}
	t.Cleanup(func() {
		ps.releaseAll()
		if err := u.s.stopAll(); err != nil {
			t.Error(err)
		}
	})
	return u, logBuf
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

// A component whose port is taken between the sandbox's choice and its start still comes up: on
// a fresh port, recorded in the state, after one failed start that says why.
func TestComponentComesUpWhenItsPortIsTakenBeforeItStarts(t *testing.T) {
	th := newThief(t)
	u, progress := testUpper(t, th, "fake")
	st, err := u.launch([]string{"fake"}, func() (*started, error) {
		addr := fmt.Sprintf("127.0.0.1:%d", u.ports.port("fake"))
		st, err := u.start(procSpec{
			name: "fake", path: "/proc/self/exe", port: u.ports.port("fake"),
			args: []string{"-test.run=^$"}, env: cleanEnv(listenHelperEnv + "=" + addr),
		})
		if err != nil {
			return st, err
		}
		// Ready when it says it listens: a probe that connects would reach the thief too.
		return st, u.waitReady(context.Background(), st, func(context.Context) error { return logHasLine(st.Log, st.logStart, addr) })
	})
	if err != nil {
		t.Fatalf("the component did not come up: %v", err)
	}
	taken := th.stolen["fake"]
	if taken == 0 || len(th.seen["fake"]) != 2 {
		t.Fatalf("want one theft and two starts, got stolen=%d, starts on %v", taken, th.seen["fake"])
	}
	now := u.ports.port("fake")
	if now == taken || st.Port != now || th.seen["fake"][1] != now {
		t.Errorf("running on %d (process records %d, second start on %d); the stolen port was %d", now, st.Port, th.seen["fake"][1], taken)
	}
	if !st.alive() {
		t.Error("the component is not running")
	}
	saved, err := Load(u.s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Ports["fake"] != now {
		t.Errorf("state.json records port %d, the component runs on %d", saved.Ports["fake"], now)
	}
	if p, ok := saved.process("fake"); !ok || p.PID != st.PID || p.Port != now {
		t.Errorf("state.json records %+v, want pid %d on port %d", p, st.PID, now)
	}
	log, _ := os.ReadFile(st.Log)
	if !strings.Contains(string(log), portTakenText) {
		t.Errorf("the component's log does not show the first start's failure:\n%s", log)
	}
	if want := fmt.Sprintf("fake %d->%d", taken, now); !strings.Contains(progress.String(), want) {
		t.Errorf("progress does not say the port moved (%q):\n%s", want, progress)
	}
}

// A component that fails for any other reason is not started again.
func TestComponentFailingOtherwiseIsNotRetried(t *testing.T) {
	th := newThief(t, "none")
	u, _ := testUpper(t, th, "fake")
	starts := 0
	_, err := u.launch([]string{"fake"}, func() (*started, error) {
		starts++
		st, err := u.start(procSpec{name: "fake", path: "/bin/sh", args: []string{"-c", "echo broken config; exit 3"}})
		if err != nil {
			return st, err
		}
		return st, u.waitReady(context.Background(), st, func(context.Context) error { return fmt.Errorf("not yet") })
	})
	if err == nil || !strings.Contains(err.Error(), "exited during startup") || starts != 1 {
		t.Errorf("err = %v after %d starts, want one start and its exit", err, starts)
	}
}

// A port that keeps being taken gives up after portAttempts starts, saying so.
func TestComponentGivesUpAfterRepeatedLosses(t *testing.T) {
	th := newThief(t, "none")
	u, _ := testUpper(t, th, "fake")
	starts := 0
	_, err := u.launch([]string{"fake"}, func() (*started, error) {
		starts++
		st, err := u.start(procSpec{name: "fake", path: "/bin/sh", args: []string{"-c", "echo 'listen: bind: Address already in use'; exit 1"}})
		if err != nil {
			return st, err
		}
		return st, u.waitReady(context.Background(), st, func(context.Context) error { return fmt.Errorf("not yet") })
	})
	if err == nil || starts != portAttempts || !strings.Contains(err.Error(), "times in a row") {
		t.Errorf("err = %v after %d starts, want %d starts and a failure", err, starts, portAttempts)
	}
}

// A process that logs the lost port and keeps running fails its wait at once (not at the
// timeout) and is stopped before it starts again.
func TestComponentThatKeepsRunningAfterLosingItsPort(t *testing.T) {
	th := newThief(t, "none")
	u, _ := testUpper(t, th, "fake")
	var first *started
	t0 := time.Now()
	_, err := u.launch([]string{"fake"}, func() (*started, error) {
		script := "echo 'ERROR listen tcp 127.0.0.1:1: bind: address already in use'; exec sleep 300"
		if first != nil {
			script = "echo up; exec sleep 300"
		}
		st, err := u.start(procSpec{name: "fake", path: "/bin/sh", args: []string{"-c", script}})
		if err != nil {
			return st, err
		}
		if first == nil {
			first = st
		}
		return st, u.waitReady(context.Background(), st, func(context.Context) error { return logHasLine(st.Log, st.logStart, "up") })
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("took %s: the lost port was noticed only at a timeout", d)
	}
	select {
	case <-first.done:
	case <-time.After(5 * time.Second):
		t.Error("the first process, which lost its port, still runs")
	}
}

func TestPortSetMove(t *testing.T) {
	ps, err := reservePorts([]string{"a", "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.releaseAll()
	a, b := ps.port("a"), ps.port("b")
	ps.release("a")
	moved, err := ps.move("a")
	if err != nil {
		t.Fatal(err)
	}
	if moved["a"] == a || moved["a"] == b || ps.port("a") != moved["a"] || ps.port("b") != b {
		t.Errorf("a: %d -> %v (b %d -> %d)", a, moved, b, ps.port("b"))
	}
	// Held until its owner starts, like a reserved port.
	if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(moved["a"]))); err == nil {
		l.Close()
		t.Error("the moved port is not held")
	}
	if !ps.lost[a] {
		t.Error("the lost port is not remembered, so it could be chosen again")
	}

	// A recorded port cannot move: Raft and etcd keep their peers' addresses in their data.
	fixed, err := reservePorts([]string{"c"}, map[string]int{"c": a})
	if err != nil {
		t.Fatal(err)
	}
	defer fixed.releaseAll()
	if _, err := fixed.move("c"); err == nil || !strings.Contains(err.Error(), "recorded") {
		t.Errorf("moving a recorded port: %v", err)
	}
	if fixed.port("c") != a {
		t.Errorf("the recorded port changed to %d", fixed.port("c"))
	}
}

// The portTaken scan reads only this run's output, and finds a message split across reads.
func TestPortTakenReadsOnlyThisRun(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "c.log")
	if err := os.WriteFile(logPath, []byte("an earlier run: bind: address already in use\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := startProcess(procSpec{name: "c", path: "/bin/sh", logPath: logPath,
		args: []string{"-c", "head -c 70000 /dev/zero | tr '\\0' x; printf 'Address alr'; sleep 0.3; echo 'eady in use'"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if st.portTaken() {
		t.Error("an earlier run's message counted for this run")
	}
	<-st.done
	if !st.portTaken() {
		t.Errorf("this run's message (split across reads) not found:\n%s", tailFile(logPath, 3))
	}
}

// The sandbox's KMS emulator (the component the port race was seen on) comes up when its port
// is taken right before it starts, and the endpoint in the state follows it.
func TestKMSComesUpWhenItsPortIsTakenBeforeItStarts(t *testing.T) {
	tools := os.Getenv(ToolsDirEnv)
	if _, err := os.Stat(filepath.Join(tools, "lkms")); tools == "" || err != nil {
		testreq.Missing(t, "no lkms: set %s (hack/tools/build.sh --dir)", ToolsDirEnv)
	}
	th := newThief(t)
	u, _ := testUpper(t, th, compKMS)
	u.o.ToolsDir = tools
	u.s.KMSRegion, u.s.KMSKeyAlias = DefaultKMSRegion, KMSKeyAlias
	u.s.KMSEndpoint = fmt.Sprintf("http://127.0.0.1:%d", u.ports.port(compKMS))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := u.startKMS(ctx); err != nil {
		t.Fatalf("kms did not come up: %v", err)
	}
	taken, now := th.stolen[compKMS], u.ports.port(compKMS)
	if taken == 0 || now == taken {
		t.Fatalf("stolen port %d, kms on %d", taken, now)
	}
	if want := fmt.Sprintf("http://127.0.0.1:%d", now); u.s.KMSEndpoint != want {
		t.Errorf("KMSEndpoint %s, want %s", u.s.KMSEndpoint, want)
	}
	if err := kmsHealthy(ctx, u.s.KMSEndpoint, u.s.KMSRegion, u.s.KMSKeyAlias); err != nil {
		t.Errorf("kms on its new port: %v", err)
	}
}

// A port released while this process forks (another component starting at that moment) is
// bindable as soon as release returns: a forked child's copy of the placeholder would otherwise
// keep the port busy until that child's exec, and the owner's bind would fail.
func TestReleasedPortIsBindableWhileForking(t *testing.T) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = exec.Command("/bin/true").Run()
			}
		}()
	}
	defer wg.Wait()
	defer close(stop)
	const n = 1500
	busy := 0
	for range n {
		ps, err := reservePorts([]string{"p"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ps.release("p")
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ps.port("p"))))
		if err != nil {
			busy++
		} else {
			l.Close()
		}
		ps.releaseAll()
	}
	if busy > 0 {
		t.Errorf("%d of %d released ports were still busy right after release", busy, n)
	}
}
