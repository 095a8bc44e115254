package sandbox

// The in-cluster runner's entry: RunnerMain, its configuration and state, and how Up starts it.
//
// The runner is a small kubelet for Vault pods. kwok fakes every other pod; the server
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
// It is also the kubelet of the application pods the sandbox's agent injector webhook
// (runner_webhook.go) injected: their vault-agent-init and vault-agent containers run for real,
// one process per container in the pod's namespaces, and the application's containers are
// simulated (runner_agent.go).
//
// One file a job: runner_controller.go (watch and reconcile pods), runner_volumes.go,
// runner_process.go, runner_probes.go, runner_status.go; runner_pod.go holds the pure logic
// they share, runner_ns.go the pod process's own setup.
//
// The runner is a long-lived sandbox process like the others (recorded in state.json, stopped
// by `down`): Up re-executes the current binary with VAULTCTL_SANDBOX_RUNNER=DIR, and the
// binary's main (or TestMain) hands over to RunnerMain first thing. Only cmd/vaultctl-sandbox
// and the e2e TestMain do: vaultctl itself never links this package.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
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
	// The agent injector webhook (runner_webhook.go): where it listens, its certificate, and the
	// CA the API server is told to trust it with.
	WebhookAddr string `json:"webhookAddr"`
	WebhookCert string `json:"webhookCert"`
	WebhookKey  string `json:"webhookKey"`
	CACert      string `json:"caCert"`
}

// runnerState survives runner restarts (DIR/runner/ips.json): a restarted sandbox gives its
// pods the addresses they had.
type runnerState struct {
	Block string            `json:"block"`
	Pods  map[string]string `json:"pods"`
}

// RunnerMain runs the sandbox's in-cluster runner (or one pod's process setup) when this process
// was started as one, and reports whether it did: the caller then returns at once. Call it
// first thing in the main of cmd/vaultctl-sandbox and in the TestMain of packages that start a
// sandbox (never in a product binary: pod setup mounts and chroots):
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
	indexer cache.Indexer // Vault server pods (RunnerSelector)
	// appPods holds every pod; the runner acts on the injected ones (runner_agent.go).
	appPods  cache.Indexer
	services cache.Indexer

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
	// Before run writes the ready file Up waits for: pods created after Up are injected.
	if err := r.startAgentWebhook(ctx, cfg.WebhookAddr, cfg.WebhookCert, cfg.WebhookKey, cfg.CACert); err != nil {
		return err
	}
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

// The sandbox side: install and start.

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
	// launch: the webhook's port can be taken before the runner binds it.
	_, err := u.launch([]string{portAgentInjector}, func() (*started, error) {
		cfg, err := json.MarshalIndent(runnerConfig{
			Kubeconfig: l.kubeconfig(), ToolsDir: u.o.ToolsDir, APIServerURL: u.s.APIServerURL, HostIP: "127.0.0.1",
			WebhookAddr: fmt.Sprintf("127.0.0.1:%d", u.ports.port(portAgentInjector)),
			WebhookCert: u.pki.cert(portAgentInjector), WebhookKey: u.pki.key(portAgentInjector), CACert: u.pki.cert("ca"),
		}, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(l.runnerConfig(), append(cfg, '\n'), 0o600); err != nil {
			return nil, err
		}
		_ = os.Remove(l.runnerReady())
		st, err := u.start(procSpec{
			name: compRunner, path: "/proc/self/exe", port: u.ports.port(portAgentInjector),
			// A binary whose main forgot RunnerMain must not do its usual job as "the runner": a
			// test binary then runs no test, a cobra binary rejects the flag, and Up reports the exit.
			args: []string{"-test.run=^$"},
			env:  cleanEnv(runnerEnv + "=" + l.dir),
		}, portAgentInjector)
		if err != nil {
			return st, err
		}
		return st, u.waitReady(ctx, st, func(context.Context) error {
			if _, err := os.Stat(l.runnerReady()); err != nil {
				return errors.New("not watching pods yet (does this binary call sandbox.RunnerMain first?)")
			}
			return nil
		})
	})
	return err
}
