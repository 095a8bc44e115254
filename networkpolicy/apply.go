package networkpolicy

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// FieldManager is the server-side apply field manager.
const FieldManager = "vaultctl"

// Change actions.
const (
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionDelete = "delete"
)

// Change is one thing Apply does (or Diff says it would do).
type Change struct {
	Action string // create, update or delete
	Object string // namespace/name
	Detail string
}

func (c Change) String() string {
	return fmt.Sprintf("%s NetworkPolicy %s: %s", c.Action, c.Object, c.Detail)
}

// Result is what Apply did.
type Result struct {
	Changes   []Change
	Unchanged int // desired objects already as wanted
}

// step is a planned change with what executing it needs.
type step struct {
	Change
	desired *networkingv1.NetworkPolicy // create, update
	live    *networkingv1.NetworkPolicy // delete
}

// Diff compares the cluster with desired, semantically (spec, and the labels and annotations
// vaultctl sets; never resourceVersion or what other managers add), and returns what Apply would
// change, in the order it would: desired objects in the given order, then deletions. The
// installation is the one desired names (see DiffIn); with prune and nothing desired there is no
// installation to scope to, and Diff fails rather than guess.
func Diff(ctx context.Context, client kubernetes.Interface, desired []networkingv1.NetworkPolicy, prune bool) ([]Change, error) {
	vns, err := instanceOf(desired, prune)
	if err != nil {
		return nil, err
	}
	return DiffIn(ctx, client, vns, desired, prune)
}

// DiffIn is Diff for the installation whose Vault namespace is vaultNamespace; it is what a
// caller holding the config uses, since it also covers networkPolicies turned off (desired
// empty: every object of the installation is to be deleted).
func DiffIn(ctx context.Context, client kubernetes.Interface, vaultNamespace string, desired []networkingv1.NetworkPolicy, prune bool) ([]Change, error) {
	steps, _, err := plan(ctx, client, vaultNamespace, desired, prune)
	if err != nil {
		return nil, err
	}
	changes := make([]Change, len(steps))
	for i, s := range steps {
		changes[i] = s.Change
	}
	return changes, nil
}

// Apply makes the cluster match desired: objects that differ are applied with server-side apply
// (field manager vaultctl, forcing conflicts, so a hand edit of a field vaultctl sets is
// reverted), objects already as wanted are not written at all, and with prune the installation's
// objects no longer desired are deleted, after everything else is applied. Applying twice changes
// nothing the second time. On error, Result holds what was done before it. Like Diff, it takes
// the installation from desired; ApplyIn names it.
func Apply(ctx context.Context, client kubernetes.Interface, desired []networkingv1.NetworkPolicy, prune bool) (Result, error) {
	vns, err := instanceOf(desired, prune)
	if err != nil {
		return Result{}, err
	}
	return ApplyIn(ctx, client, vns, desired, prune)
}

// ApplyIn is Apply for the installation whose Vault namespace is vaultNamespace.
//
// Prune deletes only NetworkPolicies that are labelled app.kubernetes.io/managed-by=vaultctl and
// vaultctl.io/vault-namespace=vaultNamespace, are named vaultctl-*, are not desired, and were not
// created by `migrate namespace` (MigratedNamespaceLabel: the config does not list those). It looks
// in every namespace, because a client namespace dropped from the config is no longer in desired
// yet its vaultctl-vault-egress must go; if listing across namespaces is forbidden, it falls back
// to the Vault namespace and the namespaces desired mentions.
func ApplyIn(ctx context.Context, client kubernetes.Interface, vaultNamespace string, desired []networkingv1.NetworkPolicy, prune bool) (Result, error) {
	steps, unchanged, err := plan(ctx, client, vaultNamespace, desired, prune)
	res := Result{Unchanged: unchanged}
	if err != nil {
		return res, err
	}
	for _, s := range steps {
		if err := execute(ctx, client, s); err != nil {
			return res, fmt.Errorf("%s NetworkPolicy %s: %w", s.Action, s.Object, err)
		}
		res.Changes = append(res.Changes, s.Change)
	}
	return res, nil
}

// instanceOf is the installation desired belongs to.
func instanceOf(desired []networkingv1.NetworkPolicy, prune bool) (string, error) {
	if len(desired) == 0 {
		if prune {
			return "", fmt.Errorf("nothing desired: prune needs the installation's Vault namespace (use ApplyIn/DiffIn)")
		}
		return "", nil
	}
	return desired[0].Labels[InstanceLabel], nil
}

func execute(ctx context.Context, client kubernetes.Interface, s step) error {
	if s.Action == ActionDelete {
		// Delete the very object judged prunable, not one recreated under its name since.
		uid := s.live.UID
		pre := &metav1.Preconditions{UID: &uid}
		err := client.NetworkingV1().NetworkPolicies(s.live.Namespace).Delete(ctx, s.live.Name, metav1.DeleteOptions{Preconditions: pre})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	body, err := applyBody(s.desired)
	if err != nil {
		return err
	}
	force := true
	_, err = client.NetworkingV1().NetworkPolicies(s.desired.Namespace).Patch(ctx, s.desired.Name, types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	return err
}

// applyBody is the apply configuration: only the fields vaultctl owns, so that nothing a server
// fills in (resourceVersion, managedFields, status) is ever claimed.
func applyBody(p *networkingv1.NetworkPolicy) ([]byte, error) {
	obj := networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        p.Name,
			Namespace:   p.Namespace,
			Labels:      p.Labels,
			Annotations: p.Annotations,
		},
		Spec: p.Spec,
	}
	return json.Marshal(obj)
}

func plan(ctx context.Context, client kubernetes.Interface, vns string, desired []networkingv1.NetworkPolicy, prune bool) ([]step, int, error) {
	if vns == "" && (prune || len(desired) > 0) {
		return nil, 0, fmt.Errorf("no Vault namespace: desired NetworkPolicies must carry the %s label", InstanceLabel)
	}
	want := map[string]bool{}
	for i := range desired {
		d := &desired[i]
		key := d.Namespace + "/" + d.Name
		switch {
		case d.Namespace == "" || d.Name == "":
			return nil, 0, fmt.Errorf("desired NetworkPolicy %q has no namespace or name", key)
		case want[key]:
			return nil, 0, fmt.Errorf("desired NetworkPolicy %s appears twice", key)
		case !owned(d, vns):
			// Prune finds vaultctl's objects by labels and name: an object without them would be
			// applied once and then never cleaned up.
			return nil, 0, fmt.Errorf("desired NetworkPolicy %s must be named %s* and labelled %s=%s, %s=%s",
				key, namePrefix, ManagedByLabel, ManagedByValue, InstanceLabel, vns)
		}
		want[key] = true
	}

	var steps []step
	unchanged := 0
	for i := range desired {
		d := &desired[i]
		key := d.Namespace + "/" + d.Name
		live, err := client.NetworkingV1().NetworkPolicies(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			steps = append(steps, step{Change: Change{ActionCreate, key, Summary(d)}, desired: d})
		case err != nil:
			return nil, 0, fmt.Errorf("get NetworkPolicy %s: %w", key, err)
		default:
			if diffs := differences(live, d); len(diffs) > 0 {
				steps = append(steps, step{Change: Change{ActionUpdate, key, "differs in " + strings.Join(diffs, ", ")}, desired: d})
			} else {
				unchanged++
			}
		}
	}
	if !prune {
		return steps, unchanged, nil
	}

	candidates, err := listOwned(ctx, client, vns, desired)
	if err != nil {
		return nil, 0, err
	}
	for i := range candidates {
		l := &candidates[i]
		key := l.Namespace + "/" + l.Name
		if want[key] || !owned(l, vns) || migrateOwned(l) {
			continue
		}
		steps = append(steps, step{Change: Change{ActionDelete, key, "no longer in the config"}, live: l})
	}
	return steps, unchanged, nil
}

// owned is checked again on every listed object, not left to the label selector alone.
func owned(p *networkingv1.NetworkPolicy, vns string) bool {
	return p.Labels[ManagedByLabel] == ManagedByValue && p.Labels[InstanceLabel] == vns && strings.HasPrefix(p.Name, namePrefix)
}

// listOwned lists the installation's labelled NetworkPolicies in every namespace, or, when that
// is forbidden, in the Vault namespace and those desired mentions. Sorted by namespace/name.
func listOwned(ctx context.Context, client kubernetes.Interface, vns string, desired []networkingv1.NetworkPolicy) ([]networkingv1.NetworkPolicy, error) {
	opts := metav1.ListOptions{LabelSelector: ManagedByLabel + "=" + ManagedByValue + "," + InstanceLabel + "=" + vns}
	var items []networkingv1.NetworkPolicy
	l, err := client.NetworkingV1().NetworkPolicies(metav1.NamespaceAll).List(ctx, opts)
	switch {
	case err == nil:
		items = l.Items
	case apierrors.IsForbidden(err):
		namespaces := map[string]bool{vns: true}
		for _, d := range desired {
			namespaces[d.Namespace] = true
		}
		for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
			l, err := client.NetworkingV1().NetworkPolicies(ns).List(ctx, opts)
			if err != nil {
				return nil, fmt.Errorf("list NetworkPolicies in %s: %w", ns, err)
			}
			items = append(items, l.Items...)
		}
	default:
		return nil, fmt.Errorf("list NetworkPolicies: %w", err)
	}
	slices.SortFunc(items, func(a, b networkingv1.NetworkPolicy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return items, nil
}

// differences names what Apply would change on live. Labels and annotations other managers add
// are not drift: apply would leave them, so reporting them would never converge.
func differences(live, want *networkingv1.NetworkPolicy) []string {
	var d []string
	// Semantic equality treats nil and empty slices and maps alike, as the API round trip does.
	if !apiequality.Semantic.DeepEqual(live.Spec.PodSelector, want.Spec.PodSelector) {
		d = append(d, "spec.podSelector")
	}
	if !apiequality.Semantic.DeepEqual(live.Spec.PolicyTypes, want.Spec.PolicyTypes) {
		d = append(d, "spec.policyTypes")
	}
	if !apiequality.Semantic.DeepEqual(live.Spec.Ingress, want.Spec.Ingress) {
		d = append(d, "spec.ingress")
	}
	if !apiequality.Semantic.DeepEqual(live.Spec.Egress, want.Spec.Egress) {
		d = append(d, "spec.egress")
	}
	if !ownedMapMatches(live.Labels, want.Labels) {
		d = append(d, "labels")
	}
	if !ownedMapMatches(live.Annotations, want.Annotations) {
		d = append(d, "annotations")
	}
	return d
}

func ownedMapMatches(live, want map[string]string) bool {
	for k, v := range want {
		if lv, ok := live[k]; !ok || lv != v {
			return false
		}
	}
	return true
}
