// Package sandbox starts a throwaway, container-less test estate on 127.0.0.1: a Kubernetes
// control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok with three
// fake nodes), an AWS KMS emulator, PostgreSQL and an uninitialized three-node Vault cluster that
// auto-unseals through the emulator, plus a runner that turns the server pods of a Vault
// StatefulSet (vaultctl's chart in in-cluster mode) into real Vault processes (runner.go).
// Every process, port and file is recorded in one directory (state.json), so another process
// can find, inspect and stop exactly what was started.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Options configure Up.
type Options struct {
	// Dir holds all state; default DefaultDir().
	Dir string
	// ToolsDir holds the pinned binaries (hack/tools/build.sh --dir); default $VAULTCTL_TOOLS_DIR.
	ToolsDir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// WithVault starts the external three-node Vault cluster.
	WithVault bool
	// WithPostgres starts PostgreSQL.
	WithPostgres bool

	// PostgresBinDir holds initdb, postgres and pg_isready; default /usr/lib/postgresql/15/bin.
	PostgresBinDir string
	// StopWithParent kills every sandbox process when the calling process dies, even by SIGKILL
	// or a panic (test harnesses). The CLI leaves it off: the sandbox must outlive `up`.
	StopWithParent bool
	// ReadyTimeout bounds the readiness wait of each component; default 2 minutes.
	ReadyTimeout time.Duration

	// BeforeStart, for tests, is called after the sandbox lets go of a component's ports and
	// right before it starts the component, with the ports it is to bind by name. A test takes
	// one there to play another program winning the race for it.
	BeforeStart func(component string, ports map[string]int)
}

// Defaults and fixed names of the sandbox.
const (
	DefaultKMSRegion  = "us-east-1"
	KMSKeyAlias       = "alias/vault-unseal-key"
	DefaultPGBinDir   = "/usr/lib/postgresql/15/bin"
	ToolsDirEnv       = "VAULTCTL_TOOLS_DIR"
	SandboxDirEnv     = "VAULTCTL_SANDBOX_DIR"
	defaultReadyWait  = 2 * time.Minute
	stopGrace         = 15 * time.Second
	dummyAccessKeyID  = "vaultctl-sandbox"
	dummySecretKey    = "vaultctl-sandbox-not-a-secret"
	postgresAdminUser = "vaultadmin"
)

// portAttempts bounds how often a component is started on fresh ports after finding one taken:
// each loss is a rare race, so several in a row mean something else is wrong.
const portAttempts = 4

// Component names, also the names of their logs (DIR/logs/NAME.log) and of their ports.
const (
	compEtcd      = "etcd"
	compAPIServer = "kube-apiserver"
	compKCM       = "kube-controller-manager"
	compScheduler = "kube-scheduler"
	compKwok      = "kwok"
	compKMS       = "kms"
	compPostgres  = "postgres"
	portEtcdPeer  = "etcd-peer"
)

func vaultName(i int) string        { return fmt.Sprintf("vault-%d", i) }
func vaultClusterPort(i int) string { return fmt.Sprintf("vault-%d-cluster", i) }

// DefaultDir is $VAULTCTL_SANDBOX_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/vaultctl/sandbox.
func DefaultDir() string {
	return defaultDir(os.Getenv)
}

func defaultDir(getenv func(string) string) string {
	if d := getenv(SandboxDirEnv); d != "" {
		return d
	}
	base := getenv("XDG_STATE_HOME")
	if base == "" {
		home := getenv("HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "vaultctl", "sandbox")
}

// ComponentError says which component failed to start and shows the end of its log.
type ComponentError struct {
	Component string
	Log       string // path of its log
	Tail      string // last lines of the log
	Err       error
}

func (e *ComponentError) Error() string {
	msg := fmt.Sprintf("sandbox: %s: %v", e.Component, e.Err)
	if e.Tail != "" {
		msg += fmt.Sprintf("\n--- last lines of %s:\n%s", e.Log, e.Tail)
	} else if e.Log != "" {
		msg += fmt.Sprintf(" (log: %s)", e.Log)
	}
	return msg
}

func (e *ComponentError) Unwrap() error { return e.Err }

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir()
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return o, err
	}
	o.Dir = abs
	if o.ToolsDir == "" {
		o.ToolsDir = os.Getenv(ToolsDirEnv)
	}
	if o.PostgresBinDir == "" {
		o.PostgresBinDir = DefaultPGBinDir
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = defaultReadyWait
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o, nil
}

// requiredTools lists the binaries Up needs from the tools directory.
func requiredTools(withVault bool) []string {
	t := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "lkms"}
	if withVault {
		t = append(t, "vault")
	}
	return t
}

// checkTools fails before anything starts, naming the first missing binary.
func checkTools(o Options) error {
	hint := "run `make tools`; " + ToolsDirEnv + " must point at the directory printed by `hack/tools/build.sh --dir`"
	if o.ToolsDir == "" {
		return fmt.Errorf("sandbox: no tools directory: %s is not set (%s)", ToolsDirEnv, hint)
	}
	for _, name := range requiredTools(o.WithVault) {
		p := filepath.Join(o.ToolsDir, name)
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("sandbox: tool %q is missing: no executable %s (%s)", name, p, hint)
		}
	}
	if o.WithPostgres {
		for _, name := range []string{"initdb", "postgres", "pg_isready"} {
			p := filepath.Join(o.PostgresBinDir, name)
			if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
				return fmt.Errorf("sandbox: PostgreSQL tool %q is missing: no executable %s (install postgresql-15)", name, p)
			}
		}
	}
	return nil
}

// paths of everything under the state directory.
type layout struct{ dir string }

func (l layout) pki() string                { return filepath.Join(l.dir, "pki") }
func (l layout) logs() string               { return filepath.Join(l.dir, "logs") }
func (l layout) log(name string) string     { return filepath.Join(l.dir, "logs", name+".log") }
func (l layout) kubeconfig() string         { return filepath.Join(l.dir, "kubeconfig") }
func (l layout) kube(name string) string    { return filepath.Join(l.dir, "kube", name) }
func (l layout) etcdData() string           { return filepath.Join(l.dir, "etcd") }
func (l layout) kwokHome() string           { return filepath.Join(l.dir, "kwok") }
func (l layout) pv(i int) string            { return filepath.Join(l.dir, "pv", fmt.Sprint(i)) }
func (l layout) kmsData() string            { return filepath.Join(l.dir, "kms") }
func (l layout) postgres() string           { return filepath.Join(l.dir, "postgres") }
func (l layout) postgresPassword() string   { return filepath.Join(l.dir, "postgres-admin-password") }
func (l layout) vaultNode(i int) string     { return filepath.Join(l.dir, "vault", vaultName(i)) }
func (l layout) vaultConfig(i int) string   { return filepath.Join(l.vaultNode(i), "vault.hcl") }
func (l layout) certDir(comp string) string { return filepath.Join(l.dir, "certs", comp) }

// portNames lists every port the sandbox needs, in a stable order.
func portNames(withVault, withPostgres bool) []string {
	n := []string{compEtcd, portEtcdPeer, compAPIServer, compKCM, compScheduler, compKwok, compKMS, portAgentInjector}
	if withPostgres {
		n = append(n, compPostgres)
	}
	if withVault {
		for i := range vaultReplicas {
			n = append(n, vaultName(i), vaultClusterPort(i))
		}
	}
	return n
}

// upper carries what one Up call needs.
type upper struct {
	s     *Sandbox
	o     Options
	l     layout
	pki   pki
	ports *portSet
	// prefer holds the ports of a stopped sandbox being restarted.
	prefer map[string]int
	t0     time.Time
	logMu  sync.Mutex
}

func (u *upper) logf(format string, args ...any) {
	u.logMu.Lock()
	defer u.logMu.Unlock()
	fmt.Fprintf(u.o.Log, "[%5.1fs] %s\n", time.Since(u.t0).Seconds(), fmt.Sprintf(format, args...))
}

// Up starts the sandbox in o.Dir and returns once every component is ready. If the sandbox is
// already running and healthy it changes nothing and returns it with AlreadyRunning set. A
// stopped sandbox (after Down without purge, or a reboot) is started again on its recorded
// ports with its data. On failure everything Up started is stopped again.
func Up(ctx context.Context, o Options) (*Sandbox, error) {
	if os.Getenv(runnerEnv) != "" {
		return nil, errors.New("sandbox: Up called in the sandbox runner's process: call sandbox.RunnerMain first thing in main (or TestMain)")
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	unlock, err := lockDir(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer unlock()

	var prefer map[string]int
	prev, err := Load(o.Dir)
	switch {
	case err == nil:
		if len(prev.LiveProcesses()) > 0 {
			return prev.reuse(ctx, o)
		}
		prefer = prev.Ports
	case errors.Is(err, ErrNoSandbox):
	default:
		return nil, err
	}
	// Tools are checked only now: a running sandbox needs none.
	if err := checkTools(o); err != nil {
		return nil, err
	}

	l := layout{dir: o.Dir}
	u := &upper{o: o, l: l, t0: time.Now(), prefer: prefer}
	u.s = &Sandbox{
		Dir:            o.Dir,
		ToolsDir:       o.ToolsDir,
		WithVault:      o.WithVault,
		WithPostgres:   o.WithPostgres,
		Kubeconfig:     l.kubeconfig(),
		CACertFile:     filepath.Join(l.pki(), "ca.crt"),
		CAKeyFile:      filepath.Join(l.pki(), "ca.key"),
		KMSRegion:      DefaultKMSRegion,
		KMSKeyAlias:    KMSKeyAlias,
		StartedAt:      u.t0.UTC(),
		PostgresBinDir: o.PostgresBinDir,
		dieWithParent:  o.StopWithParent,
	}
	if prev != nil {
		u.logf("restarting the stopped sandbox in %s with its data", o.Dir)
	} else {
		u.logf("starting a new sandbox in %s", o.Dir)
	}
	if err := u.run(ctx); err != nil {
		u.logf("startup failed; stopping what was started")
		if stopErr := u.s.stopAll(); stopErr != nil {
			err = fmt.Errorf("%w (and stopping: %v)", err, stopErr)
		}
		return nil, err
	}
	return u.s, nil
}

func (u *upper) run(ctx context.Context) error {
	s, l := u.s, u.l
	for _, d := range []string{l.logs(), l.kube(""), l.kwokHome(), l.certDir(compAPIServer), l.certDir(compKCM), l.certDir(compScheduler)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	var err error
	if u.pki, err = ensurePKI(l.pki()); err != nil {
		return fmt.Errorf("sandbox: PKI: %w", err)
	}
	if u.ports, err = reservePorts(portNames(u.o.WithVault, u.o.WithPostgres), u.prefer); err != nil {
		return fmt.Errorf("sandbox: %w (run `vaultctl-sandbox down --purge` to start over on new ports)", err)
	}
	defer u.ports.releaseAll()
	s.Ports = u.ports.snapshot()
	s.APIServerURL = fmt.Sprintf("https://127.0.0.1:%d", s.Ports[compAPIServer])
	s.KMSEndpoint = fmt.Sprintf("http://127.0.0.1:%d", s.Ports[compKMS])
	if u.o.WithVault {
		s.VaultCACert = s.CACertFile
		for i := range vaultReplicas {
			s.VaultAddrs = append(s.VaultAddrs, fmt.Sprintf("https://127.0.0.1:%d", s.Ports[vaultName(i)]))
		}
	}
	if err := u.writeKubeconfigs(); err != nil {
		return fmt.Errorf("sandbox: kubeconfigs: %w", err)
	}
	if err := s.save(); err != nil {
		return fmt.Errorf("sandbox: state file: %w", err)
	}
	u.logf("PKI, kubeconfigs and ports ready")

	// Three independent chains; each readiness wait fails fast if its process exits.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return u.startKube(gctx) })
	g.Go(func() error {
		if err := u.startKMS(gctx); err != nil {
			return err
		}
		if u.o.WithVault {
			return u.startVault(gctx)
		}
		return nil
	})
	if u.o.WithPostgres {
		g.Go(func() error { return u.startPostgres(gctx) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	s.ReadyAfter = time.Since(u.t0).Round(100 * time.Millisecond)
	if err := s.save(); err != nil {
		return err
	}
	u.logf("sandbox ready in %.1fs, %s RSS", s.ReadyAfter.Seconds(), FormatBytes(s.RSS()))
	return nil
}

// reuse handles Up on a sandbox that already has live processes.
func (s *Sandbox) reuse(ctx context.Context, o Options) (*Sandbox, error) {
	var bad []string
	for _, c := range s.Status(ctx) {
		if !c.Healthy {
			bad = append(bad, fmt.Sprintf("%s (%s)", c.Name, c.Detail))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("sandbox in %s is running but not healthy: %s; run `vaultctl-sandbox down` and `up` again (logs in %s)",
			s.Dir, strings.Join(bad, ", "), layout{dir: s.Dir}.logs())
	}
	if o.WithVault != s.WithVault || o.WithPostgres != s.WithPostgres {
		fmt.Fprintf(o.Log, "note: the running sandbox was started with vault=%t postgres=%t; options ignored\n", s.WithVault, s.WithPostgres)
	}
	s.AlreadyRunning = true
	return s, nil
}

// LiveProcesses returns the recorded processes that still run.
func (s *Sandbox) LiveProcesses() []Process {
	var live []Process
	for _, p := range s.processes() {
		if p.alive() {
			live = append(live, p)
		}
	}
	return live
}

// start launches one component and records it in state.json before waiting for it. ports
// names the ports it binds (default: its own name); their placeholders are let go just before.
func (u *upper) start(spec procSpec, ports ...string) (*started, error) {
	if spec.logPath == "" {
		spec.logPath = u.l.log(spec.name)
	}
	if len(ports) == 0 {
		ports = []string{spec.name}
	}
	u.ports.release(ports...)
	if u.o.BeforeStart != nil {
		m := map[string]int{}
		for _, n := range ports {
			if p := u.ports.port(n); p > 0 {
				m[n] = p
			}
		}
		u.o.BeforeStart(spec.name, m)
	}
	st, err := startProcess(spec, u.o.StopWithParent)
	if err != nil {
		return nil, &ComponentError{Component: spec.name, Log: spec.logPath, Err: err}
	}
	if err := u.s.record(st); err != nil {
		return st, err
	}
	return st, nil
}

// launch starts one component with start, which builds its command from the current ports and
// waits until it is ready, and moves it to fresh ports when it lost one (see retryOnTakenPort).
func (u *upper) launch(ports []string, start func() (*started, error)) (*started, error) {
	var st *started
	err := retryOnTakenPort(u.ports, u.logf, func(*started) []string { return ports }, func() ([]*started, error) {
		var err error
		st, err = start()
		return []*started{st}, err
	}, u.moved)
	return st, err
}

// retryOnTakenPort runs start, which starts processes on ps's current ports and waits until
// they are ready. A port chosen as free can be taken by another program in the moment between
// the sandbox letting go of it and the child binding it (the child then logs "address already
// in use" and exits). When that failed start, the ports portsOf names for each process that lost
// one move to fresh ports, moved records them, and start runs again, up to portAttempts times.
func retryOnTakenPort(ps *portSet, logf func(string, ...any), portsOf func(*started) []string,
	start func() ([]*started, error), moved func(map[string]int) error) error {
	for attempt := 1; ; attempt++ {
		sts, err := start()
		if err == nil {
			return nil
		}
		var names, who []string
		var lost []Process
		for _, st := range sts {
			if st != nil && st.portTaken() {
				names = append(names, portsOf(st)...)
				who = append(who, st.Name)
				lost = append(lost, st.Process)
			}
		}
		if len(names) == 0 {
			return err
		}
		if attempt == portAttempts {
			return fmt.Errorf("%w (a port was taken before it could bind it, %d times in a row)", err, attempt)
		}
		// One that logged the loss but kept running must not hold its other ports.
		if stopErr := stopProcesses(lost, stopGrace); stopErr != nil {
			return fmt.Errorf("%w (and stopping it: %v)", err, stopErr)
		}
		old := map[string]int{}
		for _, n := range names {
			old[n] = ps.port(n)
		}
		m, mvErr := ps.move(names...)
		if mvErr != nil {
			return fmt.Errorf("%w (moving it to another port: %v)", err, mvErr)
		}
		var desc []string
		for _, n := range names {
			desc = append(desc, fmt.Sprintf("%s %d->%d", n, old[n], m[n]))
		}
		logf("%s: a port was taken before it could bind it; starting again on fresh ports (%s)",
			strings.Join(who, ", "), strings.Join(desc, ", "))
		if err := moved(m); err != nil {
			return err
		}
	}
}

// moved records ports that moved, and what is derived from them, in the state.
func (u *upper) moved(ports map[string]int) error {
	s := u.s
	s.mu.Lock()
	for n, p := range ports {
		s.Ports[n] = p
	}
	if p, ok := ports[compAPIServer]; ok {
		s.APIServerURL = fmt.Sprintf("https://127.0.0.1:%d", p)
	}
	if p, ok := ports[compKMS]; ok {
		s.KMSEndpoint = fmt.Sprintf("http://127.0.0.1:%d", p)
	}
	for i := range s.VaultAddrs {
		if p, ok := ports[vaultName(i)]; ok {
			s.VaultAddrs[i] = fmt.Sprintf("https://127.0.0.1:%d", p)
		}
	}
	err := s.saveLocked()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if _, ok := ports[compAPIServer]; ok {
		return u.writeKubeconfigs() // they name the API server's URL
	}
	return nil
}

// waitReady polls probe until it succeeds, the process exits, ctx ends or the timeout passes.
func (u *upper) waitReady(ctx context.Context, st *started, probe func(context.Context) error) error {
	return waitFor(ctx, st, u.o.ReadyTimeout, probe, func() { u.logf("%s ready (pid %d)", st.Name, st.PID) })
}

func waitFor(ctx context.Context, st *started, timeout time.Duration, probe func(context.Context) error, onReady func()) error {
	deadline := time.Now().Add(timeout)
	fail := func(err error) error {
		return &ComponentError{Component: st.Name, Log: st.Log, Tail: tailFile(st.Log, 15), Err: err}
	}
	for {
		if st.exited() {
			return fail(fmt.Errorf("exited during startup (%v)", st.err))
		}
		if st.portTaken() {
			// Some programs log the failed listen and keep running: fail now, not at the timeout.
			return fail(errors.New("a port it listens on is taken (" + portTakenText + ")"))
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := probe(pctx)
		cancel()
		if err == nil {
			if onReady != nil {
				onReady()
			}
			return nil
		}
		if ctx.Err() != nil {
			return fail(fmt.Errorf("startup interrupted: %w", ctx.Err()))
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("not ready after %s: %v", timeout, err))
		}
		select {
		case <-ctx.Done():
		case <-st.done:
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// Down stops exactly the recorded processes (SIGTERM, or SIGINT for postgres; SIGKILL after a
// grace period) and keeps the directory.
func (s *Sandbox) Down(ctx context.Context) error {
	unlock, err := lockDir(s.Dir)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer unlock()
	return s.stopAll()
}

// stopTier orders shutdown: clients before the services they use. An API server whose etcd is
// gone retries etcd instead of finishing its graceful shutdown, and Vault may still talk to KMS.
func stopTier(name string) int {
	switch name {
	case compEtcd:
		return 2
	case compAPIServer, compKMS:
		return 1
	}
	return 0
}

func (s *Sandbox) stopAll() error {
	tiers := make([][]Process, 3)
	for _, p := range s.processes() {
		t := stopTier(p.Name)
		tiers[t] = append(tiers[t], p)
	}
	var errs []error
	for _, tier := range tiers {
		if err := stopProcesses(tier, stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	s.mu.Lock()
	for i := range s.Processes {
		if !s.Processes[i].alive() {
			s.Processes[i].PID, s.Processes[i].StartTime = 0, 0
		}
	}
	s.mu.Unlock()
	if saveErr := s.save(); err == nil && saveErr != nil && !errors.Is(saveErr, os.ErrNotExist) {
		err = saveErr
	}
	if err != nil {
		return fmt.Errorf("sandbox: stop: %w", err)
	}
	return nil
}

// Purge deletes a sandbox directory after Down. It refuses a directory without state.json, so a
// mistyped --dir cannot wipe an unrelated tree, and one whose processes still run.
func Purge(dir string) error {
	s, err := Load(dir)
	if err != nil {
		if errors.Is(err, ErrNoSandbox) {
			abs, _ := filepath.Abs(dir)
			if _, statErr := os.Stat(abs); os.IsNotExist(statErr) {
				return nil
			}
			return fmt.Errorf("sandbox: refusing to delete %s: it has no %s", abs, stateFile)
		}
		return err
	}
	if live := s.LiveProcesses(); len(live) > 0 {
		return fmt.Errorf("sandbox: refusing to delete %s: %s still running", s.Dir, live[0].Name)
	}
	return os.RemoveAll(s.Dir)
}

// Env returns the KEY=VALUE pairs printed by `vaultctl-sandbox env`, sorted by key.
func (s *Sandbox) Env() []string {
	env := []string{
		SandboxDirEnv + "=" + s.Dir,
		"KUBECONFIG=" + s.Kubeconfig,
		"AWS_ENDPOINT_URL_KMS=" + s.KMSEndpoint,
		"AWS_REGION=" + s.KMSRegion,
		"AWS_ACCESS_KEY_ID=" + dummyAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + dummySecretKey,
	}
	if len(s.VaultAddrs) > 0 {
		env = append(env, "VAULT_ADDR="+s.VaultAddrs[0], "VAULT_CACERT="+s.VaultCACert)
	}
	if s.PostgresURL != "" {
		env = append(env, "VAULTCTL_PG_URL="+s.PostgresURL)
	}
	sort.Strings(env)
	return env
}

// ShellExports renders KEY=VALUE pairs as POSIX shell `export` lines, single-quoted.
func ShellExports(env []string) string {
	var b strings.Builder
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	return b.String()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// RSS is the resident memory of every sandbox process and its children, in bytes.
func (s *Sandbox) RSS() uint64 {
	var pgids []int
	for _, p := range s.LiveProcesses() {
		pgids = append(pgids, p.PID)
	}
	return rssBytes(pgids)
}

// FormatBytes renders n as "1.3 GiB" / "420 MiB".
func FormatBytes(n uint64) string {
	const gib, mib = 1 << 30, 1 << 20
	if n >= gib {
		return fmt.Sprintf("%.1f GiB", float64(n)/gib)
	}
	return fmt.Sprintf("%d MiB", n/mib)
}
