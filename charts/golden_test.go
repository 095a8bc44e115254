package charts

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/vaultctl/vaultctl/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the current chart")

// testCA stands for vaultctl's CA certificate; rendering never parses it.
const testCA = "-----BEGIN CERTIFICATE-----\nMIIBtestCAforGoldenFilesOnly\n-----END CERTIFICATE-----\n"

func baseConfig(mod func(*config.Config)) *config.Config {
	c := &config.Config{APIVersion: config.APIVersion, Kind: config.Kind}
	c.Vault.Seal.AWSKMS = config.AWSKMS{Region: "us-east-1", KMSKeyID: "alias/vault-unseal-key"}
	if mod != nil {
		mod(c)
	}
	config.ApplyDefaults(c)
	return c
}

type goldenRelease struct {
	name string
	vals map[string]any
}

// goldenCases are the releases vaultctl installs for three configs.
func goldenCases() map[string][]goldenRelease {
	def := baseConfig(nil)
	big := baseConfig(func(c *config.Config) {
		c.Vault.Namespace = "secrets"
		c.Vault.Replicas = 5
		c.Vault.Seal.AWSKMS.Region = "eu-west-1"
		c.Vault.Seal.AWSKMS.Endpoint = "https://vpce-0a1b2c3d.kms.eu-west-1.vpce.amazonaws.com"
		c.Vault.Seal.AWSKMS.IRSARoleARN = "arn:aws:iam::123456789012:role/vault-unseal"
		c.Vault.Images = config.Images{
			Vault:    "registry.internal:5000/mirror/vault:1.21.1",
			Injector: "registry.internal:5000/mirror/vault-k8s@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			Agent:    "registry.internal:5000/mirror/vault:1.21.1",
		}
		c.Vault.Resources = config.Resources{CPU: "500m", Memory: "1Gi"}
		c.Vault.Storage = config.Storage{DataSize: "20Gi", AuditSize: "5Gi", StorageClass: "gp3"}
		c.Vault.TLS.SecretName = "vault-tls"
		c.Injector.Replicas = 3
		c.Injector.FailurePolicy = "Fail"
		c.KubernetesAuth.Path = "k8s-prod"
	})
	ext := baseConfig(func(c *config.Config) {
		c.Vault.Mode = config.ModeExternal
		c.Vault.Address = "https://vault.example.com:8200"
		c.Injector.Replicas = 1
	})
	return map[string][]goldenRelease{
		"in-cluster-default": {
			{ServerRelease, ServerValues(def)},
			{InjectorRelease, InjectorValues(def, []byte(testCA))},
		},
		"in-cluster-5-replicas-irsa": {
			{ServerRelease, ServerValues(big)},
			{InjectorRelease, InjectorValues(big, []byte(testCA))},
		},
		"external-injector-only": {
			{InjectorRelease, InjectorValues(ext, []byte(testCA))},
		},
	}
}

func renderCase(t *testing.T, ns string, rels []goldenRelease) string {
	t.Helper()
	var out strings.Builder
	for _, r := range rels {
		m, err := Render(r.name, ns, r.vals)
		if err != nil {
			t.Fatalf("render %s: %v", r.name, err)
		}
		fmt.Fprintf(&out, "# release %s in namespace %s\n%s", r.name, ns, m)
	}
	return out.String()
}

func TestGolden(t *testing.T) {
	nsOf := map[string]string{"in-cluster-default": "vault", "in-cluster-5-replicas-irsa": "secrets", "external-injector-only": "vault"}
	for name, rels := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			got := renderCase(t, nsOf[name], rels)
			path := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./charts -run TestGolden -update` to create it)", err)
			}
			if got != string(want) {
				t.Errorf("rendered chart differs from %s; if the change is intended, run `go test ./charts -run TestGolden -update`\n%s",
					path, firstDiff(string(want), got))
			}
			checkObjects(t, got)
		})
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  want: %q\n  got:  %q", i+1, w, g)
		}
	}
	return "(same lines, different length)"
}

// docs splits a manifest into its YAML documents.
func docs(manifest string) []string {
	var out []string
	for _, d := range strings.Split(manifest, "\n---") {
		if strings.Contains(d, "kind:") {
			out = append(out, d)
		}
	}
	return out
}

// checkObjects decodes every object strictly into its Kubernetes type: a misspelt or
// misplaced field fails here, not at install time.
func checkObjects(t *testing.T, manifest string) {
	t.Helper()
	for _, d := range docs(manifest) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(d), &meta); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, d)
		}
		var obj any
		switch meta.Kind {
		case "StatefulSet":
			obj = &appsv1.StatefulSet{}
		case "Deployment":
			obj = &appsv1.Deployment{}
		case "Service":
			obj = &corev1.Service{}
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "Role":
			obj = &rbacv1.Role{}
		case "RoleBinding":
			obj = &rbacv1.RoleBinding{}
		case "ClusterRole":
			obj = &rbacv1.ClusterRole{}
		case "ClusterRoleBinding":
			obj = &rbacv1.ClusterRoleBinding{}
		case "MutatingWebhookConfiguration":
			obj = &admissionv1.MutatingWebhookConfiguration{}
		default:
			t.Fatalf("unexpected kind %q", meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(d), obj); err != nil {
			t.Errorf("%s does not decode strictly: %v", meta.Kind, err)
		}
	}
}

// objects returns the rendered objects of one kind, decoded.
func objects[T any](t *testing.T, manifest, kind string) []*T {
	t.Helper()
	var out []*T
	for _, d := range docs(manifest) {
		var meta struct{ Kind string }
		_ = yaml.Unmarshal([]byte(d), &meta)
		if meta.Kind != kind {
			continue
		}
		o := new(T)
		if err := yaml.Unmarshal([]byte(d), o); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

func TestServerInvariants(t *testing.T) {
	cfg := baseConfig(func(c *config.Config) { c.Vault.Replicas = 5 })
	m, err := Render(ServerRelease, "vault", ServerValues(cfg))
	if err != nil {
		t.Fatal(err)
	}
	sts := objects[appsv1.StatefulSet](t, m, "StatefulSet")
	if len(sts) != 1 {
		t.Fatalf("want 1 StatefulSet, got %d", len(sts))
	}
	s := sts[0]
	if s.Name != "vault" || *s.Spec.Replicas != 5 || s.Spec.ServiceName != "vault-internal" {
		t.Errorf("StatefulSet %s replicas %d service %s", s.Name, *s.Spec.Replicas, s.Spec.ServiceName)
	}
	if s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement || s.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType {
		t.Errorf("want Parallel + OnDelete, got %s + %s", s.Spec.PodManagementPolicy, s.Spec.UpdateStrategy.Type)
	}
	pod := s.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod must run as non-root")
	}
	if a := pod.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 ||
		a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("want preferred anti-affinity by hostname, got %+v", pod.Affinity)
	}
	c := pod.Containers[0]
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS ||
		!strings.Contains(p.HTTPGet.Path, "uninitcode=204") || !strings.Contains(p.HTTPGet.Path, "sealedcode=204") {
		t.Errorf("readiness probe must pass while sealed/uninitialized over HTTPS: %+v", c.ReadinessProbe)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if env["VAULT_API_ADDR"].Value != "https://$(POD_NAME).vault-internal:8200" || env["VAULT_CLUSTER_ADDR"].Value != "https://$(POD_NAME).vault-internal:8201" {
		t.Errorf("api/cluster addr: %q %q", env["VAULT_API_ADDR"].Value, env["VAULT_CLUSTER_ADDR"].Value)
	}
	if env["VAULT_RAFT_NODE_ID"].ValueFrom == nil || env["VAULT_K8S_POD_NAME"].ValueFrom == nil || env["VAULT_K8S_NAMESPACE"].ValueFrom == nil {
		t.Error("node id and service registration need the pod name and namespace from the downward API")
	}
	if len(s.Spec.VolumeClaimTemplates) != 2 || s.Spec.VolumeClaimTemplates[0].Spec.StorageClassName != nil {
		t.Errorf("want data+audit claims without a storage class, got %+v", s.Spec.VolumeClaimTemplates)
	}
	var tlsVol *corev1.Volume
	for i, v := range pod.Volumes {
		if v.Name == "tls" {
			tlsVol = &pod.Volumes[i]
		}
	}
	if tlsVol == nil || tlsVol.Secret == nil || tlsVol.Secret.SecretName != "vault-server-tls" {
		t.Errorf("TLS must be mounted from the Secret: %+v", tlsVol)
	}

	for _, svc := range objects[corev1.Service](t, m, "Service") {
		if svc.Name == "vault-internal" && (svc.Spec.ClusterIP != "None" || !svc.Spec.PublishNotReadyAddresses) {
			t.Errorf("vault-internal must be headless and publish not-ready addresses: %+v", svc.Spec)
		}
	}
	pdb := objects[policyv1.PodDisruptionBudget](t, m, "PodDisruptionBudget")
	if len(pdb) != 1 || pdb[0].Spec.MaxUnavailable.IntValue() != 2 {
		t.Errorf("5 voters tolerate 2 down: %+v", pdb)
	}
	if len(objects[appsv1.Deployment](t, m, "Deployment")) != 0 {
		t.Error("the server release must not contain the injector")
	}
	var role *rbacv1.Role
	for _, r := range objects[rbacv1.Role](t, m, "Role") {
		role = r
	}
	if role == nil || !strings.Contains(fmt.Sprint(role.Rules[0].Verbs), "patch") {
		t.Errorf("Vault's ServiceAccount must patch its pods: %+v", role)
	}
	crb := objects[rbacv1.ClusterRoleBinding](t, m, "ClusterRoleBinding")
	if len(crb) != 1 || crb[0].RoleRef.Name != "system:auth-delegator" {
		t.Errorf("want system:auth-delegator binding, got %+v", crb)
	}
}

func TestInjectorRelease(t *testing.T) {
	cfg := baseConfig(func(c *config.Config) { c.Injector.FailurePolicy = "Fail"; c.KubernetesAuth.Path = "/k8s-a/" })
	m, err := Render(InjectorRelease, "vault", InjectorValues(cfg, []byte(testCA)))
	if err != nil {
		t.Fatal(err)
	}
	if len(objects[appsv1.StatefulSet](t, m, "StatefulSet")) != 0 || len(objects[corev1.ConfigMap](t, m, "ConfigMap")) != 0 {
		t.Error("the injector release must not contain the server")
	}
	wh := objects[admissionv1.MutatingWebhookConfiguration](t, m, "MutatingWebhookConfiguration")
	if len(wh) != 1 || *wh[0].Webhooks[0].FailurePolicy != admissionv1.Fail {
		t.Fatalf("failurePolicy: %+v", wh)
	}
	dep := objects[appsv1.Deployment](t, m, "Deployment")[0]
	env := map[string]string{}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["AGENT_INJECT_VAULT_AUTH_PATH"] != "auth/k8s-a" || env["AGENT_INJECT_VAULT_CACERT_BYTES"] != testCA ||
		env["AGENT_INJECT_VAULT_ADDR"] != "https://vault.vault.svc:8200" {
		t.Errorf("injector env: %v", env)
	}

	// An invalid policy is refused by the chart itself.
	bad := InjectorValues(cfg, nil)
	bad["injector"].(map[string]any)["webhook"] = map[string]any{"failurePolicy": "Maybe"}
	if _, err := Render(InjectorRelease, "vault", bad); err == nil || !strings.Contains(err.Error(), "Ignore or Fail") {
		t.Errorf("want a failurePolicy error, got %v", err)
	}
}

// injector.namespaceLabels narrows the webhook to the labelled namespaces, keeping the chart's
// exclusion of the control plane's.
func TestInjectorNamespaceLabels(t *testing.T) {
	cfg := baseConfig(func(c *config.Config) {
		c.Injector.NamespaceLabels = map[string]string{"vault.example.com/injection": "team-a"}
	})
	m, err := Render(InjectorRelease, "vault", InjectorValues(cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	sel := objects[admissionv1.MutatingWebhookConfiguration](t, m, "MutatingWebhookConfiguration")[0].Webhooks[0].NamespaceSelector
	if sel == nil || sel.MatchLabels["vault.example.com/injection"] != "team-a" || len(sel.MatchExpressions) != 1 || sel.MatchExpressions[0].Values[0] != "kube-system" {
		t.Fatalf("namespaceSelector = %+v", sel)
	}
}

func TestExternalModeInstallsNoServer(t *testing.T) {
	cfg := baseConfig(func(c *config.Config) { c.Vault.Mode = config.ModeExternal; c.Vault.Address = "https://v.example:8200" })
	m, err := Render(ServerRelease, "vault", ServerValues(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs(m)) != 0 {
		t.Errorf("external mode rendered objects:\n%s", m)
	}
}

func TestValuesDeterministicAndSecretFree(t *testing.T) {
	cfg := baseConfig(func(c *config.Config) { c.Vault.Seal.AWSKMS.IRSARoleARN = "arn:aws:iam::1:role/r" })
	a, b := Values(cfg, []byte(testCA)), Values(cfg, []byte(testCA))
	if !reflect.DeepEqual(a, b) {
		t.Fatal("Values is not deterministic")
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Fatal("Values JSON is not deterministic")
	}
	for _, bad := range []string{"PRIVATE KEY", "access_key", "secret_key", "AWS_SECRET"} {
		if bytes.Contains(ja, []byte(bad)) {
			t.Errorf("values contain %q", bad)
		}
	}
	m, err := Render("all", "vault", a)
	if err != nil {
		t.Fatal(err)
	}
	if len(objects[appsv1.StatefulSet](t, m, "StatefulSet")) != 1 || len(objects[appsv1.Deployment](t, m, "Deployment")) != 1 {
		t.Error("Values renders both the server and the injector")
	}
}

func TestConfigHashFollowsHCL(t *testing.T) {
	hash := func(c *config.Config) string {
		m, err := Render(ServerRelease, "vault", ServerValues(c))
		if err != nil {
			t.Fatal(err)
		}
		return objects[appsv1.StatefulSet](t, m, "StatefulSet")[0].Spec.Template.Annotations[ConfigHashAnnotation]
	}
	a := hash(baseConfig(nil))
	b := hash(baseConfig(func(c *config.Config) { c.Vault.Seal.AWSKMS.Endpoint = "http://127.0.0.1:4599" }))
	if a == "" || a == b {
		t.Errorf("config hash must change with the HCL: %q %q", a, b)
	}
	if a != hash(baseConfig(nil)) {
		t.Error("config hash is not stable")
	}
}

func TestServerHCLParses(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		cfg := baseConfig(func(c *config.Config) {
			c.Vault.Replicas = n
			c.Vault.Seal.AWSKMS.Endpoint = `http://127.0.0.1:4599/"odd"`
		})
		text := ServerHCL(cfg)
		f, err := hcl.Parse(text)
		if err != nil {
			t.Fatalf("replicas %d: HCL does not parse: %v\n%s", n, err, text)
		}
		root := f.Node.(*ast.ObjectList)
		raft := root.Filter("storage", "raft").Items
		if len(raft) != 1 {
			t.Fatalf("want one storage \"raft\" block, got %d", len(raft))
		}
		body := raft[0].Val.(*ast.ObjectType).List
		if v := attrs(t, body); v["path"] != DataDir || v["performance_multiplier"] != "1" {
			t.Errorf("raft attributes: %v", v)
		}
		joins := body.Filter("retry_join").Items
		if len(joins) != n {
			t.Fatalf("want %d retry_join blocks, got %d", n, len(joins))
		}
		for i, j := range joins {
			v := attrs(t, j.Val.(*ast.ObjectType).List)
			if v["leader_api_addr"] != fmt.Sprintf("https://vault-%d.vault-internal:8200", i) || v["leader_tls_servername"] != InternalHost(i) || v["leader_ca_cert_file"] != TLSDir+"/ca.crt" {
				t.Errorf("retry_join %d: %v", i, v)
			}
		}
		seals := root.Filter("seal", "awskms").Items
		if len(seals) != 1 {
			t.Fatalf("want one seal \"awskms\" block, got %d", len(seals))
		}
		seal := attrs(t, seals[0].Val.(*ast.ObjectType).List)
		if seal["region"] != "us-east-1" || seal["kms_key_id"] != "alias/vault-unseal-key" || seal["endpoint"] != `http://127.0.0.1:4599/"odd"` {
			t.Errorf("seal: %v", seal)
		}
		for _, forbidden := range []string{"access_key", "secret_key", "session_token"} {
			if _, ok := seal[forbidden]; ok {
				t.Errorf("seal stanza holds %s", forbidden)
			}
		}
		for _, block := range []string{"listener", "service_registration"} {
			if root.Filter(block).Items == nil {
				t.Errorf("no %s block", block)
			}
		}
	}
}

func TestSplitImage(t *testing.T) {
	for ref, want := range map[string][3]string{
		"hashicorp/vault:1.21.1":                   {"hashicorp/vault", "1.21.1", ""},
		"hashicorp/vault":                          {"hashicorp/vault", "latest", ""},
		"reg:5000/vault":                           {"reg:5000/vault", "latest", ""},
		"reg:5000/vault:1.2":                       {"reg:5000/vault", "1.2", ""},
		"reg:5000/vault@sha256:abc":                {"reg:5000/vault", "", "sha256:abc"},
		"reg:5000/vault:1.2@sha256:abc":            {"reg:5000/vault", "1.2", "sha256:abc"},
		"public.ecr.aws/hashicorp/vault-k8s:1.7.0": {"public.ecr.aws/hashicorp/vault-k8s", "1.7.0", ""},
	} {
		r, tg, d := SplitImage(ref)
		if [3]string{r, tg, d} != want {
			t.Errorf("SplitImage(%q) = %q %q %q, want %v", ref, r, tg, d, want)
		}
	}
}

// attrs returns the literal attributes of an HCL object body, unquoted.
func attrs(t *testing.T, l *ast.ObjectList) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, it := range l.Items {
		lit, ok := it.Val.(*ast.LiteralType)
		if !ok || len(it.Keys) != 1 {
			continue
		}
		var v any
		if err := hcl.DecodeObject(&v, lit); err != nil {
			t.Fatal(err)
		}
		out[it.Keys[0].Token.Text] = fmt.Sprint(v)
	}
	return out
}
