package migrate

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Workload kinds, in the order a plan lists them.
const (
	KindDeployment     = "Deployment"
	KindStatefulSet    = "StatefulSet"
	KindDaemonSet      = "DaemonSet"
	KindJob            = "Job"
	KindCronJob        = "CronJob"
	KindPod            = "Pod"
	KindServiceAccount = "ServiceAccount"
)

var kindOrder = []string{KindDeployment, KindStatefulSet, KindDaemonSet, KindJob, KindCronJob, KindPod, KindServiceAccount}

// DefaultServiceAccount is the ServiceAccount a pod runs as when its spec names none.
const DefaultServiceAccount = "default"

// Inventory is what Discover found in one namespace. It holds the Secrets with their data, for
// the copy to KV; nothing derived from it for output (a Plan) carries a value.
type Inventory struct {
	Namespace       string
	Secrets         []corev1.Secret // by name
	Workloads       []Workload      // by kind (kindOrder), then name
	ServiceAccounts []corev1.ServiceAccount
	RoleBindings    []rbacv1.RoleBinding
	// ClusterReaders are the readers that are not pods: Secret name -> Ingresses and Gateways
	// (and the grants that let Gateways elsewhere) naming it.
	ClusterReaders map[string][]ClusterReader
	// GrantedToGateways says a ReferenceGrant lets Gateways in other namespaces read every
	// Secret here (one that names no Secret): their TLS Secrets cannot be told apart.
	GrantedToGateways []string
}

// Workload is one reader of Secrets: a pod template's owner, a bare Pod or a ServiceAccount.
type Workload struct {
	ID       WorkloadID
	Meta     metav1.ObjectMeta      // the workload's own metadata (labels, annotations, owners)
	Template corev1.PodTemplateSpec // zero for a ServiceAccount; a bare Pod's metadata and spec
	// ServiceAccount is the one its pods run as ("default" when the spec names none); "" for a
	// ServiceAccount itself.
	ServiceAccount string
	References     []Reference
	// MountableSecrets is a ServiceAccount's legacy `secrets` list (token Secrets, or the
	// Secrets its pods may mount under kubernetes.io/enforce-mountable-secrets).
	MountableSecrets []string
	// PullSecretsFromServiceAccount says the RefImagePull references came from the
	// ServiceAccount (admission copies them into pods that list none of their own).
	PullSecretsFromServiceAccount bool
	// Unsupported is a controller migrate does not rewrite (an Argo Rollout, a ReplicaSet of
	// no Deployment...), seen through its pods: the Secrets they read count as used, so
	// nothing prunes them from under it.
	Unsupported bool
}

// ClusterReader is something other than a pod that reads a Secret: the cluster's controllers.
type ClusterReader struct {
	Kind  string // Ingress, Gateway, ReferenceGrant, or a workload's kind for its volume plugins
	Name  string
	Field string // where it names the Secret, e.g. spec.tls[0].secretName
}

func (r ClusterReader) String() string { return r.Kind + "/" + r.Name }

// Gateway API resources; the CRDs may be absent.
var (
	gatewayGVRs        = []schema.GroupVersionResource{{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}, {Group: "gateway.networking.k8s.io", Version: "v1beta1", Resource: "gateways"}}
	referenceGrantGVRs = []schema.GroupVersionResource{{Group: "gateway.networking.k8s.io", Version: "v1beta1", Resource: "referencegrants"}, {Group: "gateway.networking.k8s.io", Version: "v1", Resource: "referencegrants"}}
)

// Ingress annotations of ingress-nginx whose value names a Secret ("name" or "namespace/name")
// that the controller reads.
var ingressSecretAnnotations = []string{
	"nginx.ingress.kubernetes.io/auth-secret",
	"nginx.ingress.kubernetes.io/auth-tls-secret",
	"nginx.ingress.kubernetes.io/proxy-ssl-secret",
}

// Discover lists every Secret in namespace and everything that reads one. dyn reads the Gateway
// API; nil, or a cluster without its CRDs, means there are no Gateways.
func Discover(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, namespace string) (*Inventory, error) {
	inv := &Inventory{Namespace: namespace, ClusterReaders: map[string][]ClusterReader{}}
	var (
		deployments  []appsv1.Deployment
		statefulSets []appsv1.StatefulSet
		daemonSets   []appsv1.DaemonSet
		jobs         []batchv1.Job
		cronJobs     []batchv1.CronJob
		pods         []corev1.Pod
		replicaSets  []appsv1.ReplicaSet
		ingresses    []networkingv1.Ingress
		gateways     []unstructured.Unstructured
		grants       []unstructured.Unstructured
	)
	g, ctx := errgroup.WithContext(ctx)
	list := func(what, resource string, f func() error) {
		g.Go(func() error {
			if err := f(); err != nil {
				return listError(what, resource, namespace, err)
			}
			return nil
		})
	}
	// Each writes its own variable; they are read only after Wait.
	list("Secrets", "secrets", func() (err error) {
		inv.Secrets, err = listAll[corev1.Secret](ctx, kube.CoreV1().Secrets(namespace).List)
		return err
	})
	list("ServiceAccounts", "serviceaccounts", func() (err error) {
		inv.ServiceAccounts, err = listAll[corev1.ServiceAccount](ctx, kube.CoreV1().ServiceAccounts(namespace).List)
		return err
	})
	list("RoleBindings", "rolebindings.rbac.authorization.k8s.io", func() (err error) {
		inv.RoleBindings, err = listAll[rbacv1.RoleBinding](ctx, kube.RbacV1().RoleBindings(namespace).List)
		return err
	})
	list("Deployments", "deployments.apps", func() (err error) {
		deployments, err = listAll[appsv1.Deployment](ctx, kube.AppsV1().Deployments(namespace).List)
		return err
	})
	list("StatefulSets", "statefulsets.apps", func() (err error) {
		statefulSets, err = listAll[appsv1.StatefulSet](ctx, kube.AppsV1().StatefulSets(namespace).List)
		return err
	})
	list("DaemonSets", "daemonsets.apps", func() (err error) {
		daemonSets, err = listAll[appsv1.DaemonSet](ctx, kube.AppsV1().DaemonSets(namespace).List)
		return err
	})
	list("Jobs", "jobs.batch", func() (err error) {
		jobs, err = listAll[batchv1.Job](ctx, kube.BatchV1().Jobs(namespace).List)
		return err
	})
	list("CronJobs", "cronjobs.batch", func() (err error) {
		cronJobs, err = listAll[batchv1.CronJob](ctx, kube.BatchV1().CronJobs(namespace).List)
		return err
	})
	list("ReplicaSets", "replicasets.apps", func() (err error) {
		replicaSets, err = listAll[appsv1.ReplicaSet](ctx, kube.AppsV1().ReplicaSets(namespace).List)
		return err
	})
	list("Pods", "pods", func() (err error) {
		pods, err = listAll[corev1.Pod](ctx, kube.CoreV1().Pods(namespace).List)
		return err
	})
	list("Ingresses", "ingresses.networking.k8s.io", func() (err error) {
		ingresses, err = listAll[networkingv1.Ingress](ctx, kube.NetworkingV1().Ingresses(namespace).List)
		return err
	})
	if dyn != nil {
		list("Gateways", "gateways.gateway.networking.k8s.io", func() (err error) {
			gateways, err = listDynamic(ctx, dyn, gatewayGVRs, namespace)
			return err
		})
		list("ReferenceGrants", "referencegrants.gateway.networking.k8s.io", func() (err error) {
			grants, err = listDynamic(ctx, dyn, referenceGrantGVRs, namespace)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	var workloads []Workload
	for _, d := range deployments {
		workloads = append(workloads, templateWorkload(KindDeployment, d.ObjectMeta, d.Spec.Template))
	}
	for _, s := range statefulSets {
		workloads = append(workloads, templateWorkload(KindStatefulSet, s.ObjectMeta, s.Spec.Template))
	}
	for _, d := range daemonSets {
		workloads = append(workloads, templateWorkload(KindDaemonSet, d.ObjectMeta, d.Spec.Template))
	}
	for _, j := range jobs {
		// A CronJob's Jobs are its runs: migrating the CronJob changes the next ones.
		if c := metav1.GetControllerOf(&j); c != nil && c.Kind == KindCronJob {
			continue
		}
		workloads = append(workloads, templateWorkload(KindJob, j.ObjectMeta, j.Spec.Template))
	}
	for _, c := range cronJobs {
		workloads = append(workloads, templateWorkload(KindCronJob, c.ObjectMeta, c.Spec.JobTemplate.Spec.Template))
	}
	known := map[WorkloadID]bool{}
	for _, w := range workloads {
		known[w.ID] = true
	}
	for _, j := range jobs {
		known[WorkloadID{Kind: KindJob, Name: j.Name}] = true // a CronJob's too
	}
	workloads = append(workloads, podWorkloads(pods, known, replicaSets)...)
	for _, w := range workloads {
		volumePluginSecrets(w, inv.ClusterReaders)
	}
	for _, in := range ingresses {
		ingressSecrets(in, inv.ClusterReaders)
	}
	for _, gw := range gateways {
		gatewaySecrets(gw, namespace, inv.ClusterReaders)
	}
	inv.GrantedToGateways = referenceGrantSecrets(grants, inv.ClusterReaders)

	slices.SortFunc(inv.Secrets, func(a, b corev1.Secret) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(inv.ServiceAccounts, func(a, b corev1.ServiceAccount) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(inv.RoleBindings, func(a, b rbacv1.RoleBinding) int { return cmp.Compare(a.Name, b.Name) })
	for name := range inv.ClusterReaders {
		slices.SortFunc(inv.ClusterReaders[name], func(a, b ClusterReader) int {
			return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Field, b.Field))
		})
	}

	accounts := map[string]*corev1.ServiceAccount{}
	for i := range inv.ServiceAccounts {
		accounts[inv.ServiceAccounts[i].Name] = &inv.ServiceAccounts[i]
	}
	for _, w := range workloads {
		addServiceAccountPullSecrets(&w, accounts[w.ServiceAccount])
		inv.Workloads = append(inv.Workloads, w)
	}
	for _, sa := range inv.ServiceAccounts {
		if w, ok := serviceAccountWorkload(sa); ok {
			inv.Workloads = append(inv.Workloads, w)
		}
	}
	slices.SortFunc(inv.Workloads, func(a, b Workload) int { return compareIDs(a.ID, b.ID) })
	return inv, nil
}

// podWorkloads are the bare Pods, and the pods of controllers migrate does not rewrite
// (an Argo Rollout, a ReplicaSet of no Deployment, an operator's): those are grouped under
// their controller and marked Unsupported, so that the Secrets they read count as used.
// A pod of a listed workload comes from its template, which is what gets migrated.
func podWorkloads(pods []corev1.Pod, known map[WorkloadID]bool, replicaSets []appsv1.ReplicaSet) []Workload {
	rsOwner := map[string]*metav1.OwnerReference{}
	for i := range replicaSets {
		rsOwner[replicaSets[i].Name] = metav1.GetControllerOf(&replicaSets[i])
	}
	var out []Workload
	byOwner := map[WorkloadID]int{}
	for _, p := range pods {
		c := metav1.GetControllerOf(&p)
		if c == nil {
			out = append(out, templateWorkload(KindPod, p.ObjectMeta, corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec}))
			continue
		}
		owner := WorkloadID{Kind: c.Kind, Name: c.Name}
		if c.Kind == "ReplicaSet" {
			if d := rsOwner[c.Name]; d != nil {
				owner = WorkloadID{Kind: d.Kind, Name: d.Name}
			}
		}
		if known[owner] {
			continue
		}
		w := templateWorkload(owner.Kind, metav1.ObjectMeta{Name: owner.Name, Namespace: p.Namespace}, corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec})
		w.Unsupported = true
		if i, seen := byOwner[owner]; seen {
			// Pods of one controller mid-rollout may differ: every reference of each counts.
			for _, r := range w.References {
				if !slices.Contains(out[i].References, r) {
					out[i].References = append(out[i].References, r)
				}
			}
			continue
		}
		byOwner[owner] = len(out)
		out = append(out, w)
	}
	return out
}

// Secret returns the Secret of that name, or nil.
func (inv *Inventory) Secret(name string) *corev1.Secret {
	i, found := slices.BinarySearchFunc(inv.Secrets, name, func(s corev1.Secret, n string) int { return cmp.Compare(s.Name, n) })
	if !found {
		return nil
	}
	return &inv.Secrets[i]
}

// Workload returns the workload of that ID, or nil.
func (inv *Inventory) Workload(id WorkloadID) *Workload {
	for i := range inv.Workloads {
		if inv.Workloads[i].ID == id {
			return &inv.Workloads[i]
		}
	}
	return nil
}

func compareIDs(a, b WorkloadID) int {
	return cmp.Or(cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
}

func kindRank(kind string) int {
	if i := slices.Index(kindOrder, kind); i >= 0 {
		return i
	}
	return len(kindOrder)
}

func templateWorkload(kind string, meta metav1.ObjectMeta, t corev1.PodTemplateSpec) Workload {
	sa := t.Spec.ServiceAccountName
	if sa == "" {
		sa = t.Spec.DeprecatedServiceAccount
	}
	if sa == "" {
		sa = DefaultServiceAccount
	}
	return Workload{ID: WorkloadID{Kind: kind, Name: meta.Name}, Meta: meta, Template: t, ServiceAccount: sa, References: PodReferences(&t.Spec)}
}

// addServiceAccountPullSecrets adds the ServiceAccount's image pull Secrets to a workload whose
// pods list none, as the ServiceAccount admission plugin does when it creates them.
func addServiceAccountPullSecrets(w *Workload, sa *corev1.ServiceAccount) {
	if sa == nil || len(w.Template.Spec.ImagePullSecrets) > 0 {
		return
	}
	for _, s := range sa.ImagePullSecrets {
		if s.Name != "" {
			w.References = append(w.References, Reference{Secret: s.Name, Kind: RefImagePull})
			w.PullSecretsFromServiceAccount = true
		}
	}
}

func serviceAccountWorkload(sa corev1.ServiceAccount) (Workload, bool) {
	w := Workload{ID: WorkloadID{Kind: KindServiceAccount, Name: sa.Name}, Meta: sa.ObjectMeta}
	for _, s := range sa.ImagePullSecrets {
		if s.Name != "" {
			w.References = append(w.References, Reference{Secret: s.Name, Kind: RefImagePull})
		}
	}
	for _, s := range sa.Secrets {
		if s.Name != "" && (s.Namespace == "" || s.Namespace == sa.Namespace) {
			w.MountableSecrets = append(w.MountableSecrets, s.Name)
		}
	}
	return w, len(w.References)+len(w.MountableSecrets) > 0
}

// PodReferences lists every place a pod spec reads a Secret, init containers first, in the
// order the spec gives them (the order the kubelet applies env in).
func PodReferences(spec *corev1.PodSpec) []Reference {
	var refs []Reference
	containers := func(cs []corev1.Container, init bool) {
		for _, c := range cs {
			for _, e := range c.EnvFrom {
				if r := e.SecretRef; r != nil && r.Name != "" {
					refs = append(refs, Reference{Secret: r.Name, Kind: RefEnvFrom, Container: c.Name, Init: init, EnvName: e.Prefix, Optional: isTrue(r.Optional)})
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name == "" {
					continue
				}
				r := e.ValueFrom.SecretKeyRef
				refs = append(refs, Reference{Secret: r.Name, Kind: RefEnv, Container: c.Name, Init: init, Key: r.Key, EnvName: e.Name, Optional: isTrue(r.Optional)})
			}
		}
	}
	containers(spec.InitContainers, true)
	containers(spec.Containers, false)
	for _, v := range spec.Volumes {
		if s := v.Secret; s != nil && s.SecretName != "" {
			refs = append(refs, Reference{Secret: s.SecretName, Kind: RefVolume, Volume: v.Name, Optional: isTrue(s.Optional)})
		}
		if p := v.Projected; p != nil {
			for _, src := range p.Sources {
				if s := src.Secret; s != nil && s.Name != "" {
					refs = append(refs, Reference{Secret: s.Name, Kind: RefProjected, Volume: v.Name, Optional: isTrue(s.Optional)})
				}
			}
		}
	}
	for _, s := range spec.ImagePullSecrets {
		if s.Name != "" {
			refs = append(refs, Reference{Secret: s.Name, Kind: RefImagePull})
		}
	}
	return refs
}

func isTrue(b *bool) bool { return b != nil && *b }

// listAll lists every object of a kind, 500 a page: a namespace of a thousand Secrets takes a
// few requests without making the API server hold them all at once.
func listAll[T any, PT interface {
	*T
	runtime.Object
}, L runtime.Object](ctx context.Context, list func(context.Context, metav1.ListOptions) (L, error)) ([]T, error) {
	var out []T
	opts := metav1.ListOptions{Limit: 500}
	for {
		l, err := list(ctx, opts)
		if err != nil {
			return nil, err
		}
		if err := meta.EachListItem(l, func(o runtime.Object) error {
			out = append(out, *o.(PT))
			return nil
		}); err != nil {
			return nil, err
		}
		lm, err := meta.ListAccessor(l)
		if err != nil {
			return nil, err
		}
		if lm.GetContinue() == "" {
			return out, nil
		}
		opts.Continue = lm.GetContinue()
	}
}

func listError(what, resource, namespace string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("listing %s in namespace %s: %w; migrate reads every reader of a Secret before it plans, so grant list on %s there (e.g. a Role with verbs [list] bound to the identity running vaultctl)", what, namespace, err, resource)
	}
	return fmt.Errorf("listing %s in namespace %s: %w", what, namespace, err)
}

// listDynamic lists a Gateway API resource, trying each version in turn; a cluster that serves
// none of them (the CRD is not installed) has none: nil, nil.
func listDynamic(ctx context.Context, dyn dynamic.Interface, gvrs []schema.GroupVersionResource, namespace string) ([]unstructured.Unstructured, error) {
	for _, gvr := range gvrs {
		items, err := listAll[unstructured.Unstructured](ctx, dyn.Resource(gvr).Namespace(namespace).List)
		switch {
		case err == nil:
			return items, nil
		case !apierrors.IsNotFound(err):
			return nil, err
		}
	}
	return nil, nil
}

// volumePluginSecrets records the Secrets a pod's volume plugins (CSI, CephFS, RBD, iSCSI,
// Azure File...) mount with: the kubelet reads them itself, so they stay Secrets.
func volumePluginSecrets(w Workload, readers map[string][]ClusterReader) {
	add := func(secret, volume, field string) {
		if secret != "" {
			readers[secret] = append(readers[secret], ClusterReader{Kind: w.ID.Kind, Name: w.ID.Name, Field: "spec.volumes[" + volume + "]." + field})
		}
	}
	local := func(r *corev1.LocalObjectReference) string {
		if r == nil {
			return ""
		}
		return r.Name
	}
	for _, v := range w.Template.Spec.Volumes {
		switch src := v.VolumeSource; {
		case src.CSI != nil:
			add(local(src.CSI.NodePublishSecretRef), v.Name, "csi.nodePublishSecretRef")
		case src.AzureFile != nil:
			add(src.AzureFile.SecretName, v.Name, "azureFile.secretName")
		case src.CephFS != nil:
			add(local(src.CephFS.SecretRef), v.Name, "cephfs.secretRef")
		case src.Cinder != nil:
			add(local(src.Cinder.SecretRef), v.Name, "cinder.secretRef")
		case src.FlexVolume != nil:
			add(local(src.FlexVolume.SecretRef), v.Name, "flexVolume.secretRef")
		case src.ISCSI != nil:
			add(local(src.ISCSI.SecretRef), v.Name, "iscsi.secretRef")
		case src.RBD != nil:
			add(local(src.RBD.SecretRef), v.Name, "rbd.secretRef")
		case src.ScaleIO != nil:
			add(local(src.ScaleIO.SecretRef), v.Name, "scaleIO.secretRef")
		case src.StorageOS != nil:
			add(local(src.StorageOS.SecretRef), v.Name, "storageos.secretRef")
		}
	}
}

// ingressSecrets records the Secrets an Ingress names: its TLS Secrets, and those of the
// ingress-nginx annotations that name one.
func ingressSecrets(in networkingv1.Ingress, readers map[string][]ClusterReader) {
	for i, t := range in.Spec.TLS {
		if t.SecretName != "" {
			readers[t.SecretName] = append(readers[t.SecretName], ClusterReader{Kind: "Ingress", Name: in.Name, Field: fmt.Sprintf("spec.tls[%d].secretName", i)})
		}
	}
	for _, a := range ingressSecretAnnotations {
		v, ok := in.Annotations[a]
		if !ok {
			continue
		}
		ns, name, qualified := strings.Cut(v, "/")
		if !qualified {
			ns, name = in.Namespace, v
		}
		if ns == in.Namespace && name != "" {
			readers[name] = append(readers[name], ClusterReader{Kind: "Ingress", Name: in.Name, Field: "metadata.annotations[" + a + "]"})
		}
	}
}

// gatewaySecrets records the Secrets of this namespace a Gateway's listeners (or its backend
// TLS) name.
func gatewaySecrets(gw unstructured.Unstructured, namespace string, readers map[string][]ClusterReader) {
	add := func(ref map[string]any, field string) {
		group, _, _ := unstructured.NestedString(ref, "group")
		kind, _, _ := unstructured.NestedString(ref, "kind")
		name, _, _ := unstructured.NestedString(ref, "name")
		ns, _, _ := unstructured.NestedString(ref, "namespace")
		// An omitted kind is Secret and an omitted namespace the Gateway's own (Gateway API).
		if group != "" || (kind != "" && kind != "Secret") || name == "" || (ns != "" && ns != namespace) {
			return
		}
		readers[name] = append(readers[name], ClusterReader{Kind: "Gateway", Name: gw.GetName(), Field: field})
	}
	listeners, _, _ := unstructured.NestedSlice(gw.Object, "spec", "listeners")
	for i, l := range listeners {
		lm, ok := l.(map[string]any)
		if !ok {
			continue
		}
		refs, _, _ := unstructured.NestedSlice(lm, "tls", "certificateRefs")
		for j, r := range refs {
			if rm, ok := r.(map[string]any); ok {
				add(rm, fmt.Sprintf("spec.listeners[%d].tls.certificateRefs[%d]", i, j))
			}
		}
	}
	if ref, ok, _ := unstructured.NestedMap(gw.Object, "spec", "tls", "backend", "clientCertificateRef"); ok {
		add(ref, "spec.tls.backend.clientCertificateRef")
	}
}

// referenceGrantSecrets records the Secrets here that ReferenceGrants open to Gateways of
// other namespaces (which this namespace cannot list), and returns the grants that open every
// Secret.
func referenceGrantSecrets(grants []unstructured.Unstructured, readers map[string][]ClusterReader) []string {
	var all []string
	for _, rg := range grants {
		from, _, _ := unstructured.NestedSlice(rg.Object, "spec", "from")
		fromGateway := false
		for _, f := range from {
			fm, _ := f.(map[string]any)
			group, _, _ := unstructured.NestedString(fm, "group")
			kind, _, _ := unstructured.NestedString(fm, "kind")
			if group == "gateway.networking.k8s.io" && kind == "Gateway" {
				fromGateway = true
			}
		}
		if !fromGateway {
			continue
		}
		to, _, _ := unstructured.NestedSlice(rg.Object, "spec", "to")
		for i, t := range to {
			tm, _ := t.(map[string]any)
			group, _, _ := unstructured.NestedString(tm, "group")
			kind, _, _ := unstructured.NestedString(tm, "kind")
			name, _, _ := unstructured.NestedString(tm, "name")
			if group != "" || kind != "Secret" {
				continue
			}
			if name == "" {
				all = append(all, rg.GetName())
				continue
			}
			readers[name] = append(readers[name], ClusterReader{Kind: "ReferenceGrant", Name: rg.GetName(), Field: fmt.Sprintf("spec.to[%d].name", i)})
		}
	}
	slices.Sort(all)
	return slices.Compact(all)
}
