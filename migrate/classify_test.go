package migrate

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestClassifyKeepsWhatTheClusterReads(t *testing.T) {
	pulling := Workload{ID: WorkloadID{KindDeployment, "web"}, References: []Reference{{Secret: "s", Kind: RefImagePull}}}
	cases := []struct {
		name   string
		secret func(*corev1.Secret)
		inv    func(*Inventory)
		keep   bool
		reason string // exact, or the prefix before "..."
	}{
		{"opaque, unused", nil, nil, false, "unused: kept safe in KV"},
		{"no type is Opaque", func(s *corev1.Secret) { s.Type = "" }, nil, false, "unused: kept safe in KV"},
		{"basic-auth type migrates", func(s *corev1.Secret) { s.Type = corev1.SecretTypeBasicAuth }, nil, false, "unused: kept safe in KV"},
		{"dockerconfigjson", func(s *corev1.Secret) { s.Type = corev1.SecretTypeDockerConfigJson }, nil, true, "image pull Secret: the kubelet pulls images with it"},
		{"dockercfg", func(s *corev1.Secret) { s.Type = corev1.SecretTypeDockercfg }, nil, true, "image pull Secret: the kubelet pulls images with it"},
		{"Opaque named in imagePullSecrets", nil, func(inv *Inventory) { inv.Workloads = []Workload{pulling} }, true,
			"image pull Secret: the kubelet pulls images with it (imagePullSecrets of Deployment/web)"},
		{"ServiceAccount token", func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeServiceAccountToken
			s.Annotations = map[string]string{corev1.ServiceAccountNameKey: "build"}
		}, nil, true, "ServiceAccount token: Kubernetes issues it for ServiceAccount build"},
		{"Helm release record", func(s *corev1.Secret) { s.Type = "helm.sh/release.v1"; s.Labels = map[string]string{"name": "shop"} }, nil, true,
			"Helm release record: Helm reads it to upgrade and roll back release shop"},
		{"bootstrap token", func(s *corev1.Secret) { s.Type = corev1.SecretTypeBootstrapToken }, nil, true, "bootstrap token: nodes authenticate with it to join the cluster"},
		{"TLS of an Ingress", func(s *corev1.Secret) { s.Type = corev1.SecretTypeTLS }, func(inv *Inventory) {
			inv.ClusterReaders["s"] = []ClusterReader{{"Ingress", "b", "spec.tls[0].secretName"}, {"Ingress", "a", "spec.tls[0].secretName"}, {"Ingress", "a", "spec.tls[1].secretName"}}
		}, true, "TLS Secret of Ingress/a, Ingress/b: the ingress controller serves it"},
		{"Opaque named by a Gateway", nil, func(inv *Inventory) {
			inv.ClusterReaders["s"] = []ClusterReader{{"Gateway", "gw", "spec.listeners[0].tls.certificateRefs[0]"}}
		}, true, "TLS Secret of Gateway/gw: the Gateway controller serves it"},
		{"basic auth of ingress-nginx", nil, func(inv *Inventory) {
			inv.ClusterReaders["s"] = []ClusterReader{{"Ingress", "admin", "metadata.annotations[nginx.ingress.kubernetes.io/auth-secret]"}}
		}, true, "read by the ingress controller (Ingress/admin nginx.ingress.kubernetes.io/auth-secret)"},
		{"mounted by a volume plugin", nil, func(inv *Inventory) {
			inv.ClusterReaders["s"] = []ClusterReader{{"Deployment", "web", "spec.volumes[share].azureFile.secretName"}}
		}, true, "volume plugin Secret: the kubelet mounts volume share of Deployment/web (azureFile) with it"},
		{"granted to Gateways by name", nil, func(inv *Inventory) {
			inv.ClusterReaders["s"] = []ClusterReader{{"ReferenceGrant", "infra-gw", "spec.to[0].name"}}
		}, true, "Gateways in other namespaces may read it: ReferenceGrant infra-gw names it"},
		{"TLS under a grant of every Secret", func(s *corev1.Secret) { s.Type = corev1.SecretTypeTLS }, func(inv *Inventory) { inv.GrantedToGateways = []string{"all"} }, true,
			"TLS Secret that Gateways in other namespaces may serve: ReferenceGrant all opens every Secret here to them"},
		{"Opaque under a grant of every Secret", nil, func(inv *Inventory) { inv.GrantedToGateways = []string{"all"} }, false, "unused: kept safe in KV"},
		{"cert-manager annotation", func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeTLS
			s.Annotations = map[string]string{"cert-manager.io/certificate-name": "api"}
		}, nil, true, "issued by cert-manager (Certificate/api): it renews it in place"},
		{"cert-manager owner", func(s *corev1.Secret) {
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "cert-manager.io/v1", Kind: "Certificate", Name: "api"}}
			s.Annotations = map[string]string{"cert-manager.io/certificate-name": "api"}
		}, nil, true, "issued by cert-manager (Certificate/api)"},
		{"External Secrets label", func(s *corev1.Secret) { s.Labels = map[string]string{"reconcile.external-secrets.io/managed": "true"} }, nil, true,
			"written by External Secrets: it already comes from a secret store"},
		{"External Secrets annotation", func(s *corev1.Secret) {
			s.Annotations = map[string]string{"reconcile.external-secrets.io/data-hash": "x"}
		}, nil, true,
			"written by External Secrets: it already comes from a secret store"},
		{"External Secrets owner", func(s *corev1.Secret) {
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "external-secrets.io/v1", Kind: "ExternalSecret", Name: "db"}}
			s.Labels = map[string]string{"reconcile.external-secrets.io/created-by": "x"}
		}, nil, true, "written by External Secrets from ExternalSecret/db: it already comes from a secret store"},
		{"Sealed Secrets owner", func(s *corev1.Secret) {
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "bitnami.com/v1alpha1", Kind: "SealedSecret", Name: "db"}}
		}, nil, true, "unsealed by Sealed Secrets from SealedSecret/db: migrate the value at its source instead"},
		{"VSO label", func(s *corev1.Secret) { s.Labels = map[string]string{"secrets.hashicorp.com/vso-ownerRefUID": "x"} }, nil, true,
			"synced from Vault by the Vault Secrets Operator"},
		{"VSO owner", func(s *corev1.Secret) {
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "secrets.hashicorp.com/v1beta1", Kind: "VaultStaticSecret", Name: "db"}}
			s.Labels = map[string]string{"secrets.hashicorp.com/vso-ownerRefUID": "x"}
		}, nil, true, "synced from Vault by the Vault Secrets Operator (VaultStaticSecret/db)"},
		{"any owner", func(s *corev1.Secret) {
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "Database", Name: "pg"}}
		}, nil, true, "owned by Database/pg: its controller would recreate or overwrite it"},
		{"several reasons, all given", func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeTLS
			s.Annotations = map[string]string{"cert-manager.io/certificate-name": "web"}
		}, func(inv *Inventory) {
			inv.ClusterReaders["s"] = []ClusterReader{{"Ingress", "web", "spec.tls[0].secretName"}}
		}, true,
			"TLS Secret of Ingress/web: the ingress controller serves it; issued by cert-manager (Certificate/web): it renews it in place"},
		{"used by a workload", nil, func(inv *Inventory) {
			inv.Workloads = []Workload{{ID: WorkloadID{KindPod, "p"}, References: []Reference{{Secret: "s", Kind: RefVolume, Volume: "v"}, {Secret: "s", Kind: RefEnvFrom, Container: "c"}}}}
		}, false, "used by 1 workload"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: ns}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"k": []byte("v")}}
			if c.secret != nil {
				c.secret(&s)
			}
			inv := &Inventory{Namespace: ns, Secrets: []corev1.Secret{s}, ClusterReaders: map[string][]ClusterReader{}}
			if c.inv != nil {
				c.inv(inv)
			}
			got := Classify(inv, KVLayout{Mount: "kv"}).Secrets[0]
			wantAction := SecretMigrate
			if c.keep {
				wantAction = SecretKeep
			}
			if got.Action != wantAction || got.Reason != c.reason {
				t.Errorf("got %s %q\nwant %s %q", got.Action, got.Reason, wantAction, c.reason)
			}
			if c.keep == (got.KVPath != "") {
				t.Errorf("kvPath %q for %s", got.KVPath, got.Action)
			}
			if !c.keep && got.KVPath != "kv/shop/s" {
				t.Errorf("the default template puts it at kv/shop/s, got %q", got.KVPath)
			}
		})
	}
}

func TestClassifyKeysAndLayout(t *testing.T) {
	s := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Data: map[string][]byte{
		"z.txt":    []byte("plain"),
		"a-key":    []byte("ünïcödé is text"),
		"blob":     {0xff, 0xd8, 0xff, 0xe0},
		"empty":    {},
		"half.bin": append([]byte("ok"), 0xc3),
	}}
	inv := &Inventory{Namespace: "team-a", Secrets: []corev1.Secret{s}}
	got := Classify(inv, KVLayout{Template: "{mount}/k8s/{namespace}-{secret}", Mount: "apps"}).Secrets[0]
	if !reflect.DeepEqual(got.Keys, []string{"a-key", "blob", "empty", "half.bin", "z.txt"}) {
		t.Errorf("keys %v", got.Keys)
	}
	if !reflect.DeepEqual(got.Binary, []string{"blob", "half.bin"}) {
		t.Errorf("binary keys %v", got.Binary)
	}
	if got.KVPath != "apps/k8s/team-a-app" {
		t.Errorf("kvPath %q", got.KVPath)
	}
}

func TestClassifyReferenceIssues(t *testing.T) {
	db := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Data: map[string][]byte{"user": []byte("u"), "password": []byte("p")}}
	vol := func(name string, items []corev1.KeyToPath, optional bool) corev1.Volume {
		return corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name, Items: items, Optional: ptr(optional)}}}
	}
	proj := func(name string, items []corev1.KeyToPath) corev1.Volume {
		return corev1.Volume{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Items: items}}}}}}
	}
	cases := []struct {
		name  string
		spec  corev1.PodSpec
		fatal bool
		want  string // "" means no issue
	}{
		{"all there", corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{envSecret("P", "db", "password", false)}}},
			Volumes: []corev1.Volume{vol("db", []corev1.KeyToPath{{Key: "user", Path: "u"}}, false)}}, false, ""},
		{"missing Secret, env", corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{envSecret("P", "nope", "password", false)}}}}, true,
			"Deployment/w: container c env P reads key password of Secret nope, but the Secret does not exist, so its pods cannot start: create the Secret, or mark the reference optional: true"},
		{"missing Secret, optional env", corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{envSecret("P", "nope", "password", true)}}}}, false,
			"Deployment/w: container c env P reads key password of Secret nope (optional), but the Secret does not exist: the variable stays unset, as now"},
		{"missing Secret, init envFrom", corev1.PodSpec{InitContainers: []corev1.Container{{Name: "i", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}}}}}}, true,
			"Deployment/w: init container i envFrom reads Secret nope, but the Secret does not exist, so its pods cannot start"},
		{"missing Secret, optional envFrom", corev1.PodSpec{Containers: []corev1.Container{{Name: "c", EnvFrom: []corev1.EnvFromSource{{Prefix: "X_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: ptr(true)}}}}}}, false,
			"Deployment/w: container c envFrom with prefix X_ reads Secret nope (optional), but the Secret does not exist: no variables come from it, as now"},
		{"missing Secret, volume", corev1.PodSpec{Volumes: []corev1.Volume{vol("nope", nil, false)}}, true,
			"Deployment/w: volume v reads Secret nope, but the Secret does not exist, so its pods cannot start"},
		{"missing Secret, optional volume", corev1.PodSpec{Volumes: []corev1.Volume{vol("nope", nil, true)}}, false,
			"Deployment/w: volume v reads Secret nope (optional), but the Secret does not exist: no files come from it, as now"},
		{"missing Secret, projected", corev1.PodSpec{Volumes: []corev1.Volume{proj("nope", nil)}}, true,
			"Deployment/w: projected volume p reads Secret nope, but the Secret does not exist"},
		{"missing image pull Secret", corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "nope"}}}, false,
			"Deployment/w: imagePullSecrets names Secret nope, which does not exist: the kubelet pulls without it, as it does now"},
		{"missing key, env", corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{envSecret("P", "db", "pass", false)}}}}, true,
			"Deployment/w: container c env P reads key pass of Secret db, but the Secret has no such key, so its pods cannot start: add the key, or mark the reference optional: true"},
		{"missing key, optional env", corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{envSecret("P", "db", "pass", true)}}}}, false,
			"Deployment/w: container c env P reads key pass of Secret db (optional), but the Secret has no such key: the variable stays unset, as now"},
		{"missing items", corev1.PodSpec{Volumes: []corev1.Volume{vol("db", []corev1.KeyToPath{{Key: "user", Path: "u"}, {Key: "ca", Path: "c"}, {Key: "cert", Path: "d"}}, false)}}, true,
			"Deployment/w: volume v reads keys ca, cert of Secret db, but the Secret has no such key, so its pods cannot start"},
		{"missing projected item", corev1.PodSpec{Volumes: []corev1.Volume{proj("db", []corev1.KeyToPath{{Key: "token", Path: "t"}})}}, true,
			"Deployment/w: projected volume p reads key token of Secret db, but the Secret has no such key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := templateWorkload(KindDeployment, objectMeta("w"), corev1.PodTemplateSpec{Spec: c.spec})
			inv := &Inventory{Namespace: ns, Secrets: []corev1.Secret{db}, Workloads: []Workload{w}}
			issues := Classify(inv, KVLayout{Mount: "kv"}).Issues
			switch {
			case c.want == "" && len(issues) > 0:
				t.Fatalf("unexpected %v", issues)
			case c.want == "":
			case len(issues) != 1 || !strings.HasPrefix(issues[0].String(), c.want) || issues[0].Fatal != c.fatal:
				t.Fatalf("got %v, want one issue (fatal %v) %q", issues, c.fatal, c.want)
			}
		})
	}
}
