package phases

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/awskms"
	"github.com/vaultctl/vaultctl/internal/helmclient"
	"github.com/vaultctl/vaultctl/internal/kube"
	"github.com/vaultctl/vaultctl/internal/vault"
)

// Connect builds the handles phases use from the config. Nothing is contacted yet: an
// unreachable cluster, KMS or Vault is reported by preflight with a hint.
func Connect(ctx context.Context, cfg *config.Config) (*Env, error) {
	env, err := ConnectKube(cfg)
	if err != nil {
		return nil, err
	}

	k := cfg.Vault.Seal.AWSKMS
	client, err := awskms.New(ctx, k.Region, k.Endpoint)
	if err != nil {
		return nil, Fail("check AWS_* environment variables and ~/.aws/config", "%v", err)
	}
	env.KMS, env.KMSEndpoint = client, awskms.Endpoint(client, k.Region)

	env.Helm = func(ns string) (HelmAPI, error) {
		return helmclient.New(helmclient.Options{
			REST: env.KubeREST, Kubeconfig: env.Kubeconfig, Context: env.KubeContext, Namespace: ns,
			Description: "vaultctl apply",
			// A pending revision is a killed run's once the apply Lease is ours again (it expires
			// or was deleted by someone who knows that run died); a minute still covers a helm
			// command someone runs by hand at the same moment, unless the Lease was taken from
			// a vaultctl of this machine that died: then the revision is that run's (found by
			// the fault suite: a re-run right after a kill during the injector's install).
			PendingGrace: pendingGrace(env),
		})
	}
	s := newSession(env)
	s.Dialer = vault.HTTPDialer{Timeout: 30 * time.Second, MaxRetries: 2}
	s.FallbackToken = os.Getenv(vault.EnvToken)
	if cfg.External() {
		ep, token, warnings, err := externalVault(cfg, os.Getenv)
		if err != nil {
			return nil, err
		}
		env.Warnings = append(env.Warnings, warnings...)
		s.FallbackToken = token
		// VAULT_ADDR filled in an empty vault.address: it is the config's value from here on, so
		// the phases that hand it on (the injector's externalVaultAddr) and their inputs see it.
		cfg.Vault.Address = ep.Address
		s.Locate = func(context.Context) (vault.Endpoint, error) { return ep, nil }
	} else {
		// The port-forward lives until the run closes.
		pfCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		env.closers = append(env.closers, stop)
		s.Locate = inClusterVault(pfCtx, env)
	}
	env.Vault = s
	return env, nil
}

// ConnectKube builds only the Kubernetes handles (the typed and dynamic clients), for what reads
// the cluster and needs neither KMS nor Vault, such as a migrate plan: AWS configuration and the
// VAULT_* environment are not even read. Nothing is contacted yet.
func ConnectKube(cfg *config.Config) (*Env, error) {
	env := &Env{Config: cfg, Clock: time.Now}
	cluster, err := kube.Connect(cfg.Cluster.Kubeconfig, cfg.Cluster.Context)
	if err != nil {
		return nil, Fail(kube.Hint(err, "pass --kubeconfig and --context, or set cluster.kubeconfig / cluster.context"), "%v", err)
	}
	env.Kube, env.KubeREST, env.KubeHost, env.KubeCA = cluster.Client, cluster.REST, cluster.Host, cluster.CAData
	env.Kubeconfig, env.KubeContext = cfg.Cluster.Kubeconfig, cluster.Context
	env.Dynamic = func() (dynamic.Interface, error) {
		if env.KubeREST == nil {
			return nil, errors.New("no Kubernetes REST config")
		}
		return dynamic.NewForConfig(env.KubeREST)
	}
	return env, nil
}

// externalVault resolves an external Vault's endpoint from the config and the vault CLI's
// VAULT_* conventions, decided once: what fills in the config, what is refused, what is ignored
// with a warning.
func externalVault(cfg *config.Config, getenv func(string) string) (vault.Endpoint, string, []string, error) {
	ep, token, warnings, err := vault.ResolveEndpoint(vault.EndpointConfig{Address: cfg.Vault.Address, CACert: cfg.Vault.TLS.CACert}, getenv)
	if err != nil {
		return vault.Endpoint{}, "", nil, Fail("fix the environment or the config as the message says", "%v", err)
	}
	return ep, token, warnings, nil
}

// inClusterVault reaches Vault in the cluster the way an operator would: a port-forward through
// the API server to the active pod (or any running Vault pod before init), trusting the CA from
// the server TLS Secret. Only "nothing there yet" is ErrNotYet: a denied list or Secret read is
// a real failure, not something a later phase will fix.
func inClusterVault(pfCtx context.Context, env *Env) func(ctx context.Context) (vault.Endpoint, error) {
	return func(ctx context.Context) (vault.Endpoint, error) {
		ns := env.Config.Vault.Namespace
		pods, err := env.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=vault,component=server"})
		if err != nil {
			return vault.Endpoint{}, Fail("check that your kube credentials may list pods in namespace "+ns, "listing Vault pods: %v", err)
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
			return vault.Endpoint{}, notYet(Fail("run `vaultctl apply --only server` and check the pods in namespace "+ns, "no running Vault pod in namespace %s", ns))
		}
		secret, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, env.Config.Vault.TLS.SecretName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return vault.Endpoint{}, notYet(Fail("run `vaultctl apply --only tls`", "Vault's TLS Secret %s/%s does not exist", ns, env.Config.Vault.TLS.SecretName))
		case err != nil:
			return vault.Endpoint{}, Fail("check that your kube credentials may read Secrets in namespace "+ns, "reading Vault's TLS Secret %s/%s: %v", ns, env.Config.Vault.TLS.SecretName, err)
		}
		port, err := kube.PortForward(pfCtx, env.KubeREST, ns, pod, 8200)
		if err != nil {
			return vault.Endpoint{}, Fail("check that the API server can reach the node running "+pod, "%v", err)
		}
		return vault.Endpoint{Address: fmt.Sprintf("https://127.0.0.1:%d", port), CAPEM: secret.Data["ca.crt"]}, nil
	}
}

// pendingGrace is how old a pending Helm revision must be before apply takes it for a killed
// run's (see Connect).
func pendingGrace(env *Env) time.Duration {
	if env.PreviousRunDied {
		return time.Nanosecond // zero means the Helm timeout
	}
	return time.Minute
}
