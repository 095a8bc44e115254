package waves

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/pki"
	"github.com/vaultctl/vaultctl/manifests"
	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/policy"
)

// gateEval evaluates gates for one Status, reading each thing once.
type gateEval struct {
	o        *Observer
	obs      *observation
	injector *GateResult
	checks   map[string]GateResult // by the namespaces checked
}

func (ge *gateEval) evaluate(ctx context.Context, st *Status, i int, gate string) GateResult {
	name, d, err := config.ParseGate(gate)
	r := GateResult{Gate: gate}
	if err != nil { // validation refuses such a config; say so rather than pass
		r.Evidence, r.Fix = err.Error(), "fix migration.waves in the config (vaultctl config validate)"
		return r
	}
	waves := ge.o.Config.Migration.Waves
	switch name {
	case config.GatePreviousWaveComplete:
		if i == 0 {
			r.OK, r.Evidence = true, "first wave"
			return r
		}
		prev := st.Waves[i-1]
		r.OK = prev.Complete
		if r.OK {
			r.Evidence = fmt.Sprintf("wave %s is complete", prev.Name)
		} else {
			r.Evidence = fmt.Sprintf("wave %s is not complete: %s", prev.Name, prev.Detail)
			r.Fix = fmt.Sprintf("run vaultctl migrate wave %s, or see why with vaultctl migrate status", prev.Name)
		}
	case config.GateHealthyFor:
		return ge.healthyFor(ctx, i, d, gate)
	case config.GateInjectorHealthy:
		if ge.injector == nil {
			g := ge.injectorHealthy(ctx)
			ge.injector = &g
		}
		g := *ge.injector
		g.Gate = gate
		return g
	case config.GateCheckPassing:
		return ge.checkPassing(ctx, earlierNamespaces(waves, i), gate)
	case config.GateAdmissionPolicy:
		r = ge.admissionPolicy(ctx, st, i)
		r.Gate = gate
		r.Outcome = KindOf(waves[i]) == KindGuard
	case config.GateDynamicDBCredentials:
		return ge.dynamicDB(ctx, gate)
	}
	return r
}

// earlierNamespaces are the namespaces of the waves before i, with the workloads a wave limits
// each to (nil: the whole namespace).
func earlierNamespaces(waves []config.Wave, i int) []scoped {
	var out []scoped
	for _, w := range waves[:i] {
		for _, ns := range namespacesOf(w) {
			out = append(out, scoped{ns: ns, workloads: workloadsIn(w, ns)})
		}
	}
	return out
}

type scoped struct {
	ns        string
	workloads []string // KIND/NAME; nil = all
}

// injectorHealthy: the injector Deployment available, its webhook present with a caBundle of
// valid certificates, and the failurePolicy the config asks for.
func (ge *gateEval) injectorHealthy(ctx context.Context) GateResult {
	cfg := ge.o.Config
	r := GateResult{}
	if !cfg.InjectorEnabled() {
		r.Evidence, r.Fix = "the injector is disabled in the config (injector.enabled: false)", "enable the injector and run vaultctl apply"
		return r
	}
	vns := cfg.Vault.Namespace
	depName := charts.FullName + "-agent-injector"
	dep, err := ge.o.Kube.AppsV1().Deployments(vns).Get(ctx, depName, metav1.GetOptions{})
	if err != nil {
		r.Evidence = fmt.Sprintf("injector Deployment %s/%s: %v", vns, depName, err)
		r.Fix = "run vaultctl apply (phase injector)"
		return r
	}
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	avail := dep.Status.AvailableReplicas
	evidence := []string{fmt.Sprintf("injector: %d/%d available", avail, want)}
	if avail < want || want == 0 {
		r.Evidence = strings.Join(evidence, ", ")
		r.Fix = fmt.Sprintf("see why its pods are not ready: kubectl -n %s describe deployment %s", vns, depName)
		return r
	}
	wh, cfgName, err := ge.injectorWebhook(ctx, vns)
	if err != nil || wh == nil {
		if err == nil {
			err = fmt.Errorf("no MutatingWebhookConfiguration calls a Service in %s", vns)
		}
		r.Evidence = strings.Join(append(evidence, "webhook: "+err.Error()), ", ")
		r.Fix = "run vaultctl apply (phase injector)"
		return r
	}
	if problem := caBundleProblem(wh.ClientConfig.CABundle, ge.o.now()); problem != "" {
		r.Evidence = strings.Join(append(evidence, fmt.Sprintf("webhook %s caBundle %s", cfgName, problem)), ", ")
		r.Fix = fmt.Sprintf("the injector writes its caBundle when it starts (AGENT_INJECT_TLS_AUTO): check its logs (kubectl -n %s logs deploy/%s) and restart it", vns, depName)
		return r
	}
	svc, err := ge.o.Kube.CoreV1().Services(vns).Get(ctx, wh.ClientConfig.Service.Name, metav1.GetOptions{})
	if err != nil {
		r.Evidence = strings.Join(append(evidence, fmt.Sprintf("webhook Service %s/%s: %v", vns, wh.ClientConfig.Service.Name, err)), ", ")
		r.Fix = "run vaultctl apply (phase injector)"
		return r
	}
	problem, reached := ge.o.servingCertProblem(ctx, svc, wh.ClientConfig.CABundle)
	switch {
	case problem != "":
		r.Evidence = strings.Join(append(evidence, fmt.Sprintf("webhook %s: %s", cfgName, problem)), ", ")
		r.Fix = fmt.Sprintf("the API server refuses such a webhook: restart the injector so it writes its current CA (kubectl -n %s rollout restart deploy/%s)", vns, depName)
		return r
	case reached:
		evidence = append(evidence, fmt.Sprintf("webhook %s caBundle valid and verifies the serving certificate", cfgName))
	default:
		evidence = append(evidence, fmt.Sprintf("webhook %s caBundle valid (serving certificate not reachable to verify)", cfgName))
	}
	got := "Fail" // the API server's default
	if wh.FailurePolicy != nil {
		got = string(*wh.FailurePolicy)
	}
	if wantFP := cfg.Injector.FailurePolicy; wantFP != "" && got != wantFP {
		r.Evidence = strings.Join(append(evidence, fmt.Sprintf("failurePolicy %s, the config says %s", got, wantFP)), ", ")
		r.Fix = "run vaultctl apply (phase injector) to set it back"
		return r
	}
	r.OK, r.Evidence = true, strings.Join(append(evidence, "failurePolicy "+got), ", ")
	return r
}

// injectorWebhook finds the webhook whose Service is the injector's, in the Vault namespace.
func (ge *gateEval) injectorWebhook(ctx context.Context, vns string) (*admissionregistrationv1.MutatingWebhook, string, error) {
	list, err := ge.o.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("listing MutatingWebhookConfigurations: %w", err)
	}
	svc := charts.FullName + "-agent-injector-svc"
	for _, c := range list.Items {
		for i := range c.Webhooks {
			s := c.Webhooks[i].ClientConfig.Service
			if s != nil && s.Namespace == vns && s.Name == svc {
				return &c.Webhooks[i], c.Name, nil
			}
		}
	}
	return nil, "", fmt.Errorf("no MutatingWebhookConfiguration calls Service %s/%s", vns, svc)
}

// caBundleProblem is "" when b holds PEM certificates, each valid now.
func caBundleProblem(b []byte, now time.Time) string {
	if len(strings.TrimSpace(string(b))) == 0 {
		return "is empty"
	}
	certs, err := pki.ParseCerts(b)
	if err != nil {
		return "is unreadable: " + err.Error()
	}
	for _, c := range certs {
		if now.After(c.NotAfter) {
			return fmt.Sprintf("holds a certificate (%s) that expired %s", c.Subject.CommonName, c.NotAfter.Format(time.RFC3339))
		}
		if now.Before(c.NotBefore) {
			return fmt.Sprintf("holds a certificate (%s) not valid before %s", c.Subject.CommonName, c.NotBefore.Format(time.RFC3339))
		}
	}
	return ""
}

// admissionPolicy: the policy and its binding installed as vaultctl ships them, and the
// namespaces of the complete waves before i labelled.
func (ge *gateEval) admissionPolicy(ctx context.Context, st *Status, i int) GateResult {
	r := GateResult{}
	if problem := admissionProblem(ctx, ge.o.Kube); problem != "" {
		r.Evidence = problem
		r.Fix = "run the CI guard wave (vaultctl migrate next), which installs " + manifests.AdmissionPolicyFile
		return r
	}
	var labelled, unlabelled []string
	for _, w := range st.Waves[:i] {
		if w.Kind != KindNamespaces || !w.Complete {
			continue
		}
		for _, s := range w.States {
			if s.Labelled {
				labelled = append(labelled, s.Namespace)
			} else {
				unlabelled = append(unlabelled, s.Namespace)
			}
		}
	}
	if len(unlabelled) > 0 {
		r.Evidence = fmt.Sprintf("policy and binding installed; not labelled %s=true: %s", manifests.MigratedLabel, strings.Join(unlabelled, ", "))
		r.Fix = "run the CI guard wave again (vaultctl migrate wave NAME), which labels the namespaces of completed waves"
		return r
	}
	r.OK = true
	r.Evidence = "policy and binding installed"
	if len(labelled) > 0 {
		r.Evidence += fmt.Sprintf("; %s labelled: %s", plural(len(labelled), "namespace"), strings.Join(labelled, ", "))
	}
	return r
}

// healthyFor: every workload the nearest earlier namespace wave migrated was verified at least
// d ago, still runs the template migrate wrote, and is Ready now.
func (ge *gateEval) healthyFor(ctx context.Context, i int, d time.Duration, gate string) GateResult {
	r := GateResult{Gate: gate}
	waves := ge.o.Config.Migration.Waves
	prev := -1
	for j := i - 1; j >= 0; j-- {
		if KindOf(waves[j]) == KindNamespaces {
			prev = j
			break
		}
	}
	if prev < 0 {
		r.OK, r.Evidence = true, "no earlier wave migrated workloads"
		return r
	}
	w := waves[prev]
	now := ge.o.now()
	var youngest time.Duration = -1
	var problems []string
	count := 0
	for _, ns := range namespacesOf(w) {
		n, err := ge.o.observeNamespace(ctx, ge.obs, ns, false)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if n.journal == nil {
			problems = append(problems, ns+": not migrated")
			continue
		}
		limit := map[string]bool{}
		for _, wl := range workloadsIn(w, ns) {
			if id, err := migrate.ParseWorkload(wl); err == nil {
				limit[id.String()] = true
			}
		}
		keys := make([]string, 0, len(n.journal.Workloads))
		for k := range n.journal.Workloads {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, key := range keys {
			rec := n.journal.Workloads[key]
			if len(limit) > 0 && !limit[key] {
				continue
			}
			id, err := migrate.ParseWorkload(key)
			if err != nil {
				continue
			}
			if rec.State != migrate.WorkloadVerified {
				problems = append(problems, fmt.Sprintf("%s/%s is %s", ns, key, rec.State))
				continue
			}
			count++
			age := now.Sub(rec.At)
			if youngest < 0 || age < youngest {
				youngest = age
			}
			if age < d {
				problems = append(problems, fmt.Sprintf("%s/%s verified %s ago", ns, key, age.Truncate(time.Minute)))
			}
			if why := notReady(ctx, ge.o.Kube, ns, id, rec.PatchedHash); why != "" {
				problems = append(problems, fmt.Sprintf("%s/%s %s", ns, key, why))
			}
		}
	}
	if count == 0 && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("wave %s has no verified workload yet", w.Name))
	}
	if len(problems) > 0 {
		r.Evidence = fmt.Sprintf("wave %s, need %s: %s", w.Name, config.Duration{Duration: d}, strings.Join(problems, "; "))
		r.Fix = fmt.Sprintf("wait until wave %s's workloads have been Ready for %s since their migration (vaultctl migrate status shows them)", w.Name, config.Duration{Duration: d})
		return r
	}
	r.OK = true
	r.Evidence = fmt.Sprintf("wave %s: %s Ready, the latest verified %s ago (need %s)", w.Name, plural(count, "workload"),
		youngest.Truncate(time.Minute), config.Duration{Duration: d})
	return r
}

// dynamicDB: from Vault alone, every databases[] connection exists with its roles, and some
// Kubernetes-auth role's policies grant read on MOUNT/creds/ROLE.
func (ge *gateEval) dynamicDB(ctx context.Context, gate string) GateResult {
	r := GateResult{Gate: gate}
	cfg := ge.o.Config
	if len(cfg.Databases) == 0 {
		r.Evidence, r.Fix = "the config defines no databases", "add a databases entry and run vaultctl apply"
		return r
	}
	v := ge.o.Vault
	if v == nil {
		r.Evidence = "Vault was not read"
		if ge.o.VaultErr != nil {
			r.Evidence += ": " + ge.o.VaultErr.Error()
		}
		r.Fix = "make Vault reachable with vaultctl's credentials (vaultctl status shows how it connects)"
		return r
	}
	var missing []string
	var creds []string // API paths a workload must be able to read
	for _, db := range cfg.Databases {
		mount := strings.Trim(db.Mount, "/")
		c, err := v.ReadDBConnection(ctx, mount, db.Name)
		if err != nil {
			r.Evidence, r.Fix = fmt.Sprintf("reading %s/config/%s: %v", mount, db.Name, err), "check vaultctl's Vault access"
			return r
		}
		if c == nil {
			missing = append(missing, mount+"/config/"+db.Name)
		}
		for _, role := range db.Roles {
			rr, err := v.ReadDBRole(ctx, mount, role.Name)
			if err != nil {
				r.Evidence, r.Fix = fmt.Sprintf("reading %s/roles/%s: %v", mount, role.Name, err), "check vaultctl's Vault access"
				return r
			}
			if rr == nil {
				missing = append(missing, mount+"/roles/"+role.Name)
			}
			creds = append(creds, mount+"/creds/"+role.Name)
		}
	}
	if len(missing) > 0 {
		r.Evidence = "missing in Vault: " + strings.Join(missing, ", ")
		r.Fix = "run vaultctl apply (phase databases)"
		return r
	}
	auth := strings.Trim(cfg.KubernetesAuth.Path, "/")
	roles, err := v.ListRoles(ctx, auth)
	if err != nil {
		r.Evidence, r.Fix = fmt.Sprintf("listing auth/%s roles: %v", auth, err), "check vaultctl's Vault access"
		return r
	}
	sort.Strings(roles)
	policies := map[string]string{} // name -> HCL; "" when missing or unreadable
	for _, name := range roles {
		role, err := v.ReadRole(ctx, auth, name)
		if err != nil || role == nil {
			continue
		}
		acl := policy.NewACL()
		for _, pn := range stringList(role["token_policies"]) {
			if _, ok := policies[pn]; !ok {
				hcl, found, err := v.ReadPolicy(ctx, pn)
				if err != nil || !found {
					hcl = ""
				}
				policies[pn] = hcl
			}
			addHCL(acl, policies[pn])
		}
		for _, path := range creds {
			if ok, _ := acl.Allows(path, "read"); ok {
				r.OK = true
				r.Evidence = fmt.Sprintf("%s and %s in Vault; Kubernetes-auth role %s may read %s",
					plural(len(cfg.Databases), "connection"), plural(len(creds), "role"), name, path)
				return r
			}
		}
	}
	r.Evidence = fmt.Sprintf("%s and %s in Vault, but no Kubernetes-auth role's policy grants read on %s",
		plural(len(cfg.Databases), "connection"), plural(len(creds), "role"), strings.Join(creds, " or "))
	r.Fix = "switch a workload to dynamic credentials: vaultctl migrate database WORKLOAD --role ROLE"
	return r
}

func stringList(v any) []string {
	var out []string
	switch l := v.(type) {
	case []any:
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = l
	}
	return out
}

var (
	hclPath = regexp.MustCompile(`(?s)path\s+"([^"]+)"\s*\{(.*?)\}`)
	hclCaps = regexp.MustCompile(`capabilities\s*=\s*\[([^\]]*)\]`)
	hclWord = regexp.MustCompile(`"([a-z]+)"`)
)

// addHCL adds the path rules of a policy's HCL to acl: the one shape Vault's policies have
// (path "P" { capabilities = [...] }); what it does not recognise grants nothing.
func addHCL(acl *policy.ACL, hcl string) {
	for _, m := range hclPath.FindAllStringSubmatch(hcl, -1) {
		c := hclCaps.FindStringSubmatch(m[2])
		if c == nil {
			continue
		}
		var caps []string
		for _, w := range hclWord.FindAllStringSubmatch(c[1], -1) {
			caps = append(caps, w[1])
		}
		acl.Add(m[1], caps)
	}
}

// admissionProblem is "" when the policy and binding are installed as vaultctl ships them.
func admissionProblem(ctx context.Context, cs kubernetesClient) string {
	want, wantBinding, err := AdmissionObjects()
	if err != nil {
		return err.Error()
	}
	api := cs.AdmissionregistrationV1()
	p, err := api.ValidatingAdmissionPolicies().Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("ValidatingAdmissionPolicy %s is not installed", want.Name)
	case err != nil:
		return fmt.Sprintf("reading ValidatingAdmissionPolicy %s: %v", want.Name, err)
	}
	if len(p.Spec.Validations) == 0 || p.Spec.Validations[0].Expression != want.Spec.Validations[0].Expression {
		return fmt.Sprintf("ValidatingAdmissionPolicy %s differs from %s", want.Name, manifests.AdmissionPolicyFile)
	}
	b, err := api.ValidatingAdmissionPolicyBindings().Get(ctx, wantBinding.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("ValidatingAdmissionPolicyBinding %s is not installed", wantBinding.Name)
	case err != nil:
		return fmt.Sprintf("reading ValidatingAdmissionPolicyBinding %s: %v", wantBinding.Name, err)
	}
	if !bindingMatches(b, wantBinding) {
		return fmt.Sprintf("ValidatingAdmissionPolicyBinding %s differs from %s (policy, actions or namespaceSelector)", wantBinding.Name, manifests.AdmissionPolicyFile)
	}
	return ""
}
