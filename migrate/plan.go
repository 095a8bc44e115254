package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/kube"
	"github.com/vaultctl/vaultctl/internal/plural"
	"github.com/vaultctl/vaultctl/internal/textdist"
	"github.com/vaultctl/vaultctl/networkpolicy"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WorkloadAnnotation marks a ServiceAccount migrate created, with the workload ("Kind/name") it
// was created for: a re-run (or a resumed one) finds it again instead of making another.
const WorkloadAnnotation = "vaultctl.io/workload"

// ManagedByLabel is the label every object vaultctl creates carries (app.kubernetes.io/managed-by=vaultctl).
const ManagedByLabel = kube.ManagedByLabel

// maxVaultName bounds generated role and policy names. Vault documents no limit, but it shows
// them in tokens, audit logs and `vault policy list`; longer names end in a hash of the full one.
const maxVaultName = 128

// maxKubeName is a ServiceAccount name's limit (a DNS subdomain).
const maxKubeName = 253

// PlanOptions are the choices a plan depends on besides the namespace's contents.
type PlanOptions struct {
	KV KVLayout
	// Workloads are --workload KIND/NAME selections: the plan holds only them and the Secrets
	// they read. Empty means every workload that reads a Secret, and every Secret.
	Workloads []string
	// TTL and MaxTTL of the roles created (migration.defaults); zero leaves them out of the
	// plan's words.
	TTL, MaxTTL time.Duration

	// What CompletePlan needs to rewrite the workloads.

	// KVMounts are every kv mount: a Secret's KV path is on the longest that prefixes it. Empty
	// means KV.Mount alone.
	KVMounts []string
	// AuthPath is the Kubernetes auth method the agents log in with: "auth/kubernetes".
	AuthPath string
	// Entrypoints are the argv of containers that set no command, config's first and the
	// flags' after: a later one for the same container wins.
	Entrypoints []Entrypoint
	// PatchGitOps patches workloads a GitOps controller manages live all the same; otherwise
	// they are manual, with the changes to commit.
	PatchGitOps bool
	// KeepServiceAccount keeps workloads that run as default on default (--keep-service-account):
	// their roles are bound to default, which every pod of the namespace may run as.
	KeepServiceAccount bool
	// CopyRoleBindings copies the RoleBindings that grant default something to the new
	// ServiceAccount of each workload moved off default (--copy-role-bindings).
	CopyRoleBindings bool
	// GuardRails say in each migrated workload's changes how vaultctl's guard rails let it
	// through: the NetworkPolicy that admits it and, in client-jwt mode, its auth-delegator
	// binding. Empty: none apply (an external Vault, policies off, reviewer-jwt).
	GuardRails struct {
		NetworkPolicy string // Vault namespace/name
		ClientJWT     bool
	}
}

// OptionsFromConfig takes the layout and role lifetimes from the config (migration.kvPath on
// the first kv mount, migration.defaults), the kv mounts, the auth path and namespace's
// entries of migration.entrypoints; the caller adds --workload and --entrypoint.
func OptionsFromConfig(c *config.Config, namespace string) (PlanOptions, error) {
	o := PlanOptions{
		KV:       KVLayout{Template: c.Migration.KVPath, Mount: c.MigrationKVMount()},
		TTL:      c.Migration.Defaults.TTL.Duration,
		MaxTTL:   c.Migration.Defaults.MaxTTL.Duration,
		AuthPath: "auth/" + strings.Trim(c.KubernetesAuth.Path, "/"),
	}
	for _, m := range c.KV {
		o.KVMounts = append(o.KVMounts, m.Path)
	}
	if ps := networkpolicy.BuildMigrated(c, namespace); len(ps) > 0 {
		o.GuardRails.NetworkPolicy = ps[0].Namespace + "/" + ps[0].Name
	}
	o.GuardRails.ClientJWT = c.KubernetesAuth.TokenReviewer == config.ClientJWT
	for i, e := range c.Migration.Entrypoints {
		if e.Namespace != namespace {
			continue
		}
		id, err := ParseWorkload(e.Workload)
		if err != nil { // validation refuses what ParseWorkload does; this is for a Config built in code
			return PlanOptions{}, fmt.Errorf("migration.entrypoints[%d].workload: %w", i, err)
		}
		o.Entrypoints = append(o.Entrypoints, Entrypoint{Workload: id, Container: e.Container, Argv: slices.Clone(e.Entrypoint)})
	}
	return o, nil
}

// BuildPlan decides what migrating the namespace does: for each Secret, migrate or keep and
// why; for each workload, its ServiceAccount, role, policy and the KV paths it will read. It
// only reads the inventory; no Secret value enters the plan. A --workload naming nothing in
// the namespace is an error.
func BuildPlan(inv *Inventory, opts PlanOptions) (*Plan, error) {
	if opts.KV.Mount == "" && (opts.KV.Template == "" || strings.Contains(opts.KV.Template, config.KVPathMount)) {
		return nil, fmt.Errorf("no KV mount for %s in migration.kvPath: list one under kv in the config", config.KVPathMount)
	}
	selected, err := selectWorkloads(inv, opts.Workloads)
	if err != nil {
		return nil, err
	}
	cls := Classify(inv, opts.KV)
	byName := map[string]SecretPlan{}
	for _, s := range cls.Secrets {
		byName[s.Name] = s
	}
	plan := &Plan{Namespace: inv.Namespace, Secrets: []SecretPlan{}, Workloads: []WorkloadPlan{}, Problems: []string{}}

	inPlan := map[string]bool{}
	for _, w := range selected {
		for _, r := range w.References {
			inPlan[r.Secret] = true
		}
		for _, s := range w.MountableSecrets {
			inPlan[s] = true
		}
	}
	for _, s := range cls.Secrets {
		if len(opts.Workloads) == 0 || inPlan[s.Name] {
			plan.Secrets = append(plan.Secrets, s)
		}
	}

	issues := map[WorkloadID][]RefIssue{}
	for _, is := range cls.Issues {
		issues[is.Workload] = append(issues[is.Workload], is)
	}
	names := newServiceAccountNames(inv)
	for _, w := range selected {
		wp := planWorkload(inv, w, byName, opts, names)
		for _, is := range issues[w.ID] {
			if is.Fatal {
				plan.Problems = append(plan.Problems, is.String())
			} else {
				wp.Warnings = append(wp.Warnings, is.Message)
			}
		}
		plan.Workloads = append(plan.Workloads, wp)
	}
	return plan, nil
}

func planWorkload(inv *Inventory, w Workload, secrets map[string]SecretPlan, opts PlanOptions, names *serviceAccountNames) WorkloadPlan {
	wp := WorkloadPlan{Kind: w.ID.Kind, Name: w.ID.Name, ServiceAccount: w.ServiceAccount, Changes: []string{}, Warnings: []string{}, References: slices.Clone(w.References)}
	if w.ID.Kind == KindServiceAccount {
		wp.Action = WorkloadSkip
		wp.Changes = append(wp.Changes, "nothing to change: it only names Secrets for its pods (image pull, token); the workloads that run as it are migrated on their own")
		return wp
	}

	if w.Unsupported {
		wp.Action = WorkloadSkip
		wp.Changes = append(wp.Changes, "nothing to change: migrate does not rewrite a "+w.ID.Kind+" (it was found through its pods)")
		var reads []string
		for _, r := range w.References {
			if s, ok := secrets[r.Secret]; ok && s.Action == SecretMigrate {
				reads = append(reads, r.Secret)
			}
		}
		if reads = sortedUnique(reads); len(reads) > 0 {
			wp.Warnings = append(wp.Warnings, fmt.Sprintf("its pods keep reading Secret %s from Kubernetes: copied to KV, but never pruned while it reads them; switch it to the Vault Agent by hand, then run migrate again", strings.Join(reads, ", ")))
		}
		return wp
	}

	// What it reads, Secret by Secret, in the order first read.
	var migrated, kept []string
	usedAs := map[string][]string{}
	for _, r := range w.References {
		s, ok := secrets[r.Secret]
		if !ok {
			continue
		}
		if !slices.Contains(usedAs[r.Secret], describeReference(r)) {
			usedAs[r.Secret] = append(usedAs[r.Secret], describeReference(r))
		}
		switch {
		case s.Action == SecretKeep && !slices.Contains(kept, r.Secret):
			kept = append(kept, r.Secret)
		case s.Action == SecretMigrate && !slices.Contains(migrated, r.Secret):
			migrated = append(migrated, r.Secret)
		}
	}
	if len(migrated) == 0 {
		wp.Action = WorkloadSkip
		switch {
		case len(kept) > 0:
			wp.Changes = append(wp.Changes, "nothing to change: it reads only Secrets that stay in Kubernetes ("+strings.Join(sortedUnique(kept), ", ")+")")
		case len(w.References) > 0:
			wp.Changes = append(wp.Changes, "nothing to change: the Secrets it names do not exist")
		default:
			wp.Changes = append(wp.Changes, "nothing to change: it reads no Secret")
		}
		return wp
	}

	wp.Action = WorkloadMigrate
	wp.Role = VaultName(inv.Namespace, w.ID)
	wp.Policy = wp.Role
	for _, name := range migrated {
		wp.KVPaths = append(wp.KVPaths, secrets[name].KVPath)
	}
	wp.KVPaths = sortedUnique(wp.KVPaths)

	switch {
	case w.ServiceAccount == DefaultServiceAccount && opts.KeepServiceAccount:
		wp.KeepsDefaultServiceAccount = true
		wp.Warnings = append(wp.Warnings, keepDefaultWarning(inv, w.ID))
	case w.ServiceAccount == DefaultServiceAccount:
		wp.ServiceAccount = names.forWorkload(w.ID)
		wp.CreateServiceAccount = !names.exists(wp.ServiceAccount)
		verb := "create ServiceAccount " + wp.ServiceAccount + " and run as it"
		if !wp.CreateServiceAccount {
			verb = "run as ServiceAccount " + wp.ServiceAccount + " (created for it by an earlier run)"
		}
		wp.Changes = append(wp.Changes, verb+" instead of default: a role bound to default would let every pod in the namespace read these Secrets")
		if pulls := inheritedPullSecrets(inv, w); wp.CreateServiceAccount && len(pulls) > 0 {
			wp.Changes = append(wp.Changes, "give ServiceAccount "+wp.ServiceAccount+" the image pull Secrets of default ("+strings.Join(pulls, ", ")+"), which its pods pull with")
		}
		if opts.CopyRoleBindings {
			for _, rb := range defaultBindings(inv) {
				wp.CopyRoleBindings = append(wp.CopyRoleBindings, rb.Name)
				wp.Changes = append(wp.Changes, fmt.Sprintf("copy RoleBinding %s (%s/%s, granted to default) to ServiceAccount %s as RoleBinding %s", rb.Name, rb.RoleRef.Kind, rb.RoleRef.Name, wp.ServiceAccount, CopiedRoleBindingName(rb.Name, wp.ServiceAccount)))
			}
		} else {
			wp.Warnings = append(wp.Warnings, defaultBindingWarnings(inv, w.ID, wp.ServiceAccount)...)
		}
	default:
		if sharers := sharingServiceAccount(inv, w); len(sharers) > 0 {
			wp.Warnings = append(wp.Warnings, fmt.Sprintf("ServiceAccount %s is also the identity of %s: their pods can log in with this workload's role and read its Secrets; give each workload its own ServiceAccount for least privilege", w.ServiceAccount, strings.Join(sharers, ", ")))
		}
		if !names.exists(w.ServiceAccount) {
			wp.Warnings = append(wp.Warnings, fmt.Sprintf("ServiceAccount %s does not exist, so no new pod of it can start: the role is bound to it all the same; create it", w.ServiceAccount))
		}
	}
	if noToken(inv, w, wp.ServiceAccount) {
		wp.Warnings = append(wp.Warnings, "its pods do not mount a ServiceAccount token (automountServiceAccountToken: false): the Vault Agent logs in with that token, and the injector refuses pods without one; allow the mount for this workload")
	}

	wp.Changes = append(wp.Changes, "create policy "+wp.Policy+": read on "+strings.Join(wp.KVPaths, ", ")+" and nothing else")
	role := fmt.Sprintf("create Kubernetes auth role %s: ServiceAccount %s in namespace %s, policy %s", wp.Role, wp.ServiceAccount, inv.Namespace, wp.Policy)
	if opts.TTL > 0 {
		role += ", ttl " + config.Duration{Duration: opts.TTL}.String()
	}
	if opts.MaxTTL > 0 {
		role += ", max_ttl " + config.Duration{Duration: opts.MaxTTL}.String()
	}
	wp.Changes = append(wp.Changes, role)
	if g := opts.GuardRails.NetworkPolicy; g != "" {
		wp.Changes = append(wp.Changes, "admit its pods to Vault on 8200 through NetworkPolicy "+g)
	}
	if opts.GuardRails.ClientJWT {
		wp.Changes = append(wp.Changes, "bind ServiceAccount "+wp.ServiceAccount+" to system:auth-delegator (ClusterRoleBinding "+ClientJWTBindingName(inv.Namespace)+"): in client-jwt mode Vault reviews its logins with its own token")
	}
	for _, name := range migrated {
		wp.Changes = append(wp.Changes, fmt.Sprintf("read Secret %s from KV %s through the Vault Agent (%s)", name, secrets[name].KVPath, strings.Join(usedAs[name], ", ")))
	}
	for _, name := range kept {
		wp.Changes = append(wp.Changes, fmt.Sprintf("keep reading Secret %s from Kubernetes (%s)", name, shortReason(secrets[name].Reason)))
	}
	if manager, ok := GitOpsManager(w.Meta); ok {
		wp.Warnings = append(wp.Warnings, "managed by "+manager+", which would revert a live patch on its next sync: commit the change to its source instead")
	}
	return wp
}

// shortReason is a keep reason's first clause: "image pull Secret", "TLS Secret of Ingress/web".
func shortReason(reason string) string {
	first, _, _ := strings.Cut(reason, ";")
	short, _, _ := strings.Cut(first, ":")
	return short
}

// VaultName is the role and policy name of a migrated workload: <namespace>-<kind>-<name>,
// lowercased as Vault stores policy names, and cut to maxVaultName with a hash of the whole.
func VaultName(namespace string, w WorkloadID) string {
	return boundedName(strings.ToLower(namespace+"-"+w.Kind+"-"+w.Name), maxVaultName)
}

func boundedName(name string, limit int) string {
	if len(name) <= limit {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "-" + hex.EncodeToString(sum[:])[:8]
	return strings.TrimRight(name[:limit-len(suffix)], "-.") + suffix
}

// serviceAccountNames hands out the names of the ServiceAccounts a plan creates: <name> when
// free, else <name>-<kind>, never one that exists for something else or was handed out.
type serviceAccountNames struct {
	existing map[string]*corev1.ServiceAccount
	taken    map[string]bool
}

func newServiceAccountNames(inv *Inventory) *serviceAccountNames {
	n := &serviceAccountNames{existing: map[string]*corev1.ServiceAccount{}, taken: map[string]bool{}}
	for i := range inv.ServiceAccounts {
		n.existing[inv.ServiceAccounts[i].Name] = &inv.ServiceAccounts[i]
	}
	return n
}

func (n *serviceAccountNames) exists(name string) bool { return n.existing[name] != nil }

func (n *serviceAccountNames) forWorkload(w WorkloadID) string {
	kind := strings.ToLower(w.Kind)
	for i := 0; ; i++ {
		name := w.Name
		switch {
		case i == 1:
			name = w.Name + "-" + kind
		case i > 1:
			name = fmt.Sprintf("%s-%s-%d", w.Name, kind, i)
		}
		name = boundedName(name, maxKubeName)
		if n.taken[name] || name == DefaultServiceAccount {
			continue
		}
		if sa := n.existing[name]; sa != nil && sa.Annotations[WorkloadAnnotation] != w.String() {
			continue
		}
		n.taken[name] = true
		return name
	}
}

// inheritedPullSecrets are the image pull Secrets the workload's pods get from ServiceAccount
// default, which a ServiceAccount of their own must carry too or the pods cannot pull.
func inheritedPullSecrets(inv *Inventory, w Workload) []string {
	if !w.PullSecretsFromServiceAccount {
		return nil
	}
	var out []string
	for _, r := range w.References {
		if r.Kind == RefImagePull {
			out = append(out, r.Secret)
		}
	}
	return out
}

// NewServiceAccount is the ServiceAccount to create for a workload the plan moves off default
// (nil when it creates none): marked as vaultctl's and its workload's, with the image pull
// Secrets its pods had from default. The token mount is left to the default (on), which the
// Vault Agent needs.
func NewServiceAccount(inv *Inventory, wp WorkloadPlan) *corev1.ServiceAccount {
	if !wp.CreateServiceAccount {
		return nil
	}
	id := WorkloadID{Kind: wp.Kind, Name: wp.Name}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name:        wp.ServiceAccount,
		Namespace:   inv.Namespace,
		Labels:      map[string]string{ManagedByLabel: "vaultctl"},
		Annotations: map[string]string{WorkloadAnnotation: id.String()},
	}}
	if w := inv.Workload(id); w != nil {
		for _, name := range inheritedPullSecrets(inv, *w) {
			sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: name})
		}
	}
	return sa
}

// defaultBindingWarnings lists the RoleBindings that grant ServiceAccount default something
// the workload may use for its own API calls, which its new ServiceAccount lacks.
func defaultBindingWarnings(inv *Inventory, w WorkloadID, newSA string) []string {
	var out []string
	for _, rb := range defaultBindings(inv) {
		out = append(out, fmt.Sprintf("RoleBinding %s grants ServiceAccount default %s/%s, which %s may use for its own Kubernetes API calls: it is not granted to ServiceAccount %s unless you ask for the binding to be copied (--copy-role-bindings)", rb.Name, rb.RoleRef.Kind, rb.RoleRef.Name, w, newSA))
	}
	return out
}

// defaultBindings are the namespace's RoleBindings with ServiceAccount default as a subject.
func defaultBindings(inv *Inventory) []rbacv1.RoleBinding {
	var out []rbacv1.RoleBinding
	for _, rb := range inv.RoleBindings {
		if slices.ContainsFunc(rb.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == DefaultServiceAccount && (s.Namespace == "" || s.Namespace == inv.Namespace)
		}) {
			out = append(out, rb)
		}
	}
	return out
}

// keepDefaultWarning says what --keep-service-account costs: who else can log in with the role.
func keepDefaultWarning(inv *Inventory, w WorkloadID) string {
	var others []string
	for _, o := range inv.Workloads {
		if o.ID != w && o.ID.Kind != KindServiceAccount && o.ServiceAccount == DefaultServiceAccount {
			others = append(others, o.ID.String())
		}
	}
	who := "any pod created in " + inv.Namespace + " later"
	if len(others) > 0 {
		who = strings.Join(others, ", ") + " and " + who
	}
	return fmt.Sprintf("--keep-service-account: its role is bound to ServiceAccount default, so every pod of %s that runs as default (%s) can log in with it and read its Secrets; without the flag it gets a ServiceAccount of its own", inv.Namespace, who)
}

// CopiedRoleBindingName is the copy of RoleBinding rb for ServiceAccount sa.
func CopiedRoleBindingName(rb, sa string) string { return boundedName(rb+"-"+sa, maxKubeName) }

// sharingServiceAccount lists the other workloads whose pods run as w's ServiceAccount.
func sharingServiceAccount(inv *Inventory, w Workload) []string {
	var out []string
	for _, o := range inv.Workloads {
		if o.ID != w.ID && o.ID.Kind != KindServiceAccount && o.ServiceAccount == w.ServiceAccount {
			out = append(out, o.ID.String())
		}
	}
	return out
}

// noToken says the workload's pods, running as serviceAccount, get no ServiceAccount token
// mounted, as the pod spec or, when the spec is silent, the ServiceAccount decides.
func noToken(inv *Inventory, w Workload, serviceAccount string) bool {
	if a := w.Template.Spec.AutomountServiceAccountToken; a != nil {
		return !*a
	}
	for _, sa := range inv.ServiceAccounts {
		if sa.Name == serviceAccount {
			return sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken
		}
	}
	return false
}

// GitOpsManager names the controller that owns a workload's manifest (Argo CD, Flux, Helm),
// whose next sync reverts a live patch; ok is false for a workload managed by hand.
func GitOpsManager(meta metav1.ObjectMeta) (manager string, ok bool) {
	switch {
	case meta.Annotations["argocd.argoproj.io/tracking-id"] != "":
		return "Argo CD (annotation argocd.argoproj.io/tracking-id)", true
	case meta.Labels["argocd.argoproj.io/instance"] != "":
		return "Argo CD (label argocd.argoproj.io/instance)", true
	case meta.Labels["kustomize.toolkit.fluxcd.io/name"] != "":
		return "Flux (label kustomize.toolkit.fluxcd.io/name)", true
	case meta.Labels["helm.toolkit.fluxcd.io/name"] != "":
		return "Flux (label helm.toolkit.fluxcd.io/name)", true
	case meta.Annotations["meta.helm.sh/release-name"] != "":
		return "Helm release " + meta.Annotations["meta.helm.sh/release-name"] + " (annotation meta.helm.sh/release-name)", true
	case meta.Labels[ManagedByLabel] == "Helm":
		return "Helm (label app.kubernetes.io/managed-by: Helm)", true
	}
	return "", false
}

// Kinds --workload accepts, by the names kubectl users type.
var kindAliases = map[string]string{
	"deployment": KindDeployment, "deployments": KindDeployment, "deploy": KindDeployment,
	"statefulset": KindStatefulSet, "statefulsets": KindStatefulSet, "sts": KindStatefulSet,
	"daemonset": KindDaemonSet, "daemonsets": KindDaemonSet, "ds": KindDaemonSet,
	"job": KindJob, "jobs": KindJob,
	"cronjob": KindCronJob, "cronjobs": KindCronJob, "cj": KindCronJob,
	"pod": KindPod, "pods": KindPod, "po": KindPod,
}

// ParseWorkload reads a --workload KIND/NAME ("Deployment/web", "deploy/web").
func ParseWorkload(s string) (WorkloadID, error) {
	kind, name, ok := strings.Cut(s, "/")
	if !ok || kind == "" || name == "" || strings.Contains(name, "/") {
		return WorkloadID{}, fmt.Errorf("--workload %q: want KIND/NAME, e.g. Deployment/web", s)
	}
	k, known := kindAliases[strings.ToLower(kind)]
	if !known {
		return WorkloadID{}, fmt.Errorf("--workload %q: kind %s is not one migrate rewrites; use Deployment, StatefulSet, DaemonSet, Job, CronJob or Pod", s, kind)
	}
	return WorkloadID{Kind: k, Name: name}, nil
}

// selectWorkloads is every workload that reads a Secret, or the ones --workload names.
func selectWorkloads(inv *Inventory, args []string) ([]Workload, error) {
	if len(args) == 0 {
		var out []Workload
		for _, w := range inv.Workloads {
			if len(w.References)+len(w.MountableSecrets) > 0 {
				out = append(out, w)
			}
		}
		return out, nil
	}
	want := map[WorkloadID]bool{}
	for _, a := range args {
		id, err := ParseWorkload(a)
		if err != nil {
			return nil, err
		}
		if inv.Workload(id) == nil {
			return nil, unknownWorkload(inv, a, id)
		}
		want[id] = true
	}
	var out []Workload
	for _, w := range inv.Workloads {
		if want[w.ID] {
			out = append(out, w)
		}
	}
	return out, nil
}

func unknownWorkload(inv *Inventory, arg string, id WorkloadID) error {
	var same []string
	near := ""
	for _, w := range inv.Workloads {
		if w.ID.Kind != id.Kind {
			continue
		}
		same = append(same, w.ID.Name)
		if near == "" && textdist.Levenshtein(w.ID.Name, id.Name) <= 2 {
			near = w.ID.Name
		}
	}
	msg := fmt.Sprintf("--workload %s: namespace %s has no %s named %s", arg, inv.Namespace, id.Kind, id.Name)
	switch {
	case near != "":
		msg += fmt.Sprintf(": did you mean %s/%s?", id.Kind, near)
	case len(same) == 0:
		msg += " (it has no " + id.Kind + " at all)"
	case len(same) <= 10:
		msg += " (it has " + plural.S(len(same), id.Kind) + ": " + strings.Join(same, ", ") + ")"
	default:
		msg += " (it has " + plural.S(len(same), id.Kind) + "; list them with kubectl get " + strings.ToLower(id.Kind) + " -n " + inv.Namespace + ")"
	}
	return fmt.Errorf("%s", msg)
}
