// Package kube connects to Kubernetes from a kubeconfig, the way kubectl does.
package kube

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is a connection to one cluster.
type Cluster struct {
	Client  kubernetes.Interface
	REST    *rest.Config
	Host    string // API server URL from the kubeconfig
	CAData  []byte // cluster CA from the kubeconfig (PEM), may be empty
	Context string // the context used
}

// Connect loads kubeconfig (empty: $KUBECONFIG or ~/.kube/config) with the given context (empty:
// current). It does not contact the server; the preflight phase does.
func Connect(kubeconfig, context string) (*Cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	ctxName := context
	if ctxName == "" {
		ctxName = raw.CurrentContext
	}
	rc.UserAgent = "vaultctl"
	rc.QPS, rc.Burst = 50, 100
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("building Kubernetes client: %w", err)
	}
	ca := rc.CAData
	if len(ca) == 0 && rc.CAFile != "" {
		if ca, err = readFile(rc.CAFile); err != nil {
			return nil, fmt.Errorf("reading cluster CA %s: %w", rc.CAFile, err)
		}
	}
	return &Cluster{Client: client, REST: rc, Host: rc.Host, CAData: ca, Context: ctxName}, nil
}
