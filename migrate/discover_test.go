package migrate

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestDiscoverFindsEveryReader(t *testing.T) {
	inv := fixtureInventory(t)
	var ids []string
	for _, w := range inv.Workloads {
		ids = append(ids, w.ID.String())
	}
	// Controller-owned Pods and a CronJob's Jobs are not workloads of their own; every other
	// reader is, in kind order; a ServiceAccount is one when it names Secrets.
	want := []string{"Deployment/web", "StatefulSet/postgres", "DaemonSet/log-agent", "Job/migrate-once", "CronJob/backup", "Pod/debug", "ServiceAccount/builder", "Rollout/checkout"}
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("workloads:\n got %v\nwant %v", ids, want)
	}
	if len(inv.Secrets) != 14 || inv.Secrets[0].Name != "api-cert" {
		t.Fatalf("want the 14 Secrets by name, got %d starting %s", len(inv.Secrets), inv.Secrets[0].Name)
	}
	reader := func(secret string) []string {
		var out []string
		for _, r := range inv.ClusterReaders[secret] {
			out = append(out, r.String()+" "+r.Field)
		}
		return out
	}
	if got := reader("web-tls"); !reflect.DeepEqual(got, []string{"Ingress/web spec.tls[0].secretName"}) {
		t.Errorf("web-tls readers: %v", got)
	}
	if got := reader("gw-tls"); !reflect.DeepEqual(got, []string{"Gateway/public spec.listeners[1].tls.certificateRefs[0]"}) {
		t.Errorf("gw-tls readers: %v", got)
	}
	if got := reader("elsewhere"); got != nil {
		t.Errorf("a Gateway's reference to another namespace's Secret is not this namespace's: %v", got)
	}
	if w := inv.Workload(WorkloadID{KindDeployment, "web"}); w.ServiceAccount != "default" {
		t.Errorf("a pod spec naming no ServiceAccount runs as default, got %q", w.ServiceAccount)
	}
	// Both pods' references count, once each.
	if w := inv.Workload(WorkloadID{"Rollout", "checkout"}); !w.Unsupported || len(w.References) != 2 || w.ServiceAccount != "checkout" {
		t.Errorf("rollout: %+v", w)
	}
	if w := inv.Workload(WorkloadID{KindServiceAccount, "builder"}); !reflect.DeepEqual(w.MountableSecrets, []string{"builder-token"}) {
		t.Errorf("ServiceAccount secrets list: %v", w.MountableSecrets)
	}
}

func TestPodReferencesCoverEveryKind(t *testing.T) {
	spec := corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", EnvFrom: []corev1.EnvFromSource{
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "a"}, Optional: ptr(true)}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "not-a-secret"}}},
		}}},
		Containers: []corev1.Container{{
			Name:    "app",
			EnvFrom: []corev1.EnvFromSource{{Prefix: "B_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "b"}}}},
			Env: []corev1.EnvVar{
				envSecret("C_KEY", "c", "key.with-dots", true),
				{Name: "PLAIN", Value: "x"},
				{Name: "FROM_CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "k"}}},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "vol", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "d", Optional: ptr(false), Items: []corev1.KeyToPath{{Key: "k", Path: "p"}}, DefaultMode: ptr(int32(0o400))}}},
			{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "e"}, Optional: ptr(true)}},
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "f"}}},
			}}}},
			{Name: "empty", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "g"}, {Name: ""}},
	}
	want := []Reference{
		{Secret: "a", Kind: RefEnvFrom, Container: "init", Init: true, Optional: true},
		{Secret: "b", Kind: RefEnvFrom, Container: "app", EnvName: "B_"},
		{Secret: "c", Kind: RefEnv, Container: "app", Key: "key.with-dots", EnvName: "C_KEY", Optional: true},
		{Secret: "d", Kind: RefVolume, Volume: "vol"},
		{Secret: "e", Kind: RefProjected, Volume: "proj", Optional: true},
		{Secret: "f", Kind: RefProjected, Volume: "proj"},
		{Secret: "g", Kind: RefImagePull},
	}
	if got := PodReferences(&spec); !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

// The kubelet pulls with the ServiceAccount's Secrets only when the pod lists none itself.
func TestServiceAccountPullSecrets(t *testing.T) {
	sa := &corev1.ServiceAccount{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "sa-pull"}}}
	cases := []struct {
		name string
		own  []corev1.LocalObjectReference
		want []string
	}{
		{"pod lists none", nil, []string{"sa-pull"}},
		{"pod lists its own", []corev1.LocalObjectReference{{Name: "own"}}, []string{"own"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := templateWorkload(KindDeployment, objectMeta("x"), corev1.PodTemplateSpec{Spec: corev1.PodSpec{ImagePullSecrets: c.own}})
			addServiceAccountPullSecrets(&w, sa)
			var got []string
			for _, r := range w.References {
				got = append(got, r.Secret)
			}
			if !reflect.DeepEqual(got, c.want) || w.PullSecretsFromServiceAccount != (c.own == nil) {
				t.Fatalf("got %v (from SA: %v), want %v", got, w.PullSecretsFromServiceAccount, c.want)
			}
		})
	}
}

func TestDiscoverWithoutGatewayAPI(t *testing.T) {
	kube, _ := fixtureObjects()
	cases := []struct {
		name string
		dyn  func() *Inventory
	}{
		{"no dynamic client", func() *Inventory {
			inv, err := Discover(context.Background(), fake.NewClientset(kube...), nil, ns)
			if err != nil {
				t.Fatal(err)
			}
			return inv
		}},
		{"CRDs not installed", func() *Inventory {
			dyn := dynamicClient()
			dyn.PrependReactor("list", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: a.GetResource().Group, Resource: a.GetResource().Resource}, "")
			})
			inv, err := Discover(context.Background(), fake.NewClientset(kube...), dyn, ns)
			if err != nil {
				t.Fatalf("an absent Gateway API is not an error: %v", err)
			}
			return inv
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := c.dyn()
			if len(inv.ClusterReaders["gw-tls"]) != 0 || len(inv.ClusterReaders["web-tls"]) != 1 {
				t.Fatalf("readers: %v", inv.ClusterReaders)
			}
		})
	}
}

// Only v1beta1 served (an older Gateway API): its Gateways count all the same.
func TestDiscoverGatewayV1beta1(t *testing.T) {
	gw := gateway("old", "gw-tls")
	gw.SetAPIVersion("gateway.networking.k8s.io/v1beta1")
	dyn := dynamicClient(gw)
	dyn.PrependReactor("list", "gateways", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetResource().Version == "v1" {
			return true, nil, apierrors.NewNotFound(a.GetResource().GroupResource(), "")
		}
		return false, nil, nil
	})
	inv, err := Discover(context.Background(), fake.NewClientset(), dyn, ns)
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.ClusterReaders["gw-tls"]; len(got) != 1 || got[0].Name != "old" {
		t.Fatalf("readers: %v", got)
	}
}

func TestDiscoverReferenceGrants(t *testing.T) {
	grant := func(name string, to map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec": map[string]any{
				"from": []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra"}},
				"to":   []any{to},
			},
		}}
	}
	routesOnly := grant("routes", map[string]any{"group": "", "kind": "Secret", "name": "ignored"})
	routesOnly.Object["spec"].(map[string]any)["from"] = []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "infra"}}
	inv, err := Discover(context.Background(), fake.NewClientset(), dynamicClient(
		grant("one", map[string]any{"group": "", "kind": "Secret", "name": "shared-tls"}),
		grant("all", map[string]any{"group": "", "kind": "Secret"}),
		grant("services", map[string]any{"group": "", "kind": "Service"}),
		routesOnly,
	), ns)
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.ClusterReaders["shared-tls"]; len(got) != 1 || got[0].String() != "ReferenceGrant/one" {
		t.Errorf("named grant: %v", got)
	}
	if len(inv.ClusterReaders["ignored"]) != 0 {
		t.Error("a grant to HTTPRoutes is not a Gateway reading the Secret")
	}
	if !reflect.DeepEqual(inv.GrantedToGateways, []string{"all"}) {
		t.Errorf("grants of every Secret: %v", inv.GrantedToGateways)
	}
}

// A reader migrate cannot see could lose its Secret: refuse, and say which permission.
func TestDiscoverForbiddenSaysWhatToGrant(t *testing.T) {
	for _, c := range []struct{ verb, resource, want string }{
		{"list", "deployments", "listing Deployments in namespace shop: "},
		{"list", "ingresses", "grant list on ingresses.networking.k8s.io there"},
	} {
		t.Run(c.resource, func(t *testing.T) {
			kube := fake.NewClientset()
			kube.PrependReactor(c.verb, c.resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: c.resource}, "", errors.New("RBAC"))
			})
			_, err := Discover(context.Background(), kube, nil, ns)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want it to contain %q", err, c.want)
			}
		})
	}
	dyn := dynamicClient()
	dyn.PrependReactor("list", "gateways", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(a.GetResource().GroupResource(), "", errors.New("RBAC"))
	})
	if _, err := Discover(context.Background(), fake.NewClientset(), dyn, ns); err == nil || !strings.Contains(err.Error(), "grant list on gateways.gateway.networking.k8s.io") {
		t.Fatalf("a Gateway API we may not read is an error, got %v", err)
	}
}

func objectMeta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }

// A namespace larger than a page is read to its end.
func TestDiscoverReadsEveryPage(t *testing.T) {
	kube := fake.NewClientset()
	var continues []string
	kube.PrependReactor("list", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		o := a.(k8stesting.ListActionImpl).GetListOptions()
		continues = append(continues, o.Continue)
		if o.Limit <= 0 {
			t.Errorf("list without a page size")
		}
		l := &corev1.SecretList{}
		switch o.Continue {
		case "":
			l.Items = []corev1.Secret{{ObjectMeta: objectMeta("b")}}
			l.Continue = "page-2"
		case "page-2":
			l.Items = []corev1.Secret{{ObjectMeta: objectMeta("a")}}
		}
		return true, l, nil
	})
	inv, err := Discover(context.Background(), kube, nil, ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Secrets) != 2 || inv.Secrets[0].Name != "a" || !reflect.DeepEqual(continues, []string{"", "page-2"}) {
		t.Fatalf("secrets %v, continues %v", inv.Secrets, continues)
	}
}

func TestVolumePluginSecrets(t *testing.T) {
	w := templateWorkload(KindStatefulSet, objectMeta("db"), corev1.PodTemplateSpec{Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		{Name: "csi", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "secrets-store.csi.k8s.io", NodePublishSecretRef: &corev1.LocalObjectReference{Name: "csi-creds"}}}},
		{Name: "share", VolumeSource: corev1.VolumeSource{AzureFile: &corev1.AzureFileVolumeSource{SecretName: "azure-creds", ShareName: "s"}}},
		{Name: "ceph", VolumeSource: corev1.VolumeSource{CephFS: &corev1.CephFSVolumeSource{Monitors: []string{"m"}, SecretRef: &corev1.LocalObjectReference{Name: "ceph-creds"}}}},
		{Name: "rbd", VolumeSource: corev1.VolumeSource{RBD: &corev1.RBDVolumeSource{CephMonitors: []string{"m"}, RBDImage: "i"}}},
	}}})
	readers := map[string][]ClusterReader{}
	volumePluginSecrets(w, readers)
	want := map[string][]ClusterReader{
		"csi-creds":   {{"StatefulSet", "db", "spec.volumes[csi].csi.nodePublishSecretRef"}},
		"azure-creds": {{"StatefulSet", "db", "spec.volumes[share].azureFile.secretName"}},
		"ceph-creds":  {{"StatefulSet", "db", "spec.volumes[ceph].cephfs.secretRef"}},
	}
	if !reflect.DeepEqual(readers, want) {
		t.Fatalf("got %v", readers)
	}
}
