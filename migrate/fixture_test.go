package migrate

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
)

const ns = "shop"

// Values of the fixture's Secrets: none may appear in a plan.
var fixtureValues = map[string][]byte{
	"db/username":                        []byte("shop_app"),
	"db/password":                        []byte(`p'a"ss $word with space`),
	"app-config/LOG_LEVEL":               []byte("debug-level-value"),
	"app-config/FEATURE_SET":             []byte("feature-set-value"),
	"certs/ca.crt":                       []byte("-----BEGIN CERTIFICATE-----\nMIIBfixtureCA\n-----END CERTIFICATE-----\n"),
	"certs/keystore.p12":                 {0x30, 0x82, 0xff, 0xfe, 0x00, 0x01, 0xc3},
	"api-keys/stripe.key":                []byte("sk_live_fixture_stripe"),
	"api-keys/sentry-dsn":                []byte("https://fixture@sentry.example/1"),
	"old-token/token":                    []byte("legacy-unused-token-value"),
	"regcred/.dockerconfigjson":          []byte(`{"auths":{"registry.example":{"auth":"Zml4dHVyZTpwdWxs"}}}`),
	"web-tls/tls.crt":                    []byte("web-tls-cert-value"),
	"web-tls/tls.key":                    []byte("web-tls-key-value"),
	"gw-tls/tls.crt":                     []byte("gw-tls-cert-value"),
	"gw-tls/tls.key":                     []byte("gw-tls-key-value"),
	"sh.helm.release.v1.shop.v3/release": []byte("H4sIfixturehelmrelease"),
	"builder-token/token":                []byte("eyJfixture.sa.token"),
	"api-cert/tls.key":                   []byte("cert-manager-key-value"),
	"sealed-creds/password":              []byte("sealed-password-value"),
	"eso-creds/password":                 []byte("eso-password-value"),
	"vso-creds/password":                 []byte("vso-password-value"),
}

func secret(name string, typ corev1.SecretType, mutate ...func(*corev1.Secret)) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: typ, Data: map[string][]byte{}}
	for k, v := range fixtureValues {
		if sec, key, _ := strings.Cut(k, "/"); sec == name {
			s.Data[key] = v
		}
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

func envSecret(name, secretName, key string, optional bool) corev1.EnvVar {
	ref := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secretName}, Key: key}
	if optional {
		ref.Optional = ptr(true)
	}
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref}}
}

func controllerRef(kind, name string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: types.UID("u-" + name), Controller: ptr(true)}}
}

// fixtureObjects is a namespace built like a real one: a Secret shared by three workloads,
// image pull, Ingress and Gateway TLS, a Helm record, an unused Secret, an optional reference
// to a missing Secret, envFrom with a prefix, a projected volume, controllers' Secrets.
func fixtureObjects() (kube []runtime.Object, dyn []*unstructured.Unstructured) {
	kube = []runtime.Object{
		secret("db", corev1.SecretTypeOpaque),
		secret("app-config", ""),
		secret("certs", corev1.SecretTypeOpaque),
		secret("api-keys", corev1.SecretTypeOpaque),
		secret("old-token", corev1.SecretTypeOpaque),
		secret("regcred", corev1.SecretTypeDockerConfigJson),
		secret("web-tls", corev1.SecretTypeTLS),
		secret("gw-tls", corev1.SecretTypeTLS),
		secret("sh.helm.release.v1.shop.v3", "helm.sh/release.v1", func(s *corev1.Secret) { s.Labels = map[string]string{"name": "shop", "owner": "helm"} }),
		secret("builder-token", corev1.SecretTypeServiceAccountToken, func(s *corev1.Secret) {
			s.Annotations = map[string]string{corev1.ServiceAccountNameKey: "builder"}
		}),
		secret("api-cert", corev1.SecretTypeTLS, func(s *corev1.Secret) {
			s.Annotations = map[string]string{"cert-manager.io/certificate-name": "api", "cert-manager.io/issuer-name": "letsencrypt"}
		}),
		secret("sealed-creds", corev1.SecretTypeOpaque, func(s *corev1.Secret) {
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "bitnami.com/v1alpha1", Kind: "SealedSecret", Name: "sealed-creds", UID: "u1", Controller: ptr(true)}}
		}),
		secret("eso-creds", corev1.SecretTypeOpaque, func(s *corev1.Secret) {
			s.Labels = map[string]string{"reconcile.external-secrets.io/created-by": "abc"}
		}),
		secret("vso-creds", corev1.SecretTypeOpaque, func(s *corev1.Secret) {
			s.Labels = map[string]string{"app.kubernetes.io/managed-by": "hashicorp-vso", "secrets.hashicorp.com/vso-ownerRefUID": "u2"}
		}),

		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "postgres", Namespace: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: ns},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
			Secrets:          []corev1.ObjectReference{{Name: "builder-token"}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "default-view", Namespace: ns},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: ns}},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "postgres-edit", Namespace: ns},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "postgres", Namespace: ns}},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "edit"}},

		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{
					Name: "app", Image: "registry.example/web:1", Command: []string{"/web", "--serve"},
					EnvFrom: []corev1.EnvFromSource{{Prefix: "APP_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}},
					Env: []corev1.EnvVar{
						envSecret("DB_PASSWORD", "db", "password", false),
						envSecret("FEATURE", "feature-flags", "on", true),
						{Name: "MODE", Value: "production"},
					},
					VolumeMounts: []corev1.VolumeMount{{Name: "bundle", MountPath: "/etc/bundle"}},
				}},
				Volumes: []corev1.Volume{{Name: "bundle", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					DefaultMode: ptr(int32(0o440)),
					Sources: []corev1.VolumeProjection{
						{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "certs"}, Items: []corev1.KeyToPath{{Key: "keystore.p12", Path: "ks.p12"}}}},
						{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "api-keys"}}},
						{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}},
					},
				}}}},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
			},
		}}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f", Namespace: ns, OwnerReferences: controllerRef("Deployment", "web")}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f-x1", Namespace: ns, OwnerReferences: controllerRef("ReplicaSet", "web-5d8f")},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{envSecret("DB_PASSWORD", "db", "password", false)}}}}},

		// An Argo Rollout migrate does not rewrite, seen through its ReplicaSet's pods.
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "checkout-7f9", Namespace: ns, OwnerReferences: []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "checkout", UID: "u-checkout", Controller: ptr(true)}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "checkout-7f9-a", Namespace: ns, OwnerReferences: controllerRef("ReplicaSet", "checkout-7f9")},
			Spec: corev1.PodSpec{ServiceAccountName: "checkout", Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{envSecret("STRIPE", "api-keys", "stripe.key", false)}}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "checkout-7f9-b", Namespace: ns, OwnerReferences: controllerRef("ReplicaSet", "checkout-7f9")},
			Spec: corev1.PodSpec{ServiceAccountName: "checkout", Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{envSecret("STRIPE", "api-keys", "stripe.key", false), envSecret("SENTRY", "api-keys", "sentry-dsn", false)}}}}},

		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "postgres", Namespace: ns}, Spec: appsv1.StatefulSetSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{
				ServiceAccountName: "postgres",
				InitContainers: []corev1.Container{{Name: "init-db", Image: "postgres:17", Command: []string{"/init.sh"},
					EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}}}}},
				Containers: []corev1.Container{{Name: "postgres", Image: "postgres:17"}},
			},
		}}},

		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "backup", Namespace: ns}, Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyOnFailure,
				Containers:    []corev1.Container{{Name: "dump", Image: "postgres:17", VolumeMounts: []corev1.VolumeMount{{Name: "db-creds", MountPath: "/creds", ReadOnly: true}}}},
				Volumes: []corev1.Volume{{Name: "db-creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: "db", DefaultMode: ptr(int32(0o400)), Items: []corev1.KeyToPath{{Key: "password", Path: "pw"}, {Key: "username", Path: "user"}},
				}}}},
			},
		}}}}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "backup-29000000", Namespace: ns, OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "backup", UID: "u-backup", Controller: ptr(true)}}},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "db-creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}}}}}}},

		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "migrate-once", Namespace: ns}, Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "migrate", Image: "registry.example/web:1",
				Env: []corev1.EnvVar{envSecret("MIGRATIONS_TOKEN", "migrations", "token", false)}}}},
		}}},

		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "log-agent", Namespace: ns}, Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "fluent-bit:3"}}},
		}}},

		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "debug", Namespace: ns}, Spec: corev1.PodSpec{
			ServiceAccountName: "builder",
			Containers:         []corev1.Container{{Name: "shell", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "cfg", MountPath: "/cfg"}}}},
			Volumes:            []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "app-config", Optional: ptr(true)}}}},
		}},

		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: networkingv1.IngressSpec{
			TLS: []networkingv1.IngressTLS{{Hosts: []string{"shop.example"}, SecretName: "web-tls"}},
		}},
	}
	dyn = []*unstructured.Unstructured{gateway("public", "gw-tls")}
	return kube, dyn
}

var (
	gatewayGVR        = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	gatewayV1beta1GVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1beta1", Resource: "gateways"}
	grantGVR          = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1beta1", Resource: "referencegrants"}
	grantV1GVR        = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "referencegrants"}
)

func gateway(name string, certs ...string) *unstructured.Unstructured {
	var refs []any
	for _, c := range certs {
		refs = append(refs, map[string]any{"kind": "Secret", "name": c})
	}
	// A reference to another namespace's Secret and one to a non-Secret are not this namespace's.
	refs = append(refs, map[string]any{"kind": "Secret", "name": "elsewhere", "namespace": "infra"}, map[string]any{"group": "example.com", "kind": "Vault", "name": "x"})
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{"gatewayClassName": "example", "listeners": []any{
			map[string]any{"name": "http", "port": int64(80), "protocol": "HTTP"},
			map[string]any{"name": "https", "port": int64(443), "protocol": "HTTPS", "tls": map[string]any{"certificateRefs": refs}},
		}},
	}}
}

func dynamicClient(objs ...*unstructured.Unstructured) *dynamicfake.FakeDynamicClient {
	d := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		gatewayGVR: "GatewayList", gatewayV1beta1GVR: "GatewayList", grantGVR: "ReferenceGrantList", grantV1GVR: "ReferenceGrantList",
	})
	// The tracker's own guess at a resource name makes "gatewaies" of Gateway: name it.
	for _, o := range objs {
		gv, _ := schema.ParseGroupVersion(o.GetAPIVersion())
		resource := map[string]string{"Gateway": "gateways", "ReferenceGrant": "referencegrants"}[o.GetKind()]
		if err := d.Tracker().Create(gv.WithResource(resource), o, o.GetNamespace()); err != nil {
			panic(err)
		}
	}
	return d
}

func fixtureInventory(t *testing.T) *Inventory {
	t.Helper()
	kube, dyn := fixtureObjects()
	inv, err := Discover(context.Background(), fake.NewClientset(kube...), dynamicClient(dyn...), ns)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}
