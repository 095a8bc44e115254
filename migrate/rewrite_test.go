package migrate

import (
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// app is a container that runs a known command.
func app(name string) corev1.Container {
	return corev1.Container{Name: name, Image: "example/" + name, Command: []string{"/app/" + name}, Args: []string{"--port", "8080"}}
}

// fileSet is the files of a result as path -> mode.
func fileSet(res RewriteResult) map[string]fs.FileMode {
	out := map[string]fs.FileMode{}
	for _, f := range res.Files {
		out[f.Path] = f.Mode
	}
	return out
}

func TestRewriteVolumes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*corev1.PodTemplateSpec)
		files map[string]fs.FileMode // path -> mode the container saw
	}{
		{"one file per key, kubelet's default mode", func(p *corev1.PodTemplateSpec) {
			p.Spec.Volumes = []corev1.Volume{rwSecretVolume("certs", "tls", nil)}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls")}
		}, map[string]fs.FileMode{"/etc/tls/tls.crt": 0o644, "/etc/tls/tls.key": 0o644}},
		{"defaultMode", func(p *corev1.PodTemplateSpec) {
			p.Spec.Volumes = []corev1.Volume{rwSecretVolume("certs", "tls", func(s *corev1.SecretVolumeSource) { s.DefaultMode = rwMode(0o400) })}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls/")}
		}, map[string]fs.FileMode{"/etc/tls/tls.crt": 0o400, "/etc/tls/tls.key": 0o400}},
		{"items: only those keys, their paths (with directories) and modes", func(p *corev1.PodTemplateSpec) {
			p.Spec.Volumes = []corev1.Volume{rwSecretVolume("certs", "tls", func(s *corev1.SecretVolumeSource) {
				s.DefaultMode = rwMode(0o440)
				s.Items = []corev1.KeyToPath{{Key: "tls.key", Path: "private/server.key", Mode: rwMode(0o600)}, {Key: "tls.crt", Path: "server.crt"}}
			})}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls")}
		}, map[string]fs.FileMode{"/etc/tls/private/server.key": 0o600, "/etc/tls/server.crt": 0o440}},
		{"items naming a missing key of an optional Secret are skipped, as the kubelet does", func(p *corev1.PodTemplateSpec) {
			p.Spec.Volumes = []corev1.Volume{rwSecretVolume("certs", "tls", func(s *corev1.SecretVolumeSource) {
				s.Optional = new(true)
				s.Items = []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}, {Key: "tls.crt", Path: "tls.crt"}}
			})}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls")}
		}, map[string]fs.FileMode{"/etc/tls/tls.crt": 0o644}},
		{"fsGroup: the kubelet adds group read", func(p *corev1.PodTemplateSpec) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: new(int64(2000))}
			p.Spec.Volumes = []corev1.Volume{rwSecretVolume("certs", "tls", func(s *corev1.SecretVolumeSource) { s.DefaultMode = rwMode(0o400) })}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls")}
		}, map[string]fs.FileMode{"/etc/tls/tls.crt": 0o440, "/etc/tls/tls.key": 0o440}},
		{"projected volume of two migrated Secrets", func(p *corev1.PodTemplateSpec) {
			p.Spec.Volumes = []corev1.Volume{{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				DefaultMode: rwMode(0o640),
				Sources: []corev1.VolumeProjection{
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "tls"}, Items: []corev1.KeyToPath{{Key: "tls.crt", Path: "certs/tls.crt", Mode: rwMode(0o444)}}}},
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}},
				},
			}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("all", "/etc/app")}
		}, map[string]fs.FileMode{"/etc/app/certs/tls.crt": 0o444, "/etc/app/password": 0o640, "/etc/app/user": 0o640}},
		{"same volume in two containers at one path: one set of files", func(p *corev1.PodTemplateSpec) {
			p.Spec.Containers = append(p.Spec.Containers, app("worker"))
			p.Spec.Volumes = []corev1.Volume{rwSecretVolume("certs", "tls", nil)}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls")}
			p.Spec.Containers[1].VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls")}
		}, map[string]fs.FileMode{"/etc/tls/tls.crt": 0o644, "/etc/tls/tls.key": 0o644}},
		{"binary values", func(p *corev1.PodTemplateSpec) {
			p.Spec.Volumes = []corev1.Volume{rwSecretVolume("blobs", "bin", nil)}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("blobs", "/data")}
		}, map[string]fs.FileMode{"/data/blob": 0o644, "/data/latin1": 0o644}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := rwPod(app("web"))
			tc.edit(&pod)
			before := pod.DeepCopy()
			res := rwMust(t, rwInput(pod))
			if res.Action != WorkloadMigrate {
				t.Fatalf("Action = %s, manual %q", res.Action, res.Manual)
			}
			if got := fileSet(res); !reflect.DeepEqual(got, tc.files) {
				t.Errorf("files = %v, want %v", got, tc.files)
			}
			if !reflect.DeepEqual(pod, *before) {
				t.Error("Rewrite changed its input")
			}
			spec := res.Template.Spec
			if len(spec.Volumes) != 0 {
				t.Errorf("volumes left: %v", spec.Volumes)
			}
			for _, c := range spec.Containers {
				if len(c.VolumeMounts) != 0 {
					t.Errorf("container %s keeps mounts %v", c.Name, c.VolumeMounts)
				}
				if !reflect.DeepEqual(c.Command, []string{"/app/" + c.Name}) {
					t.Errorf("container %s: command changed to %q though it reads no env from a Secret", c.Name, c.Command)
				}
			}
			// Each file's annotations: its directory, its name, its mode, and a template that
			// renders the Secret's bytes exactly.
			ann := res.Template.Annotations
			for _, f := range res.Files {
				name := rwSecretFor(t, ann, f.Path)
				if got, want := ann[annPerms+name], fmt.Sprintf("%04o", f.Mode); got != want {
					t.Errorf("%s: perms %q, want %q", f.Path, got, want)
				}
				if got, want := rwRender(t, ann[annTemplate+name]), rwSecretData[f.Secret][f.Key]; got != want {
					t.Errorf("%s renders %q, want %q", f.Path, got, want)
				}
				if ann[annSecret+name] != "secret/data/team-a/"+f.Secret {
					t.Errorf("%s: agent-inject-secret %q", f.Path, ann[annSecret+name])
				}
			}
			if ann[annContainers] != strings.Join(containerNames(spec.Containers), ",") {
				t.Errorf("agent-inject-containers = %q", ann[annContainers])
			}
		})
	}
}

func containerNames(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestRewriteManual(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*corev1.PodTemplateSpec, *RewriteInput)
		want []string // each must appear in one Manual line
	}{
		{"subPath mount of a Secret", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Volumes = []corev1.Volume{rwSecretVolume("certs", "tls", nil)}
			m := rwMount("certs", "/etc/nginx/tls.crt")
			m.SubPath = "tls.crt"
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{m}
		}, []string{"container web", "subPath", "/etc/nginx/tls.crt", "Secret tls"}},
		{"projected volume mixing a Secret with a ConfigMap", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}},
			}}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("conf", "/etc/app")}
		}, []string{"projected volume conf", "db", "other sources"}},
		{"projected volume mixing a migrated Secret with a kept one", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kept"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}},
			}}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("conf", "/etc/app")}
		}, []string{"projected volume conf"}},
		{"two Secret volumes at one path in different containers", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Containers = append(p.Spec.Containers, app("worker"))
			p.Spec.Volumes = []corev1.Volume{rwSecretVolume("a", "tls", nil), rwSecretVolume("b", "db", nil)}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("a", "/etc/s")}
			p.Spec.Containers[1].VolumeMounts = []corev1.VolumeMount{rwMount("b", "/etc/s")}
		}, []string{"volumes a and b", "/etc/s"}},
		{"another volume where the injector mounts", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("scratch", "/vault/secrets")}
			p.Spec.Containers[0].Env = []corev1.EnvVar{rwSecretEnv("PW", "db", "password")}
		}, []string{"container web mounts volume scratch at /vault/secrets"}},
		{"no command and no entrypoint given", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Containers[0].Command = nil
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{rwEnvFrom("api", "")}
		}, []string{"container web", "no command", "entrypoint", "--entrypoint Deployment/web:web='[\"PROGRAM\",\"ARG\"]'", "migration.entrypoints", "api"}},
		{"$(VAR) of a Secret variable in another env value", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{rwSecretEnv("PW", "db", "password"), {Name: "DSN", Value: "postgres://u:$(PW)@db"}}
		}, []string{"container web", "env DSN", "$(PW)", "Secret db"}},
		{"$(VAR) of a Secret variable in args", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{rwEnvFrom("api", "")}
			p.Spec.Containers[0].Args = []string{"--key=$(API_KEY)"}
		}, []string{"container web", "command or args", "$(API_KEY)", "Secret api"}},
		{"$(VAR) of a Secret variable in command", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{rwEnvFrom("api", "")}
			p.Spec.Containers[0].Command = []string{"/app/web", "$(TOKEN)"}
		}, []string{"$(TOKEN)"}},
		{"a name a shell cannot export", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{rwEnvFrom("tls", "")}
		}, []string{"container web", `"tls.crt"`, "not a name a shell can export"}},
		{"envFrom with unknown keys after a migrated envFrom", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{rwEnvFrom("api", ""),
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}
		}, []string{"container web", "ConfigMap settings", "after a migrated Secret"}},
		{"a required key the Secret does not have", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{rwSecretEnv("X", "db", "nope")}
		}, []string{"env X reads key nope of Secret db"}},
		{"items naming a key the Secret does not have", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Volumes = []corev1.Volume{rwSecretVolume("certs", "tls", func(s *corev1.SecretVolumeSource) {
				s.Items = []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}
			})}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls")}
		}, []string{"volume certs lists key ca.crt of Secret tls"}},
		{"two files of a projected volume at one path", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Volumes = []corev1.Volume{{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "tls"}, Items: []corev1.KeyToPath{{Key: "tls.crt", Path: "cert"}}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Items: []corev1.KeyToPath{{Key: "user", Path: "cert"}}}},
			}}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("all", "/etc/app")}
		}, []string{"volume all has two files at cert"}},
		{"a volume's subdirectory is another volume's directory", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Volumes = []corev1.Volume{
				rwSecretVolume("a", "tls", func(s *corev1.SecretVolumeSource) { s.Items = []corev1.KeyToPath{{Key: "tls.crt", Path: "sub/user"}} }),
				rwSecretVolume("b", "db", nil),
			}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{rwMount("a", "/etc/app"), rwMount("b", "/etc/app/sub")}
		}, []string{"two rendered files would be /etc/app/sub/user"}},
		{"already annotated for the injector", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Annotations["vault.hashicorp.com/agent-inject"] = "true"
			p.Spec.Containers[0].Env = []corev1.EnvVar{rwSecretEnv("PW", "db", "password")}
		}, []string{"already has Vault Agent Injector annotations", "vault.hashicorp.com/agent-inject"}},
		{"no ServiceAccount token", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.AutomountServiceAccountToken = new(false)
			p.Spec.Containers[0].Env = []corev1.EnvVar{rwSecretEnv("PW", "db", "password")}
		}, []string{"automountServiceAccountToken is false", "agent-service-account-token-volume-name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := rwPod(app("web"))
			in := rwInput(pod)
			tc.edit(&pod, &in)
			in.Template = pod
			res := rwMust(t, in)
			if res.Action != WorkloadManual {
				t.Fatalf("Action = %s, want manual; changes %q", res.Action, res.Changes)
			}
			all := strings.Join(res.Manual, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("manual reasons do not say %q:\n%s", w, all)
				}
			}
			if !reflect.DeepEqual(res.Template, pod) {
				t.Error("a manual workload's template must come back unchanged")
			}
			if res.Files != nil || res.Changes != nil {
				t.Errorf("manual result carries files %v or changes %q", res.Files, res.Changes)
			}
			assertNoValues(t, res)
		})
	}
}

// assertNoValues fails when a Secret value appears in what the plan shows.
func assertNoValues(t *testing.T, res RewriteResult) {
	t.Helper()
	text := strings.Join(append(append(slices.Clone(res.Manual), res.Changes...), res.Warnings...), "\n")
	for _, data := range rwSecretData {
		for _, v := range data {
			if len(v) >= 4 && strings.Contains(text, v) {
				t.Errorf("a Secret value appears in the result's text:\n%s", text)
			}
		}
	}
}

func TestRewriteEnvPrecedence(t *testing.T) {
	c := app("web")
	c.EnvFrom = []corev1.EnvFromSource{
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}},
		rwEnvFrom("api", "APP_"),
	}
	c.Env = []corev1.EnvVar{
		{Name: "DB_USER", Value: "overridden-below"},
		rwSecretEnv("DB_USER", "db", "user"),                     // wins over the plain entry before it
		rwSecretEnv("DB_PASSWORD", "db", "password"),             // overridden by the plain entry after it
		{Name: "DB_PASSWORD", Value: "from-spec"},                // kept, not exported
		{Name: "APP_TOKEN", Value: "plain"},                      // overrides envFrom's APP_TOKEN
		{Name: "GREETING", Value: "hi $(APP_X) $$(APP_API_KEY)"}, // $$ escapes: no reference
		rwSecretEnv("OPT", "db", "absent"),                       // optional and absent: dropped
		rwSecretEnv("KEEP", "kept", "other"),                     // a Secret that is not migrated
		{Name: "LATIN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "bin"}, Key: "latin1"}}},
	}
	c.Env[6].ValueFrom.SecretKeyRef.Optional = new(true)
	res := rwMust(t, rwInput(rwPod(c)))
	if res.Action != WorkloadMigrate {
		t.Fatalf("Action = %s, manual %q", res.Action, res.Manual)
	}
	got := res.Template.Spec.Containers[0]
	wantEnv := []corev1.EnvVar{c.Env[0], c.Env[3], c.Env[4], c.Env[5], c.Env[7]}
	if !reflect.DeepEqual(got.Env, wantEnv) {
		t.Errorf("env = %+v\nwant %+v", got.Env, wantEnv)
	}
	if !reflect.DeepEqual(got.EnvFrom, c.EnvFrom[:1]) {
		t.Errorf("envFrom = %+v, want the ConfigMap only", got.EnvFrom)
	}
	ann := res.Template.Annotations
	var env []InjectedFile
	for _, f := range res.Files {
		if f.Env {
			env = append(env, f)
		}
	}
	if len(env) != 1 || env[0].Secret != "api,bin,db" || env[0].Mode != 0o644 {
		t.Fatalf("env files = %+v", env)
	}
	rendered := rwRender(t, ann[annTemplate+rwSecretFor(t, ann, env[0].Path)])
	vars := sourceEnvFile(t, rendered)
	want := map[string]string{
		"APP_API_KEY": rwSecretData["api"]["API_KEY"],
		"DB_USER":     rwSecretData["db"]["user"],
		"LATIN":       rwSecretData["bin"]["latin1"],
	}
	for name, v := range want {
		if vars[name] != v {
			t.Errorf("%s = %q, want %q", name, vars[name], v)
		}
	}
	for _, name := range []string{"DB_PASSWORD", "APP_TOKEN", "OPT", "KEEP"} {
		if _, ok := vars[name]; ok {
			t.Errorf("%s exported, but the kubelet gives it a value from the spec", name)
		}
	}
	wantCmd := []string{"/bin/sh", "-ec", ". " + env[0].Path + ` && exec "$0" "$@"`}
	if !reflect.DeepEqual(got.Command, wantCmd) || !reflect.DeepEqual(got.Args, []string{"/app/web", "--port", "8080"}) {
		t.Errorf("command %q args %q", got.Command, got.Args)
	}
	assertNoValues(t, res)
}

func TestRewriteEntrypoint(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		given    []string
		wantArgs []string
	}{
		{"entrypoint and the container's args", []string{"serve"}, []string{"/docker-entrypoint.sh"}, []string{"/docker-entrypoint.sh", "serve"}},
		{"entrypoint with the image's default args", nil, []string{"/docker-entrypoint.sh", "postgres"}, []string{"/docker-entrypoint.sh", "postgres"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := corev1.Container{Name: "db", Image: "postgres", Args: tc.args, Env: []corev1.EnvVar{rwSecretEnv("POSTGRES_PASSWORD", "db", "password")}}
			in := rwInput(rwPod(c))
			in.Entrypoints = map[string][]string{"db": tc.given}
			res := rwMust(t, in)
			if res.Action != WorkloadMigrate {
				t.Fatalf("Action = %s, manual %q", res.Action, res.Manual)
			}
			got := res.Template.Spec.Containers[0]
			if got.Command[0] != "/bin/sh" || !reflect.DeepEqual(got.Args, tc.wantArgs) {
				t.Errorf("command %q args %q, want args %q", got.Command, got.Args, tc.wantArgs)
			}
		})
	}
}

func TestRewriteAnnotations(t *testing.T) {
	initReader := func(p *corev1.PodTemplateSpec) {
		init := app("migrate")
		init.Env = []corev1.EnvVar{rwSecretEnv("PW", "db", "password")}
		p.Spec.InitContainers = []corev1.Container{init}
	}
	for _, tc := range []struct {
		name string
		edit func(*corev1.PodTemplateSpec, *RewriteInput)
		want map[string]string // "" value: must be absent
	}{
		{"defaults", nil, map[string]string{annInject: "true", annRole: "team-a-web", annAuthPath: "", annInitFirst: "", annPrePopulateOnly: "", annContainers: "web"}},
		{"another auth path", func(_ *corev1.PodTemplateSpec, in *RewriteInput) { in.AuthPath = "auth/k8s-prod" },
			map[string]string{annAuthPath: "auth/k8s-prod"}},
		{"empty auth path is the default", func(_ *corev1.PodTemplateSpec, in *RewriteInput) { in.AuthPath = "" },
			map[string]string{annAuthPath: ""}},
		{"an init container reads a Secret", func(p *corev1.PodTemplateSpec, _ *RewriteInput) { initReader(p) },
			map[string]string{annInitFirst: "true"}},
		{"only an init container reads a Secret", func(p *corev1.PodTemplateSpec, _ *RewriteInput) {
			p.Spec.Containers[0].Env = nil
			initReader(p)
		}, map[string]string{annInitFirst: "true", annContainers: ""}},
		{"a Job", func(_ *corev1.PodTemplateSpec, in *RewriteInput) { in.Job = true; in.Workload.Kind = "Job" },
			map[string]string{annPrePopulateOnly: "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := app("web")
			c.Env = []corev1.EnvVar{rwSecretEnv("PW", "db", "password")}
			pod := rwPod(c, app("sidecar"))
			in := rwInput(pod)
			if tc.edit != nil {
				tc.edit(&pod, &in)
			}
			in.Template = pod
			res := rwMust(t, in)
			if res.Action != WorkloadMigrate {
				t.Fatalf("Action = %s, manual %q", res.Action, res.Manual)
			}
			ann := res.Template.Annotations
			for k, v := range tc.want {
				got, ok := ann[k]
				if v == "" && k != annContainers {
					if ok {
						t.Errorf("%s = %q, want it absent", k, got)
					}
					continue
				}
				if !ok || got != v {
					t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
				}
			}
			if ann["team"] != "a" {
				t.Error("the template's own annotations are lost")
			}
			for k := range ann {
				if errs := validation.IsQualifiedName(k); len(errs) > 0 {
					t.Errorf("annotation %q is not a valid name: %v", k, errs)
				}
			}
			for _, name := range rwInjectorSecrets(ann) {
				if name != strings.ToLower(name) {
					t.Errorf("injector secret %q is not lowercase", name)
				}
				if strings.TrimSpace(ann[annSecret+name]) == "" {
					t.Errorf("agent-inject-secret-%s is blank", name)
				}
			}
		})
	}
}

func TestRewriteSharedDirectoriesWarn(t *testing.T) {
	web, worker := app("web"), app("worker")
	web.VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls")}
	worker.Env = []corev1.EnvVar{rwSecretEnv("PW", "db", "password")}
	pod := rwPod(web, worker, app("metrics"))
	pod.Spec.InitContainers = []corev1.Container{app("setup")}
	pod.Spec.Volumes = []corev1.Volume{rwSecretVolume("certs", "tls", nil)}
	res := rwMust(t, rwInput(pod))
	if res.Action != WorkloadMigrate {
		t.Fatalf("Action = %s, manual %q", res.Action, res.Manual)
	}
	if got := res.Template.Annotations[annContainers]; got != "web,worker" {
		t.Errorf("agent-inject-containers = %q, want the containers that read the Secrets", got)
	}
	warn := strings.Join(res.Warnings, "\n")
	for _, w := range []string{"container web also gets /vault/secrets/env-worker", "container worker also gets /etc/tls", "container setup also gets /etc/tls"} {
		if !strings.Contains(warn, w) {
			t.Errorf("warnings do not say %q:\n%s", w, warn)
		}
	}
	if strings.Contains(warn, "container metrics") {
		t.Errorf("metrics is not listed and gets nothing, yet is warned about:\n%s", warn)
	}
}

func TestRewriteSkipAndDeterminism(t *testing.T) {
	c := app("web")
	c.Env = []corev1.EnvVar{rwSecretEnv("KEEP", "kept", "other")}
	pod := rwPod(c)
	pod.Spec.Volumes = []corev1.Volume{rwSecretVolume("k", "kept", nil)}
	res := rwMust(t, rwInput(pod))
	if res.Action != WorkloadSkip || !reflect.DeepEqual(res.Template, pod) {
		t.Errorf("a template reading no migrated Secret: Action %s, template changed %v", res.Action, !reflect.DeepEqual(res.Template, pod))
	}

	c = app("web")
	c.EnvFrom = []corev1.EnvFromSource{rwEnvFrom("api", "")}
	c.Env = []corev1.EnvVar{rwSecretEnv("PW", "db", "password")}
	c.VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls"), rwMount("blobs", "/data")}
	pod = rwPod(c)
	pod.Spec.Volumes = []corev1.Volume{rwSecretVolume("certs", "tls", nil), rwSecretVolume("blobs", "bin", nil)}
	first := rwMust(t, rwInput(pod))
	for i := 0; i < 20; i++ {
		if again := rwMust(t, rwInput(pod)); !reflect.DeepEqual(first, again) {
			t.Fatalf("run %d differs:\n%+v\n%+v", i, first, again)
		}
	}
	// Rewriting the result again finds nothing left to do.
	if again := rwMust(t, rwInput(first.Template)); again.Action != WorkloadSkip {
		t.Errorf("second rewrite: Action %s, manual %q", again.Action, again.Manual)
	}
	assertNoValues(t, first)
}

func TestRewriteInputErrors(t *testing.T) {
	c := app("web")
	c.Env = []corev1.EnvVar{rwSecretEnv("PW", "db", "password")}
	for _, tc := range []struct {
		name string
		edit func(*RewriteInput)
		want string
	}{
		{"no role", func(in *RewriteInput) { in.Role = "" }, "no Vault role"},
		{"KV path off its mount", func(in *RewriteInput) {
			s := in.Sources["db"]
			s.KVPath = "kv/team-a/db"
			in.Sources["db"] = s
		}, `KV path "kv/team-a/db" is not an entry under the mount "secret"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := rwInput(rwPod(c))
			tc.edit(&in)
			if _, err := Rewrite(in); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Rewrite error = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestEnvReferences(t *testing.T) {
	for in, want := range map[string][]string{
		"$(A)":         {"A"},
		"x$(A)y$(B_2)": {"A", "B_2"},
		"$$(A)":        nil,
		"$$$(A)":       {"A"},
		"$(A":          nil,
		"$A $(B)":      {"B"},
		"$":            nil,
		"$(a b $(c)":   {"a b $(c"},
		"$()":          {""},
	} {
		if got := envReferences(in); !slices.Equal(got, want) {
			t.Errorf("envReferences(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRewriteEnvAllOverridden(t *testing.T) {
	c := app("web")
	c.Command = nil // no command needed: nothing is left to export
	c.Env = []corev1.EnvVar{rwSecretEnv("PW", "db", "password"), {Name: "PW", Value: "local"}}
	res := rwMust(t, rwInput(rwPod(c)))
	if res.Action != WorkloadMigrate {
		t.Fatalf("Action = %s, manual %q", res.Action, res.Manual)
	}
	got := res.Template.Spec.Containers[0]
	if !reflect.DeepEqual(got.Env, []corev1.EnvVar{{Name: "PW", Value: "local"}}) || got.Command != nil || !reflect.DeepEqual(got.Args, c.Args) {
		t.Errorf("env %v command %q args %q", got.Env, got.Command, got.Args)
	}
	if len(res.Files) != 0 || len(res.Template.Annotations) != 1 {
		t.Errorf("files %+v and annotations %v, want none added", res.Files, res.Template.Annotations)
	}
}

func TestRewriteWarnsAboutOwnerOnlyModes(t *testing.T) {
	c := app("web")
	c.VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls")}
	pod := rwPod(c)
	pod.Spec.Volumes = []corev1.Volume{rwSecretVolume("certs", "tls", func(s *corev1.SecretVolumeSource) { s.DefaultMode = rwMode(0o400) })}
	res := rwMust(t, rwInput(pod))
	warn := strings.Join(res.Warnings, "\n")
	for _, w := range []string{"/etc/tls", "0400", "uid 100", "agent-run-as-same-user"} {
		if !strings.Contains(warn, w) {
			t.Errorf("warnings do not say %q:\n%s", w, warn)
		}
	}
	pod.Spec.Volumes[0].Secret.DefaultMode = rwMode(0o444)
	if res := rwMust(t, rwInput(pod)); len(res.Warnings) != 0 {
		t.Errorf("world-readable files warned about: %q", res.Warnings)
	}
}
