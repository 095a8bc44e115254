package agentinject

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch"
	corev1 "k8s.io/api/core/v1"
)

// admitted is a testdata pod as the API server hands it to a mutating webhook: the ServiceAccount
// admission plugin added the kube-api-access volume and mounted it into every container.
func admitted(t *testing.T, file string) *corev1.Pod {
	t.Helper()
	pod := podTemplate(t, file)
	pod.Namespace = "production"
	mount := corev1.VolumeMount{Name: apiAccess.Name, MountPath: apiAccess.MountPath, ReadOnly: true}
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].VolumeMounts = append(pod.Spec.Containers[i].VolumeMounts, mount)
	}
	for i := range pod.Spec.InitContainers {
		pod.Spec.InitContainers[i].VolumeMounts = append(pod.Spec.InitContainers[i].VolumeMounts, mount)
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: apiAccess.Name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}},
	}}})
	return pod
}

// applyPatch applies ops to pod as the API server applies an admission response's JSONPatch.
func applyPatch(t *testing.T, pod *corev1.Pod, ops []PatchOperation) *corev1.Pod {
	t.Helper()
	doc, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("applying the patch: %v\n%s", err, raw)
	}
	var got corev1.Pod
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

// injected parses pod and returns the agent and the pod its Patch leaves.
func injected(t *testing.T, pod *corev1.Pod) (*Agent, *corev1.Pod) {
	t.Helper()
	a, err := ParsePod(pod, Defaults{Address: "https://vault:8200"})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := a.Patch(pod)
	if err != nil {
		t.Fatal(err)
	}
	return a, applyPatch(t, pod, ops)
}

// TestGoldenPatch pins the JSONPatch for the article's webapp and for the pod with every
// annotation (VAULT_CONFIG shown decoded: the configurations are pinned by TestGoldenConfigs).
func TestGoldenPatch(t *testing.T) {
	for _, name := range []string{"webapp", "every"} {
		t.Run(name, func(t *testing.T) {
			file := goldenPodFile(name)
			pod := admitted(t, file)
			d := goldenDefaults
			d.Token = TokenVolume{}
			a, err := ParsePod(pod, d)
			if err != nil || a == nil {
				t.Fatalf("ParsePod: %v, %v", a, err)
			}
			ops, err := a.Patch(pod)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(ops)
			if err != nil {
				t.Fatal(err)
			}
			shown := decodeVaultConfig(t, a, raw)
			var out bytes.Buffer
			if err := json.Indent(&out, shown, "", "  "); err != nil {
				t.Fatal(err)
			}
			out.WriteByte('\n')
			checkGolden(t, name+".patch.golden.json", out.Bytes())
		})
	}
}

// decodeVaultConfig replaces each VAULT_CONFIG value in a marshalled patch by a marker, after
// checking it is base64 of the container's configuration.
func decodeVaultConfig(t *testing.T, a *Agent, raw []byte) []byte {
	t.Helper()
	s := string(raw)
	for _, init := range []bool{true, false} {
		cfg, err := a.Config(init)
		if err != nil {
			continue
		}
		enc := base64.StdEncoding.EncodeToString(cfg)
		marker := map[bool]string{true: "<Config(true)>", false: "<Config(false)>"}[init]
		s = strings.ReplaceAll(s, `"name":"VAULT_CONFIG","value":"`+enc+`"`, `"name":"VAULT_CONFIG","value":"`+marker+`"`)
	}
	if strings.Contains(s, `"name":"VAULT_CONFIG","value":"ey`) {
		t.Fatalf("a VAULT_CONFIG is not Config(init) or Config(sidecar): %s", s)
	}
	return []byte(s)
}

// TestPatchApplies checks what the patched pod holds, for the orders Patch has to get right.
func TestPatchApplies(t *testing.T) {
	base := map[string]string{
		AnnotationInject:                "true",
		annRole:                         "web",
		annSecret + "db":                "secret/data/db",
		annSecret + "cert":              "pki/issue/web",
		annSecretVolPath + "-cert":      "/etc/tls",
		"unrelated.example.com/keep-me": "yes",
	}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		inits       []string // init container names after the patch
		containers  []string
		seeing      []string // containers (init and app) that mount vault-secrets
		volumes     []string
	}{
		{"defaults", base,
			[]string{"migrate", InitContainerName}, []string{"web", "worker", SidecarContainerName},
			[]string{"migrate", "web", "worker"},
			[]string{apiAccess.Name, HomeInitVolumeName, HomeSidecarVolumeName, SecretsVolumeName, SecretsVolumeName + "-custom-0"}},
		{"init first", with(map[string]string{annInitFirst: "true"}),
			[]string{InitContainerName, "migrate"}, []string{"web", "worker", SidecarContainerName},
			[]string{"migrate", "web", "worker"},
			[]string{apiAccess.Name, HomeInitVolumeName, HomeSidecarVolumeName, SecretsVolumeName, SecretsVolumeName + "-custom-0"}},
		{"pre-populate only, one container", with(map[string]string{annPrePopOnly: "true", annContainers: "worker"}),
			[]string{"migrate", InitContainerName}, []string{"web", "worker"},
			[]string{"migrate", "worker"},
			[]string{apiAccess.Name, HomeInitVolumeName, SecretsVolumeName, SecretsVolumeName + "-custom-0"}},
		{"no init container", with(map[string]string{annPrePopulate: "false"}),
			[]string{"migrate"}, []string{"web", "worker", SidecarContainerName},
			[]string{"web", "worker"},
			[]string{apiAccess.Name, HomeSidecarVolumeName, SecretsVolumeName, SecretsVolumeName + "-custom-0"}},
		{"tls secret and persistent cache", with(map[string]string{annTLSSecret: "vault-tls", annCacheEnable: "true"}),
			[]string{"migrate", InitContainerName}, []string{"web", "worker", SidecarContainerName},
			[]string{"migrate", "web", "worker"},
			[]string{apiAccess.Name, HomeInitVolumeName, HomeSidecarVolumeName, SecretsVolumeName, SecretsVolumeName + "-custom-0", TLSVolumeName, CacheVolumeName}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := appPod(tc.annotations)
			a, got := injected(t, pod)
			names := func(cs []corev1.Container) []string {
				var out []string
				for _, c := range cs {
					out = append(out, c.Name)
				}
				return out
			}
			if n := names(got.Spec.InitContainers); !slices.Equal(n, tc.inits) {
				t.Errorf("init containers %v, want %v", n, tc.inits)
			}
			if n := names(got.Spec.InitContainers); !slices.Equal(n, a.InitContainers([]string{"migrate"})) {
				t.Errorf("init containers %v, InitContainers says %v", n, a.InitContainers([]string{"migrate"}))
			}
			if n := names(got.Spec.Containers); !slices.Equal(n, tc.containers) {
				t.Errorf("containers %v, want %v", n, tc.containers)
			}
			var vols []string
			for _, v := range got.Spec.Volumes {
				vols = append(vols, v.Name)
			}
			if !slices.Equal(vols, tc.volumes) {
				t.Errorf("volumes %v, want %v", vols, tc.volumes)
			}
			var seeing []string
			for _, c := range slices.Concat(got.Spec.InitContainers, got.Spec.Containers) {
				if c.Name == InitContainerName || c.Name == SidecarContainerName {
					want := a.AgentMounts(c.Name == InitContainerName)
					if !reflect.DeepEqual(c.VolumeMounts, want) {
						t.Errorf("%s mounts %v, want %v", c.Name, c.VolumeMounts, want)
					}
					continue
				}
				// The pod's own mounts stay first, the secrets volumes follow in Volumes order.
				want := []corev1.VolumeMount{{Name: apiAccess.Name, MountPath: apiAccess.MountPath, ReadOnly: true}}
				if len(c.VolumeMounts) > 1 {
					seeing = append(seeing, c.Name)
					want = append(want, a.Volumes()...)
				}
				if !reflect.DeepEqual(c.VolumeMounts, want) {
					t.Errorf("%s mounts %v, want %v", c.Name, c.VolumeMounts, want)
				}
			}
			if !slices.Equal(seeing, tc.seeing) {
				t.Errorf("containers with the secrets %v, want %v", seeing, tc.seeing)
			}
			if got.Annotations[AnnotationStatus] != "injected" || got.Annotations["unrelated.example.com/keep-me"] != "yes" || len(got.Annotations) != len(pod.Annotations)+1 {
				t.Errorf("annotations %v: want the pod's plus agent-inject-status injected", got.Annotations)
			}
		})
	}
}

func TestAgentContainers(t *testing.T) {
	pod := appPod(map[string]string{AnnotationInject: "true", annRole: "web", annSecret + "db": "secret/data/db"})
	a, err := ParsePod(pod, Defaults{Address: "https://vault:8200", Image: "vault:sandbox"})
	if err != nil {
		t.Fatal(err)
	}
	init, err := a.InitContainer()
	if err != nil {
		t.Fatal(err)
	}
	side, err := a.SidecarContainer()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []corev1.Container{init, side} {
		if c.Image != "vault:sandbox" {
			t.Errorf("%s: image %q, want the injector's -vault-image", c.Name, c.Image)
		}
		if cmd := append(slices.Clone(c.Command), c.Args...); !slices.Equal(cmd, a.Command()) {
			t.Errorf("%s: command %q, want %q", c.Name, cmd, a.Command())
		}
		sc := c.SecurityContext
		if sc == nil || *sc.RunAsUser != 100 || *sc.RunAsGroup != 1000 || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
			!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: security context %+v", c.Name, sc)
		}
		if c.Resources.Limits.Cpu().String() != "500m" || c.Resources.Limits.Memory().String() != "128Mi" ||
			c.Resources.Requests.Cpu().String() != "250m" || c.Resources.Requests.Memory().String() != "64Mi" {
			t.Errorf("%s: resources %+v", c.Name, c.Resources)
		}
	}
	if init.Lifecycle != nil || side.Lifecycle == nil || side.Lifecycle.PreStop != nil {
		t.Errorf("lifecycles: init %+v, sidecar %+v; want none and an empty one", init.Lifecycle, side.Lifecycle)
	}

	// The injector's flags, and the pod's revoke, user and resource annotations.
	f := false
	pod = appPod(map[string]string{AnnotationInject: "true", annRole: "web", annRevoke: "true", annRevokeGrace: "7",
		annCACert: "/vault/tls/ca.crt", annRunAsGroup: "0", annLimitsEph: "1Gi"})
	a, err = ParsePod(pod, Defaults{Address: "https://vault:8200", SetSecurityContext: &f, RunAsUser: "4000", LimitCPU: "1"})
	if err != nil {
		t.Fatal(err)
	}
	side, err = a.SidecarContainer()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/bin/sh", "-c", "/bin/sleep 7 && /bin/vault token revoke -address=https://vault:8200 -ca-cert=/vault/tls/ca.crt -self"}; side.Lifecycle.PreStop == nil ||
		!slices.Equal(side.Lifecycle.PreStop.Exec.Command, want) {
		t.Errorf("preStop %+v, want %q", side.Lifecycle.PreStop, want)
	}
	// -set-security-context=false, but the pod sets a group: vault-k8s sets the context anyway.
	if sc := side.SecurityContext; sc == nil || *sc.RunAsUser != 4000 || *sc.RunAsGroup != 0 || *sc.RunAsNonRoot {
		t.Errorf("security context %+v: want uid 4000, gid 0, not non-root", sc)
	}
	if side.Resources.Limits.Cpu().String() != "1" || side.Resources.Limits.StorageEphemeral().String() != "1Gi" {
		t.Errorf("resources %+v", side.Resources)
	}

	// Without any user or group annotation, -set-security-context=false means no context.
	pod = appPod(map[string]string{AnnotationInject: "true", annRole: "web"})
	if a, err = ParsePod(pod, Defaults{Address: "https://vault:8200", SetSecurityContext: &f}); err != nil {
		t.Fatal(err)
	}
	if init, _ = a.InitContainer(); init.SecurityContext != nil {
		t.Errorf("security context %+v, want none", init.SecurityContext)
	}

	// agent-run-as-same-user takes the first container's uid.
	uid := int64(1234)
	pod = appPod(map[string]string{AnnotationInject: "true", annRole: "web", annRunAsSame: "true"})
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: &uid}
	if a, err = ParsePod(pod, Defaults{Address: "https://vault:8200"}); err != nil {
		t.Fatal(err)
	}
	if init, _ = a.InitContainer(); *init.SecurityContext.RunAsUser != 1234 {
		t.Errorf("uid %d, want the first container's 1234", *init.SecurityContext.RunAsUser)
	}
}

func TestPatchShareProcessNamespace(t *testing.T) {
	_, got := injected(t, appPod(map[string]string{AnnotationInject: "true", annRole: "web", annShareProcNS: "true"}))
	if got.Spec.ShareProcessNamespace == nil || !*got.Spec.ShareProcessNamespace {
		t.Errorf("shareProcessNamespace %v, want true", got.Spec.ShareProcessNamespace)
	}
}

func TestEscapePointer(t *testing.T) {
	if got := EscapePointer("vault.hashicorp.com/a~b"); got != "vault.hashicorp.com~1a~0b" {
		t.Errorf("EscapePointer = %q", got)
	}
}
