package charts

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vaultctl/vaultctl/config"
)

// Fixed layout of the server pods, shared by the chart, the HCL and the TLS certificate.
const (
	// FullName is the base name of every object (fullnameOverride): StatefulSet "vault", pods
	// "vault-N", Services "vault", "vault-active", "vault-standby", "vault-internal".
	FullName = "vault"
	// ConfigMapName and ConfigKey hold the server HCL, read by every pod at start.
	ConfigMapName = FullName + "-config"
	ConfigKey     = "vault.hcl"
	// TLSDir is where the server certificate Secret (tls.crt, tls.key, ca.crt) is mounted.
	TLSDir = "/vault/userconfig/tls"
	// DataDir and AuditDir are the mount paths of the two volume claims.
	DataDir  = "/vault/data"
	AuditDir = "/vault/audit"
	// ConfigHashAnnotation on the pod template carries a checksum of the HCL.
	ConfigHashAnnotation = "vaultctl.io/config-hash"
	// IRSAAnnotation on the server ServiceAccount names the IAM role the awskms seal uses.
	IRSAAnnotation = "eks.amazonaws.com/role-arn"
)

// PodName is the name of server replica i.
func PodName(i int) string { return fmt.Sprintf("%s-%d", FullName, i) }

// InternalHost is the name of replica i in the headless Service, as retry_join, api_addr and
// cluster_addr use it (resolved through the pod's DNS search path).
func InternalHost(i int) string { return PodName(i) + "." + FullName + "-internal" }

// ServerSelector selects the server pods.
const ServerSelector = "app.kubernetes.io/name=vault,app.kubernetes.io/instance=" + ServerRelease + ",component=server"

// Values maps the config to the vault chart's values for one release that holds everything
// vaultctl runs: the server (in-cluster mode) and the injector (when enabled). caPEM is the CA
// that signed Vault's certificate, handed to injected agents; it is public. No secret ever
// goes into values. The result is deterministic: the same config gives equal maps.
func Values(cfg *config.Config, caPEM []byte) map[string]any {
	v := ServerValues(cfg)
	inj := InjectorValues(cfg, caPEM)
	v["injector"] = inj["injector"]
	if !cfg.InjectorEnabled() {
		v["injector"] = map[string]any{"enabled": false}
	}
	return v
}

// ServerValues are the values of the server release: the server only (none in external mode),
// injector off.
func ServerValues(cfg *config.Config) map[string]any {
	vc := cfg.Vault
	v := base(cfg)
	if cfg.External() {
		v["server"] = map[string]any{"enabled": false}
		v["injector"] = map[string]any{"enabled": false}
		return v
	}
	repo, tag, digest := SplitImage(vc.Images.Vault)
	server := map[string]any{
		"enabled": true,
		"image":   map[string]any{"repository": repo, "tag": tag, "digest": digest},
		"ha": map[string]any{
			"enabled":  true,
			"replicas": vc.Replicas,
			"raft": map[string]any{
				"enabled":   true,
				"setNodeId": true,
				"config":    ServerHCL(cfg),
			},
		},
		"dataStorage":  volumeClaim(vc.Storage.DataSize, vc.Storage.StorageClass),
		"auditStorage": volumeClaim(vc.Storage.AuditSize, vc.Storage.StorageClass),
		"tls":          map[string]any{"secretName": vc.TLS.SecretName},
	}
	if res := resources(vc.Resources); len(res) > 0 {
		server["resources"] = res
	}
	if arn := vc.Seal.AWSKMS.IRSARoleARN; arn != "" {
		server["serviceAccount"] = map[string]any{"annotations": map[string]any{IRSAAnnotation: arn}}
	}
	v["server"] = server
	v["injector"] = map[string]any{"enabled": false}
	return v
}

// InjectorValues are the values of the injector release: the injector only, pointed at the
// in-cluster Service or, in external mode, at vault.address.
func InjectorValues(cfg *config.Config, caPEM []byte) map[string]any {
	v := base(cfg)
	v["server"] = map[string]any{"enabled": false}
	repo, tag, digest := SplitImage(cfg.Vault.Images.Injector)
	arepo, atag, adigest := SplitImage(cfg.Vault.Images.Agent)
	inj := map[string]any{
		"enabled":    true,
		"replicas":   cfg.Injector.Replicas,
		"image":      map[string]any{"repository": repo, "tag": tag, "digest": digest},
		"agentImage": map[string]any{"repository": arepo, "tag": atag, "digest": adigest},
		"authPath":   "auth/" + strings.Trim(cfg.KubernetesAuth.Path, "/"),
		// webhook.failurePolicy is the key that decides in the official chart too.
		"webhook": injectorWebhook(cfg.Injector),
	}
	if len(caPEM) > 0 {
		inj["vaultCACert"] = string(caPEM)
	}
	v["injector"] = inj
	return v
}

// injectorWebhook is the webhook's values: failurePolicy, and the namespaces it sees (the
// chart's default exclusions, narrowed to injector.namespaceLabels when set).
func injectorWebhook(in config.Injector) map[string]any {
	w := map[string]any{"failurePolicy": in.FailurePolicy}
	if len(in.NamespaceLabels) > 0 {
		labels := map[string]any{}
		for k, v := range in.NamespaceLabels {
			labels[k] = v
		}
		w["namespaceSelector"] = map[string]any{
			"matchLabels": labels,
			"matchExpressions": []any{map[string]any{
				"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": []any{"kube-system", "kube-node-lease"},
			}},
		}
	}
	return w
}

func base(cfg *config.Config) map[string]any {
	ext := ""
	if cfg.External() {
		ext = cfg.Vault.Address
	}
	return map[string]any{
		"fullnameOverride": FullName,
		"global": map[string]any{
			"enabled":           true,
			"tlsDisable":        false,
			"externalVaultAddr": ext,
		},
	}
}

func volumeClaim(size, class string) map[string]any {
	m := map[string]any{"enabled": true, "size": size}
	if class != "" {
		m["storageClass"] = class
	}
	return m
}

// resources: the CPU is a request only (throttling Vault hurts more than sharing a core); the
// memory is request and limit, as the config documents.
func resources(r config.Resources) map[string]any {
	req := map[string]any{}
	lim := map[string]any{}
	if r.CPU != "" {
		req["cpu"] = r.CPU
	}
	if r.Memory != "" {
		req["memory"] = r.Memory
		lim["memory"] = r.Memory
	}
	out := map[string]any{}
	if len(req) > 0 {
		out["requests"] = req
	}
	if len(lim) > 0 {
		out["limits"] = lim
	}
	return out
}

// SplitImage splits an image reference into repository, tag and digest. A reference without
// tag or digest gets "latest", as a container runtime would.
func SplitImage(ref string) (repo, tag, digest string) {
	repo = ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo, digest = repo[:i], repo[i+1:]
	}
	slash := strings.LastIndex(repo, "/")
	if i := strings.LastIndex(repo, ":"); i > slash {
		repo, tag = repo[:i], repo[i+1:]
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	return repo, tag, digest
}

// ServerHCL is the configuration of every server pod. Per-pod settings come from the pod's
// environment (VAULT_API_ADDR, VAULT_CLUSTER_ADDR, VAULT_RAFT_NODE_ID), so one text serves all
// replicas. The seal stanza never holds credentials: they come from IRSA or the environment.
func ServerHCL(cfg *config.Config) string {
	vc := cfg.Vault
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Generated by vaultctl from vaultctl.yaml; changes made here are overwritten.\n")
	w("disable_mlock = true\n")
	w("ui            = true\n\n")

	w("listener \"tcp\" {\n")
	w("  address         = %s\n", hclString("0.0.0.0:8200"))
	w("  cluster_address = %s\n", hclString("0.0.0.0:8201"))
	w("  tls_cert_file   = %s\n", hclString(TLSDir+"/tls.crt"))
	w("  tls_key_file    = %s\n", hclString(TLSDir+"/tls.key"))
	w("  tls_min_version = %s\n", hclString("tls12"))
	w("}\n\n")

	w("storage \"raft\" {\n")
	w("  path = %s\n", hclString(DataDir))
	if m := vc.Raft.PerformanceMultiplier; m > 0 {
		// 0 means Vault's default; writing 0 explicitly breaks init.
		w("  performance_multiplier = %d\n", m)
	}
	for i := range vc.Replicas {
		w("\n  retry_join {\n")
		w("    leader_api_addr       = %s\n", hclString("https://"+InternalHost(i)+":8200"))
		w("    leader_tls_servername = %s\n", hclString(InternalHost(i)))
		w("    leader_ca_cert_file   = %s\n", hclString(TLSDir+"/ca.crt"))
		w("  }\n")
	}
	w("}\n\n")

	k := vc.Seal.AWSKMS
	w("seal \"awskms\" {\n")
	w("  region     = %s\n", hclString(k.Region))
	w("  kms_key_id = %s\n", hclString(k.KMSKeyID))
	if k.Endpoint != "" {
		w("  endpoint   = %s\n", hclString(k.Endpoint))
	}
	w("}\n\n")

	w("service_registration \"kubernetes\" {}\n")
	return b.String()
}

// hclString quotes s as an HCL string literal.
func hclString(s string) string { return strconv.Quote(s) }
