package networkpolicy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/vaultctl/vaultctl/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from Build's output")

// loadCase reads testdata/NAME.config.yaml (only the keys that matter here) strictly and applies
// the defaults, as config.Load would; the e2e test reads the same files.
func loadCase(t *testing.T, name string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c config.Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	config.ApplyDefaults(&c)
	return &c
}

func render(t *testing.T, ps []networkingv1.NetworkPolicy) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("# Generated from the matching .config.yaml by TestGolden; regenerate with\n# go test ./networkpolicy -run TestGolden -update\n")
	for i := range ps {
		y, err := sigsyaml.Marshal(&ps[i])
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes()
}

var cases = []string{"article", "multi-client", "app-egress"}

func TestGolden(t *testing.T) {
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			got := render(t, Build(loadCase(t, name)))
			path := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Build output differs from %s (rerun with -update if the change is intended):\n%s", path, lineDiff(string(want), string(got)))
			}
		})
	}
}

// lineDiff shows the first differing lines, enough to see what moved.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(w), len(g)) && len(out) < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			out = append(out, "line "+strconv.Itoa(i+1)+":\n  want: "+wl+"\n  got:  "+gl)
		}
	}
	return strings.Join(out, "\n")
}

// Every object: valid name, a namespace, the ownership label, the config-key annotation; names
// unique per namespace.
func TestObjectsAreLabelledAndNamed(t *testing.T) {
	for _, name := range cases {
		seen := map[string]bool{}
		for _, p := range Build(loadCase(t, name)) {
			key := p.Namespace + "/" + p.Name
			if seen[key] {
				t.Errorf("%s: %s emitted twice", name, key)
			}
			seen[key] = true
			if errs := validation.IsDNS1123Subdomain(p.Name); len(errs) > 0 || !strings.HasPrefix(p.Name, namePrefix) {
				t.Errorf("%s: bad name %q: %v", name, p.Name, errs)
			}
			if p.Namespace == "" || p.APIVersion != "networking.k8s.io/v1" || p.Kind != "NetworkPolicy" {
				t.Errorf("%s: %s: namespace/apiVersion/kind not set: %+v", name, key, p.TypeMeta)
			}
			if p.Labels[ManagedByLabel] != ManagedByValue {
				t.Errorf("%s: %s lacks %s=%s", name, key, ManagedByLabel, ManagedByValue)
			}
			if !strings.HasPrefix(p.Annotations[ConfigKeyAnnotation], "networkPolicies.") {
				t.Errorf("%s: %s: config-key annotation = %q", name, key, p.Annotations[ConfigKeyAnnotation])
			}
			if len(p.Spec.PolicyTypes) == 0 {
				t.Errorf("%s: %s: policyTypes left to the server's default", name, key)
			}
		}
	}
}

func TestBuildDeterministicAndOrderIndependent(t *testing.T) {
	cfg := loadCase(t, "app-egress")
	a, b := Build(cfg), Build(cfg)
	if !apiequality.Semantic.DeepEqual(a, b) {
		t.Fatal("two Builds of one config differ")
	}
	// Reordering clients changes only the config-key annotations (they name list positions).
	slices.Reverse(cfg.NetworkPolicies.AllowedClients)
	slices.Reverse(cfg.NetworkPolicies.APIServerCIDRs)
	c := Build(cfg)
	if len(a) != len(c) {
		t.Fatalf("reordered clients: %d objects, want %d", len(c), len(a))
	}
	for i := range a {
		if a[i].Namespace != c[i].Namespace || a[i].Name != c[i].Name || !apiequality.Semantic.DeepEqual(a[i].Spec, c[i].Spec) {
			t.Errorf("reordered clients changed object %d: %s/%s vs %s/%s", i, a[i].Namespace, a[i].Name, c[i].Namespace, c[i].Name)
		}
	}
}

func TestBuildDisabledAndModes(t *testing.T) {
	cfg := loadCase(t, "app-egress")
	cfg.NetworkPolicies.Enabled = false
	if got := Build(cfg); got != nil {
		t.Errorf("disabled: Build = %d objects, want none", len(got))
	}

	cfg = loadCase(t, "app-egress")
	cfg.Vault.Mode = config.ModeExternal
	if got := names(Build(cfg)); !slices.Equal(got, []string{"vault/" + NameInjectorWebhook, "vault/" + NameDefaultDeny}) {
		t.Errorf("external mode: %v", got)
	}

	cfg = loadCase(t, "article")
	off := false
	cfg.Injector.Enabled = &off
	if got := names(Build(cfg)); slices.Contains(got, "vault/"+NameInjectorWebhook) {
		t.Errorf("injector disabled, yet %v", got)
	}

	// No clients must never become an empty `from` (which would mean anyone).
	cfg = loadCase(t, "article")
	cfg.NetworkPolicies.AllowedClients = nil
	for _, p := range Build(cfg) {
		if p.Name == NameVaultClients {
			t.Errorf("no clients, yet %s emitted: %s", p.Name, Summary(&p))
		}
	}
	if Allowed(Build(cfg), pod("production", "10.1.0.10", "app", "webapp"), vaultPod(cfg, 0), VaultPort, corev1.ProtocolTCP) {
		t.Error("no clients: a pod reaches Vault")
	}
}

func names(ps []networkingv1.NetworkPolicy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out
}

// --- flows -----------------------------------------------------------------------------------

func pod(ns, ip string, kv ...string) Endpoint {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return Endpoint{Namespace: ns, PodLabels: l, IP: ip}
}

func vaultPod(cfg *config.Config, i int) Endpoint {
	e := pod(cfg.Vault.Namespace, "10.2.0."+strconv.Itoa(10+i), "app.kubernetes.io/instance", "vault",
		"statefulset.kubernetes.io/pod-name", "vault-"+strconv.Itoa(i))
	for k, v := range VaultServerLabels() {
		e.PodLabels[k] = v
	}
	return e
}

func injectorPod(cfg *config.Config) Endpoint {
	e := pod(cfg.Vault.Namespace, "10.2.0.50", "app.kubernetes.io/instance", "vault-injector")
	for k, v := range InjectorLabels() {
		e.PodLabels[k] = v
	}
	return e
}

type flow struct {
	what     string
	from, to Endpoint
	port     int
	proto    corev1.Protocol
	want     bool
}

func checkFlows(t *testing.T, ps []networkingv1.NetworkPolicy, flows []flow) {
	t.Helper()
	for _, f := range flows {
		proto := f.proto
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		got, why := Explain(ps, f.from, f.to, f.port, proto)
		if got != f.want {
			t.Errorf("%s: %s -> %s %d/%s allowed=%t, want %t (%s)", f.what, f.from, f.to, f.port, proto, got, f.want, why)
		}
	}
}

var (
	apiServer = Endpoint{IP: "10.0.0.5"}
	internet  = Endpoint{IP: "1.2.3.4"}
	dnsPod    = pod("kube-system", "10.3.0.10", "k8s-app", "kube-dns")
)

func TestFlowsArticle(t *testing.T) {
	cfg := loadCase(t, "article")
	ps := Build(cfg)
	webapp := pod("production", "10.1.0.10", "app", "webapp", "pod-template-hash", "abc")
	other := pod("production", "10.1.0.11", "app", "other")
	elsewhere := pod("dev", "10.1.1.10", "app", "webapp")
	v0, v1, inj := vaultPod(cfg, 0), vaultPod(cfg, 1), injectorPod(cfg)
	otherInVault := pod("vault", "10.2.0.60", "app", "metrics-exporter")

	checkFlows(t, ps, []flow{
		{"webapp in production reaches Vault", webapp, v0, 8200, "", true},
		{"webapp reaches every Vault pod", webapp, v1, 8200, "", true},
		{"only TCP", webapp, v0, 8200, corev1.ProtocolUDP, false},
		{"other pod in production", other, v0, 8200, "", false},
		{"webapp-labelled pod in another namespace", elsewhere, v0, 8200, "", false},
		{"8200 on the injector", webapp, inj, 8200, "", false},
		{"8200 on another pod in the Vault namespace", webapp, otherInVault, 8200, "", false},
		{"clients do not get the cluster port", webapp, v0, 8201, "", false},
		{"Vault peers on 8201", v0, v1, 8201, "", true},
		{"Vault peers on 8200 (raft join)", v1, v0, 8200, "", true},
		{"injector cannot reach 8201", inj, v0, 8201, "", false},
		{"another pod in the Vault namespace cannot reach 8201", otherInVault, v1, 8201, "", false},
		{"API server reaches the injector webhook (no CIDRs: open)", apiServer, inj, 8080, "", true},
		{"webhook rule is for 8080 only", apiServer, inj, 8443, "", false},
		{"API server is not a Vault client", apiServer, v0, 8200, "", false},
		{"the internet does not reach Vault", internet, v0, 8200, "", false},
		{"no appEgress: webapp egress is untouched", webapp, internet, 443, "", true},
		{"Vault keeps its egress (KMS, API server)", v0, internet, 443, "", true},
	})
}

func TestFlowsMultiClient(t *testing.T) {
	cfg := loadCase(t, "multi-client")
	ps := Build(cfg)
	v0 := vaultPod(cfg, 0)
	if v0.Namespace != "secrets" {
		t.Fatalf("vault namespace = %s", v0.Namespace)
	}
	checkFlows(t, ps, []flow{
		{"webapp", pod("production", "10.1.0.10", "app", "webapp"), v0, 8200, "", true},
		{"worker with both labels", pod("production", "10.1.0.12", "app", "worker", "tier", "backend"), v0, 8200, "", true},
		{"worker missing tier: selectors are ANDed", pod("production", "10.1.0.13", "app", "worker"), v0, 8200, "", false},
		{"tier alone", pod("production", "10.1.0.14", "tier", "backend"), v0, 8200, "", false},
		{"any staging pod (empty podSelector)", pod("staging", "10.1.2.10", "app", "anything"), v0, 8200, "", true},
		{"staging pod with no labels", pod("staging", "10.1.2.11"), v0, 8200, "", true},
		{"any monitoring pod (the empty selector wins)", pod("monitoring", "10.1.3.10", "app", "grafana"), v0, 8200, "", true},
		{"namespace not listed", pod("dev", "10.1.4.10", "app", "webapp"), v0, 8200, "", false},
		{"namespace labelled like another does not count", Endpoint{Namespace: "dev", NamespaceLabels: map[string]string{"name": "staging"}, IP: "10.1.4.11"}, v0, 8200, "", false},
		{"clients stay off the cluster port", pod("staging", "10.1.2.10"), v0, 8201, "", false},
		{"peers", vaultPod(cfg, 2), v0, 8201, "", true},
	})
}

func TestFlowsAppEgress(t *testing.T) {
	cfg := loadCase(t, "app-egress")
	ps := Build(cfg)
	webapp := pod("production", "10.1.0.10", "app", "webapp")
	api := pod("production", "10.1.0.11", "app", "api")
	other := pod("production", "10.1.0.12", "app", "other")
	stagingPod := pod("staging", "10.1.2.10", "app", "anything")
	backup := pod("vault", "10.2.0.70", "app", "vault-backup")
	v0, v1, inj := vaultPod(cfg, 0), vaultPod(cfg, 1), injectorPod(cfg)

	checkFlows(t, ps, []flow{
		{"webapp reaches Vault", webapp, v0, 8200, "", true},
		{"webapp reaches DNS over UDP", webapp, dnsPod, 53, corev1.ProtocolUDP, true},
		{"webapp reaches DNS over TCP", webapp, dnsPod, 53, corev1.ProtocolTCP, true},
		{"webapp is egress-isolated: the internet", webapp, internet, 443, "", false},
		{"webapp is egress-isolated: DNS pods on another port", webapp, dnsPod, 80, "", false},
		{"webapp is egress-isolated: a neighbour", webapp, other, 8080, "", false},
		{"webapp cannot use Vault's cluster port", webapp, v0, 8201, "", false},
		{"webapp is egress-isolated: the injector", webapp, inj, 8080, "", false},
		{"api (second selector) reaches Vault", api, v1, 8200, "", true},
		{"api is egress-isolated too", api, internet, 443, "", false},
		{"unselected pod keeps its egress", other, internet, 443, "", true},
		{"unselected pod still may not reach Vault", other, v0, 8200, "", false},
		{"every staging pod is egress-isolated (empty selector)", stagingPod, internet, 443, "", false},
		{"staging reaches Vault", stagingPod, v0, 8200, "", true},
		{"staging reaches DNS", stagingPod, dnsPod, 53, corev1.ProtocolUDP, true},
		{"client in the Vault namespace reaches Vault", backup, v0, 8200, "", true},
		{"client in the Vault namespace gets no egress policy", backup, internet, 443, "", true},
		{"Vault servers are never egress-isolated", v0, internet, 443, "", true},
		{"API server (in 10.0.0.0/24) reaches the webhook", apiServer, inj, 8080, "", true},
		{"API server (172.16.5.4/32) reaches the webhook", Endpoint{IP: "172.16.5.4"}, inj, 8080, "", true},
		{"neighbouring address does not", Endpoint{IP: "172.16.5.5"}, inj, 8080, "", false},
		{"the internet does not", internet, inj, 8080, "", false},
		{"a pod without a matching IP does not", pod("dev", "10.9.0.1"), inj, 8080, "", false},
	})
}
