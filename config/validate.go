package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"

	"github.com/vaultctl/vaultctl/internal/textdist"
)

var (
	dnsLabel    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	awsRegion   = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$`)
	kmsKeyUUID  = regexp.MustCompile(`^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`)
	kmsKeyARN   = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/(mrk-[0-9a-f]{32}|[0-9a-f-]{36})|alias/[A-Za-z0-9/_-]+)$`)
	kmsAlias    = regexp.MustCompile(`^alias/[A-Za-z0-9/_-]+$`)
	iamRoleARN  = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$`)
	vaultName   = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	mountPath   = regexp.MustCompile(`^[a-zA-Z0-9_-]+(/[a-zA-Z0-9_-]+)*$`)
	secretTypeR = regexp.MustCompile(`^[a-zA-Z0-9./_-]+$`)
	envVarName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Capabilities Vault understands in a policy.
var knownCapabilities = []string{"create", "read", "update", "patch", "delete", "list", "sudo", "deny", "subscribe", "recover"}

// Gates a migration wave may wait on.
var knownGates = []string{"previous-wave-complete", "check-passing", "injector-healthy", "admission-policy", "dynamic-db-credentials"}

// validation is what validate may consult besides the config.
type validation struct {
	getenv     func(string) string // the environment Load was given, for the vault CLI's VAULT_*
	checkFiles bool                // confirm that the files the config names exist
}

// Variables of the vault CLI that fill in what the config leaves empty (see internal/vault/env.go,
// which decides; validation only checks what they hold).
const (
	envVaultAddr   = "VAULT_ADDR"
	envVaultCACert = "VAULT_CACERT"
)

// validate checks meaning after the structure is known to be right. It never stops at the first
// problem. Warnings are for choices that work but that a platform engineer should look at twice.
func validate(c *Config, ps *problems, vc validation) {
	if vc.getenv == nil {
		vc.getenv = func(string) string { return "" }
	}
	if c.APIVersion != APIVersion {
		ps.errorf("apiVersion", "must be %s, got %q", APIVersion, c.APIVersion)
	}
	if c.Kind != Kind {
		ps.errorf("kind", "must be %s, got %q", Kind, c.Kind)
	}
	validateVault(c, ps, vc)
	validateInjector(c, ps)
	validateAuth(c, ps)
	kvMounts := validateKV(c, ps)
	policies := validatePolicies(c, kvMounts, ps)
	if vc.checkFiles {
		validateFiles(c, ps, vc)
	}
	validateRoles(c, policies, ps)
	validateNetwork(c, ps)
	validateAudit(c, ps)
	validateDatabases(c, ps)
	validateDatabaseTTLs(c, ps)
	validateMigration(c, kvMounts, ps)
	for i, t := range c.Check.AllowSecretTypes {
		if !secretTypeR.MatchString(t) {
			ps.errorf(fmt.Sprintf("check.allowSecretTypes[%d]", i), "%q is not a Secret type such as kubernetes.io/tls", t)
		}
	}
	for i, g := range c.Check.RequiredNamespaces {
		if _, err := path.Match(g, "x"); err != nil {
			ps.errorf(fmt.Sprintf("check.requiredNamespaces[%d]", i), "bad glob %q: %v", g, err)
		}
	}
}

func validateVault(c *Config, ps *problems, vc validation) {
	v := c.Vault
	switch v.Mode {
	case ModeInCluster:
		if v.Replicas < 1 {
			ps.errorf("vault.replicas", "must be at least 1, got %d", v.Replicas)
		} else if v.Replicas%2 == 0 {
			ps.errorf("vault.replicas", "must be odd so Raft keeps a quorum through a failure (3 or 5), got %d", v.Replicas)
		} else if v.Replicas < 3 {
			ps.warnf("vault.replicas", "%d replica gives no high availability; use 3 or 5", v.Replicas)
		}
	case ModeExternal:
		if v.Address != "" {
			break
		}
		// As with the vault CLI, VAULT_ADDR fills in an empty vault.address.
		if env := strings.TrimSpace(vc.getenv(envVaultAddr)); env != "" {
			errMsg, warnMsg := urlCheck(env, "vault.address")
			from := "env " + envVaultAddr
			if errMsg != "" {
				ps.errs = append(ps.errs, Problem{Source: from, Path: "vault.address", Message: errMsg})
			}
			if warnMsg != "" {
				ps.warn = append(ps.warn, Problem{Source: from, Path: "vault.address", Message: warnMsg})
			}
			break
		}
		ps.errorf("vault.address", "is required when vault.mode is external: set it here, or export %s as for the vault CLI (e.g. https://vault.example.com:8200)", envVaultAddr)
	default:
		ps.errorf("vault.mode", "must be in-cluster or external, got %q", v.Mode)
	}
	if v.Address != "" {
		checkURL(ps, "vault.address", v.Address)
	}
	if !dnsLabel.MatchString(v.Namespace) || len(v.Namespace) > 63 {
		ps.errorf("vault.namespace", "must be a Kubernetes namespace name (lowercase letters, digits, '-'), got %q", v.Namespace)
	}
	if v.Seal.Type != "awskms" {
		ps.errorf("vault.seal.type", "only awskms is supported, got %q", v.Seal.Type)
	}
	k := v.Seal.AWSKMS
	if k.Region == "" {
		ps.errorf("vault.seal.awskms.region", "is required (e.g. us-east-1)")
	} else if !awsRegion.MatchString(k.Region) {
		ps.errorf("vault.seal.awskms.region", "must be an AWS region such as us-east-1, got %q", k.Region)
	}
	switch {
	case k.KMSKeyID == "":
		ps.errorf("vault.seal.awskms.kmsKeyId", "is required: a key ID, ARN or alias/NAME")
	case !kmsKeyUUID.MatchString(k.KMSKeyID) && !kmsKeyARN.MatchString(k.KMSKeyID) && !kmsAlias.MatchString(k.KMSKeyID):
		ps.errorf("vault.seal.awskms.kmsKeyId", "must be a key ID, ARN or alias/..., got %q", k.KMSKeyID)
	case k.CreateKey && !strings.HasPrefix(k.KMSKeyID, "alias/"):
		ps.errorf("vault.seal.awskms.kmsKeyId", "must be an alias/NAME when createKey is true, so the created key can be found again")
	}
	if k.Endpoint != "" {
		checkURL(ps, "vault.seal.awskms.endpoint", k.Endpoint)
	}
	if k.IRSARoleARN != "" && !iamRoleARN.MatchString(k.IRSARoleARN) {
		ps.errorf("vault.seal.awskms.irsaRoleArn", "must be an IAM role ARN such as arn:aws:iam::123456789012:role/vault-unseal, got %q", k.IRSARoleARN)
	}
	switch v.TLS.Mode {
	case "generate":
	case "secret":
		if v.TLS.SecretName == "" {
			ps.errorf("vault.tls.secretName", "is required when vault.tls.mode is secret")
		}
	case "cert-manager":
		if kind, name, ok := strings.Cut(v.TLS.CertManagerIssuer, "/"); !ok || (kind != "Issuer" && kind != "ClusterIssuer") || name == "" {
			ps.errorf("vault.tls.certManagerIssuer", "must be Issuer/NAME or ClusterIssuer/NAME when vault.tls.mode is cert-manager, got %q", v.TLS.CertManagerIssuer)
		}
	default:
		ps.errorf("vault.tls.mode", "must be generate, secret or cert-manager, got %q", v.TLS.Mode)
	}
	for i, san := range v.TLS.ExtraSANs {
		if net.ParseIP(san) == nil && !validDNSName(san) {
			ps.errorf(fmt.Sprintf("vault.tls.extraSANs[%d]", i), "%q is neither an IP address nor a DNS name", san)
		}
	}
	in := v.Init
	if in.RecoveryShares < 1 || in.RecoveryShares > 255 {
		ps.errorf("vault.init.recoveryShares", "must be between 1 and 255, got %d", in.RecoveryShares)
	}
	if in.RecoveryThreshold < 1 || in.RecoveryThreshold > in.RecoveryShares {
		ps.errorf("vault.init.recoveryThreshold", "must be between 1 and recoveryShares (%d), got %d", in.RecoveryShares, in.RecoveryThreshold)
	}
	if len(in.PGPKeys) > 0 && len(in.PGPKeys) != in.RecoveryShares {
		ps.errorf("vault.init.pgpKeys", "needs one key per recovery share: %d keys for %d shares", len(in.PGPKeys), in.RecoveryShares)
	}
	if in.KeepRootToken {
		ps.warnf("vault.init.keepRootToken", "a live root token is a standing risk; leave it false and use the vaultctl-admin role")
	}
}

func validateInjector(c *Config, ps *problems) {
	if p := c.Injector.FailurePolicy; p != "Ignore" && p != "Fail" {
		ps.errorf("injector.failurePolicy", "must be Ignore or Fail, got %q", p)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Injector.NamespaceLabels)) {
		v := c.Injector.NamespaceLabels[k]
		if errs := k8svalidation.IsQualifiedName(k); len(errs) > 0 {
			ps.errorf("injector.namespaceLabels", "%q is not a label key: %s", k, strings.Join(errs, "; "))
		}
		if errs := k8svalidation.IsValidLabelValue(v); len(errs) > 0 {
			ps.errorf("injector.namespaceLabels."+k, "%q is not a label value: %s", v, strings.Join(errs, "; "))
		}
	}
	if c.Injector.Replicas < 1 {
		ps.errorf("injector.replicas", "must be at least 1, got %d", c.Injector.Replicas)
	}
}

func validateAuth(c *Config, ps *problems) {
	a := c.KubernetesAuth
	if !mountPath.MatchString(a.Path) {
		ps.errorf("kubernetesAuth.path", "must be a mount path without leading or trailing '/', e.g. kubernetes or k8s-prod, got %q", a.Path)
	}
	if a.Host != "" {
		checkURL(ps, "kubernetesAuth.host", a.Host)
	}
	if a.TokenReviewer != ReviewerJWT && a.TokenReviewer != ClientJWT {
		ps.errorf("kubernetesAuth.tokenReviewer", "must be %s or %s, got %q", ReviewerJWT, ClientJWT, a.TokenReviewer)
	}
}

// validateKV returns the mount paths, which policies need to tell KV paths from others.
func validateKV(c *Config, ps *problems) []string {
	var mounts []string
	for i, m := range c.KV {
		p := fmt.Sprintf("kv[%d].path", i)
		switch {
		case !mountPath.MatchString(m.Path):
			ps.errorf(p, "must be a mount path without leading or trailing '/', got %q", m.Path)
		case slices.Contains(mounts, m.Path):
			ps.errorf(p, "mount %q is listed twice", m.Path)
		case m.Path == "sys" || m.Path == "auth" || m.Path == "identity" || m.Path == "cubbyhole":
			ps.errorf(p, "%q is reserved by Vault", m.Path)
		}
		mounts = append(mounts, m.Path)
	}
	return mounts
}

// KVMountOf returns the KV v2 mount a logical path lives on, or "" when it is not on one.
func KVMountOf(mounts []string, logical string) string {
	best := ""
	for _, m := range mounts {
		if (logical == m || strings.HasPrefix(logical, m+"/")) && len(m) > len(best) {
			best = m
		}
	}
	return best
}

func validatePolicies(c *Config, kvMounts []string, ps *problems) map[string]bool {
	names := map[string]bool{}
	for i, p := range c.Policies {
		base := fmt.Sprintf("policies[%d]", i)
		switch {
		case p.Name == "":
			ps.errorf(base+".name", "is required")
		case !vaultName.MatchString(p.Name):
			ps.errorf(base+".name", "must be letters, digits, '-', '_' or '.', got %q", p.Name)
		case p.Name == "root" || p.Name == "default":
			ps.errorf(base+".name", "%q is built into Vault and cannot be managed", p.Name)
		case names[p.Name]:
			ps.errorf(base+".name", "policy %q is defined twice", p.Name)
		}
		names[p.Name] = true
		if len(p.Rules) == 0 {
			ps.errorf(base+".rules", "needs at least one rule")
		}
		for j, r := range p.Rules {
			rp := fmt.Sprintf("%s.rules[%d]", base, j)
			if r.Path == "" || strings.HasPrefix(r.Path, "/") {
				ps.errorf(rp+".path", "must be a path without a leading '/', got %q", r.Path)
				continue
			}
			if m := KVMountOf(kvMounts, r.Path); m != "" {
				rest := strings.TrimPrefix(r.Path, m+"/")
				if first, _, _ := strings.Cut(rest, "/"); first == "data" || first == "metadata" {
					ps.errorf(rp+".path", "write the logical KV path %s/%s; vaultctl adds data/ and metadata/ for KV v2",
						m, strings.TrimPrefix(strings.TrimPrefix(rest, first), "/"))
				}
			} else {
				checkRuleMount(c, kvMounts, ps, rp+".path", r.Path)
			}
			if len(r.Capabilities) == 0 {
				ps.errorf(rp+".capabilities", "needs at least one capability")
			}
			for k, capability := range r.Capabilities {
				if !slices.Contains(knownCapabilities, capability) {
					ps.errorf(fmt.Sprintf("%s.capabilities[%d]", rp, k), "unknown capability %q; use one of %s", capability, strings.Join(knownCapabilities, ", "))
				}
			}
			if slices.Contains(r.Capabilities, "deny") && len(r.Capabilities) > 1 {
				ps.errorf(rp+".capabilities", "deny overrides every other capability; list it alone")
			}
			if strings.Contains(r.Path, "*") || strings.Contains(r.Path, "+") {
				ps.warnf(rp+".path", "wildcard grant %q reaches paths nobody reviewed; prefer exact paths", r.Path)
			}
			for _, risky := range []string{"list", "sudo"} {
				if slices.Contains(r.Capabilities, risky) {
					ps.warnf(rp+".capabilities", "%q lets a compromised pod %s; grant it only where needed", risky, map[string]string{"list": "enumerate secrets", "sudo": "reach root-protected endpoints"}[risky])
				}
			}
		}
	}
	return names
}

// Mounts every Vault has; a policy may grant on them without the config listing them.
var builtinMounts = []string{"sys", "auth", "identity", "cubbyhole"}

// checkRuleMount looks at a policy path that is on none of the config's KV mounts. vaultctl
// writes such a path into the policy as it is; on a KV v2 mount that grants nothing (the data
// lives under data/), so a path that looks meant for KV is an error, any other a warning.
func checkRuleMount(c *Config, kvMounts []string, ps *problems, key, p string) {
	first, _, _ := strings.Cut(p, "/")
	if first == "" || strings.ContainsAny(first, "*+") || slices.Contains(builtinMounts, first) {
		return
	}
	for _, d := range c.Databases {
		if p == d.Mount || strings.HasPrefix(p, d.Mount+"/") {
			return
		}
	}
	listed := "kv lists " + strings.Join(kvMounts, ", ")
	if len(kvMounts) == 0 {
		listed = "kv lists none"
	}
	near := ""
	for _, m := range kvMounts {
		if textdist.Levenshtein(first, m) <= 2 {
			near = m
			break
		}
	}
	switch {
	case near != "":
		ps.errorf(key, "%q is not a KV mount vaultctl knows (%s): did you mean %s/%s?", first, listed, near, strings.TrimPrefix(p, first+"/"))
	case first == "kv" || strings.HasPrefix(first, "kv-") || strings.HasSuffix(first, "-kv"):
		ps.errorf(key, "no KV mount %q is configured (%s), so this rule would be written as is and grant nothing on a KV v2 mount: add `- path: %s` under kv (vaultctl enables it and writes %s/data/...), or use a listed mount", first, listed, first, first)
	default:
		ps.warnf(key, "%q is not a mount vaultctl manages (%s; databases use their mount), so the path is written to the policy as is; if it is a KV v2 mount, list it under kv so vaultctl adds data/ and metadata/", first, listed)
	}
}

func validateRoles(c *Config, policies map[string]bool, ps *problems) {
	seen := map[string]bool{}
	for i, r := range c.Roles {
		base := fmt.Sprintf("roles[%d]", i)
		switch {
		case r.Name == "":
			ps.errorf(base+".name", "is required")
		case !vaultName.MatchString(r.Name):
			ps.errorf(base+".name", "must be letters, digits, '-', '_' or '.', got %q", r.Name)
		case seen[r.Name]:
			ps.errorf(base+".name", "role %q is defined twice", r.Name)
		}
		seen[r.Name] = true
		checkBindings(ps, base+".serviceAccounts", r.ServiceAccounts, r.AllowWildcard)
		checkBindings(ps, base+".namespaces", r.Namespaces, r.AllowWildcard)
		if len(r.Policies) == 0 {
			ps.errorf(base+".policies", "needs at least one policy")
		}
		for j, p := range r.Policies {
			if p != "default" && !policies[p] {
				ps.errorf(fmt.Sprintf("%s.policies[%d]", base, j), "policy %q is not defined under policies", p)
			}
		}
		if r.TTL.Duration <= 0 {
			ps.errorf(base+".ttl", "is required and must be positive, e.g. 1h")
		}
		if r.MaxTTL.Duration <= 0 {
			ps.errorf(base+".maxTTL", "is required and must be positive, e.g. 4h")
		} else if r.MaxTTL.Duration < r.TTL.Duration {
			ps.errorf(base+".maxTTL", "must be at least ttl (%s), got %s", r.TTL, r.MaxTTL)
		}
		if r.Audience != "" && c.KubernetesAuth.TokenReviewer == ClientJWT {
			ps.warnf(base+".audience", "with tokenReviewer client-jwt the API server must accept audience %q, or every login fails", r.Audience)
		}
	}
}

func checkBindings(ps *problems, p string, values []string, allowWildcard bool) {
	if len(values) == 0 {
		ps.errorf(p, "needs at least one name")
	}
	for j, v := range values {
		switch {
		case v == "*" || strings.Contains(v, "*"):
			if !allowWildcard {
				ps.errorf(fmt.Sprintf("%s[%d]", p, j), "wildcard %q binds every match; set allowWildcard: true on the role if you mean it", v)
			}
		case !dnsLabel.MatchString(v) && !validDNSName(v):
			ps.errorf(fmt.Sprintf("%s[%d]", p, j), "%q is not a valid Kubernetes name", v)
		}
	}
}

func validateNetwork(c *Config, ps *problems) {
	n := c.NetworkPolicies
	if n.Enabled && len(n.AllowedClients) == 0 {
		ps.errorf("networkPolicies.allowedClients", "is empty while networkPolicies.enabled is true: nothing could reach Vault")
	}
	switch {
	case !n.Enabled && len(n.AllowedClients) > 0:
		ps.warnf("networkPolicies.enabled", "is false (the default), so no NetworkPolicies are installed and allowedClients limits nothing; set networkPolicies.enabled: true, or remove allowedClients")
	case n.Enabled && len(n.AllowedClients) > 0 && c.External():
		// networkpolicy.Build: in external mode there is no server policy to admit them, and
		// app egress (which names Vault by its pods) is not built, whatever appEgress says.
		ps.warnf("networkPolicies.allowedClients", "change nothing in external mode: no Vault pod runs in the cluster for a policy to admit them, and appEgress is not applied in external mode either (only the Vault namespace's default-deny and the injector webhook policy are installed); remove allowedClients, and limit who reaches Vault with the firewall of the network where it runs")
	}
	for i, a := range n.AllowedClients {
		if !dnsLabel.MatchString(a.Namespace) {
			ps.errorf(fmt.Sprintf("networkPolicies.allowedClients[%d].namespace", i), "must be a namespace name, got %q", a.Namespace)
		}
	}
	for i, cidr := range n.APIServerCIDRs {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			ps.errorf(fmt.Sprintf("networkPolicies.apiServerCIDRs[%d]", i), "must be a CIDR such as 10.0.0.0/16, got %q", cidr)
		}
	}
}

func validateAudit(c *Config, ps *problems) {
	a := c.Audit
	if len(a.Devices) < 2 && !a.AllowSingleDevice {
		ps.errorf("audit.devices", "has %d device(s); configure at least two, because Vault blocks every request when all audit devices fail (or set audit.allowSingleDevice: true)", len(a.Devices))
	}
	seen := map[string]bool{}
	for i, d := range a.Devices {
		base := fmt.Sprintf("audit.devices[%d]", i)
		if !mountPath.MatchString(d.Path) {
			ps.errorf(base+".path", "must be a device path such as file or file-backup, got %q", d.Path)
		} else if seen[d.Path] {
			ps.errorf(base+".path", "device %q is listed twice", d.Path)
		}
		seen[d.Path] = true
		switch d.Type {
		case "file":
			if d.Options["file_path"] == "" {
				ps.errorf(base+".options", "a file device needs options.file_path (or \"stdout\")")
			}
		case "syslog":
		case "socket":
			if d.Options["address"] == "" {
				ps.errorf(base+".options", "a socket device needs options.address")
			}
			ps.warnf(base+".type", "a socket device that hangs stalls every Vault request, even with another device working")
		default:
			ps.errorf(base+".type", "must be file, syslog or socket, got %q", d.Type)
		}
	}
}

func validateDatabases(c *Config, ps *problems) {
	seen := map[string]bool{}
	for i, d := range c.Databases {
		base := fmt.Sprintf("databases[%d]", i)
		if !vaultName.MatchString(d.Name) {
			ps.errorf(base+".name", "must be letters, digits, '-', '_' or '.', got %q", d.Name)
		} else if seen[d.Name] {
			ps.errorf(base+".name", "database %q is defined twice", d.Name)
		}
		seen[d.Name] = true
		if d.Plugin != "postgresql-database-plugin" {
			ps.errorf(base+".plugin", "only postgresql-database-plugin is supported, got %q", d.Plugin)
		}
		if !strings.Contains(d.ConnectionURL, "{{username}}") || !strings.Contains(d.ConnectionURL, "{{password}}") {
			ps.errorf(base+".connectionURL", "must use {{username}} and {{password}} placeholders, e.g. postgresql://{{username}}:{{password}}@db:5432/app")
		} else if u, err := url.Parse(strings.NewReplacer("{{username}}", "u", "{{password}}", "p").Replace(d.ConnectionURL)); err != nil || u.Host == "" {
			ps.errorf(base+".connectionURL", "is not a valid URL")
		}
		if d.Username == "" {
			ps.errorf(base+".username", "is required: the admin user Vault connects as")
		}
		set := 0
		for _, s := range []bool{d.Password.Env != "", d.Password.File != "", d.Password.Secret != nil} {
			if s {
				set++
			}
		}
		if set != 1 {
			ps.errorf(base+".password", "set exactly one of env, file or secret; passwords are never written in the config")
		}
		if e := d.Password.Env; e != "" && !envVarName.MatchString(e) {
			if n := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(e, "$"), "{"), "}"); strings.HasPrefix(e, "$") && envVarName.MatchString(n) {
				ps.errorf(base+".password.env", "write the variable's name without $: %s", n)
			} else {
				// Never echo it: a value that cannot be a variable name is most likely the
				// password itself.
				ps.errorf(base+".password.env", "must be the name of an environment variable (letters, digits and _, not starting with a digit), such as PRODUCTION_DB_ADMIN_PASSWORD; this value cannot be one and looks like a pasted password (not shown): remove it from the file, change that password, and export it in a variable named here")
			}
		}
		if s := d.Password.Secret; s != nil && (s.Namespace == "" || s.Name == "" || s.Key == "") {
			ps.errorf(base+".password.secret", "needs namespace, name and key")
		}
		if len(d.Roles) == 0 {
			ps.errorf(base+".roles", "needs at least one role")
		}
		for j, r := range d.Roles {
			rb := fmt.Sprintf("%s.roles[%d]", base, j)
			if !vaultName.MatchString(r.Name) {
				ps.errorf(rb+".name", "must be letters, digits, '-', '_' or '.', got %q", r.Name)
			}
			if r.DefaultTTL.Duration <= 0 {
				ps.errorf(rb+".defaultTTL", "is required and must be positive, e.g. 30m")
			}
			if r.MaxTTL.Duration < r.DefaultTTL.Duration {
				ps.errorf(rb+".maxTTL", "must be at least defaultTTL (%s), got %s", r.DefaultTTL, r.MaxTTL)
			}
			if len(r.CreationStatements) == 0 {
				ps.errorf(rb+".creationStatements", "needs the SQL that creates a user")
			}
			for k, s := range r.CreationStatements {
				if !strings.Contains(s, "{{name}}") {
					ps.errorf(fmt.Sprintf("%s.creationStatements[%d]", rb, k), "must create the user named {{name}}")
				}
			}
		}
	}
}

func validateMigration(c *Config, kvMounts []string, ps *problems) {
	if problem, warning := kvPathTemplateProblem(c.Migration.KVPath, kvMounts); problem != "" {
		ps.errorf("migration.kvPath", "%s", problem)
	} else if warning != "" {
		ps.warnf("migration.kvPath", "%s", warning)
	}
	d := c.Migration.Defaults
	if d.TTL.Duration <= 0 {
		ps.errorf("migration.defaults.ttl", "must be positive, e.g. 1h, got %s", d.TTL)
	}
	if d.MaxTTL.Duration < d.TTL.Duration {
		ps.errorf("migration.defaults.maxTTL", "must be at least ttl (%s), got %s", d.TTL, d.MaxTTL)
	}
	validateEntrypoints(c.Migration.Entrypoints, ps)
	names := map[string]bool{}
	lastWeek := 0
	firstWave := map[string]int{}
	weekOf := map[int]int{} // week -> the first wave in it
	for i, w := range c.Migration.Waves {
		base := fmt.Sprintf("migration.waves[%d]", i)
		prev, taken := weekOf[w.Week]
		switch {
		case w.Week < 1:
			ps.errorf(base+".week", "must be 1 or later, got %d", w.Week)
		case w.Week < lastWeek:
			ps.errorf(base+".week", "week %d comes after week %d; list waves in order", w.Week, lastWeek)
		case taken:
			// Each wave waits for the one before it (previous-wave-complete): two in one week
			// cannot both keep their week.
			ps.errorf(base+".week", "week %d is already the week of migration.waves[%d] (%q); give each wave a week of its own", w.Week, prev, c.Migration.Waves[prev].Name)
		default:
			weekOf[w.Week] = i
		}
		lastWeek = max(lastWeek, w.Week)
		if w.Name == "" {
			ps.errorf(base+".name", "is required")
		} else if names[w.Name] {
			ps.errorf(base+".name", "wave %q is defined twice", w.Name)
		}
		names[w.Name] = true
		for j, ns := range w.Namespaces {
			np := fmt.Sprintf("%s.namespaces[%d]", base, j)
			if !dnsLabel.MatchString(ns) {
				ps.errorf(np, "must be a namespace name, got %q", ns)
			} else if prev, dup := firstWave[ns]; dup {
				ps.errorf(np, "namespace %q is already migrated in migration.waves[%d]", ns, prev)
			} else {
				firstWave[ns] = i
			}
		}
		for j, wl := range w.Workloads {
			wp := fmt.Sprintf("%s.workloads[%d]", base, j)
			switch parts := strings.Split(wl, "/"); {
			case len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "":
				ps.errorf(wp, "must be namespace/kind/name, e.g. staging/Deployment/webapp, got %q", wl)
			case !dnsLabel.MatchString(parts[0]):
				ps.errorf(wp, "%q is not a namespace name", parts[0])
			case !slices.Contains(EntrypointKinds, parts[1]):
				ps.errorf(wp, "kind %q is not one migrate rewrites; use %s", parts[1], strings.Join(EntrypointKinds, ", "))
			}
		}
		seenGate := map[string]bool{}
		for j, g := range w.Gates {
			name, _, err := ParseGate(g)
			switch {
			case err != nil:
				ps.errorf(fmt.Sprintf("%s.gates[%d]", base, j), "%v", err)
			case seenGate[name]:
				ps.errorf(fmt.Sprintf("%s.gates[%d]", base, j), "gate %s is listed twice", name)
			case i == 0 && (name == GatePreviousWaveComplete || name == GateHealthyFor):
				ps.errorf(fmt.Sprintf("%s.gates[%d]", base, j), "the first wave has no previous wave for %s to wait on; remove it", name)
			}
			seenGate[name] = true
		}
	}
	// Staging before production: the origin plan's rule, checked by name.
	stg, prd := -1, -1
	for ns, i := range firstWave {
		if strings.Contains(ns, "staging") && (stg < 0 || i < stg) {
			stg = i
		}
		if strings.Contains(ns, "prod") && (prd < 0 || i < prd) {
			prd = i
		}
	}
	if stg >= 0 && prd >= 0 && prd < stg {
		ps.warnf(fmt.Sprintf("migration.waves[%d]", prd), "a production namespace is migrated before staging (wave %d); migrate staging first", stg)
	}
}

// EntrypointKinds are the workload kinds migration.entrypoints may name: the ones migrate
// rewrites, spelt as in their manifests.
var EntrypointKinds = []string{"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}

func validateEntrypoints(eps []MigrationEntrypoint, ps *problems) {
	first := map[string]int{}
	for i, e := range eps {
		base := fmt.Sprintf("migration.entrypoints[%d]", i)
		if !dnsLabel.MatchString(e.Namespace) {
			ps.errorf(base+".namespace", "must be a namespace name, got %q", e.Namespace)
		}
		kind, name, ok := strings.Cut(e.Workload, "/")
		switch {
		case !ok || kind == "" || name == "" || strings.Contains(name, "/"):
			ps.errorf(base+".workload", "must be KIND/NAME, e.g. Deployment/web, got %q", e.Workload)
		case !slices.Contains(EntrypointKinds, kind):
			ps.errorf(base+".workload", "kind %q is not one migrate rewrites; use %s", kind, strings.Join(EntrypointKinds, ", "))
		}
		if !dnsLabel.MatchString(e.Container) {
			ps.errorf(base+".container", "must be a container name, got %q", e.Container)
		}
		if len(e.Entrypoint) == 0 || e.Entrypoint[0] == "" {
			ps.errorf(base+".entrypoint", "must be the image's entrypoint argv, its program first, e.g. [/usr/local/bin/web, serve]")
		}
		id := e.Namespace + "/" + e.Workload + ":" + e.Container
		if prev, dup := first[id]; dup {
			ps.errorf(base, "container %s of %s in namespace %s already has its entrypoint in migration.entrypoints[%d]; keep one", e.Container, e.Workload, e.Namespace, prev)
		} else {
			first[id] = i
		}
	}
}

func checkURL(ps *problems, p, raw string) {
	errMsg, warnMsg := urlCheck(raw, p)
	if errMsg != "" {
		ps.errorf(p, "%s", errMsg)
	}
	if warnMsg != "" {
		ps.warnf(p, "%s", warnMsg)
	}
}

// urlCheck returns what is wrong with an http(s) URL (errMsg) or worth a warning. Messages
// never echo credentials found in it.
func urlCheck(raw, key string) (errMsg, warnMsg string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Sprintf("must be an http(s) URL such as https://vault.example.com:8200, got %q", redactUserinfo(raw)), ""
	}
	if u.User != nil {
		why := "nothing reads them"
		if key == "vault.address" {
			why = "vaultctl logs in to Vault through Kubernetes auth (or VAULT_TOKEN), never with a password"
		}
		return fmt.Sprintf("must not hold credentials (the user:password@ part, not shown here): %s. Remove them, and change that password if it is a real one", why), ""
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return "", "plain http sends tokens in clear text; use https"
	}
	return "", ""
}

// redactUserinfo hides whatever precedes the last '@' of a URL (before its query), so that an
// error about a malformed URL never shows a password typed into it, even one holding '/'.
func redactUserinfo(raw string) string {
	rest, scheme := raw, ""
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = raw[:i+3], raw[i+3:]
	}
	upTo := rest
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		upTo = rest[:i]
	}
	if i := strings.LastIndex(upTo, "@"); i >= 0 {
		return scheme + "***" + rest[i:]
	}
	return raw
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func validDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimPrefix(s, "*."), ".") {
		if !dnsLabel.MatchString(label) {
			return false
		}
	}
	return true
}

// validateFiles confirms that the files the config reads exist, so a typo fails validation
// rather than a phase halfway through apply. Only files named in the config (or by VAULT_CACERT
// where it fills in vault.tls.caCert): KUBECONFIG and ~/.kube/config are kubectl's to report.
func validateFiles(c *Config, ps *problems, vc validation) {
	checkFile(ps, "cluster.kubeconfig", c.Cluster.Kubeconfig, "kubeconfig")
	checkFile(ps, "vault.tls.caCert", c.Vault.TLS.CACert, "CA file")
	checkFile(ps, "kubernetesAuth.caCert", c.KubernetesAuth.CACert, "cluster CA file")
	for i, k := range c.Vault.Init.PGPKeys {
		checkFile(ps, fmt.Sprintf("vault.init.pgpKeys[%d]", i), k, "PGP public key file")
	}
	if env := strings.TrimSpace(vc.getenv(envVaultCACert)); c.External() && c.Vault.TLS.CACert == "" && env != "" {
		if msg := fileProblem(env, "CA file", ""); msg != "" {
			ps.errs = append(ps.errs, Problem{Source: "env " + envVaultCACert, Path: "vault.tls.caCert", Message: msg})
		}
	}
}
