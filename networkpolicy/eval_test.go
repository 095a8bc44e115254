package networkpolicy

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The evaluator against hand-written policies, independent of Build: if both were wrong the same
// way, the flow tests through Build would pass anyway.

func np(ns, name string, sel map[string]string, types []networkingv1.PolicyType) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: sel}, PolicyTypes: types},
	}
}

var (
	ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	udp         = corev1.ProtocolUDP
	tcpProto    = corev1.ProtocolTCP
)

func ls(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func ports(ps ...networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort { return ps }

func TestEvalNoPoliciesAllowsAll(t *testing.T) {
	a, b := pod("a", "10.0.1.1", "app", "x"), pod("b", "10.0.2.1", "app", "y")
	if !Allowed(nil, a, b, 1234, tcpProto) || !Allowed(nil, internet, a, 80, udp) || !Allowed(nil, a, internet, 443, tcpProto) {
		t.Error("without policies everything is allowed")
	}
}

func TestEvalIngressIsolationAndUnion(t *testing.T) {
	db := pod("data", "10.0.3.1", "app", "db")
	cache := pod("data", "10.0.3.2", "app", "cache")
	web := pod("web", "10.0.4.1", "app", "web")
	batch := pod("jobs", "10.0.5.1", "app", "batch")
	other := pod("jobs", "10.0.5.2", "app", "other")

	deny := np("data", "deny", map[string]string{"app": "db"}, ingressOnly)
	fromWeb := np("data", "from-web", map[string]string{"app": "db"}, ingressOnly)
	fromWeb.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: ls(NamespaceNameLabel, "web")}}}}
	fromBatch := np("data", "from-batch", map[string]string{"app": "db"}, ingressOnly)
	fromBatch.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		Ports: ports(tcp(5432)),
		From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: ls(NamespaceNameLabel, "jobs"), PodSelector: ls("app", "batch")}},
	}}

	onlyDeny := []networkingv1.NetworkPolicy{deny}
	if Allowed(onlyDeny, web, db, 5432, tcpProto) {
		t.Error("a policy with no ingress rules must isolate the selected pod")
	}
	if !Allowed(onlyDeny, web, cache, 5432, tcpProto) {
		t.Error("a pod the policy does not select stays open")
	}
	all := []networkingv1.NetworkPolicy{deny, fromWeb, fromBatch}
	for _, c := range []struct {
		from Endpoint
		port int
		want bool
	}{
		{web, 5432, true}, {web, 9999, true}, // fromWeb: any port
		{batch, 5432, true}, {batch, 9999, false}, // fromBatch: 5432 only
		{other, 5432, false}, // right namespace, wrong pod
	} {
		if got, why := Explain(all, c.from, db, c.port, tcpProto); got != c.want {
			t.Errorf("union: %s -> db:%d = %t, want %t (%s)", c.from, c.port, got, c.want, why)
		}
	}
	// Removing an allow never opens anything: still isolated by the rest.
	if Allowed([]networkingv1.NetworkPolicy{deny, fromBatch}, web, db, 5432, tcpProto) {
		t.Error("without from-web, web must be denied")
	}
}

func TestEvalEgressIsolationAndBothEnds(t *testing.T) {
	app := pod("app", "10.0.6.1", "app", "api")
	db := pod("data", "10.0.3.1", "app", "db")
	eg := np("app", "eg", map[string]string{"app": "api"}, egressOnly)
	eg.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
		Ports: ports(tcp(5432)),
		To:    []networkingv1.NetworkPolicyPeer{{NamespaceSelector: ls(NamespaceNameLabel, "data")}},
	}}
	ps := []networkingv1.NetworkPolicy{eg}
	if !Allowed(ps, app, db, 5432, tcpProto) {
		t.Error("egress allowed to data:5432")
	}
	if Allowed(ps, app, internet, 443, tcpProto) || Allowed(ps, app, db, 5433, tcpProto) {
		t.Error("egress isolation: everything else is denied")
	}
	if !Allowed(ps, db, app, 8080, tcpProto) {
		t.Error("an Egress-only policy must not isolate ingress")
	}
	// Both ends must agree: the destination's ingress isolation wins over the source's allow.
	dbDeny := np("data", "deny", nil, ingressOnly)
	if Allowed(append(ps, dbDeny), app, db, 5432, tcpProto) {
		t.Error("egress allowed but ingress denied must be denied")
	}
	// And the other way round.
	open := np("data", "open", nil, ingressOnly)
	open.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
	if !Allowed([]networkingv1.NetworkPolicy{open}, app, db, 1, tcpProto) {
		t.Error("an ingress rule with no ports and no peers allows everything")
	}
}

func TestEvalDefaultPolicyTypes(t *testing.T) {
	app := pod("app", "10.0.6.1", "app", "api")
	// No policyTypes but an egress rule: the API server defaults to [Ingress, Egress].
	p := np("app", "p", nil, nil)
	p.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{Ports: ports(port(53, udp))}}
	ps := []networkingv1.NetworkPolicy{p}
	if Allowed(ps, pod("x", "10.0.7.1"), app, 80, tcpProto) {
		t.Error("defaulted policyTypes include Ingress: ingress must be isolated")
	}
	if !Allowed(ps, app, internet, 53, udp) || Allowed(ps, app, internet, 443, tcpProto) {
		t.Error("defaulted policyTypes include Egress when egress rules exist")
	}
	// No policyTypes, no egress rules: Ingress only.
	q := np("app", "q", nil, nil)
	if !Allowed([]networkingv1.NetworkPolicy{q}, app, internet, 443, tcpProto) {
		t.Error("without egress rules the default policyTypes are Ingress only")
	}
}

func TestEvalPeerSemantics(t *testing.T) {
	target := pod("t", "10.0.8.1", "app", "target")
	samePod := pod("t", "10.0.8.2", "role", "client")
	otherNSPod := pod("o", "10.0.9.2", "role", "client")
	prodNSPod := Endpoint{Namespace: "p", NamespaceLabels: map[string]string{"env": "prod"}, PodLabels: map[string]string{"role": "client"}, IP: "10.0.10.2"}
	prodOther := Endpoint{Namespace: "p", NamespaceLabels: map[string]string{"env": "prod"}, PodLabels: map[string]string{"role": "x"}, IP: "10.0.10.3"}

	with := func(peers ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicy {
		p := np("t", "p", map[string]string{"app": "target"}, ingressOnly)
		p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: peers}}
		return []networkingv1.NetworkPolicy{p}
	}
	cases := []struct {
		name string
		ps   []networkingv1.NetworkPolicy
		from Endpoint
		want bool
	}{
		{"podSelector alone: same namespace", with(networkingv1.NetworkPolicyPeer{PodSelector: ls("role", "client")}), samePod, true},
		{"podSelector alone: not another namespace", with(networkingv1.NetworkPolicyPeer{PodSelector: ls("role", "client")}), otherNSPod, false},
		{"empty namespaceSelector: every namespace", with(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: ls("role", "client")}), otherNSPod, true},
		{"namespace and pod in one peer: AND", with(networkingv1.NetworkPolicyPeer{NamespaceSelector: ls("env", "prod"), PodSelector: ls("role", "client")}), prodOther, false},
		{"namespace and pod in one peer: both match", with(networkingv1.NetworkPolicyPeer{NamespaceSelector: ls("env", "prod"), PodSelector: ls("role", "client")}), prodNSPod, true},
		{"two peers: OR", with(networkingv1.NetworkPolicyPeer{NamespaceSelector: ls("env", "prod")}, networkingv1.NetworkPolicyPeer{PodSelector: ls("role", "client")}), prodOther, true},
		{"well-known namespace label is implied", with(networkingv1.NetworkPolicyPeer{NamespaceSelector: ls(NamespaceNameLabel, "o")}), otherNSPod, true},
		{"selectors never match a non-pod", with(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}), internet, false},
		{"matchExpressions In", with(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpIn, Values: []string{"prod", "stage"}}}}}), prodOther, true},
		{"matchExpressions NotIn", with(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"prod"}}}}}), prodOther, false},
		{"matchExpressions Exists", with(networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "role", Operator: metav1.LabelSelectorOpExists}}}}), samePod, true},
		{"matchExpressions DoesNotExist", with(networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "role", Operator: metav1.LabelSelectorOpDoesNotExist}}}}), samePod, false},
		{"ipBlock", with(networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "1.2.0.0/16"}}), internet, true},
		{"ipBlock except", with(networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "1.2.0.0/16", Except: []string{"1.2.3.0/24"}}}), internet, false},
		{"ipBlock outside", with(networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/24"}}), internet, false},
		{"ipBlock: an endpoint without IP", with(networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}), Endpoint{}, false},
		{"IPv6 ipBlock", with(networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "fd00::/8"}}), Endpoint{IP: "fd00::1"}, true},
		{"policy in another namespace does not isolate", []networkingv1.NetworkPolicy{np("o", "deny", nil, ingressOnly)}, samePod, true},
	}
	for _, c := range cases {
		if got, why := Explain(c.ps, c.from, target, 80, tcpProto); got != c.want {
			t.Errorf("%s: %t, want %t (%s)", c.name, got, c.want, why)
		}
	}
}

func TestEvalPorts(t *testing.T) {
	target := pod("t", "10.0.8.1", "app", "target")
	src := pod("s", "10.0.9.1")
	end := int32(8210)
	named := intstr.FromString("http")
	p := np("t", "p", nil, ingressOnly)
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{Ports: ports(
		tcp(8200),
		networkingv1.NetworkPolicyPort{Port: ptrIntStr(9000)}, // protocol defaults to TCP
		networkingv1.NetworkPolicyPort{Protocol: &udp},        // every UDP port
		func() networkingv1.NetworkPolicyPort { x := tcp(8205); x.EndPort = &end; return x }(),
		networkingv1.NetworkPolicyPort{Port: &named},
	)}}
	ps := []networkingv1.NetworkPolicy{p}
	for _, c := range []struct {
		port  int
		proto corev1.Protocol
		want  bool
	}{
		{8200, tcpProto, true}, {8201, tcpProto, false}, {8200, udp, true},
		{9000, tcpProto, true}, {9000, "", true}, {9000, corev1.ProtocolSCTP, false},
		{53, udp, true}, {53, tcpProto, false},
		{8205, tcpProto, true}, {8210, tcpProto, true}, {8211, tcpProto, false},
		{80, tcpProto, false}, // the named port "http" is not resolved
	} {
		if got, why := Explain(ps, src, target, c.port, c.proto); got != c.want {
			t.Errorf("%d/%s: %t, want %t (%s)", c.port, c.proto, got, c.want, why)
		}
	}
}

func ptrIntStr(i int32) *intstr.IntOrString { v := intstr.FromInt32(i); return &v }

func TestEvalSamePodAlwaysAllowed(t *testing.T) {
	app := pod("a", "10.0.1.1", "app", "x")
	ps := []networkingv1.NetworkPolicy{np("a", "deny", nil, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress})}
	if !Allowed(ps, app, app, 8080, tcpProto) {
		t.Error("a pod cannot block traffic to itself (the agent sidecar and the app share it)")
	}
	if Allowed(ps, app, pod("a", "10.0.1.2", "app", "x"), 8080, tcpProto) {
		t.Error("another pod with the same labels is a different pod")
	}
}
