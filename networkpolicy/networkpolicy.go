// Package networkpolicy turns the networkPolicies section of the config into networking.k8s.io/v1
// NetworkPolicies (Build, a pure function), applies them with server-side apply and prunes the
// ones vaultctl no longer wants (Apply/ApplyIn, Diff/DiffIn), and evaluates which flows a set of policies allows
// (Allowed), because golden files alone do not say whether a policy does what it is meant to.
//
// What Build emits, in apply order:
//
//   - vaultctl-vault-peers (Vault namespace): Vault server pods accept 8201 (cluster traffic,
//     request forwarding) and 8200 from each other. 8200 is included because raft retry_join and
//     `operator raft join` reach the leader through its API address, not the cluster port.
//   - vaultctl-vault-clients (Vault namespace): Vault server pods accept 8200 from exactly the
//     namespaces and pod selectors listed in networkPolicies.allowedClients.
//   - vaultctl-injector-webhook (Vault namespace): the injector's webhook port (8080) from the API
//     server; see injectorWebhook for why it is open to anywhere when no apiServerCIDRs are set.
//   - vaultctl-default-deny (Vault namespace): every pod there is ingress-isolated, so only the
//     flows above (and any policy the operator adds; allows are a union) reach it. It comes
//     after the allows so that it never lands before them (network plugins program policies
//     asynchronously anyway, so a first install can still see a moment's gap).
//   - vaultctl-vault-egress (each client namespace, only when networkPolicies.appEgress is true):
//     the client's pods may reach Vault on 8200 and cluster DNS on 53. A policy that selects pods
//     for Egress makes them egress-isolated: these pods can then reach ONLY Vault, DNS and what
//     other egress policies selecting them allow. That is why it is opt-in; it is additive in that
//     it composes (by union) with the operator's own egress policies and never narrows them.
//
// Threat-model limits, stated plainly:
//
//   - The Vault Agent sidecar runs in the application's pod and shares its IP address. A
//     NetworkPolicy cannot tell the agent from the application, so no NetworkPolicy keeps a
//     compromised application away from Vault's port; Vault's own authentication (the
//     Kubernetes auth role bound to the ServiceAccount) and policies are the real boundary.
//     These policies reduce who can reach Vault at all, nothing more.
//   - NetworkPolicies do nothing without a network plugin that enforces them. The sandbox has
//     none, so its tests check the objects (golden files, the API server's validation) and check
//     the allowed flows with this package's evaluator, never with real traffic.
//   - Kubernetes always allows traffic between a pod and its own node, so kubelet probes still
//     work; port-forward (how vaultctl reaches an in-cluster Vault) connects from inside the
//     pod's network namespace and is not filtered either.
//
// Every object carries app.kubernetes.io/managed-by=vaultctl and vaultctl.io/vault-namespace (the
// installation), which is what prune keys on, and a vaultctl.io/config-key annotation naming the
// config key that produced it.
//
// The origin article's example selects the injector's pods on port 8200 (the injector serves no
// 8200) through a `name: vault` namespace label nothing sets; Build targets the server pods and
// the kubernetes.io/metadata.name label the API server sets on every namespace.
package networkpolicy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/kube"
)

// Object names, all prefixed "vaultctl-": prune deletes nothing without that prefix.
const (
	NameDefaultDeny     = "vaultctl-default-deny"
	NameVaultClients    = "vaultctl-vault-clients"
	NameVaultPeers      = "vaultctl-vault-peers"
	NameInjectorWebhook = "vaultctl-injector-webhook"
	NameVaultEgress     = "vaultctl-vault-egress"
	namePrefix          = "vaultctl-"
)

// Labels and annotations vaultctl sets.
const (
	ManagedByLabel = kube.ManagedByLabel
	ManagedByValue = kube.ManagedByValue
	// InstanceLabel names the Vault namespace of the installation that owns the object, so
	// that prune never touches another installation's policies (each e2e test is one, too).
	InstanceLabel         = "vaultctl.io/vault-namespace"
	ConfigKeyAnnotation   = "vaultctl.io/config-key"
	DescriptionAnnotation = "vaultctl.io/description"
	// NamespaceNameLabel is set by the API server on every namespace (Kubernetes 1.21+), so it
	// selects a namespace by name without asking anyone to label it.
	NamespaceNameLabel = "kubernetes.io/metadata.name"
)

// Ports.
const (
	VaultPort   = 8200 // Vault API
	ClusterPort = 8201 // Vault cluster (Raft, request forwarding)
	WebhookPort = 8080 // the injector's listen port (its Service maps 443 to it)
	DNSPort     = 53
)

// DNSNamespace and DNSLabels select cluster DNS (CoreDNS keeps the kube-dns label on kubeadm,
// EKS and GKE). A cluster using NodeLocal DNSCache or other labels needs its own egress policy
// for DNS; it adds to vaultctl's by union.
const DNSNamespace = "kube-system"

// DNSLabels selects the cluster DNS pods.
func DNSLabels() map[string]string { return map[string]string{"k8s-app": "kube-dns"} }

// VaultServerLabels selects Vault server pods (the official chart's labels).
func VaultServerLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": "vault", "component": "server"}
}

// InjectorLabels selects the Vault Agent Injector pods (the official chart's labels).
func InjectorLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": "vault-agent-injector", "component": "webhook"}
}

// Build returns the NetworkPolicies the config asks for, in apply order (see the package doc),
// with deterministic names and content. It returns nil when networkPolicies.enabled is false.
// cfg must have had config.ApplyDefaults applied (config.Load does).
//
// In external mode no Vault server runs in the cluster: the server policies would select nothing
// and app egress could not name the external Vault by pod, so only the Vault namespace's
// default-deny and the injector's webhook policy are emitted.
func Build(cfg *config.Config) []networkingv1.NetworkPolicy {
	n := cfg.NetworkPolicies
	if !n.Enabled {
		return nil
	}
	vns := cfg.Vault.Namespace
	groups := groupClients(n.AllowedClients)
	var out []networkingv1.NetworkPolicy
	if !cfg.External() {
		out = append(out, vaultPeers(vns))
		// With no clients the rule would have an empty `from`, which means "from anywhere":
		// emit nothing and let the default-deny stand (validation rejects this config anyway).
		if len(groups) > 0 {
			out = append(out, vaultClients(vns, groups))
		}
	}
	if cfg.InjectorEnabled() {
		out = append(out, injectorWebhook(vns, n.APIServerCIDRs))
	}
	out = append(out, defaultDeny(vns))
	if n.AppEgress && !cfg.External() {
		out = append(out, appEgress(vns, groups)...)
	}
	return out
}

func newPolicy(vns, ns, name, configKey, description string) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   ns,
			Labels:      map[string]string{ManagedByLabel: ManagedByValue, InstanceLabel: vns},
			Annotations: map[string]string{ConfigKeyAnnotation: configKey, DescriptionAnnotation: description},
		},
	}
}

func defaultDeny(vns string) networkingv1.NetworkPolicy {
	p := newPolicy(vns, vns, NameDefaultDeny, "networkPolicies.enabled",
		"Every pod in the Vault namespace is ingress-isolated: only flows other policies allow reach it.")
	p.Spec = networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
	}
	return p
}

func vaultPeers(vns string) networkingv1.NetworkPolicy {
	p := newPolicy(vns, vns, NameVaultPeers, "networkPolicies.enabled",
		"Vault servers reach each other on 8201 (cluster) and 8200 (raft join uses the API address).")
	p.Spec = networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: VaultServerLabels()},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			Ports: []networkingv1.NetworkPolicyPort{tcp(ClusterPort), tcp(VaultPort)},
			// A podSelector alone means "in this policy's namespace".
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: VaultServerLabels()}}},
		}},
	}
	return p
}

func vaultClients(vns string, groups []clientGroup) networkingv1.NetworkPolicy {
	p := newPolicy(vns, vns, NameVaultClients, "networkPolicies.allowedClients",
		"Vault servers accept 8200 only from the namespaces and pods in networkPolicies.allowedClients.")
	var from []networkingv1.NetworkPolicyPeer
	for _, g := range groups {
		for _, sel := range g.selectors {
			// One peer with both selectors: the pods must match AND be in that namespace.
			peer := networkingv1.NetworkPolicyPeer{NamespaceSelector: namespaceByName(g.namespace)}
			if len(sel.labels) > 0 {
				peer.PodSelector = &metav1.LabelSelector{MatchLabels: maps.Clone(sel.labels)}
			}
			from = append(from, peer)
		}
	}
	p.Spec = networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: VaultServerLabels()},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{tcp(VaultPort)}, From: from}},
	}
	return p
}

// injectorWebhook lets the API server call the injector. The API server is not a pod (it runs on
// the host network or outside the cluster entirely, as on EKS and GKE), so only an ipBlock can
// name it. Without apiServerCIDRs the port is open to any source: guessing the control plane's
// address would silently break injection (failurePolicy Ignore starts pods without secrets; Fail
// blocks every pod the webhook matches), while an open port costs little, because the webhook
// serves TLS, only answers AdmissionReview requests, and holds no secrets.
func injectorWebhook(vns string, cidrs []string) networkingv1.NetworkPolicy {
	rule := networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{tcp(WebhookPort)}}
	desc := "The API server reaches the injector webhook on 8080 from networkPolicies.apiServerCIDRs."
	if len(cidrs) == 0 {
		desc = "No networkPolicies.apiServerCIDRs: the injector webhook port 8080 is open to any source (it serves TLS and only admission reviews)."
	}
	for _, c := range normalizeCIDRs(cidrs) {
		rule.From = append(rule.From, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: c}})
	}
	p := newPolicy(vns, vns, NameInjectorWebhook, "networkPolicies.apiServerCIDRs", desc)
	p.Spec = networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: InjectorLabels()},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		Ingress:     []networkingv1.NetworkPolicyIngressRule{rule},
	}
	return p
}

// appEgress emits one egress policy per distinct client selector in each client namespace (a
// policy has one podSelector, and selectors cannot be ORed inside one). The usual single
// selector gets the plain name; several get a suffix derived from the selector, so adding or
// reordering clients never renames an existing object.
func appEgress(vns string, groups []clientGroup) []networkingv1.NetworkPolicy {
	var out []networkingv1.NetworkPolicy
	for _, g := range groups {
		// Egress-isolating the Vault namespace would cut Vault off from KMS and the API server
		// (an empty selector there selects the servers too); its clients need no such policy.
		if g.namespace == vns {
			continue
		}
		for _, sel := range g.selectors {
			keys := []string{"networkPolicies.appEgress"}
			for _, i := range sel.indexes {
				keys = append(keys, fmt.Sprintf("networkPolicies.allowedClients[%d]", i))
			}
			name := NameVaultEgress
			if len(g.selectors) > 1 {
				name += "-" + selectorHash(sel.labels)
			}
			p := newPolicy(vns, g.namespace, name, strings.Join(keys, ", "),
				"The selected pods may reach Vault on 8200 and cluster DNS on 53; they become egress-isolated, "+
					"so anything else they reach must be allowed by another egress policy.")
			var podSel metav1.LabelSelector
			if len(sel.labels) > 0 {
				podSel.MatchLabels = maps.Clone(sel.labels)
			}
			p.Spec = networkingv1.NetworkPolicySpec{
				PodSelector: podSel,
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress: []networkingv1.NetworkPolicyEgressRule{
					{
						Ports: []networkingv1.NetworkPolicyPort{tcp(VaultPort)},
						To: []networkingv1.NetworkPolicyPeer{{
							NamespaceSelector: namespaceByName(vns),
							PodSelector:       &metav1.LabelSelector{MatchLabels: VaultServerLabels()},
						}},
					},
					{
						Ports: []networkingv1.NetworkPolicyPort{port(DNSPort, corev1.ProtocolUDP), tcp(DNSPort)},
						To: []networkingv1.NetworkPolicyPeer{{
							NamespaceSelector: namespaceByName(DNSNamespace),
							PodSelector:       &metav1.LabelSelector{MatchLabels: DNSLabels()},
						}},
					},
				},
			}
			out = append(out, p)
		}
	}
	return out
}

// clientGroup is the allowed clients of one namespace: distinct selectors, sorted; a client with
// an empty selector (every pod) absorbs the others.
type clientGroup struct {
	namespace string
	selectors []clientSelector
}

type clientSelector struct {
	labels  map[string]string // nil: every pod
	indexes []int             // positions in networkPolicies.allowedClients, for the config-key annotation
}

func groupClients(clients []config.AllowedClient) []clientGroup {
	byNS := map[string][]clientSelector{}
	for i, c := range clients {
		byNS[c.Namespace] = append(byNS[c.Namespace], clientSelector{labels: c.PodSelector, indexes: []int{i}})
	}
	out := make([]clientGroup, 0, len(byNS))
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		sels := byNS[ns]
		if slices.ContainsFunc(sels, func(s clientSelector) bool { return len(s.labels) == 0 }) {
			all := clientSelector{}
			for _, s := range sels {
				all.indexes = append(all.indexes, s.indexes...)
			}
			sels = []clientSelector{all}
		} else {
			slices.SortStableFunc(sels, func(a, b clientSelector) int {
				return strings.Compare(selectorString(a.labels), selectorString(b.labels))
			})
			var merged []clientSelector
			for _, s := range sels {
				if n := len(merged); n > 0 && maps.Equal(merged[n-1].labels, s.labels) {
					merged[n-1].indexes = append(merged[n-1].indexes, s.indexes...)
					continue
				}
				merged = append(merged, s)
			}
			sels = merged
		}
		for i := range sels {
			slices.Sort(sels[i].indexes)
		}
		out = append(out, clientGroup{namespace: ns, selectors: sels})
	}
	return out
}

// selectorString is a canonical k=v,k=v form of a matchLabels map.
func selectorString(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func selectorHash(m map[string]string) string {
	sum := sha256.Sum256([]byte(selectorString(m)))
	return hex.EncodeToString(sum[:4])
}

// normalizeCIDRs masks host bits (10.0.0.7/24 becomes 10.0.0.0/24, the canonical form API servers
// expect and newer ones insist on), sorts and de-duplicates. A string that does not parse is kept as is for the API server to report: config
// validation has already rejected it in a loaded config.
func normalizeCIDRs(cidrs []string) []string {
	out := make([]string, 0, len(cidrs))
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(strings.TrimSpace(c)); err == nil {
			c = p.Masked().String()
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func namespaceByName(ns string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{NamespaceNameLabel: ns}}
}

func tcp(p int) networkingv1.NetworkPolicyPort { return port(p, corev1.ProtocolTCP) }

func port(p int, proto corev1.Protocol) networkingv1.NetworkPolicyPort {
	n := intstr.FromInt32(int32(p))
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &n}
}

// Summary describes a policy in one line for plan output, e.g.
// "pods app.kubernetes.io/name=vault,component=server: ingress 8200/TCP from namespace production pods app=webapp".
func Summary(p *networkingv1.NetworkPolicy) string {
	var parts []string
	for _, t := range policyTypes(&p.Spec) {
		switch t {
		case networkingv1.PolicyTypeIngress:
			if len(p.Spec.Ingress) == 0 {
				parts = append(parts, "ingress denied")
			}
			for _, r := range p.Spec.Ingress {
				parts = append(parts, fmt.Sprintf("ingress %s from %s", portsString(r.Ports), peersString(r.From)))
			}
		case networkingv1.PolicyTypeEgress:
			if len(p.Spec.Egress) == 0 {
				parts = append(parts, "egress denied")
			}
			for _, r := range p.Spec.Egress {
				parts = append(parts, fmt.Sprintf("egress %s to %s", portsString(r.Ports), peersString(r.To)))
			}
		}
	}
	return podsString(&p.Spec.PodSelector) + ": " + strings.Join(parts, "; ")
}

func podsString(s *metav1.LabelSelector) string {
	if s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0) {
		return "all pods"
	}
	return "pods " + metav1.FormatLabelSelector(s)
}

func portsString(ports []networkingv1.NetworkPolicyPort) string {
	if len(ports) == 0 {
		return "any port"
	}
	var out []string
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		s := "all"
		if p.Port != nil {
			s = p.Port.String()
			if p.EndPort != nil {
				s += fmt.Sprintf("-%d", *p.EndPort)
			}
		}
		out = append(out, s+"/"+string(proto))
	}
	return strings.Join(out, ",")
}

func peersString(peers []networkingv1.NetworkPolicyPeer) string {
	if len(peers) == 0 {
		return "anywhere"
	}
	var out []string
	for _, p := range peers {
		switch {
		case p.IPBlock != nil:
			s := p.IPBlock.CIDR
			if len(p.IPBlock.Except) > 0 {
				s += " except " + strings.Join(p.IPBlock.Except, ",")
			}
			out = append(out, s)
		case p.NamespaceSelector != nil:
			ns := "namespaces " + metav1.FormatLabelSelector(p.NamespaceSelector)
			if name, ok := p.NamespaceSelector.MatchLabels[NamespaceNameLabel]; ok && len(p.NamespaceSelector.MatchLabels) == 1 && len(p.NamespaceSelector.MatchExpressions) == 0 {
				ns = "namespace " + name
			}
			out = append(out, ns+" "+podsString(p.PodSelector))
		default:
			out = append(out, "same-namespace "+podsString(p.PodSelector))
		}
	}
	return strings.Join(out, " | ")
}
