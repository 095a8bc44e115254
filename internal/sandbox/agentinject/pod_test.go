package agentinject

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// appPod is an application pod as the API server stores it: the ServiceAccount admission
// plugin mounted the token into each container.
func appPod(annotations map[string]string) *corev1.Pod {
	mount := corev1.VolumeMount{Name: apiAccess.Name, MountPath: apiAccess.MountPath, ReadOnly: true}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "production", Annotations: annotations},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", VolumeMounts: []corev1.VolumeMount{mount}}},
			Containers: []corev1.Container{
				{Name: "web", VolumeMounts: []corev1.VolumeMount{mount}},
				{Name: "worker", VolumeMounts: []corev1.VolumeMount{mount}},
			},
			Volumes: []corev1.Volume{{Name: apiAccess.Name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}},
			}}}},
		},
	}
}

func TestServiceAccountToken(t *testing.T) {
	vaultToken := corev1.Volume{Name: "vault-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{}}, {ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "vault-jwt"}}},
	}}}
	notProjected := corev1.Volume{Name: "plain", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	for _, tc := range []struct {
		name    string
		edit    func(*corev1.Pod)
		want    TokenVolume
		wantErr string
	}{
		{"the API access mount", nil, apiAccess, ""},
		{"first container with a serviceaccount path wins", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "sa2", MountPath: "/run/serviceaccount-x"}}
		}, TokenVolume{Name: "sa2", MountPath: "/run/serviceaccount-x", TokenPath: "token"}, ""},
		{"init containers are not searched", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts, p.Spec.Containers[1].VolumeMounts = nil, nil
		}, TokenVolume{}, "failed to find service account volume mount"},
		{"named volume mounted by a container", func(p *corev1.Pod) {
			p.Annotations[annSATokenVolume] = "vault-token"
			p.Spec.Volumes = append(p.Spec.Volumes, vaultToken)
			p.Spec.Containers[1].VolumeMounts = append(p.Spec.Containers[1].VolumeMounts, corev1.VolumeMount{Name: "vault-token", MountPath: "/var/run/secrets/vault"})
		}, TokenVolume{Name: "vault-token", MountPath: "/var/run/secrets/vault", TokenPath: "vault-jwt"}, ""},
		{"named volume mounted nowhere", func(p *corev1.Pod) {
			p.Annotations[annSATokenVolume] = "vault-token"
			p.Spec.Volumes = append(p.Spec.Volumes, vaultToken)
		}, TokenVolume{Name: "vault-token", MountPath: DefaultTokenMount, TokenPath: "vault-jwt"}, ""},
		{"named volume missing", func(p *corev1.Pod) { p.Annotations[annSATokenVolume] = "vault-token" },
			TokenVolume{}, `failed to find service account volume "vault-token"`},
		{"named volume mounted but not declared", func(p *corev1.Pod) {
			p.Annotations[annSATokenVolume] = "vault-token"
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "vault-token", MountPath: "/v"})
		}, TokenVolume{}, `failed to find volume "vault-token" in Pod "web-1" volumes`},
		{"named volume without a token", func(p *corev1.Pod) {
			p.Annotations[annSATokenVolume] = "plain"
			p.Spec.Volumes = append(p.Spec.Volumes, notProjected)
		}, TokenVolume{}, `failed to find tokenPath for projected volume "plain"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := appPod(map[string]string{})
			if tc.edit != nil {
				tc.edit(p)
			}
			got, err := ServiceAccountToken(p)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ServiceAccountToken = %v, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ServiceAccountToken = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParsePod(t *testing.T) {
	d := Defaults{Address: "https://vault.vault.svc:8200"} // namespace and token from the pod

	a, err := ParsePod(appPod(withRole()), d)
	if err != nil {
		t.Fatal(err)
	}
	if a.Namespace != "production" || a.Token != apiAccess {
		t.Errorf("namespace %q token %+v", a.Namespace, a.Token)
	}
	// agent-inject-containers defaults to the pod's containers, which is what nil means to Parse.
	if !reflect.DeepEqual(a.Containers, []string{"web", "worker"}) {
		t.Errorf("Containers = %q", a.Containers)
	}

	// The token error is reported where vault-k8s reports it: after the annotations parse.
	noToken := appPod(withRole())
	for i := range noToken.Spec.Containers {
		noToken.Spec.Containers[i].VolumeMounts = nil
	}
	if _, err := ParsePod(noToken, d); err == nil || err.Error() != "error creating new agent sidecar: failed to find service account volume mount" {
		t.Errorf("no token: %v", err)
	}
	bad := appPod(withRole("agent-inject", "maybe"))
	bad.Spec.Containers = nil
	if _, err := ParsePod(bad, d); err == nil || !strings.HasPrefix(err.Error(), "error checking if should inject agent") {
		t.Errorf("bad agent-inject without a token: %v", err)
	}
	// A Running pod still gets its agent: the runner acts on pods that exist.
	running := appPod(withRole())
	running.Status.Phase = corev1.PodRunning
	if a, err := ParsePod(running, d); a == nil || err != nil {
		t.Errorf("running pod: %v, %v", a, err)
	}

	uid := func(v int64) *int64 { return &v }
	off := false
	for _, tc := range []struct {
		name string
		edit func(*corev1.Pod)
		want string
	}{
		{"same user without a security context", func(p *corev1.Pod) { p.Annotations[annRunAsSame] = "true" },
			"error creating new agent sidecar: No SecurityContext found for Container 0"},
		{"same user without runAsUser", func(p *corev1.Pod) {
			p.Annotations[annRunAsSame] = "true"
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{}
		}, "error creating new agent sidecar: RunAsUser is nil for Container 0's SecurityContext"},
		{"same user as root", func(p *corev1.Pod) {
			p.Annotations[annRunAsSame] = "true"
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: uid(0)}
		}, "error creating new agent sidecar: container not allowed to run as root"},
		{"same user without containers", func(p *corev1.Pod) {
			p.Annotations[annRunAsSame] = "true"
			p.Annotations[annSATokenVolume] = apiAccess.Name // found in the volumes, not a container
			p.Spec.Containers = nil
		}, "error creating new agent sidecar: No containers found in Pod Spec"},
		{"share process namespace the pod turns off", func(p *corev1.Pod) {
			p.Annotations[annShareProcNS] = "true"
			p.Spec.ShareProcessNamespace = &off
		}, "error creating new agent sidecar: shareProcessNamespace explicitly disabled on the pod, refusing to enable it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := appPod(withRole())
			tc.edit(p)
			if _, err := ParsePod(p, d); err == nil || err.Error() != tc.want {
				t.Fatalf("ParsePod: %v, want %q", err, tc.want)
			}
			// Parse, without the spec, cannot make these checks.
			pd := d
			pd.Namespace, pd.Token = p.Namespace, apiAccess
			if _, err := Parse(p.Annotations, pd); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
	ok := appPod(withRole(strings.TrimPrefix(annRunAsSame, Prefix), "true", strings.TrimPrefix(annShareProcNS, Prefix), "false"))
	ok.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: uid(1000)}
	ok.Spec.ShareProcessNamespace = &off
	if _, err := ParsePod(ok, d); err != nil {
		t.Errorf("valid same-user pod: %v", err)
	}
}

func TestWhichContainersSeeSecrets(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ann       map[string]string
		see       []string // application containers that get the volumes
		initSees  bool     // the pod's own init containers
		initOrder []string
		sidecar   bool
	}{
		{"defaults", withRole(), []string{"web", "worker"}, true, []string{"migrate", InitContainerName}, true},
		{"init first", withRole("agent-init-first", "true"), []string{"web", "worker"}, true, []string{InitContainerName, "migrate"}, true},
		{"inject-containers limits the app containers, not init ones", withRole("agent-inject-containers", "worker"),
			[]string{"worker"}, true, []string{"migrate", InitContainerName}, true},
		{"inject-containers is not trimmed", withRole("agent-inject-containers", "web, worker"), []string{"web"}, true, []string{"migrate", InitContainerName}, true},
		{"no pre-populate: init containers see nothing, init-first is moot", withRole("agent-pre-populate", "false", "agent-init-first", "true"),
			[]string{"web", "worker"}, false, []string{"migrate"}, true},
		{"pre-populate only", withRole("agent-pre-populate-only", "true"), []string{"web", "worker"}, true, []string{"migrate", InitContainerName}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := appPod(tc.ann)
			a, err := ParsePod(p, Defaults{Address: "https://v:8200"})
			if err != nil {
				t.Fatal(err)
			}
			var see []string
			for _, c := range p.Spec.Containers {
				if a.SeesSecrets(c.Name, false) {
					see = append(see, c.Name)
				}
			}
			if !reflect.DeepEqual(see, tc.see) {
				t.Errorf("containers seeing secrets = %v, want %v", see, tc.see)
			}
			if got := a.SeesSecrets("migrate", true); got != tc.initSees {
				t.Errorf("init container sees = %v, want %v", got, tc.initSees)
			}
			if got := a.InitContainers([]string{"migrate"}); !reflect.DeepEqual(got, tc.initOrder) {
				t.Errorf("init order = %v, want %v", got, tc.initOrder)
			}
			if !a.PrePopulateOnly != tc.sidecar {
				t.Errorf("sidecar = %v, want %v", !a.PrePopulateOnly, tc.sidecar)
			}
		})
	}
	// Parse sees no spec: without agent-inject-containers every container sees the secrets.
	if a := mustParse(t, withRole()); !a.SeesSecrets("anything", false) {
		t.Error("Parse without agent-inject-containers: container does not see secrets")
	}
}

func TestAgentMounts(t *testing.T) {
	names := func(ms []corev1.VolumeMount) (out []string) {
		for _, m := range ms {
			s := m.Name + ":" + m.MountPath
			if m.ReadOnly {
				s += ":ro"
			}
			out = append(out, s)
		}
		return out
	}
	token := apiAccess.Name + ":" + apiAccess.MountPath + ":ro"
	a := mustParse(t, withRole("agent-inject-secret-db", "p", "secret-volume-path-db", "/etc/db"))
	if got, want := names(a.AgentMounts(true)), []string{"home-init:/home/vault", token, "vault-secrets:/vault/secrets", "vault-secrets-custom-0:/etc/db"}; !reflect.DeepEqual(got, want) {
		t.Errorf("init mounts = %v, want %v", got, want)
	}
	if got, want := names(a.AgentMounts(false)), []string{token, "home-sidecar:/home/vault", "vault-secrets:/vault/secrets", "vault-secrets-custom-0:/etc/db"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sidecar mounts = %v, want %v", got, want)
	}
	a = mustParse(t, withRole("tls-secret", "vault-tls", "agent-cache-enable", "true"))
	if got, want := names(a.AgentMounts(false)), []string{token, "home-sidecar:/home/vault", "vault-secrets:/vault/secrets",
		"vault-tls-secrets:/vault/tls:ro", "vault-agent-cache:/vault/agent-cache"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sidecar mounts = %v, want %v", got, want)
	}
}

func TestEnv(t *testing.T) {
	envMap := func(env []corev1.EnvVar) map[string]string {
		m := map[string]string{}
		for _, e := range env {
			if e.ValueFrom != nil {
				m[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
			} else {
				m[e.Name] = e.Value
			}
		}
		return m
	}
	const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	for _, tc := range []struct {
		name string
		ann  map[string]string
		ca   string
		want map[string]string // besides VAULT_CONFIG
	}{
		{"defaults", withRole(), "", map[string]string{
			"NAMESPACE": "fieldRef:metadata.namespace", "HOST_IP": "fieldRef:status.hostIP", "POD_IP": "fieldRef:status.podIP",
			"VAULT_LOG_LEVEL": "info", "VAULT_LOG_FORMAT": "standard"}},
		{"tuning annotations and a PEM CA", withRole("log-level", "debug", "log-format", "json", "go-max-procs", "1", "client-timeout", "9s",
			"client-max-retries", "0", "proxy-address", "http://p:1"), pem, map[string]string{
			"NAMESPACE": "fieldRef:metadata.namespace", "HOST_IP": "fieldRef:status.hostIP", "POD_IP": "fieldRef:status.podIP",
			"VAULT_LOG_LEVEL": "debug", "VAULT_LOG_FORMAT": "json", "GOMAXPROCS": "1", "VAULT_CLIENT_TIMEOUT": "9s",
			"VAULT_MAX_RETRIES": "0", "HTTPS_PROXY": "http://p:1", "VAULT_CACERT_BYTES": pem}},
		{"a base64 CA is decoded", withRole("log-level", ""), base64.StdEncoding.EncodeToString([]byte(pem)), map[string]string{
			"NAMESPACE": "fieldRef:metadata.namespace", "HOST_IP": "fieldRef:status.hostIP", "POD_IP": "fieldRef:status.podIP",
			"VAULT_LOG_FORMAT": "standard", "VAULT_CACERT_BYTES": pem}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDefaults
			d.CACertBytes = tc.ca
			a, err := Parse(tc.ann, d)
			if err != nil {
				t.Fatal(err)
			}
			for _, init := range []bool{true, false} {
				env, err := a.Env(init)
				if err != nil {
					t.Fatal(err)
				}
				got := envMap(env)
				cfg, err := base64.StdEncoding.DecodeString(got["VAULT_CONFIG"])
				want, _ := a.Config(init)
				if err != nil || string(cfg) != string(want) {
					t.Errorf("init=%v VAULT_CONFIG is not the configuration", init)
				}
				delete(got, "VAULT_CONFIG")
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("init=%v env = %v, want %v", init, got, tc.want)
				}
			}
		})
	}
	// The command writes VAULT_CONFIG where the agent reads it.
	if got := strings.Join(mustParse(t, withRole()).Command(), " "); got !=
		"/bin/sh -ec echo ${VAULT_CONFIG?} | base64 -d > /home/vault/config.json && vault agent -config=/home/vault/config.json" {
		t.Errorf("command = %q", got)
	}
}
