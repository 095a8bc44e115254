package agentinject

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current code")

// goldenDefaults is vaultctl's chart's injector in the sandbox: the in-cluster Vault address and a
// CA given as bytes (AGENT_INJECT_VAULT_CACERT_BYTES).
var goldenDefaults = Defaults{
	Address:     "https://vault.vault.svc:8200",
	CACertBytes: "-----BEGIN CERTIFICATE-----\nMIIBsandbox\n-----END CERTIFICATE-----\n",
	Namespace:   "production",
	Token:       apiAccess,
}

// checkGolden compares got with testdata/name, or rewrites it under -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./internal/sandbox/agentinject -run TestGolden -update` to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs; if the change is intended, run `go test ./internal/sandbox/agentinject -run TestGolden -update`\ngot:\n%s", path, got)
	}
}

// TestGoldenConfigs pins the two agent configurations of the origin article's webapp pod and of a
// pod with every annotation. The files hold the configuration indented: vault-k8s's bytes are
// compact json.Marshal output, which has no insignificant whitespace, so indenting loses nothing
// and compacting the file gives them back (checked below).
func TestGoldenConfigs(t *testing.T) {
	for _, name := range []string{"webapp", "every"} {
		t.Run(name, func(t *testing.T) {
			file := goldenPodFile(name)
			pod := podTemplate(t, file)
			a, err := Parse(pod.Annotations, goldenDefaults)
			if err != nil || a == nil {
				t.Fatalf("Parse: %v, %v", a, err)
			}
			for _, c := range []struct {
				init bool
				kind string
			}{{true, "init"}, {false, "sidecar"}} {
				cfg, err := a.Config(c.init)
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				if err := json.Indent(&out, cfg, "", "  "); err != nil {
					t.Fatal(err)
				}
				out.WriteByte('\n')
				var back bytes.Buffer
				if err := json.Compact(&back, out.Bytes()); err != nil || !bytes.Equal(back.Bytes(), cfg) {
					t.Fatalf("indenting the configuration is not reversible: %v", err)
				}
				checkGolden(t, name+"."+c.kind+".golden.json", out.Bytes())
			}
		})
	}
}

// TestGoldenInjection pins the rest of what the injector would add for the same two pods: the
// rendered files, the volumes, the agent containers' mounts and environment (VAULT_CONFIG shown
// decoded, as it is pinned above), and which containers see the secrets in which order.
func TestGoldenInjection(t *testing.T) {
	for _, name := range []string{"webapp", "every"} {
		t.Run(name, func(t *testing.T) {
			file := goldenPodFile(name)
			pod := podTemplate(t, file)
			a, err := Parse(pod.Annotations, goldenDefaults)
			if err != nil || a == nil {
				t.Fatalf("Parse: %v, %v", a, err)
			}
			files, err := a.Files()
			if err != nil {
				t.Fatal(err)
			}
			type fileOut struct {
				Path string `json:"path"`
				Mode string `json:"mode"`
			}
			type agentOut struct {
				Name    string               `json:"name"`
				Command []string             `json:"command"`
				Mounts  []corev1.VolumeMount `json:"volumeMounts"`
				Env     []corev1.EnvVar      `json:"env"`
			}
			var summary struct {
				Files          []fileOut            `json:"files"`
				Volumes        []corev1.VolumeMount `json:"volumes"`
				InitContainers []string             `json:"initContainers"`
				SeeSecrets     []string             `json:"containersSeeingSecrets"`
				Agents         []agentOut           `json:"agents"`
				LoginPath      string               `json:"loginPath"`
				Unsupported    []string             `json:"unsupported"`
			}
			for _, f := range files {
				summary.Files = append(summary.Files, fileOut{f.Path, fmt.Sprintf("%#o", uint32(f.Mode))})
			}
			summary.Volumes = a.Volumes()
			summary.InitContainers = a.InitContainers(nil)
			for _, c := range pod.Spec.Containers {
				if a.SeesSecrets(c.Name, false) {
					summary.SeeSecrets = append(summary.SeeSecrets, c.Name)
				}
			}
			for _, c := range []struct {
				init bool
				name string
				want bool
			}{{true, InitContainerName, a.PrePopulate}, {false, SidecarContainerName, !a.PrePopulateOnly}} {
				if !c.want {
					continue
				}
				env, err := a.Env(c.init)
				if err != nil {
					t.Fatal(err)
				}
				for i, e := range env {
					if e.Name == "VAULT_CONFIG" {
						b, err := base64.StdEncoding.DecodeString(e.Value)
						if err != nil {
							t.Fatal(err)
						}
						if cfg, _ := a.Config(c.init); !bytes.Equal(b, cfg) {
							t.Fatalf("VAULT_CONFIG is not Config(%v)", c.init)
						}
						env[i].Value = "<Config(" + map[bool]string{true: "true", false: "false"}[c.init] + ")>"
					}
				}
				summary.Agents = append(summary.Agents, agentOut{c.name, a.Command(), a.AgentMounts(c.init), env})
			}
			summary.LoginPath = a.LoginPath()
			summary.Unsupported = a.Unsupported
			var out bytes.Buffer
			enc := json.NewEncoder(&out)
			enc.SetEscapeHTML(false) // a summary for people; the configurations above keep vault-k8s's escaping
			enc.SetIndent("", "  ")
			if err := enc.Encode(summary); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, name+".injection.golden.json", out.Bytes())
		})
	}
}

// TestOriginArticleWebapp checks what the article's pod would see, beyond the pinned bytes: one
// file, /vault/secrets/db-creds, mode 0644, rendered by the article's own template.
func TestOriginArticleWebapp(t *testing.T) {
	pod := podTemplate(t, "webapp.deployment.yaml")
	pod.Namespace = "production"
	pod.Name = "webapp-7d9c-abcde"
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].VolumeMounts = append(pod.Spec.Containers[i].VolumeMounts,
			corev1.VolumeMount{Name: apiAccess.Name, MountPath: apiAccess.MountPath, ReadOnly: true})
	}
	a, err := ParsePod(pod, Defaults{Address: "https://vault.vault.svc:8200"})
	if err != nil || a == nil {
		t.Fatalf("ParsePod: %v, %v", a, err)
	}
	files, err := a.Files()
	if err != nil {
		t.Fatal(err)
	}
	if want := []File{{"db-creds", "/vault/secrets/db-creds", 0o644}}; !reflect.DeepEqual(files, want) {
		t.Fatalf("Files = %+v, want %+v", files, want)
	}
	if got := a.Contents(a.Secrets[0]); !strings.HasPrefix(got, `{{- with secret "secret/data/production/db-credentials" -}}`+"\nexport DB_HOST=") ||
		!strings.HasSuffix(got, "{{- end }}\n") {
		t.Errorf("template = %q", got)
	}
	if a.Role != "webapp-production" || a.AuthPath != "auth/kubernetes" || !a.PrePopulate || a.PrePopulateOnly || !a.SeesSecrets("webapp", false) {
		t.Errorf("agent = %+v", a)
	}
}
