package wizard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/clientcmd"
)

// Namespace is a namespace found in the cluster.
type Namespace struct {
	Name    string
	Secrets int // number of Secrets in it; -1 when they could not be listed
}

// Discovery tells the wizard what the kubeconfig and the cluster hold, for defaults and lists.
// Every method may fail: the wizard then falls back to typed answers.
type Discovery interface {
	// Contexts lists the kubeconfig's contexts and names the current one.
	Contexts() (names []string, current string, err error)
	// Namespaces lists the namespaces reachable through a context, with their Secret counts.
	Namespaces(ctx context.Context, kubeContext string) ([]Namespace, error)
}

// NoCluster is a Discovery that finds nothing, for tests and CI.
type NoCluster struct{}

// Contexts implements Discovery.
func (NoCluster) Contexts() ([]string, string, error) { return nil, "", nil }

// Namespaces implements Discovery.
func (NoCluster) Namespaces(context.Context, string) ([]Namespace, error) {
	return nil, fmt.Errorf("no cluster")
}

// Kube discovers contexts from a kubeconfig and namespaces from the cluster, reading only object
// metadata: no Secret value leaves the cluster.
type Kube struct {
	Kubeconfig string        // empty: $KUBECONFIG or ~/.kube/config
	Timeout    time.Duration // for listing namespaces; 0 means 5s
}

func (k Kube) loader(kubeContext string) clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k.Kubeconfig != "" {
		rules.ExplicitPath = k.Kubeconfig
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
}

// Contexts implements Discovery.
func (k Kube) Contexts() ([]string, string, error) {
	raw, err := k.loader("").RawConfig()
	if err != nil {
		return nil, "", err
	}
	names := make([]string, 0, len(raw.Contexts))
	for name := range raw.Contexts {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, raw.CurrentContext, nil
}

var (
	namespacesGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	secretsGVR    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

// Namespaces implements Discovery.
func (k Kube) Namespaces(ctx context.Context, kubeContext string) ([]Namespace, error) {
	timeout := k.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rc, err := k.loader(kubeContext).ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		return nil, errors.New("no kubeconfig found")
	}
	if err != nil {
		return nil, err
	}
	rc.Timeout = timeout
	rc.UserAgent = "vaultctl-init"
	client, err := metadata.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	nsList, err := client.Resource(namespacesGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	countsKnown := true
	opts := metav1.ListOptions{Limit: 500}
	for {
		secrets, err := client.Resource(secretsGVR).List(ctx, opts)
		if err != nil {
			countsKnown = false // e.g. not allowed to list Secrets cluster-wide: names alone still help
			break
		}
		for _, s := range secrets.Items {
			counts[s.Namespace]++
		}
		if opts.Continue = secrets.Continue; opts.Continue == "" {
			break
		}
	}
	out := make([]Namespace, 0, len(nsList.Items))
	for _, ns := range nsList.Items {
		n := Namespace{Name: ns.Name, Secrets: counts[ns.Name]}
		if !countsKnown {
			n.Secrets = -1
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Namespace) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// systemNamespace reports namespaces nobody migrates: Kubernetes' own and Vault's.
func systemNamespace(name, vaultNamespace string) bool {
	switch name {
	case "kube-system", "kube-public", "kube-node-lease", "local-path-storage", vaultNamespace:
		return true
	}
	return false
}
