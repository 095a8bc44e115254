package phases

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/awskms"
	"github.com/vaultctl/vaultctl/internal/kube"
)

// Connect builds the handles phases use from the config. Nothing is contacted yet: an
// unreachable cluster, KMS or Vault is reported by preflight with a hint.
func Connect(ctx context.Context, cfg *config.Config) (*Env, error) {
	env := &Env{Config: cfg}
	cluster, err := kube.Connect(cfg.Cluster.Kubeconfig, cfg.Cluster.Context)
	if err != nil {
		return nil, Fail("pass --kubeconfig and --context, or set cluster.kubeconfig / cluster.context", "%v", err)
	}
	env.Kube, env.KubeREST, env.KubeHost, env.KubeCA = cluster.Client, cluster.REST, cluster.Host, cluster.CAData
	env.Kubeconfig, env.KubeContext = cfg.Cluster.Kubeconfig, cluster.Context

	k := cfg.Vault.Seal.AWSKMS
	client, err := awskms.New(ctx, k.Region, k.Endpoint)
	if err != nil {
		return nil, Fail("check AWS_* environment variables and ~/.aws/config", "%v", err)
	}
	env.KMS, env.KMSEndpoint = client, awskms.Endpoint(client, k.Region)

	env.InClusterVault = inClusterVault(env)
	return env, nil
}

// inClusterVault reaches Vault in the cluster the way an operator would: a port-forward through
// the API server to the active pod (or any running Vault pod before init), trusting the CA from
// the server TLS Secret.
func inClusterVault(env *Env) func(ctx context.Context) (string, []byte, error) {
	return func(ctx context.Context) (string, []byte, error) {
		ns := env.Config.Vault.Namespace
		pods, err := env.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=vault,component=server"})
		if err != nil {
			return "", nil, fmt.Errorf("listing Vault pods: %w", err)
		}
		pod := ""
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
				continue
			}
			if pod == "" || p.Labels["vault-active"] == "true" {
				pod = p.Name
			}
		}
		if pod == "" {
			return "", nil, Fail("run `vaultctl apply --only server` and check the pods in namespace "+ns, "no running Vault pod in namespace %s", ns)
		}
		secret, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, env.Config.Vault.TLS.SecretName, metav1.GetOptions{})
		if err != nil {
			return "", nil, Fail("run `vaultctl apply --only tls`", "reading Vault's TLS Secret %s/%s: %v", ns, env.Config.Vault.TLS.SecretName, err)
		}
		// The port-forward lives as long as the run: it ends with the process.
		port, err := kube.PortForward(context.WithoutCancel(ctx), env.KubeREST, ns, pod, 8200)
		if err != nil {
			return "", nil, Fail("check that the API server can reach the node running "+pod, "%v", err)
		}
		return fmt.Sprintf("https://127.0.0.1:%d", port), secret.Data["ca.crt"], nil
	}
}
