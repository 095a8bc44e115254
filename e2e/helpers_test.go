package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kube returns a client-go clientset for the sandbox, authenticated as the admin (system:masters).
func kube(t testing.TB) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", sb.Kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", sb.Kubeconfig, err)
	}
	cfg.WarningHandler = rest.NoWarnings{}
	cfg.Timeout = 30 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// vaultClient returns a Vault API client for addr (one of sb.VaultAddrs) that trusts the sandbox
// CA and carries no token.
func vaultClient(t testing.TB, addr string) *vaultapi.Client {
	t.Helper()
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		t.Fatal(cfg.Error)
	}
	cfg.Address = addr
	cfg.Timeout = 30 * time.Second
	if err := cfg.ConfigureTLS(&vaultapi.TLSConfig{CACert: sb.VaultCACert}); err != nil {
		t.Fatal(err)
	}
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	c.ClearNamespace()
	return c
}

// eventually polls f every 200ms until it returns nil or timeout passes, then fails with f's
// last error.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The external cluster is initialized once per run, by whichever test needs it first; the root
// token stays in this variable and is never printed.
var (
	vaultInitOnce sync.Once
	vaultRootTok  string
	vaultInitErr  error
)

// vaultRoot initializes the external Vault cluster on first use (recovery shares 1/1: the KMS
// seal holds the unseal key), lowers autopilot's stabilization time so joined nodes become voters
// within seconds, and returns a root-token client for addr.
func vaultRoot(t testing.TB, addr string) *vaultapi.Client {
	t.Helper()
	if len(sb.VaultAddrs) == 0 {
		t.Fatal("the sandbox has no Vault")
	}
	vaultInitOnce.Do(func() { vaultRootTok, vaultInitErr = initVault(t) })
	if vaultInitErr != nil {
		t.Fatalf("initializing Vault: %v", vaultInitErr)
	}
	if vaultRootTok == "" {
		t.Fatal("initializing Vault failed in an earlier test")
	}
	c := vaultClient(t, addr)
	c.SetToken(vaultRootTok)
	return c
}

func initVault(t testing.TB) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := vaultClient(t, sb.VaultAddrs[0])
	resp, err := c.Sys().InitWithContext(ctx, &vaultapi.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		return "", fmt.Errorf("sys/init: %w", err)
	}
	if resp.RootToken == "" || len(resp.RecoveryKeys) != 1 {
		return "", fmt.Errorf("sys/init returned %d recovery keys and root token set=%t", len(resp.RecoveryKeys), resp.RootToken != "")
	}
	c.SetToken(resp.RootToken)
	// Node 0 needs a moment to unseal itself through KMS and become active.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err = c.Logical().WriteWithContext(ctx, "sys/storage/raft/autopilot/configuration", map[string]any{
			"server_stabilization_time": "1s",
		})
		if err == nil {
			return resp.RootToken, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("autopilot configuration: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// raftServer is one entry of sys/storage/raft/configuration.
type raftServer struct {
	NodeID string
	Voter  bool
	Leader bool
}

func raftServers(ctx context.Context, c *vaultapi.Client) ([]raftServer, error) {
	s, err := c.Logical().ReadWithContext(ctx, "sys/storage/raft/configuration")
	if err != nil {
		return nil, err
	}
	if s == nil || s.Data == nil {
		return nil, errors.New("empty raft configuration")
	}
	cfg, _ := s.Data["config"].(map[string]any)
	list, _ := cfg["servers"].([]any)
	var out []raftServer
	for _, item := range list {
		m, _ := item.(map[string]any)
		id, _ := m["node_id"].(string)
		voter, _ := m["voter"].(bool)
		leader, _ := m["leader"].(bool)
		out = append(out, raftServer{NodeID: id, Voter: voter, Leader: leader})
	}
	return out, nil
}

// ensureNamespace creates ns unless it exists.
func ensureNamespace(t testing.TB, cs kubernetes.Interface, ns string, labels ...map[string]string) {
	t.Helper()
	meta := metav1.ObjectMeta{Name: ns}
	if len(labels) > 0 {
		meta.Labels = labels[0]
	}
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: meta}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
}

// ensureServiceAccount creates ns/name unless it exists.
func ensureServiceAccount(t testing.TB, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	_, err := cs.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ServiceAccount %s/%s: %v", ns, name, err)
	}
}

// saToken returns a TokenRequest token for ns/name (audiences nil = the API server's own).
func saToken(t testing.TB, cs kubernetes.Interface, ns, name string, audiences ...string) string {
	t.Helper()
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}
