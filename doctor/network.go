package doctor

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/networkpolicy"
)

// networkPolicy evaluates, with the same evaluator the network-policies phase is tested
// with, whether the NetworkPolicies in force let the pod reach a Vault server on 8200 (7).
// Only an in-cluster Vault has server pods to reach; an enforcing network plugin is assumed
// (the sandbox, like kind without one, stores NetworkPolicies but does not enforce them).
func (d *Doctor) networkPolicy(ctx context.Context, c *podCheck) {
	if d.Config.Vault.Mode != config.ModeInCluster {
		return
	}
	vns := d.Config.Vault.Namespace
	var pols []networkingv1.NetworkPolicy
	for _, ns := range uniq(vns, c.pod.Namespace) {
		list, err := d.Kube.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		pols = append(pols, list.Items...)
	}
	if len(pols) == 0 {
		return
	}
	var nsLabels map[string]string
	if ns, err := d.Kube.CoreV1().Namespaces().Get(ctx, c.pod.Namespace, metav1.GetOptions{}); err == nil {
		nsLabels = ns.Labels
	}
	var vaultNSLabels map[string]string
	if ns, err := d.Kube.CoreV1().Namespaces().Get(ctx, vns, metav1.GetOptions{}); err == nil {
		vaultNSLabels = ns.Labels
	}
	from := networkpolicy.Endpoint{Namespace: c.pod.Namespace, NamespaceLabels: nsLabels, PodLabels: c.pod.Labels}
	to := networkpolicy.Endpoint{Namespace: vns, NamespaceLabels: vaultNSLabels, PodLabels: networkpolicy.VaultServerLabels()}
	ok, why := networkpolicy.Explain(pols, from, to, 8200, corev1.ProtocolTCP)
	if ok {
		return
	}
	c.add(Finding{Severity: Error, Code: CodeNetworkPolicy,
		Message: fmt.Sprintf("the NetworkPolicies in %s do not let this pod reach Vault on 8200: the agent's login times out", joinNS(vns, c.pod.Namespace)),
		Evidence: append([]string{
			fmt.Sprintf("flow %s -> Vault server pods in %s, TCP 8200: denied (%s)", from, vns, why),
			"judged by vaultctl's evaluator as an enforcing network plugin would; a cluster without one (such as the vaultctl sandbox) does not enforce NetworkPolicies",
		}, c.logEvidence(CodeVaultUnreachable)...),
		Fix: fmt.Sprintf("add {namespace: %s, podSelector: {...}} to networkPolicies.allowedClients, then vaultctl apply --only network-policies", c.pod.Namespace)})
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

func joinNS(a, b string) string {
	if a == b {
		return a
	}
	return a + " and " + b
}
