package doctor

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/policy"
)

// vaultChecks compares the pod with what Vault holds: the role (2, 3), the auth config (4)
// and the role's policies against the paths the agent reads (5).
func (d *Doctor) vaultChecks(ctx context.Context, c *podCheck, role string) {
	mount := c.authMount()
	rolePath := "auth/" + mount + "/role/" + role
	data, err := d.readRole(ctx, mount, role)
	if err != nil {
		c.add(Finding{Severity: Warning, Code: CodeAgentLogin, Message: "could not read the pod's role from Vault, so its bindings were not checked",
			Evidence: []string{rolePath + ": " + err.Error()},
			Fix:      "run doctor with a token that may read " + rolePath + " (VAULT_TOKEN), or check the vaultctl-admin policy"})
		return
	}
	if data == nil {
		c.add(Finding{Severity: Error, Code: CodeRoleMissing,
			Message:  fmt.Sprintf("the pod's role %s does not exist at auth/%s: the agent's login fails and the pod stays in Init:0/1", role, mount),
			Evidence: append([]string{fmt.Sprintf("%s: %q; vault read %s: no such role", annRole, role, rolePath)}, c.logEvidence(CodeRoleMissing, CodeAgentLogin)...),
			Fix:      fmt.Sprintf("add role %s to the config's roles and run vaultctl apply --only roles, or set %s to an existing role (vault list auth/%s/role)", role, annRole, mount)})
		return
	}
	sa, ns := c.serviceAccount(), c.pod.Namespace
	if names := stringList(data["bound_service_account_names"]); !globListed(names, sa) {
		c.add(Finding{Severity: Error, Code: CodeSANotBound,
			Message: fmt.Sprintf("role %s is not bound to the pod's ServiceAccount %s: Vault refuses the login (service account name not authorized)", role, sa),
			Evidence: append([]string{
				fmt.Sprintf("pod spec.serviceAccountName: %s", sa),
				fmt.Sprintf("%s bound_service_account_names: [%s]", rolePath, strings.Join(names, ", ")),
			}, c.logEvidence(CodeSANotBound, CodeAgentLogin)...),
			Fix: d.roleFix(role, fmt.Sprintf("add %s to the role's serviceAccounts", sa), fmt.Sprintf("bound_service_account_names=%s", strings.Join(append(names, sa), ",")), mount)})
	}
	if nss := stringList(data["bound_service_account_namespaces"]); !globListed(nss, ns) {
		c.add(Finding{Severity: Error, Code: CodeNamespaceNotBound,
			Message: fmt.Sprintf("role %s is not bound to the pod's namespace %s: Vault refuses the login (namespace not authorized)", role, ns),
			Evidence: append([]string{
				fmt.Sprintf("pod namespace: %s", ns),
				fmt.Sprintf("%s bound_service_account_namespaces: [%s]", rolePath, strings.Join(nss, ", ")),
			}, c.logEvidence(CodeNamespaceNotBound, CodeAgentLogin)...),
			Fix: d.roleFix(role, fmt.Sprintf("add %s to the role's namespaces", ns), fmt.Sprintf("bound_service_account_namespaces=%s", strings.Join(append(nss, ns), ",")), mount)})
	}
	d.audience(ctx, c, mount, role, data)
	d.authConfigChecks(ctx, c, mount)
	d.pathChecks(ctx, c, role, data)
}

// roleFix names the config change when vaultctl manages the role, else the vault command.
func (d *Doctor) roleFix(role, what, vaultArgs, mount string) string {
	for _, r := range d.Config.Roles {
		if r.Name == role && mount == d.configMount() {
			return fmt.Sprintf("%s in vaultctl.yaml (roles[%s]), then vaultctl apply --only roles", what, role)
		}
	}
	return fmt.Sprintf("%s: vault write auth/%s/role/%s %s (the other fields are kept), or bind the pod to a role that allows it", what, mount, role, vaultArgs)
}

func (d *Doctor) configMount() string {
	if m := strings.Trim(d.Config.KubernetesAuth.Path, "/"); m != "" {
		return m
	}
	return "kubernetes"
}

// globListed matches Vault's binding lists: "*" or a name, with * globs allowed.
func globListed(list []string, name string) bool {
	for _, b := range list {
		if b == "*" || b == name || (strings.Contains(b, "*") && globMatch(b, name)) {
			return true
		}
	}
	return false
}

func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(s, p)
		}
		j := strings.Index(s, p)
		if j < 0 {
			return false
		}
		s = s[j+len(p):]
	}
	return true
}

// stringList reads a list Vault returned ([]any, or a comma-separated string).
func stringList(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if s := strings.TrimSpace(fmt.Sprint(e)); s != "" {
				out = append(out, s)
			}
		}
	case []string:
		out = append(out, x...)
	case string:
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// audience compares the role's audience with the audience of the token the agent sends (3).
func (d *Doctor) audience(ctx context.Context, c *podCheck, mount, role string, data map[string]any) {
	want := strings.TrimSpace(fmt.Sprint(valueOr(data["audience"], "")))
	if want == "" {
		return
	}
	var got, source string
	if v := c.tokenVolume(); v != nil && v.Projected != nil {
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil && s.ServiceAccountToken.Audience != "" {
				got, source = s.ServiceAccountToken.Audience, fmt.Sprintf("projected token volume %s audience", v.Name)
			}
		}
	}
	if got == "" {
		iss := d.apiIssuer(ctx)
		if iss == "" {
			if ev := c.logEvidence(CodeAudience); len(ev) > 0 {
				c.add(Finding{Severity: Error, Code: CodeAudience, Message: fmt.Sprintf("role %s requires audience %q, which the pod's ServiceAccount token does not carry", role, want),
					Evidence: append([]string{fmt.Sprintf("auth/%s/role/%s audience: %q", mount, role, want)}, ev...),
					Fix:      d.audienceFix(role, mount, "")})
			}
			return
		}
		got, source = iss, "the pod's ServiceAccount token (default audience: the API server's issuer)"
	}
	if got == want {
		return
	}
	c.add(Finding{Severity: Error, Code: CodeAudience,
		Message: fmt.Sprintf("role %s requires JWT audience %q but the agent's token carries %q: Vault refuses the login (invalid audience (aud) claim)", role, want, got),
		Evidence: append([]string{
			fmt.Sprintf("auth/%s/role/%s audience: %q", mount, role, want),
			fmt.Sprintf("%s: %q", source, got),
		}, c.logEvidence(CodeAudience, CodeAgentLogin)...),
		Fix: d.audienceFix(role, mount, got)})
}

func (d *Doctor) audienceFix(role, mount, got string) string {
	set := "remove it"
	if got != "" {
		set = fmt.Sprintf("set it to %q", got)
	}
	for _, r := range d.Config.Roles {
		if r.Name == role && mount == d.configMount() {
			return fmt.Sprintf("in vaultctl.yaml roles[%s].audience, %s, then vaultctl apply --only roles; or mount a projected token with that audience (%s)", role, set, annTokenVolume)
		}
	}
	arg := `audience=""`
	if got != "" {
		arg = "audience=" + got
	}
	return fmt.Sprintf("vault write auth/%s/role/%s %s (the role's audience must be the token's; or mount a projected token with the role's audience and name it in %s)", mount, role, arg, annTokenVolume)
}

func valueOr(v, def any) any {
	if v == nil {
		return def
	}
	return v
}

// apiIssuer is the API server's ServiceAccount issuer, the audience of tokens requested
// without one when --api-audiences is not set (discovery document, readable by any
// authenticated client).
func (d *Doctor) apiIssuer(ctx context.Context) string {
	if d.issuer != nil {
		return *d.issuer
	}
	iss := ""
	d.issuer = &iss
	rc := d.Kube.Discovery().RESTClient()
	if rc == nil {
		return ""
	}
	b, err := rc.Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		return ""
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if json.Unmarshal(b, &doc) == nil {
		iss = doc.Issuer
	}
	return iss
}

// authConfigChecks compares the auth method's CA with the cluster's and checks the pinned
// reviewer JWT's Secret (4).
func (d *Doctor) authConfigChecks(ctx context.Context, c *podCheck, mount string) {
	if d.authConfig == nil {
		d.authConfig = map[string]authConfigResult{}
	}
	r, ok := d.authConfig[mount]
	if !ok {
		r.data, r.err = d.Vault.ReadAuthConfig(ctx, mount)
		d.authConfig[mount] = r
	}
	cfgPath := "auth/" + mount + "/config"
	if r.err != nil || r.data == nil {
		if ev := c.logEvidence(CodeStaleCA); len(ev) > 0 {
			c.add(Finding{Severity: Error, Code: CodeStaleCA, Message: "Vault cannot verify the API server when it reviews tokens (stale CA)",
				Evidence: append(ev, fmt.Sprintf("%s could not be read: %v", cfgPath, r.err)), Fix: d.caFix(mount, c.pod.Namespace)})
		}
		return
	}
	vaultCAs := certs(fmt.Sprint(valueOr(r.data["kubernetes_ca_cert"], "")))
	clusterPEM, source := d.clusterCA(ctx, c.pod.Namespace)
	clusterCAs := certs(clusterPEM)
	if len(clusterCAs) > 0 && !overlap(vaultCAs, clusterCAs) {
		c.add(Finding{Severity: Error, Code: CodeStaleCA,
			Message: "the auth method's kubernetes_ca_cert is not the cluster's CA (rotated?): Vault cannot verify the API server when it reviews the pod's token, so every login fails",
			Evidence: append([]string{
				fmt.Sprintf("%s kubernetes_ca_cert: %s", cfgPath, describeCerts(vaultCAs)),
				fmt.Sprintf("cluster CA (%s): %s", source, describeCerts(clusterCAs)),
			}, c.logEvidence(CodeStaleCA, CodeAgentLogin)...),
			Fix: d.caFix(mount, c.pod.Namespace)})
	}
	if set, _ := r.data["token_reviewer_jwt_set"].(bool); set && mount == d.configMount() && d.Config.KubernetesAuth.TokenReviewer != config.ClientJWT {
		d.reviewerSecret(ctx, c, mount)
	} else if ev := c.logEvidence(CodeReviewerJWT); len(ev) > 0 {
		c.add(Finding{Severity: Error, Code: CodeReviewerJWT, Message: "the API server refuses the JWT Vault reviews tokens with",
			Evidence: ev, Fix: "vaultctl apply --only kubernetes-auth"})
	}
}

// reviewerSecret: a pinned reviewer JWT dies with its Secret (the token controller revokes
// it) and with its ServiceAccount.
func (d *Doctor) reviewerSecret(ctx context.Context, c *podCheck, mount string) {
	ns := d.Config.Vault.Namespace
	const secret, sa = "vault-auth-token", "vault-auth"
	var ev []string
	s, err := d.Kube.CoreV1().Secrets(ns).Get(ctx, secret, metav1.GetOptions{})
	switch {
	case err != nil:
		ev = append(ev, fmt.Sprintf("Secret %s/%s: %v", ns, secret, err))
	case len(s.Data["token"]) == 0:
		ev = append(ev, fmt.Sprintf("Secret %s/%s holds no token", ns, secret))
	default:
		acct, err := d.Kube.CoreV1().ServiceAccounts(ns).Get(ctx, sa, metav1.GetOptions{})
		if err != nil {
			ev = append(ev, fmt.Sprintf("ServiceAccount %s/%s: %v", ns, sa, err))
		} else if uid := s.Annotations["kubernetes.io/service-account.uid"]; uid != "" && uid != string(acct.UID) {
			ev = append(ev, fmt.Sprintf("Secret %s/%s was issued for ServiceAccount uid %s, but %s/%s is now uid %s (recreated)", ns, secret, uid, ns, sa, acct.UID))
		}
	}
	logs := c.logEvidence(CodeReviewerJWT)
	if len(ev) == 0 && len(logs) == 0 {
		return
	}
	c.add(Finding{Severity: Error, Code: CodeReviewerJWT,
		Message:  "auth/" + mount + "/config pins a reviewer JWT that no longer works: the API server refuses Vault's TokenReviews, so every login fails",
		Evidence: append(append([]string{"auth/" + mount + "/config token_reviewer_jwt_set: true"}, ev...), logs...),
		Fix:      "vaultctl apply --only kubernetes-auth (recreates the reviewer Secret and writes its JWT)"})
}

func (d *Doctor) caFix(mount, ns string) string {
	if mount == d.configMount() {
		return "vaultctl apply --only kubernetes-auth (writes the cluster CA from the kubeconfig, or kubernetesAuth.caCert, into auth/" + mount + "/config)"
	}
	return fmt.Sprintf(`kubectl get configmap kube-root-ca.crt -n %s -o jsonpath='{.data.ca\.crt}' > ca.crt && vault write auth/%s/config kubernetes_ca_cert=@ca.crt`, ns, mount)
}

// clusterCA is the CA the cluster publishes to pods (kube-root-ca.crt, kept current by the
// controller manager), else the kubeconfig's.
func (d *Doctor) clusterCA(ctx context.Context, ns string) (string, string) {
	if cm, err := d.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{}); err == nil && cm.Data["ca.crt"] != "" {
		return cm.Data["ca.crt"], "ConfigMap " + ns + "/kube-root-ca.crt"
	}
	return string(d.KubeCA), "the kubeconfig"
}

func certs(p string) []*x509.Certificate {
	var out []*x509.Certificate
	rest := []byte(p)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

func overlap(a, b []*x509.Certificate) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Equal(y) {
				return true
			}
		}
	}
	return false
}

func describeCerts(cs []*x509.Certificate) string {
	if len(cs) == 0 {
		return "none"
	}
	var parts []string
	for _, c := range cs {
		sum := sha256.Sum256(c.Raw)
		parts = append(parts, fmt.Sprintf("CN=%s sha256:%x (expires %s)", c.Subject.CommonName, sum[:8], c.NotAfter.UTC().Format("2006-01-02")))
	}
	return strings.Join(parts, "; ")
}

// pathChecks evaluates the role's policies, as Vault holds them, on every path the agent
// reads (5): the KV v2 API path has data/ after the mount.
func (d *Doctor) pathChecks(ctx context.Context, c *podCheck, role string, data map[string]any) {
	paths := c.paths()
	if _, ok := c.pod.Annotations[annConfigMap]; ok || len(paths) == 0 {
		return // with agent-configmap the agent's templates live in a ConfigMap doctor does not read
	}
	if d.mounts == nil && d.mountsErr == nil {
		d.mounts, d.mountsErr = d.Vault.ListMounts(ctx)
	}
	if d.mountsErr != nil {
		c.add(Finding{Severity: Warning, Code: CodePathDenied, Message: "could not list Vault's secrets engines, so the paths were not checked",
			Evidence: []string{"sys/mounts: " + d.mountsErr.Error()}, Fix: "check the vaultctl-admin policy (sys/mounts read)"})
		return
	}
	pols := append(stringList(data["token_policies"]), stringList(data["policies"])...)
	if v, _ := data["token_no_default_policy"].(bool); !v {
		pols = append(pols, "default")
	}
	sort.Strings(pols)
	pols = compact(pols)
	acl := policy.NewACL()
	var unread []string
	for _, name := range pols {
		if name == "root" {
			acl.Add("*", []string{"create", "read", "update", "delete", "list", "sudo"})
			continue
		}
		hcl, found, err := d.readPolicy(ctx, name)
		if err != nil || !found {
			unread = append(unread, name)
			continue
		}
		rules, err := policy.ParseRules(hcl)
		if err != nil {
			unread = append(unread, name)
			continue
		}
		for p, caps := range rules {
			acl.Add(p, caps)
		}
	}
	polList := strings.Join(pols, ", ")
	for _, ip := range paths {
		ip := injectedPath{path: strings.Trim(ip.Path, "/"), annotation: ip.Annotation}
		mount, rest, info, ok := d.mountOf(ip.path)
		if !ok {
			c.add(Finding{Severity: Error, Code: CodeWrongMount,
				Message:  fmt.Sprintf("%s names %s, but no secrets engine is mounted there: the agent's read fails and the pod stays in Init:0/1", ip.annotation, ip.path),
				Evidence: append([]string{fmt.Sprintf("%s: %q", ip.annotation, ip.path), "secrets engines: " + strings.Join(d.mountNames(), ", ")}, c.logEvidence(CodePathDenied)...),
				Fix:      "correct the mount in the annotation (the first path segment must be one of the engines listed)"})
			continue
		}
		api := ip.path
		kv2 := info.Type == "kv" && info.Options["version"] == "2"
		if kv2 && !strings.HasPrefix(rest, "data/") {
			api = mount + "data/" + rest
		}
		if allowed, why := acl.Allows(api, "read"); !allowed {
			ev := []string{fmt.Sprintf("%s: %q (API path %s)", ip.annotation, ip.path, api), fmt.Sprintf("role %s policies: %s", role, polList)}
			if says := d.vaultSays(ctx, c, c.authMount(), role, api); says != "" {
				ev = append(ev, says)
			}
			if len(unread) > 0 {
				ev = append(ev, "policies that could not be read: "+strings.Join(unread, ", "))
			}
			logical := mount + strings.TrimPrefix(rest, "data/")
			if ok, _ := acl.Allows(logical, "read"); kv2 && ok {
				c.add(Finding{Severity: Error, Code: CodeDataSegment,
					Message:  fmt.Sprintf("the policy grants read on %s, the CLI path, but KV v2's API path is %s: the agent gets 403 permission denied", logical, api),
					Evidence: append(append(ev, fmt.Sprintf("policy evaluation: %s: %s", api, why)), c.logEvidence(CodePathDenied)...),
					Fix:      d.pathFix(pols, logical, api, true)})
				continue
			}
			c.add(Finding{Severity: Error, Code: CodePathDenied,
				Message:  fmt.Sprintf("role %s's policies do not grant read on %s: the agent gets 403 permission denied", role, api),
				Evidence: append(append(ev, "policy evaluation: "+why), c.logEvidence(CodePathDenied)...),
				Fix:      d.pathFix(pols, logical, api, kv2)})
		}
	}
}

func (d *Doctor) pathFix(pols []string, logical, api string, kv2 bool) string {
	for _, p := range d.Config.Policies {
		for _, name := range pols {
			if p.Name == name {
				return fmt.Sprintf("give policy %s in vaultctl.yaml a rule {path: %s, capabilities: [read]} (logical path: vaultctl renders %s), then vaultctl apply --only policies", name, logical, api)
			}
		}
	}
	if kv2 {
		return fmt.Sprintf(`write the rule on the API path: path "%s" { capabilities = ["read"] } in one of the role's policies (vault policy write), or manage the policy in vaultctl.yaml, which adds data/ for you`, api)
	}
	return fmt.Sprintf(`add path "%s" { capabilities = ["read"] } to one of the role's policies (vault policy write)`, api)
}

type injectedPath struct{ path, annotation string }

// mountOf finds the secrets engine a path belongs to: the longest mount prefix.
func (d *Doctor) mountOf(p string) (mount, rest string, info struct {
	Type    string
	Options map[string]string
}, ok bool) {
	best := ""
	for m := range d.mounts {
		if strings.HasPrefix(p+"/", m) && len(m) > len(best) {
			best = m
		}
	}
	if best == "" {
		return "", "", info, false
	}
	mi := d.mounts[best]
	info.Type, info.Options = mi.Type, mi.Options
	return best, strings.TrimPrefix(strings.TrimPrefix(p, best), "/"), info, true
}

func (d *Doctor) mountNames() []string {
	var out []string
	for m, mi := range d.mounts {
		if mi.Type != "system" && mi.Type != "identity" && mi.Type != "cubbyhole" {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

func compact(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

type roleRead struct {
	data map[string]any
	err  error
}

type policyRead struct {
	hcl   string
	found bool
	err   error
}

// readRole and readPolicy read each role and policy once per run: many pods share them.
func (d *Doctor) readRole(ctx context.Context, mount, name string) (map[string]any, error) {
	if d.roles == nil {
		d.roles = map[string]roleRead{}
	}
	k := mount + "\x00" + name
	if r, ok := d.roles[k]; ok {
		return r.data, r.err
	}
	data, err := d.Vault.ReadRole(ctx, mount, name)
	d.roles[k] = roleRead{data, err}
	return data, err
}

func (d *Doctor) readPolicy(ctx context.Context, name string) (string, bool, error) {
	if d.policies == nil {
		d.policies = map[string]policyRead{}
	}
	if r, ok := d.policies[name]; ok {
		return r.hcl, r.found, r.err
	}
	hcl, found, err := d.Vault.ReadPolicy(ctx, name)
	d.policies[name] = policyRead{hcl, found, err}
	return hcl, found, err
}
