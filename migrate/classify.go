package migrate

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/plural"
	corev1 "k8s.io/api/core/v1"
)

// Secret types the cluster itself reads.
const (
	typeHelmRelease    corev1.SecretType = "helm.sh/release.v1"
	typeBootstrapToken corev1.SecretType = corev1.SecretTypeBootstrapToken // bootstrap.kubernetes.io/token
)

// UnusedReason is the reason of a Secret no workload reads: migrated all the same, so that
// nothing is lost when raw Secrets are pruned.
const UnusedReason = "unused: kept safe in KV"

// KVLayout says where migrated Secrets go: migration.kvPath and the mount {mount} stands for.
type KVLayout struct {
	Template string // migration.kvPath; "" means config.DefaultMigrationKVPath
	Mount    string
}

// Path is the logical KV path (with its mount) of a Secret of the namespace.
func (l KVLayout) Path(namespace, secret string) string {
	t := l.Template
	if t == "" {
		t = config.DefaultMigrationKVPath
	}
	return config.ExpandKVPath(t, l.Mount, namespace, secret)
}

// Classification is what Classify decided for every Secret of a namespace, and the references
// that cannot be served as they are written.
type Classification struct {
	Secrets []SecretPlan // every Secret in the namespace, by name
	Issues  []RefIssue   // by workload, then in the order of its references
}

// RefIssue is a reference to a Secret, or to a key of one, that is not there.
type RefIssue struct {
	Workload  WorkloadID
	Reference Reference
	// Fatal says the pods cannot start as written (a required reference); otherwise Kubernetes
	// carries on without it, and so will the migrated workload.
	Fatal   bool
	Message string // without the workload's name
}

func (i RefIssue) String() string { return i.Workload.String() + ": " + i.Message }

// Classify decides, for every Secret of the inventory, whether it is migrated or kept (and
// why), and finds the references that point at nothing.
func Classify(inv *Inventory, layout KVLayout) Classification {
	consumers := map[string][]string{}
	pullNamedBy := map[string][]string{}
	var c Classification
	for _, w := range inv.Workloads {
		for _, r := range w.References {
			consumers[r.Secret] = append(consumers[r.Secret], w.ID.String())
			if r.Kind == RefImagePull {
				pullNamedBy[r.Secret] = append(pullNamedBy[r.Secret], w.ID.String())
			}
			if issue, ok := referenceIssue(inv, w, r); ok {
				c.Issues = append(c.Issues, issue)
			}
		}
		for _, name := range w.MountableSecrets {
			consumers[name] = append(consumers[name], w.ID.String())
		}
	}
	for i := range inv.Secrets {
		s := &inv.Secrets[i]
		sp := SecretPlan{
			Name:      s.Name,
			Type:      secretType(s),
			Keys:      []string{},
			Consumers: sortedUnique(consumers[s.Name]),
		}
		for k, v := range s.Data {
			sp.Keys = append(sp.Keys, k)
			if !utf8.Valid(v) {
				sp.Binary = append(sp.Binary, k)
			}
		}
		slices.Sort(sp.Keys)
		slices.Sort(sp.Binary)
		if reasons := keepReasons(inv, s, sortedUnique(pullNamedBy[s.Name])); len(reasons) > 0 {
			sp.Action, sp.Reason = SecretKeep, strings.Join(reasons, "; ")
		} else {
			sp.Action, sp.KVPath = SecretMigrate, layout.Path(inv.Namespace, s.Name)
			sp.Reason = UnusedReason
			if n := len(sp.Consumers); n > 0 {
				sp.Reason = "used by " + plural.S(n, "workload")
			}
		}
		c.Secrets = append(c.Secrets, sp)
	}
	return c
}

func secretType(s *corev1.Secret) string {
	if s.Type == "" {
		return string(corev1.SecretTypeOpaque)
	}
	return string(s.Type)
}

// keepReasons says, in words a user understands, why the cluster needs the Secret to stay a
// Kubernetes Secret; none means it is migrated.
func keepReasons(inv *Inventory, s *corev1.Secret, pullNamedBy []string) []string {
	var why []string
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		r := "ServiceAccount token: Kubernetes issues it"
		if sa := s.Annotations[corev1.ServiceAccountNameKey]; sa != "" {
			r += " for ServiceAccount " + sa
		}
		why = append(why, r)
	case typeHelmRelease:
		r := "Helm release record: Helm reads it to upgrade and roll back"
		if rel := s.Labels["name"]; rel != "" {
			r += " release " + rel
		}
		why = append(why, r)
	case typeBootstrapToken:
		why = append(why, "bootstrap token: nodes authenticate with it to join the cluster")
	}
	if s.Type == corev1.SecretTypeDockerConfigJson || s.Type == corev1.SecretTypeDockercfg || len(pullNamedBy) > 0 {
		r := "image pull Secret: the kubelet pulls images with it"
		if len(pullNamedBy) > 0 {
			r += " (imagePullSecrets of " + strings.Join(pullNamedBy, ", ") + ")"
		}
		why = append(why, r)
	}
	why = append(why, clusterReaderReasons(inv.ClusterReaders[s.Name])...)
	if s.Type == corev1.SecretTypeTLS && len(inv.GrantedToGateways) > 0 {
		why = append(why, fmt.Sprintf("TLS Secret that Gateways in other namespaces may serve: ReferenceGrant %s opens every Secret here to them", strings.Join(inv.GrantedToGateways, ", ")))
	}
	why = append(why, controllerReasons(s)...)
	return why
}

func clusterReaderReasons(readers []ClusterReader) []string {
	var ingresses, gateways, annotationsOf, grants, mounts []string
	for _, r := range readers {
		switch {
		case strings.HasPrefix(r.Field, "spec.volumes["):
			volume, plugin, _ := strings.Cut(strings.TrimPrefix(r.Field, "spec.volumes["), "].")
			plugin, _, _ = strings.Cut(plugin, ".")
			mounts = append(mounts, fmt.Sprintf("volume %s of %s (%s)", volume, r, plugin))
		case r.Kind == "ReferenceGrant":
			grants = append(grants, r.Name)
		case strings.HasPrefix(r.Field, "metadata.annotations["):
			a := strings.TrimSuffix(strings.TrimPrefix(r.Field, "metadata.annotations["), "]")
			annotationsOf = append(annotationsOf, r.String()+" "+a)
		case r.Kind == "Gateway":
			gateways = append(gateways, r.String())
		default:
			ingresses = append(ingresses, r.String())
		}
	}
	var why []string
	if ingresses = sortedUnique(ingresses); len(ingresses) > 0 {
		why = append(why, "TLS Secret of "+strings.Join(ingresses, ", ")+": the ingress controller serves it")
	}
	if gateways = sortedUnique(gateways); len(gateways) > 0 {
		why = append(why, "TLS Secret of "+strings.Join(gateways, ", ")+": the Gateway controller serves it")
	}
	if len(annotationsOf) > 0 {
		why = append(why, "read by the ingress controller ("+strings.Join(sortedUnique(annotationsOf), ", ")+")")
	}
	if len(mounts) > 0 {
		why = append(why, "volume plugin Secret: the kubelet mounts "+strings.Join(sortedUnique(mounts), ", ")+" with it")
	}
	if len(grants) > 0 {
		why = append(why, "Gateways in other namespaces may read it: ReferenceGrant "+strings.Join(sortedUnique(grants), ", ")+" names it")
	}
	return why
}

// Markers of the controllers that write Secrets: a migrated copy would be overwritten, or the
// Secret recreated, on their next sync.
const (
	certManagerPrefix     = "cert-manager.io/"
	externalSecretsPrefix = "reconcile.external-secrets.io/"
	sealedSecretsPrefix   = "sealedsecrets.bitnami.com/"
	vsoPrefix             = "secrets.hashicorp.com/"
)

func controllerReasons(s *corev1.Secret) []string {
	var why []string
	for _, o := range s.OwnerReferences {
		group, _, _ := strings.Cut(o.APIVersion, "/")
		owner := o.Kind + "/" + o.Name
		switch {
		case o.Kind == "SealedSecret":
			why = append(why, "unsealed by Sealed Secrets from "+owner+": migrate the value at its source instead")
		case o.Kind == "ExternalSecret" || strings.HasSuffix(group, "external-secrets.io"):
			why = append(why, "written by External Secrets from "+owner+": it already comes from a secret store")
		case group == "secrets.hashicorp.com":
			why = append(why, "synced from Vault by the Vault Secrets Operator ("+owner+")")
		case group == "cert-manager.io":
			why = append(why, "issued by cert-manager ("+owner+")")
		default:
			why = append(why, "owned by "+owner+": its controller would recreate or overwrite it")
		}
	}
	marked := func(prefix string) bool {
		for _, m := range []map[string]string{s.Labels, s.Annotations} {
			for k := range m {
				if strings.HasPrefix(k, prefix) {
					return true
				}
			}
		}
		return false
	}
	ownedBy := func(text string) bool {
		return slices.ContainsFunc(why, func(w string) bool { return strings.Contains(w, text) })
	}
	if marked(certManagerPrefix) && !ownedBy("cert-manager") {
		r := "issued by cert-manager"
		if cert := s.Annotations["cert-manager.io/certificate-name"]; cert != "" {
			r += " (Certificate/" + cert + ")"
		}
		why = append(why, r+": it renews it in place")
	}
	if marked(externalSecretsPrefix) && !ownedBy("External Secrets") {
		why = append(why, "written by External Secrets: it already comes from a secret store")
	}
	if marked(sealedSecretsPrefix) && !ownedBy("Sealed Secrets") {
		why = append(why, "managed by Sealed Secrets: migrate the value at its source instead")
	}
	if marked(vsoPrefix) && !ownedBy("Vault Secrets Operator") {
		why = append(why, "synced from Vault by the Vault Secrets Operator")
	}
	return why
}

// referenceIssue reports a reference to a Secret, or to keys of one, that does not exist.
func referenceIssue(inv *Inventory, w Workload, r Reference) (RefIssue, bool) {
	s := inv.Secret(r.Secret)
	where := describeReference(r)
	if s == nil {
		what := "Secret " + r.Secret
		if r.Kind == RefEnv {
			what = "key " + r.Key + " of Secret " + r.Secret
		}
		switch {
		case r.Kind == RefImagePull:
			return RefIssue{w.ID, r, false, fmt.Sprintf("%s names Secret %s, which does not exist: the kubelet pulls without it, as it does now", where, r.Secret)}, true
		case r.Optional:
			return RefIssue{w.ID, r, false, fmt.Sprintf("%s reads %s (optional), but the Secret does not exist: %s, as now", where, what, absentEffect(r))}, true
		}
		return RefIssue{w.ID, r, true, fmt.Sprintf("%s reads %s, but the Secret does not exist, so its pods cannot start: create the Secret, or mark the reference optional: true", where, what)}, true
	}
	var missing []string
	switch r.Kind {
	case RefEnv:
		if _, ok := s.Data[r.Key]; !ok {
			missing = append(missing, r.Key)
		}
	case RefVolume, RefProjected:
		for _, it := range volumeItems(w, r) {
			if _, ok := s.Data[it.Key]; !ok {
				missing = append(missing, it.Key)
			}
		}
	}
	if len(missing) == 0 {
		return RefIssue{}, false
	}
	keys := "key " + strings.Join(missing, ", ")
	if len(missing) > 1 {
		keys = "keys " + strings.Join(missing, ", ")
	}
	if r.Optional {
		return RefIssue{w.ID, r, false, fmt.Sprintf("%s reads %s of Secret %s (optional), but the Secret has no such key: %s, as now", where, keys, r.Secret, absentEffect(r))}, true
	}
	return RefIssue{w.ID, r, true, fmt.Sprintf("%s reads %s of Secret %s, but the Secret has no such key, so its pods cannot start: add the key, or mark the reference optional: true", where, keys, r.Secret)}, true
}

func absentEffect(r Reference) string {
	switch r.Kind {
	case RefEnv:
		return "the variable stays unset"
	case RefEnvFrom:
		return "no variables come from it"
	}
	return "no files come from it"
}

// volumeItems are the items a secret volume (or projected source) of the workload lists.
func volumeItems(w Workload, r Reference) []corev1.KeyToPath {
	for _, v := range w.Template.Spec.Volumes {
		if v.Name != r.Volume {
			continue
		}
		if v.Secret != nil && r.Kind == RefVolume {
			return v.Secret.Items
		}
		if v.Projected != nil && r.Kind == RefProjected {
			var items []corev1.KeyToPath
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && src.Secret.Name == r.Secret {
					items = append(items, src.Secret.Items...)
				}
			}
			return items
		}
	}
	return nil
}

// describeReference names a reference the way a user finds it in the manifest.
func describeReference(r Reference) string {
	c := "container " + r.Container
	if r.Init {
		c = "init container " + r.Container
	}
	switch r.Kind {
	case RefEnv:
		return fmt.Sprintf("%s env %s", c, r.EnvName)
	case RefEnvFrom:
		if r.EnvName != "" {
			return fmt.Sprintf("%s envFrom with prefix %s", c, r.EnvName)
		}
		return c + " envFrom"
	case RefVolume:
		return "volume " + r.Volume
	case RefProjected:
		return "projected volume " + r.Volume
	}
	return "imagePullSecrets"
}

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}
