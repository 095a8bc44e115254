package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/policy"
)

// CreatedByLabel marks the ServiceAccounts migrate created (beside ManagedByLabel), so that
// --purge removes those and never one the team made.
const (
	CreatedByLabel = "vaultctl.io/created-by"
	createdByValue = "migrate"
)

// PolicyFor is a workload's ACL policy: read on exactly the KV paths it reads, with the
// explicit deny on each parent, rendered by package policy (which marks it policy.Header).
// The same plan always gives the same text, so a re-run finds nothing to write.
func PolicyFor(wp WorkloadPlan, kvMounts []string) (name, hcl string) {
	return wp.Policy, policy.Render(configPolicy(wp), kvMounts)
}

// configPolicy is the workload's policy as the config file would state it (--write-config).
func configPolicy(wp WorkloadPlan) config.Policy {
	paths := slices.Clone(wp.KVPaths)
	slices.Sort(paths)
	paths = slices.Compact(paths)
	p := config.Policy{Name: wp.Policy}
	for _, path := range paths {
		p.Rules = append(p.Rules, config.PolicyRule{Path: path, Capabilities: []string{"read"}})
	}
	return p
}

// AuthRole is a Kubernetes auth role as migrate writes it at auth/<Mount>/role/<Name>.
type AuthRole struct {
	Mount, Name string
	Data        map[string]any // policy.RoleData's shape, as the roles phase writes it
}

// RoleFor is a workload's Kubernetes auth role: bound to exactly its ServiceAccount in ns, its
// tokens carrying only its policy, with migration.defaults' ttl and max_ttl. A role bound to
// default would let every pod in the namespace read the workload's Secrets, so that, and a
// plan without the names, is an error.
func RoleFor(wp WorkloadPlan, ns, authMount string, defaults config.MigrationDefaults) (AuthRole, error) {
	id := WorkloadID{Kind: wp.Kind, Name: wp.Name}
	switch {
	case wp.ServiceAccount == "" || (wp.ServiceAccount == DefaultServiceAccount && !wp.KeepsDefaultServiceAccount):
		return AuthRole{}, fmt.Errorf("%s runs as ServiceAccount %q: refusing to bind a role to it, because every pod in %s could then log in as %s; the plan must give the workload its own ServiceAccount (or --keep-service-account, knowing that)",
			id, cmpOr(wp.ServiceAccount, DefaultServiceAccount), ns, id)
	case wp.Role == "" || wp.Policy == "":
		return AuthRole{}, fmt.Errorf("%s: the plan names no role or policy for it; re-run the plan", id)
	case ns == "" || authMount == "":
		return AuthRole{}, fmt.Errorf("%s: no namespace or auth mount given for its role", id)
	}
	return AuthRole{Mount: authMount, Name: wp.Role, Data: policy.RoleData(configRole(wp, ns, defaults))}, nil
}

// configRole is the workload's role as the config file would state it (--write-config).
func configRole(wp WorkloadPlan, ns string, defaults config.MigrationDefaults) config.Role {
	return config.Role{
		Name:            wp.Role,
		ServiceAccounts: []string{wp.ServiceAccount},
		Namespaces:      []string{ns},
		Policies:        []string{wp.Policy},
		TTL:             defaults.TTL,
		MaxTTL:          defaults.MaxTTL,
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// AccessVault is what EnsureAccess needs of Vault.
type AccessVault interface {
	vault.ACL
	vault.AuthRoles
}

// AccessInput is what EnsureAccess creates access for.
type AccessInput struct {
	Namespace string
	AuthMount string   // the Kubernetes auth mount, "kubernetes"
	KVMounts  []string // the config's kv mounts
	Defaults  config.MigrationDefaults
	// Workloads of the plan; only those migrated get access (the others are not rewritten).
	Workloads []WorkloadPlan
}

// Outcome is what EnsureAccess did with one object.
type Outcome string

const (
	Created   Outcome = "created"
	Updated   Outcome = "updated"
	Unchanged Outcome = "unchanged"
)

// AccessChange is one object EnsureAccess looked at.
type AccessChange struct {
	Workload string // Kind/name
	Object   string // "ServiceAccount team-a/api", "policy team-a-deployment-api", "role auth/kubernetes/role/…"
	Outcome  Outcome
	Detail   string // for an update: what differed (field names only)
}

// AccessReport lists, in plan order, every object EnsureAccess looked at.
type AccessReport struct {
	Changes []AccessChange
}

// Changed reports whether anything was created or updated.
func (r AccessReport) Changed() bool {
	return slices.ContainsFunc(r.Changes, func(c AccessChange) bool { return c.Outcome != Unchanged })
}

// Summary says in one line what the run did: "3 created, 1 updated, 8 unchanged", or that
// nothing changed.
func (r AccessReport) Summary() string {
	n := map[Outcome]int{}
	for _, c := range r.Changes {
		n[c.Outcome]++
	}
	if !r.Changed() {
		return fmt.Sprintf("access already in place: %d objects unchanged", n[Unchanged])
	}
	return fmt.Sprintf("%d created, %d updated, %d unchanged", n[Created], n[Updated], n[Unchanged])
}

// EnsureAccess gives each migrated workload its least-privilege access: the ServiceAccount the
// plan says to create (labelled as migrate's), its policy and its Kubernetes auth role. Each
// object is written only when it differs from what is live, so a second run changes nothing
// and the report says so. On an error it returns it with the report of what was done.
func EnsureAccess(ctx context.Context, kube kubernetes.Interface, v AccessVault, in AccessInput) (AccessReport, error) {
	// Roles are checked first: a role that must not exist stops the run before anything of
	// any workload is created.
	roles := make([]AuthRole, len(in.Workloads))
	for i, wp := range in.Workloads {
		if wp.Action != WorkloadMigrate {
			continue
		}
		r, err := RoleFor(wp, in.Namespace, in.AuthMount, in.Defaults)
		if err != nil {
			return AccessReport{}, err
		}
		roles[i] = r
		// Off a kv mount, policy.Render would grant the logical path as it stands, which
		// KV v2 never checks: the pods would be refused with a policy that looks right.
		for _, path := range wp.KVPaths {
			if config.KVMountOf(in.KVMounts, path) == "" {
				return AccessReport{}, fmt.Errorf("%s reads %s, which is on none of the kv mounts %v: add its mount to kv[] in the config, or fix migration.kvPath",
					WorkloadID{Kind: wp.Kind, Name: wp.Name}, path, in.KVMounts)
			}
		}
	}
	// Workloads are independent: a namespace of hundreds is done with several in flight.
	per := make([][]AccessChange, len(in.Workloads))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(accessConcurrency)
	for i, wp := range in.Workloads {
		if wp.Action != WorkloadMigrate {
			continue
		}
		g.Go(func() error {
			changes, err := ensureWorkloadAccess(gctx, kube, v, in, wp, roles[i])
			per[i] = changes
			return err
		})
	}
	err := g.Wait()
	var rep AccessReport
	for _, c := range per {
		rep.Changes = append(rep.Changes, c...)
	}
	return rep, err
}

// accessConcurrency is how many workloads EnsureAccess works on at once.
const accessConcurrency = 16

// ensureWorkloadAccess creates one workload's ServiceAccount (when the plan says so), then its
// policy, then its role, which names the policy.
func ensureWorkloadAccess(ctx context.Context, kube kubernetes.Interface, v AccessVault, in AccessInput, wp WorkloadPlan, role AuthRole) ([]AccessChange, error) {
	id := WorkloadID{Kind: wp.Kind, Name: wp.Name}.String()
	var out []AccessChange
	if wp.CreateServiceAccount {
		c, err := ensureServiceAccount(ctx, kube, in.Namespace, wp.ServiceAccount, id)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	for _, rb := range wp.CopyRoleBindings {
		c, err := ensureRoleBindingCopy(ctx, kube, in.Namespace, rb, wp.ServiceAccount, id)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	name, hcl := PolicyFor(wp, in.KVMounts)
	c, err := ensureWorkloadPolicy(ctx, v, name, hcl)
	if err != nil {
		return out, fmt.Errorf("%s: %w", id, err)
	}
	c.Workload = id
	out = append(out, c)
	c, err = ensureWorkloadRole(ctx, v, role)
	if err != nil {
		return out, fmt.Errorf("%s: %w", id, err)
	}
	c.Workload = id
	return append(out, c), nil
}

// ensureServiceAccount creates the workload's own ServiceAccount. One that already exists is
// left alone when migrate made it for this workload (an earlier or interrupted run), and is an
// error otherwise: taking over someone else's identity would hand its pods these Secrets.
func ensureServiceAccount(ctx context.Context, kube kubernetes.Interface, ns, name, workload string) (AccessChange, error) {
	c := AccessChange{Workload: workload, Object: "ServiceAccount " + ns + "/" + name}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: ns,
		Labels:      map[string]string{ManagedByLabel: "vaultctl", CreatedByLabel: createdByValue},
		Annotations: map[string]string{WorkloadAnnotation: workload},
	}}
	_, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	if err == nil {
		c.Outcome = Created
		return c, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return c, fmt.Errorf("creating %s for %s: %w", c.Object, workload, err)
	}
	cur, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return c, fmt.Errorf("reading %s: %w", c.Object, err)
	}
	if cur.Annotations[WorkloadAnnotation] != workload {
		return c, fmt.Errorf("%s already exists and migrate did not create it for %s (annotation %s is %q): re-run the plan, which picks another name",
			c.Object, workload, WorkloadAnnotation, cur.Annotations[WorkloadAnnotation])
	}
	c.Outcome = Unchanged
	return c, nil
}

func ensureWorkloadPolicy(ctx context.Context, v vault.ACL, name, hcl string) (AccessChange, error) {
	c := AccessChange{Object: "policy " + name}
	cur, found, err := v.ReadPolicy(ctx, name)
	if err != nil {
		return c, fmt.Errorf("reading policy %s: %w", name, err)
	}
	if found && strings.TrimSpace(cur) == strings.TrimSpace(hcl) {
		c.Outcome = Unchanged
		return c, nil
	}
	c.Outcome = Created
	if found {
		c.Outcome, c.Detail = Updated, "rules"
	}
	if err := v.WritePolicy(ctx, name, hcl); err != nil {
		return c, fmt.Errorf("writing policy %s: %w", name, err)
	}
	return c, nil
}

func ensureWorkloadRole(ctx context.Context, v vault.AuthRoles, r AuthRole) (AccessChange, error) {
	where := "auth/" + r.Mount + "/role/" + r.Name
	c := AccessChange{Object: "role " + where}
	cur, err := v.ReadRole(ctx, r.Mount, r.Name)
	if err != nil && !vault.IsNotFound(err) {
		return c, fmt.Errorf("reading %s: %w", where, err)
	}
	c.Outcome = Created
	if cur != nil {
		diffs := policy.RoleDiff(cur, r.Data)
		if len(diffs) == 0 {
			c.Outcome = Unchanged
			return c, nil
		}
		c.Outcome, c.Detail = Updated, strings.Join(diffs, ", ")
	}
	if err := v.WriteRole(ctx, r.Mount, r.Name, r.Data); err != nil {
		return c, fmt.Errorf("writing %s: %w", where, err)
	}
	return c, nil
}
