package sandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

//go:embed kwok-stages.yaml
var kwokStages []byte

// Cluster shape.
const (
	serviceCIDR    = "10.0.0.0/24"
	podCIDR        = "10.244.0.0/16"
	saIssuer       = "https://kubernetes.default.svc.cluster.local"
	clusterName    = "vaultctl-sandbox"
	fakeNodeCount  = 3
	pvCount        = 6
	pvSize         = "10Gi" // a Vault chart asks 10Gi per claim by default; hostPath sizes are nominal
	managedByLabel = "app.kubernetes.io/managed-by"
	managedByValue = "vaultctl-sandbox"

	// kwok manages only nodes with this annotation, and leaves alone the status of pods with
	// the second one (for processes that report their own readiness).
	KwokNodeAnnotation   = "kwok.x-k8s.io/node"
	KwokStatusAnnotation = "kwok.x-k8s.io/status"
)

// FakeNodeName is the name of fake node i (0..2).
func FakeNodeName(i int) string { return fmt.Sprintf("kwok-node-%d", i) }

// FakeNodeZone is the topology.kubernetes.io/zone of fake node i: one zone per node so a chart's
// pod anti-affinity (by hostname or by zone) can place three replicas.
func FakeNodeZone(i int) string { return fmt.Sprintf("sandbox-%c", 'a'+i) }

// kubeconfig users: file stem of the client certificate.
var kubeUsers = map[string]string{
	"admin":       "admin",
	compKCM:       "kube-controller-manager",
	compScheduler: "kube-scheduler",
	compKwok:      "kwok",
}

func (u *upper) kubeconfigPath(user string) string {
	if user == "admin" {
		return u.l.kubeconfig()
	}
	return u.l.kube(user + ".kubeconfig")
}

// writeKubeconfigs writes one kubeconfig per client identity, certificates embedded so the
// files work wherever they are copied.
func (u *upper) writeKubeconfigs() error {
	ca, err := os.ReadFile(u.pki.cert("ca"))
	if err != nil {
		return err
	}
	for _, user := range []string{"admin", compKCM, compScheduler, compKwok} {
		stem := kubeUsers[user]
		crt, err := os.ReadFile(u.pki.cert(stem))
		if err != nil {
			return err
		}
		key, err := os.ReadFile(u.pki.key(stem))
		if err != nil {
			return err
		}
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters[clusterName] = &clientcmdapi.Cluster{Server: u.s.APIServerURL, CertificateAuthorityData: ca}
		cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
		cfg.Contexts[clusterName] = &clientcmdapi.Context{Cluster: clusterName, AuthInfo: user}
		cfg.CurrentContext = clusterName
		if err := clientcmd.WriteToFile(*cfg, u.kubeconfigPath(user)); err != nil {
			return err
		}
	}
	return nil
}

// startKube brings up etcd, the API server, then controller-manager, scheduler and kwok, and
// finally the fake nodes and volumes.
func (u *upper) startKube(ctx context.Context) error {
	p, l, ports := u.pki, u.l, u.ports
	etcdURL := func() string { return fmt.Sprintf("http://127.0.0.1:%d", ports.port(compEtcd)) }
	_, err := u.launch([]string{compEtcd, portEtcdPeer}, func() (*started, error) {
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports.port(portEtcdPeer))
		etcd, err := u.start(procSpec{
			name: compEtcd, path: filepath.Join(u.o.ToolsDir, "etcd"), port: ports.port(compEtcd),
			env: cleanEnv(),
			args: []string{
				"--name=sandbox", "--data-dir=" + l.etcdData(),
				"--listen-client-urls=" + etcdURL(), "--advertise-client-urls=" + etcdURL(),
				"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
				"--initial-cluster=sandbox=" + peerURL, "--initial-cluster-state=new",
				"--unsafe-no-fsync", // throwaway data; fsync per write is what makes etcd slow here
				"--log-level=warn",
			},
		}, compEtcd, portEtcdPeer)
		if err != nil {
			return etcd, err
		}
		return etcd, u.waitReady(ctx, etcd, httpProbe(http.DefaultClient, etcdURL()+"/health", `"health":"true"`))
	})
	if err != nil {
		return err
	}

	adminClient, err := tlsClient(p.cert("ca"), p.cert("admin"), p.key("admin"))
	if err != nil {
		return err
	}
	_, err = u.launch([]string{compAPIServer}, func() (*started, error) {
		api, err := u.start(procSpec{
			name: compAPIServer, path: filepath.Join(u.o.ToolsDir, "kube-apiserver"), port: ports.port(compAPIServer),
			env: cleanEnv(),
			args: []string{
				"--etcd-servers=" + etcdURL(),
				"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
				fmt.Sprintf("--secure-port=%d", ports.port(compAPIServer)),
				"--cert-dir=" + l.certDir(compAPIServer),
				"--tls-cert-file=" + p.cert("apiserver"), "--tls-private-key-file=" + p.key("apiserver"),
				"--client-ca-file=" + p.cert("ca"),
				"--service-account-issuer=" + saIssuer,
				"--service-account-key-file=" + p.saPub(),
				"--service-account-signing-key-file=" + p.saKey(),
				"--service-cluster-ip-range=" + serviceCIDR,
				"--authorization-mode=RBAC",
				"--allow-privileged=true",
				// The default reconciler rejects a loopback advertise address on every sync.
				"--endpoint-reconciler-type=none",
				// logs, exec and port-forward go through kwok's kubelet API on 127.0.0.1.
				"--kubelet-client-certificate=" + p.cert("apiserver-kubelet-client"),
				"--kubelet-client-key=" + p.key("apiserver-kubelet-client"),
				"--kubelet-certificate-authority=" + p.cert("ca"),
				"--kubelet-preferred-address-types=InternalIP",
				"--profiling=false",
				"--v=1",
			},
		})
		if err != nil {
			return api, err
		}
		return api, u.waitReady(ctx, api, httpProbe(adminClient, u.s.APIServerURL+"/readyz", "ok"))
	})
	if err != nil {
		return err
	}

	// controller-manager, scheduler and kwok only need the API server: start them together.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		_, err := u.launch([]string{compKCM}, func() (*started, error) {
			kcm, err := u.start(procSpec{
				name: compKCM, path: filepath.Join(u.o.ToolsDir, "kube-controller-manager"), port: ports.port(compKCM),
				env: cleanEnv(),
				args: []string{
					"--kubeconfig=" + u.kubeconfigPath(compKCM),
					"--authentication-kubeconfig=" + u.kubeconfigPath(compKCM),
					"--authorization-kubeconfig=" + u.kubeconfigPath(compKCM),
					"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports.port(compKCM)),
					"--cert-dir=" + l.certDir(compKCM),
					"--service-account-private-key-file=" + p.saKey(),
					"--root-ca-file=" + p.cert("ca"),
					"--cluster-signing-cert-file=" + p.cert("ca"), "--cluster-signing-key-file=" + p.key("ca"),
					"--use-service-account-credentials=true",
					"--service-cluster-ip-range=" + serviceCIDR,
					"--leader-elect=false", "--profiling=false", "--v=1",
				},
			})
			if err != nil {
				return kcm, err
			}
			return kcm, u.waitReady(gctx, kcm, httpProbe(insecureLoopbackClient, fmt.Sprintf("https://127.0.0.1:%d/healthz", ports.port(compKCM)), "ok"))
		})
		return err
	})
	g.Go(func() error {
		_, err := u.launch([]string{compScheduler}, func() (*started, error) {
			sched, err := u.start(procSpec{
				name: compScheduler, path: filepath.Join(u.o.ToolsDir, "kube-scheduler"), port: ports.port(compScheduler),
				env: cleanEnv(),
				args: []string{
					"--kubeconfig=" + u.kubeconfigPath(compScheduler),
					"--authentication-kubeconfig=" + u.kubeconfigPath(compScheduler),
					"--authorization-kubeconfig=" + u.kubeconfigPath(compScheduler),
					"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports.port(compScheduler)),
					"--cert-dir=" + l.certDir(compScheduler),
					"--leader-elect=false", "--profiling=false", "--v=1",
				},
			})
			if err != nil {
				return sched, err
			}
			return sched, u.waitReady(gctx, sched, httpProbe(insecureLoopbackClient, fmt.Sprintf("https://127.0.0.1:%d/healthz", ports.port(compScheduler)), "ok"))
		})
		return err
	})
	var kwok *started
	g.Go(func() error {
		// kwok reads its PortForward and Logs resources (the runner's way in to Vault pods) from
		// the API: their CRDs must be served before it starts.
		if err := u.installKwokCRDs(gctx); err != nil {
			return &ComponentError{Component: "kwok CRDs", Err: err}
		}
		stages := filepath.Join(l.kwokHome(), "stages.yaml")
		if err := writeFileAtomic(stages, kwokStages, 0o600); err != nil {
			return err
		}
		var err error
		kwok, err = u.launch([]string{compKwok}, func() (*started, error) {
			kwokAddr := fmt.Sprintf("127.0.0.1:%d", ports.port(compKwok))
			st, err := u.start(procSpec{
				name: compKwok, path: filepath.Join(u.o.ToolsDir, "kwok"), port: ports.port(compKwok),
				// kwok reads ~/.kwok/kwok.yaml: keep the user's own configuration out of the sandbox.
				env: cleanEnv("HOME=" + l.kwokHome()),
				args: []string{
					"--config=" + stages,
					"--kubeconfig=" + u.kubeconfigPath(compKwok),
					"--manage-all-nodes=false",
					"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=fake",
					"--manage-nodes-with-label-selector=",
					"--disregard-status-with-annotation-selector=" + KwokStatusAnnotation + "=custom",
					// Vault server pods are real processes: their status is the runner's (runner.go).
					"--disregard-status-with-label-selector=" + RunnerSelector,
					"--enable-crds=" + kwokEnableCRDs(),
					"--cidr=" + podCIDR,
					// 127.0.0.1, not a made-up node IP: the API server reaches the fake kubelet
					// (logs, port-forward) at the node's InternalIP.
					"--node-ip=127.0.0.1",
					fmt.Sprintf("--node-port=%d", ports.port(compKwok)),
					"--server-address=" + kwokAddr,
					"--tls-cert-file=" + p.cert("kwok-serving"), "--tls-private-key-file=" + p.key("kwok-serving"),
					"--node-lease-duration-seconds=40",
				},
			})
			if err != nil {
				return st, err
			}
			// kwok serves plain HTTP and TLS on the same port.
			return st, u.waitReady(gctx, st, httpProbe(http.DefaultClient, "http://"+kwokAddr+"/healthz", "ok"))
		})
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}

	cs, err := kubeClient(u.l.kubeconfig())
	if err != nil {
		return err
	}
	if err := createFakeNodes(ctx, cs); err != nil {
		return &ComponentError{Component: "fake nodes", Err: err}
	}
	if err := createVolumes(ctx, cs, l); err != nil {
		return &ComponentError{Component: "persistent volumes", Err: err}
	}
	err = waitFor(ctx, kwok, u.o.ReadyTimeout, func(ctx context.Context) error {
		if err := nodesReady(ctx, cs); err != nil {
			return err
		}
		// Pods are refused until the controller-manager has created the namespace's default
		// ServiceAccount: a sandbox is ready when a pod can be created right away.
		if _, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("ServiceAccount default/default: %w", err)
		}
		return nil
	}, func() { u.logf("%d fake nodes Ready, %d PersistentVolumes available", fakeNodeCount, pvCount) })
	if err != nil {
		return err
	}
	return u.startRunner(ctx)
}

// kubeClient builds a clientset from a kubeconfig, with API warnings silenced (they would
// interleave with progress output).
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.WarningHandler = rest.NoWarnings{}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.Timeout = 30 * time.Second
	return kubernetes.NewForConfig(cfg)
}

func createFakeNodes(ctx context.Context, cs kubernetes.Interface) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	for i := range fakeNodeCount {
		name := FakeNodeName(i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Labels: map[string]string{
					"kubernetes.io/hostname":        name,
					"kubernetes.io/os":              "linux",
					"kubernetes.io/arch":            "amd64",
					"topology.kubernetes.io/region": "sandbox",
					"topology.kubernetes.io/zone":   FakeNodeZone(i),
					"type":                          "kwok",
					managedByLabel:                  managedByValue,
				},
				Annotations: map[string]string{
					KwokNodeAnnotation:             "fake",
					"node.alpha.kubernetes.io/ttl": "0",
				},
			},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
	}
	return nil
}

// createVolumes creates static hostPath PersistentVolumes without a storage class: there is no
// provisioner, and claims without a class (StatefulSet volumeClaimTemplates) bind to them.
func createVolumes(ctx context.Context, cs kubernetes.Interface, l layout) error {
	fs := corev1.PersistentVolumeFilesystem
	hostPathType := corev1.HostPathDirectoryOrCreate
	for i := range pvCount {
		if err := os.MkdirAll(l.pv(i), 0o700); err != nil {
			return err
		}
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{
				Name:   fmt.Sprintf("sandbox-pv-%d", i),
				Labels: map[string]string{managedByLabel: managedByValue},
			},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(pvSize)},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				VolumeMode:                    &fs,
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: l.pv(i), Type: &hostPathType},
				},
			},
		}
		if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create PersistentVolume %s: %w", pv.Name, err)
		}
	}
	return nil
}

func nodesReady(ctx context.Context, cs kubernetes.Interface) error {
	var notReady []string
	for i := range fakeNodeCount {
		n, err := cs.CoreV1().Nodes().Get(ctx, FakeNodeName(i), metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			notReady = append(notReady, n.Name)
		}
	}
	if len(notReady) > 0 {
		return fmt.Errorf("nodes not Ready: %s", strings.Join(notReady, ", "))
	}
	return nil
}

// httpProbe GETs url and wants a 200 whose body contains want.
func httpProbe(c *http.Client, url, want string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
		}
		if !strings.Contains(string(body), want) {
			return fmt.Errorf("GET %s: unexpected body %q", url, strings.TrimSpace(string(body)))
		}
		return nil
	}
}

// tlsClient trusts the sandbox CA and, given a pair, presents a client certificate.
func tlsClient(caFile, certFile, keyFile string) (*http.Client, error) {
	pool, err := caPool(caFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

func caPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New(caFile + ": no certificate")
	}
	return pool, nil
}

// insecureLoopbackClient probes /healthz of controller-manager and scheduler, which serve a
// self-signed certificate they generate themselves; only "ok" is read, on 127.0.0.1.
var insecureLoopbackClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback health probe
}
