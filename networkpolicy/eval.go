package networkpolicy

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Endpoint is one end of a flow for the evaluator. A pod has a Namespace; anything else (the API
// server, a node, the internet) has none and is matched by ipBlock only.
type Endpoint struct {
	Namespace string
	// NamespaceLabels are the namespace's labels; kubernetes.io/metadata.name=Namespace is
	// implied, as the API server sets it on every namespace.
	NamespaceLabels map[string]string
	PodLabels       map[string]string
	// IP is matched against ipBlocks. Whether a CNI matches pod IPs against ipBlock is
	// implementation-defined (the API says ipBlock is meant for cluster-external addresses); the
	// evaluator matches any endpoint that has an IP, so give pods one only to test that case.
	IP string
}

func (e Endpoint) isPod() bool { return e.Namespace != "" }

func (e Endpoint) String() string {
	if !e.isPod() {
		return "ip " + e.IP
	}
	return fmt.Sprintf("pod %s{%s}", e.Namespace, labels.Set(e.PodLabels).String())
}

func (e Endpoint) namespaceLabels() labels.Set {
	s := labels.Set{}
	for k, v := range e.NamespaceLabels {
		s[k] = v
	}
	s[NamespaceNameLabel] = e.Namespace
	return s
}

// Allowed reports whether the policies let from open a connection to to on port/proto, as a
// network plugin enforcing networking.k8s.io/v1 would: the source must be allowed to send
// (egress) and the destination to receive (ingress). A pod no policy selects for a direction is
// not isolated in that direction; an isolated pod allows the union of its policies' rules.
// Named ports never match: resolving them needs the pods' container ports.
func Allowed(policies []networkingv1.NetworkPolicy, from, to Endpoint, port int, proto corev1.Protocol) bool {
	ok, _ := Explain(policies, from, to, port, proto)
	return ok
}

// Explain is Allowed with the reason, for test failures and debugging.
func Explain(policies []networkingv1.NetworkPolicy, from, to Endpoint, port int, proto corev1.Protocol) (bool, string) {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	// A pod cannot block traffic to itself.
	if from.isPod() && to.isPod() && from.IP != "" && from.IP == to.IP && from.Namespace == to.Namespace {
		return true, "same pod"
	}
	eg, egWhy := direction(policies, from, to, port, proto, networkingv1.PolicyTypeEgress)
	if !eg {
		return false, egWhy
	}
	in, inWhy := direction(policies, to, from, port, proto, networkingv1.PolicyTypeIngress)
	if !in {
		return false, inWhy
	}
	return true, egWhy + "; " + inWhy
}

// direction decides one side: self is the pod whose policies apply (the source for Egress, the
// destination for Ingress), other is the far end.
func direction(policies []networkingv1.NetworkPolicy, self, other Endpoint, port int, proto corev1.Protocol, dir networkingv1.PolicyType) (bool, string) {
	if !self.isPod() {
		return true, fmt.Sprintf("%s: %s is not a pod", dir, self)
	}
	isolatedBy := ""
	for i := range policies {
		p := &policies[i]
		if p.Namespace != self.Namespace || !selectorMatches(&p.Spec.PodSelector, self.PodLabels) || !hasType(&p.Spec, dir) {
			continue
		}
		isolatedBy = p.Namespace + "/" + p.Name
		if dir == networkingv1.PolicyTypeIngress {
			for _, r := range p.Spec.Ingress {
				if portsMatch(r.Ports, port, proto) && peersMatch(r.From, p.Namespace, other) {
					return true, fmt.Sprintf("ingress allowed by %s/%s", p.Namespace, p.Name)
				}
			}
		} else {
			for _, r := range p.Spec.Egress {
				if portsMatch(r.Ports, port, proto) && peersMatch(r.To, p.Namespace, other) {
					return true, fmt.Sprintf("egress allowed by %s/%s", p.Namespace, p.Name)
				}
			}
		}
	}
	if isolatedBy == "" {
		return true, fmt.Sprintf("%s: %s not isolated", dir, self)
	}
	return false, fmt.Sprintf("%s: %s isolated (e.g. by %s) and no rule allows %s on %d/%s", dir, self, isolatedBy, other, port, proto)
}

// policyTypes applies the API server's default when the field is empty: Ingress always, Egress
// when there are egress rules.
func policyTypes(s *networkingv1.NetworkPolicySpec) []networkingv1.PolicyType {
	if len(s.PolicyTypes) > 0 {
		return s.PolicyTypes
	}
	t := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	if len(s.Egress) > 0 {
		t = append(t, networkingv1.PolicyTypeEgress)
	}
	return t
}

func hasType(s *networkingv1.NetworkPolicySpec, t networkingv1.PolicyType) bool {
	for _, x := range policyTypes(s) {
		if x == t {
			return true
		}
	}
	return false
}

// selectorMatches: an empty selector matches everything, a nil one nothing; an invalid one
// matches nothing (the API server would not have accepted it).
func selectorMatches(s *metav1.LabelSelector, l map[string]string) bool {
	if s == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(l))
}

// peersMatch: no peers means any source/destination; otherwise any one peer must match.
func peersMatch(peers []networkingv1.NetworkPolicyPeer, policyNS string, e Endpoint) bool {
	if len(peers) == 0 {
		return true
	}
	for i := range peers {
		if peerMatches(&peers[i], policyNS, e) {
			return true
		}
	}
	return false
}

func peerMatches(p *networkingv1.NetworkPolicyPeer, policyNS string, e Endpoint) bool {
	if p.IPBlock != nil {
		return ipBlockMatches(p.IPBlock, e.IP)
	}
	if !e.isPod() {
		return false
	}
	// Without a namespaceSelector the peer is in the policy's own namespace; with one, the
	// namespace must match it AND (when set) the pod the podSelector.
	if p.NamespaceSelector == nil {
		if e.Namespace != policyNS {
			return false
		}
	} else if !selectorMatches(p.NamespaceSelector, e.namespaceLabels()) {
		return false
	}
	return p.PodSelector == nil || selectorMatches(p.PodSelector, e.PodLabels)
}

func ipBlockMatches(b *networkingv1.IPBlock, ip string) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	in := func(cidr string) bool {
		p, err := netip.ParsePrefix(cidr)
		return err == nil && p.Contains(addr.Unmap())
	}
	if !in(b.CIDR) {
		return false
	}
	for _, x := range b.Except {
		if in(x) {
			return false
		}
	}
	return true
}

// portsMatch: no ports means every port and protocol; a port entry without a number means every
// port of its protocol (TCP by default).
func portsMatch(ports []networkingv1.NetworkPolicyPort, port int, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.Type != intstr.Int {
			continue // named port: unknown here
		}
		lo, hi := int(p.Port.IntVal), int(p.Port.IntVal)
		if p.EndPort != nil {
			hi = int(*p.EndPort)
		}
		if port >= lo && port <= hi {
			return true
		}
	}
	return false
}
