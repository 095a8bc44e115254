package action

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/internal/kube"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

// podCluster is lifecycle.Cluster over the Kubernetes API and a port-forward to each Vault
// pod. The run's own Vault session cannot serve an upgrade: it reaches the pod that led when
// the run started, and that pod steps down and restarts.
type podCluster struct {
	kube      kubernetes.Interface
	rest      *rest.Config
	namespace string
	replicas  int
	ca        []byte
	token     string // the run's admin token, reused on every pod's client
	dialer    vault.Dialer

	mu    sync.Mutex
	conns map[string]*podConn // by pod name
}

type podConn struct {
	uid    string
	client vault.Client
	stop   func()
}

func newPodCluster(env *phases.Env, token string, ca []byte) *podCluster {
	return &podCluster{
		kube: env.Kube, rest: env.KubeREST, namespace: env.Config.Vault.Namespace, replicas: env.Config.Vault.Replicas,
		ca: ca, token: token,
		// Short timeouts and no retries: a restarting pod should answer "not yet" quickly, and
		// the waits poll anyway.
		dialer: vault.HTTPDialer{Timeout: 10 * time.Second, MaxRetries: -1},
		conns:  map[string]*podConn{},
	}
}

// close stops every port-forward.
func (p *podCluster) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.stop()
	}
	p.conns = map[string]*podConn{}
}

func (p *podCluster) pods(ctx context.Context) (map[string]*corev1.Pod, error) {
	list, err := p.kube.CoreV1().Pods(p.namespace).List(ctx, metav1.ListOptions{LabelSelector: charts.ServerSelector})
	if err != nil {
		return nil, phases.Fail("check that your kube credentials may list pods in namespace "+p.namespace, "listing Vault pods: %v", err)
	}
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

func serving(pod *corev1.Pod) bool {
	return pod != nil && pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning
}

func podReady(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
	})
}

// client returns a Vault client of pod (as it is now), opening a port-forward on first use and
// again when the pod was replaced.
func (p *podCluster) client(ctx context.Context, pod *corev1.Pod) (vault.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	uid := string(pod.UID)
	if c := p.conns[pod.Name]; c != nil {
		if c.uid == uid {
			return c.client, nil
		}
		c.stop()
		delete(p.conns, pod.Name)
	}
	pfCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	port, err := kube.PortForward(pfCtx, p.rest, p.namespace, pod.Name, 8200)
	if err != nil {
		stop()
		return nil, fmt.Errorf("port-forward to %s: %w", pod.Name, err)
	}
	c, err := p.dialer.Dial(vault.Endpoint{Address: fmt.Sprintf("https://127.0.0.1:%d", port), CAPEM: p.ca})
	if err != nil {
		stop()
		return nil, err
	}
	c.SetToken(p.token)
	p.conns[pod.Name] = &podConn{uid: uid, client: c, stop: stop}
	return c, nil
}

// forget drops pod's client: a port-forward whose first connection found nothing listening
// (Vault still starting) is dead, and the next call opens a new one.
func (p *podCluster) forget(pod string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.conns[pod]; c != nil {
		c.stop()
		delete(p.conns, pod)
	}
}

// anyNode is a phases.VaultAdmin that answers with the first serving pod whose Vault answers,
// the active one first, avoiding skip.
type anyNode struct {
	p    *podCluster
	skip string
}

func (a anyNode) Admin(ctx context.Context) (vault.Client, error) {
	pods, err := a.p.pods(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(pods))
	for n := range pods {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		ai, aj := pods[names[i]].Labels["vault-active"] == "true", pods[names[j]].Labels["vault-active"] == "true"
		if ai != aj {
			return ai
		}
		return names[i] < names[j]
	})
	var last error = fmt.Errorf("no serving Vault pod in namespace %s", a.p.namespace)
	for _, n := range names {
		if n == a.skip || !serving(pods[n]) {
			continue
		}
		c, err := a.p.client(ctx, pods[n])
		if err != nil {
			last = err
			continue
		}
		if h, err := c.Health(ctx); err != nil {
			a.p.forget(n)
			last = fmt.Errorf("%s: %v", n, err)
			continue
		} else if h.Sealed || !h.Initialized {
			last = fmt.Errorf("%s: not unsealed yet", n)
			continue
		}
		return c, nil
	}
	return nil, last
}

func (p *podCluster) health(ctx context.Context, skip string) (*phases.ClusterHealth, error) {
	return phases.ClusterHealthOf(ctx, anyNode{p: p, skip: skip}, p.replicas)
}

func (p *podCluster) Healthy(ctx context.Context) (bool, string, error) {
	h, err := p.health(ctx, "")
	if err != nil {
		return false, "", err
	}
	return h.Healthy, joinProblems(h.Problems), nil
}

func joinProblems(ps []string) string {
	if len(ps) == 0 {
		return "healthy"
	}
	out := ps[0]
	for _, s := range ps[1:] {
		out += "; " + s
	}
	return out
}

func (p *podCluster) DeletePod(ctx context.Context, pod, uid string) error {
	opts := metav1.DeleteOptions{}
	if uid != "" {
		u := types.UID(uid)
		opts.Preconditions = &metav1.Preconditions{UID: &u}
	}
	err := p.kube.CoreV1().Pods(p.namespace).Delete(ctx, pod, opts)
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		// Someone replaced it already: the wait sees whether its successor rejoins.
		return nil
	}
	return phases.Fail("check that your kube credentials may delete pods in namespace "+p.namespace, "deleting pod %s: %v", pod, err)
}

func (p *podCluster) Rejoined(ctx context.Context, name, oldUID string) (bool, string, error) {
	pods, err := p.pods(ctx)
	if err != nil {
		return false, "", err
	}
	pod := pods[name]
	switch {
	case pod == nil:
		return false, "the StatefulSet to recreate the pod", nil
	case string(pod.UID) == oldUID:
		return false, "the old pod to stop", nil
	case !serving(pod):
		return false, fmt.Sprintf("the new pod to run (%s)", pod.Status.Phase), nil
	}
	c, err := p.client(ctx, pod)
	if err != nil {
		return false, "Vault to answer on the new pod", nil
	}
	st, err := c.SealStatus(ctx)
	switch {
	case err != nil:
		p.forget(name)
		return false, "Vault to answer on the new pod", nil
	case !st.Initialized:
		return false, "Vault on the new pod to load its data (not initialized)", nil
	case st.Sealed:
		return false, "the new pod to unseal (KMS)", nil
	}
	h, err := p.health(ctx, "")
	if err != nil {
		return false, "autopilot to answer: " + err.Error(), nil
	}
	var node *phases.NodeHealth
	for i := range h.Nodes {
		if h.Nodes[i].ID == name {
			node = &h.Nodes[i]
		}
	}
	switch {
	case node == nil:
		return false, "the pod to rejoin Raft", nil
	case node.Status != "voter" && node.Status != "leader":
		return false, fmt.Sprintf("autopilot to promote it to voter (now %s)", node.Status), nil
	case !node.Healthy:
		return false, fmt.Sprintf("autopilot to report it healthy (%s)", node.Node), nil
	case !h.Healthy:
		return false, "the cluster to be healthy: " + joinProblems(h.Problems), nil
	case !podReady(pod):
		return false, "the pod to be Ready", nil
	}
	return true, "", nil
}

func (p *podCluster) StepDown(ctx context.Context, name string) error {
	pods, err := p.pods(ctx)
	if err != nil {
		return err
	}
	if !serving(pods[name]) {
		return fmt.Errorf("pod %s is not running", name)
	}
	c, err := p.client(ctx, pods[name])
	if err != nil {
		return err
	}
	l, err := vault.AsLifecycle(c)
	if err != nil {
		return err
	}
	if err := l.StepDown(ctx); err != nil {
		if vault.IsForbidden(err) {
			return phases.Fail("run `vaultctl apply` first: it grants vaultctl-admin sys/step-down", "step-down refused: permission denied")
		}
		return err
	}
	return nil
}

func (p *podCluster) NewLeader(ctx context.Context, old string) (string, string, error) {
	h, err := p.health(ctx, old)
	if err != nil {
		return "", "a leader to answer: " + err.Error(), nil
	}
	if h.Leader == "" || h.Leader == old {
		return "", "a leader other than " + old, nil
	}
	pods, err := p.pods(ctx)
	if err != nil {
		return "", "", err
	}
	if np := pods[h.Leader]; np == nil || np.Labels["vault-active"] != "true" || !podReady(np) {
		return "", fmt.Sprintf("the active Service to select the new leader %s (label vault-active=true)", h.Leader), nil
	}
	if op := pods[old]; op != nil && op.Labels["vault-active"] == "true" {
		return "", fmt.Sprintf("%s to drop the label vault-active=true", old), nil
	}
	return h.Leader, "", nil
}

var _ lifecycle.Cluster = (*podCluster)(nil)
