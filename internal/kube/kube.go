// Package kube connects to Kubernetes from a kubeconfig, the way kubectl does.
package kube

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ManagedByLabel (with ManagedByValue) marks every object vaultctl creates: the one well-known
// label prune, purge and the sandbox scan key on.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "vaultctl"
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
		// client-go says "try setting KUBERNETES_MASTER" when no file was there to load.
		if nf := missing(rules); nf != nil {
			return nil, nf
		}
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

// NotFoundError is a kubeconfig that is not there: the file named explicitly, every file listed
// in KUBECONFIG, or ~/.kube/config when nothing names one.
type NotFoundError struct {
	Paths []string
	From  string // "--kubeconfig or cluster.kubeconfig", "KUBECONFIG" or "" (the default file)
}

func (e *NotFoundError) Error() string {
	switch {
	case e.From == "":
		return fmt.Sprintf("no kubeconfig: KUBECONFIG is unset and %s does not exist", strings.Join(e.Paths, ", "))
	case len(e.Paths) == 1:
		return fmt.Sprintf("kubeconfig %s does not exist (named by %s)", e.Paths[0], e.From)
	}
	return fmt.Sprintf("none of the kubeconfig files named by %s exists: %s", e.From, strings.Join(e.Paths, ", "))
}

// Fix is the next step for the user.
func (e *NotFoundError) Fix() string {
	switch e.From {
	case "":
		return "pass --kubeconfig, set cluster.kubeconfig or KUBECONFIG, or create the default file (e.g. aws eks update-kubeconfig --name CLUSTER)"
	case envKubeconfig:
		return "point KUBECONFIG at an existing kubeconfig, unset it to use ~/.kube/config, or pass --kubeconfig"
	}
	return "point --kubeconfig (or cluster.kubeconfig in the config) at an existing kubeconfig file"
}

// Hint is err's own next step when it has one, otherwise the given one.
func Hint(err error, otherwise string) string {
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return nf.Fix()
	}
	return otherwise
}

const envKubeconfig = clientcmd.RecommendedConfigPathEnvVar

// missing reports the files the loading rules looked for when none of them exists; nil when
// the failure is something else (a file that exists but is wrong).
func missing(rules *clientcmd.ClientConfigLoadingRules) *NotFoundError {
	if p := rules.ExplicitPath; p != "" {
		if notExist(p) {
			return &NotFoundError{Paths: []string{p}, From: "--kubeconfig or cluster.kubeconfig"}
		}
		return nil
	}
	var paths []string
	for _, p := range rules.Precedence {
		if p == "" {
			continue
		}
		if !notExist(p) {
			return nil
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return nil
	}
	from := ""
	if os.Getenv(envKubeconfig) != "" {
		from = envKubeconfig
	}
	return &NotFoundError{Paths: paths, From: from}
}

func notExist(p string) bool {
	_, err := os.Stat(p)
	return errors.Is(err, fs.ErrNotExist)
}
