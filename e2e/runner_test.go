package e2e

// The sandbox's in-cluster runner with a StatefulSet of its own: one Vault pod (Raft storage,
// Shamir seal, service registration) whose pod becomes a real `vault server` process, reached
// the way vaultctl reaches an in-cluster Vault (a port-forward through the API server and kwok).

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	kubepf "github.com/vaultctl/vaultctl/internal/kube"
	"github.com/vaultctl/vaultctl/internal/sandbox"
)

const runnerHCL = `disable_mlock = true
ui            = false

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_cert_file   = "/vault/userconfig/tls/tls.crt"
  tls_key_file    = "/vault/userconfig/tls/tls.key"
}

storage "raft" {
  path = "/vault/data"
}

service_registration "kubernetes" {}
`

func TestRunnerVaultPodLifecycle(t *testing.T) {
	const ns = "runner-test"
	ctx := context.Background()
	cs := kube(t)
	ensureNamespace(t, cs, ns)
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })

	caPEM := createRunnerVault(t, cs, ns)

	// The pod runs a real process: Running on its loopback address, Ready from its probe.
	pod := waitPodRunning(t, cs, ns, "vault-0", "", true)
	if !strings.HasPrefix(pod.Status.PodIP, "127.") || pod.Status.PodIP == "127.0.0.1" {
		t.Errorf("pod IP %q: want the pod's own loopback address", pod.Status.PodIP)
	}
	pid := sandbox.PodPID(sb.Dir, ns, "vault-0")
	if pid == 0 || !processAlive(pid) {
		t.Fatalf("no Vault process for vault-0 (pid %d)", pid)
	}

	// Through a port-forward (API server -> kwok -> the pod's address): init, unseal, write.
	vc := portForwardVault(t, ns, "vault-0", caPEM)
	h, err := vc.Sys().Health()
	if err != nil || h.Initialized {
		t.Fatalf("a fresh pod should answer uninitialized: %+v %v", h, err)
	}
	init, err := vc.Sys().Init(&vaultapi.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	unsealKey, root := init.Keys[0], init.RootToken
	if _, err := vc.Sys().Unseal(unsealKey); err != nil {
		t.Fatal(err)
	}
	vc.SetToken(root)
	eventually(t, time.Minute, "policy written on the active node", func() error {
		return vc.Sys().PutPolicy("runner-proof", `path "secret/runner" { capabilities = ["read"] }`)
	})
	// Service registration needs the ServiceAccount mount and the API server: it labels the pod.
	eventually(t, 30*time.Second, "vault-active label from service registration", func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "vault-0", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Labels["vault-active"] != "true" || p.Labels["vault-initialized"] != "true" {
			return fmt.Errorf("labels %v", p.Labels)
		}
		return nil
	})

	// `kubectl logs vault-0` reaches the process's output through kwok's Logs resource.
	logs, err := cs.CoreV1().Pods(ns).GetLogs("vault-0", &corev1.PodLogOptions{Container: "vault"}).DoRaw(ctx)
	if err != nil || !bytes.Contains(logs, []byte("Vault server started")) {
		t.Errorf("pod logs: %v\n%s", err, tail(string(logs), 20))
	}

	t.Run("a crashed process is restarted and counted", func(t *testing.T) {
		before := sandbox.PodPID(sb.Dir, ns, "vault-0")
		if err := syscall.Kill(before, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "restarted process", func() error {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, "vault-0", metav1.GetOptions{})
			if err != nil {
				return err
			}
			now := sandbox.PodPID(sb.Dir, ns, "vault-0")
			st := p.Status.ContainerStatuses
			if len(st) != 1 || st[0].RestartCount < 1 || st[0].State.Running == nil || now == 0 || now == before {
				return fmt.Errorf("pid %d (was %d), statuses %+v", now, before, st)
			}
			if st[0].LastTerminationState.Terminated == nil || st[0].LastTerminationState.Terminated.ExitCode != 137 {
				return fmt.Errorf("last state %+v", st[0].LastTerminationState)
			}
			return nil
		})
		vc := portForwardVault(t, ns, "vault-0", caPEM)
		eventually(t, 30*time.Second, "restarted Vault answers, sealed, same data", func() error {
			h, err := vc.Sys().Health()
			if err != nil {
				return err
			}
			if !h.Initialized || !h.Sealed {
				return fmt.Errorf("%+v", h)
			}
			return nil
		})
		if _, err := vc.Sys().Unseal(unsealKey); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("deleting the pod stops its process; the new pod runs on the same data", func(t *testing.T) {
		old, err := cs.CoreV1().Pods(ns).Get(ctx, "vault-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		oldPID := sandbox.PodPID(sb.Dir, ns, "vault-0")
		t0 := time.Now()
		if err := cs.CoreV1().Pods(ns).Delete(ctx, "vault-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "old process gone", func() error {
			if processAlive(oldPID) {
				return fmt.Errorf("pid %d still running", oldPID)
			}
			return nil
		})
		t.Logf("process of the deleted pod stopped after %s", time.Since(t0).Round(10*time.Millisecond))
		pod := waitPodRunning(t, cs, ns, "vault-0", old.UID, false)
		t.Logf("replacement pod Running after %s", time.Since(t0).Round(10*time.Millisecond))
		if pod.Status.PodIP != old.Status.PodIP {
			t.Errorf("the replacement pod should keep its address: %s, was %s", pod.Status.PodIP, old.Status.PodIP)
		}
		if p := sandbox.PodPID(sb.Dir, ns, "vault-0"); p == 0 || p == oldPID {
			t.Errorf("no new process: pid %d (old %d)", p, oldPID)
		}
		vc := portForwardVault(t, ns, "vault-0", caPEM)
		var h *vaultapi.HealthResponse
		eventually(t, 30*time.Second, "new process answers", func() error {
			var err error
			h, err = vc.Sys().Health()
			return err
		})
		if !h.Initialized {
			t.Fatalf("the new pod's Vault is not initialized: its data was lost (%+v)", h)
		}
		if _, err := vc.Sys().Unseal(unsealKey); err != nil {
			t.Fatal(err)
		}
		vc.SetToken(root)
		eventually(t, time.Minute, "policy written before the delete", func() error {
			p, err := vc.Sys().GetPolicy("runner-proof")
			if err != nil {
				return err
			}
			if !strings.Contains(p, "secret/runner") {
				return fmt.Errorf("policy %q", p)
			}
			return nil
		})
	})
}

// createRunnerVault creates, in ns, the one-pod Vault StatefulSet the runner turns into a real
// `vault server` process (its TLS Secret, config, RBAC, Service and volume), and returns the CA
// of its server certificate.
func createRunnerVault(t *testing.T, cs kubernetes.Interface, ns string) []byte {
	t.Helper()
	ctx := context.Background()
	caPEM, crtPEM, keyPEM := issueServerCert(t, []string{"vault-0.vault-internal", "localhost"}, []string{"127.0.0.1"})
	mustCreate(t, "Secret", func() error {
		_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "runner-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": crtPEM, "tls.key": keyPEM, "ca.crt": caPEM},
		}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, "ConfigMap", func() error {
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "vault-config"}, Data: map[string]string{"vault.hcl": runnerHCL},
		}, metav1.CreateOptions{})
		return err
	})
	createVaultRBACAndService(t, cs, ns)
	claimPVs(t, cs, ns, []string{"data-vault-0"})
	mustCreate(t, "StatefulSet", func() error {
		_, err := cs.AppsV1().StatefulSets(ns).Create(ctx, runnerStatefulSet(), metav1.CreateOptions{})
		return err
	})
	return caPEM
}

func runnerStatefulSet() *appsv1.StatefulSet {
	labels := map[string]string{"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": "runner-test", "component": "server"}
	field := func(p string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: p}}
	}
	one, grace := int32(1), int64(10)
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "vault"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &one, ServiceName: "vault-internal", PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName:            "vault",
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name: "vault", Image: "hashicorp/vault:1.21.1",
						Command: []string{"vault"}, Args: []string{"server", "-config=/vault/config/vault.hcl"},
						Env: []corev1.EnvVar{
							{Name: "POD_NAME", ValueFrom: field("metadata.name")},
							{Name: "VAULT_K8S_POD_NAME", ValueFrom: field("metadata.name")},
							{Name: "VAULT_K8S_NAMESPACE", ValueFrom: field("metadata.namespace")},
							{Name: "VAULT_API_ADDR", Value: "https://$(POD_NAME).vault-internal:8200"},
							{Name: "VAULT_CLUSTER_ADDR", Value: "https://$(POD_NAME).vault-internal:8201"},
							{Name: "VAULT_RAFT_NODE_ID", ValueFrom: field("metadata.name")},
						},
						Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 8200}, {Name: "https-internal", ContainerPort: 8201}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
								Path: "/v1/sys/health?standbyok=true&sealedcode=204&uninitcode=204", Port: intstr.FromInt32(8200), Scheme: corev1.URISchemeHTTPS,
							}},
							PeriodSeconds: 1, FailureThreshold: 2,
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: "/vault/config", ReadOnly: true},
							{Name: "tls", MountPath: "/vault/userconfig/tls", ReadOnly: true},
							{Name: "data", MountPath: "/vault/data"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vault-config"}}}},
						{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "runner-tls", DefaultMode: ptr(int32(0o440))}}},
					},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
}

// createVaultRBACAndService gives the ServiceAccount "vault" what service registration needs
// (get/patch its pod) and creates the headless Service the pods' DNS names hang off.
func createVaultRBACAndService(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	ensureServiceAccount(t, cs, ns, "vault")
	mustCreate(t, "Role", func() error {
		_, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "vault-discovery"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "update", "patch"}}},
		}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, "RoleBinding", func() error {
		_, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "vault-discovery"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "vault-discovery"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vault", Namespace: ns}},
		}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, "Service", func() error {
		_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "vault-internal"},
			Spec: corev1.ServiceSpec{
				ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true,
				Selector: map[string]string{"app.kubernetes.io/name": "vault", "component": "server"},
				Ports:    []corev1.ServicePort{{Name: "https", Port: 8200}, {Name: "https-internal", Port: 8201}},
			},
		}, metav1.CreateOptions{})
		return err
	})
}

// claimPVs creates one hostPath PersistentVolume per claim, pre-bound to it, under the sandbox
// directory: a test never competes for (or exhausts) the sandbox's shared volumes.
func claimPVs(t *testing.T, cs kubernetes.Interface, ns string, claims []string) {
	t.Helper()
	ctx := context.Background()
	for _, c := range claims {
		name := "e2e-" + ns + "-" + c
		dir := filepath.Join(sb.Dir, "e2e-pv", ns, c)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		fsMode := corev1.PersistentVolumeFilesystem
		mustCreate(t, "PersistentVolume", func() error {
			_, err := cs.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e-namespace": ns}},
				Spec: corev1.PersistentVolumeSpec{
					Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("100Gi")},
					AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
					VolumeMode:                    &fsMode,
					ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: c},
					PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}},
				},
			}, metav1.CreateOptions{})
			return err
		})
	}
}

// deleteNamespace deletes ns and waits until its pods are gone (so their Vault processes have
// stopped), then deletes the test's PersistentVolumes.
func deleteNamespace(t testing.TB, cs kubernetes.Interface, ns string) {
	ctx := context.Background()
	if os.Getenv(keepEnv) == "1" {
		t.Logf("%s=1: namespace %s left running", keepEnv, ns)
		return
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting namespace %s: %v", ns, err)
		return
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	_ = cs.CoreV1().PersistentVolumes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "e2e-namespace=" + ns})
}

func mustCreate(t *testing.T, what string, create func() error) {
	t.Helper()
	if err := create(); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create %s: %v", what, err)
	}
}

// waitPodRunning waits for ns/name to run as a new pod (not oldUID), Ready if asked.
func waitPodRunning(t *testing.T, cs kubernetes.Interface, ns, name string, oldUID any, ready bool) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, 90*time.Second, fmt.Sprintf("pod %s/%s Running", ns, name), func() error {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if fmt.Sprint(p.UID) == fmt.Sprint(oldUID) {
			return fmt.Errorf("still the old pod (deletion %v)", p.DeletionTimestamp)
		}
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Running == nil {
			return fmt.Errorf("phase %s, statuses %+v", p.Status.Phase, p.Status.ContainerStatuses)
		}
		if ready && !podReady(p) {
			return fmt.Errorf("running, not Ready")
		}
		pod = p
		return nil
	})
	return pod
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// portForwardVault opens a port-forward to pod:8200 the way vaultctl does and returns a Vault
// client that verifies the server certificate against caPEM. A forward whose first connection
// finds nothing listening ends (client-go gives up on the stream), so it is reopened until
// Vault answers through it.
func portForwardVault(t *testing.T, ns, pod string, caPEM []byte) *vaultapi.Client {
	t.Helper()
	rc := restConfig(t)
	var c *vaultapi.Client
	eventually(t, 60*time.Second, "Vault answering through a port-forward to "+pod, func() error {
		ctx, cancel := context.WithCancel(context.Background())
		port, err := kubepf.PortForward(ctx, rc, ns, pod, 8200)
		if err != nil {
			cancel()
			return err
		}
		cfg := vaultapi.DefaultConfig()
		cfg.Address = fmt.Sprintf("https://127.0.0.1:%d", port)
		cfg.Timeout = 30 * time.Second
		cfg.MaxRetries = 0
		if err := cfg.ConfigureTLS(&vaultapi.TLSConfig{CACertBytes: caPEM}); err != nil {
			t.Fatal(err)
		}
		vc, err := vaultapi.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		vc.ClearToken()
		if _, err := vc.Sys().Health(); err != nil {
			cancel()
			return err
		}
		t.Cleanup(cancel)
		vc.SetMaxRetries(2)
		c = vc
		return nil
	})
	return c
}

func restConfig(t *testing.T) *rest.Config {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", sb.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rc.WarningHandler = rest.NoWarnings{}
	return rc
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3, after the command in parentheses: a zombie has exited.
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// issueServerCert returns a fresh CA and a server certificate and key signed by it (PEM).
func issueServerCert(t *testing.T, dns, ips []string) (caPEM, crtPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e runner CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dns[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames: dns}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func ptr[T any](v T) *T { return &v }
