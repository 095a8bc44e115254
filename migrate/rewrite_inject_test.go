package migrate

import (
	"bytes"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/vaultctl/vaultctl/internal/sandbox/agentinject"
)

// showArgv is a container command that prints its environment (env -0), a record separator,
// then its argv from $0 on, NUL-terminated, so a test can compare both exactly.
var showArgv = []string{"/bin/sh", "-c", `env -0; printf '\036'; printf '%s\0' "$0" "$@"`, "zero", "a b", `it's "q" $HOME`, ""}

// realisticPod reads Secrets in every way the rewrite handles: an init container with a keyed
// env ref, envFrom with a keyed ref beside it, a volume with items in a subdirectory and their
// own modes, a binary volume, a volume two containers share, and a container that reads nothing.
func realisticPod() corev1.PodTemplateSpec {
	initC := app("migrate")
	initC.Env = []corev1.EnvVar{rwSecretEnv("PGPASSWORD", "db", "password"), {Name: "PGHOST", Value: "db"}}

	web := corev1.Container{Name: "web", Image: "example/web", Command: showArgv[:3], Args: showArgv[3:]}
	web.EnvFrom = []corev1.EnvFromSource{rwEnvFrom("api", "")}
	web.Env = []corev1.EnvVar{{Name: "MODE", Value: "prod"}, rwSecretEnv("DB_USER", "db", "user"), rwSecretEnv("LATIN", "bin", "latin1")}
	web.VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls"), rwMount("blobs", "/var/lib/blobs"), {Name: "cache", MountPath: "/cache"}}

	worker := app("worker")
	worker.VolumeMounts = []corev1.VolumeMount{rwMount("certs", "/etc/tls")}

	pod := rwPod(web, worker, app("metrics"))
	pod.Spec.InitContainers = []corev1.Container{initC}
	pod.Spec.Volumes = []corev1.Volume{
		rwSecretVolume("certs", "tls", func(s *corev1.SecretVolumeSource) {
			s.DefaultMode = rwMode(0o440)
			s.Items = []corev1.KeyToPath{{Key: "tls.key", Path: "private/server.key", Mode: rwMode(0o400)}, {Key: "tls.crt", Path: "server.crt"}}
		}),
		rwSecretVolume("blobs", "bin", nil),
		{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	return pod
}

// admitted is the pod the API server stores: the ServiceAccount admission plugin's token
// volume mounted into every container, which the injector looks for.
func admitted(t corev1.PodTemplateSpec) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: *t.ObjectMeta.DeepCopy(), Spec: *t.Spec.DeepCopy()}
	pod.Name, pod.Namespace = "web-0", "team-a"
	const vol = "kube-api-access-x7k2p"
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}},
	}}})
	m := corev1.VolumeMount{Name: vol, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}
	for i := range pod.Spec.InitContainers {
		pod.Spec.InitContainers[i].VolumeMounts = append(pod.Spec.InitContainers[i].VolumeMounts, m)
	}
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].VolumeMounts = append(pod.Spec.Containers[i].VolumeMounts, m)
	}
	return pod
}

// TestRewriteThroughInjector hands the rewritten pod to the package that mirrors the Vault Agent
// Injector and checks what it would render: exactly the files the Secret volumes had, with
// their modes, and templates whose output is the Secrets' bytes; and that each container's new
// command, run through a real shell, sees the same variables and argv.
func TestRewriteThroughInjector(t *testing.T) {
	res := rwMust(t, rwInput(realisticPod()))
	if res.Action != WorkloadMigrate {
		t.Fatalf("Action = %s, manual %q", res.Action, res.Manual)
	}
	pod := admitted(res.Template)
	tok, err := agentinject.ServiceAccountToken(pod)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := agentinject.ParsePod(pod, agentinject.Defaults{Address: "https://vault:8200", Token: tok})
	if err != nil || agent == nil {
		t.Fatalf("the injector would refuse or skip the pod: %v", err)
	}
	if len(agent.Unsupported) > 0 {
		t.Errorf("annotations the injector mirror cannot reproduce: %v", agent.Unsupported)
	}
	if agent.Role != "team-a-web" || agent.LoginPath() != "auth/kubernetes/login" || !agent.InitFirst || agent.PrePopulateOnly {
		t.Errorf("role %q, login %q, init first %v, pre-populate only %v", agent.Role, agent.LoginPath(), agent.InitFirst, agent.PrePopulateOnly)
	}

	// What the kubelet wrote for the Secret volumes, as each container saw it.
	wantFiles := map[string]struct {
		mode  fs.FileMode
		bytes string
	}{
		"/etc/tls/private/server.key": {0o400, rwSecretData["tls"]["tls.key"]},
		"/etc/tls/server.crt":         {0o440, rwSecretData["tls"]["tls.crt"]},
		"/var/lib/blobs/blob":         {0o644, rwSecretData["bin"]["blob"]},
		"/var/lib/blobs/latin1":       {0o644, rwSecretData["bin"]["latin1"]},
	}
	files, err := agent.Files()
	if err != nil {
		t.Fatal(err)
	}
	rendered := map[string]string{}
	gotFiles := map[string]fs.FileMode{}
	for i, f := range files {
		gotFiles[f.Path] = f.Mode
		rendered[f.Path] = rwRender(t, agent.Contents(agent.Secrets[i]))
	}
	wantAll := map[string]fs.FileMode{}
	for p, w := range wantFiles {
		wantAll[p] = w.mode
		if rendered[p] != w.bytes {
			t.Errorf("%s renders %q, want %q", p, rendered[p], w.bytes)
		}
	}
	var envFiles []string
	for _, f := range res.Files {
		if f.Env {
			wantAll[f.Path] = f.Mode
			envFiles = append(envFiles, f.Path)
		}
	}
	if len(envFiles) != 2 {
		t.Fatalf("env files %q, want one for web and one for migrate", envFiles)
	}
	if !maps.Equal(gotFiles, wantAll) {
		t.Errorf("the injector renders %v\nwant %v", gotFiles, wantAll)
	}
	if !maps.Equal(fileSet(res), wantAll) {
		t.Errorf("RewriteResult.Files %v disagree with the injector's %v", fileSet(res), wantAll)
	}

	// Who gets the secrets volumes, and that none lands on a path a container still mounts.
	for _, c := range []struct {
		name       string
		init, sees bool
	}{{"migrate", true, true}, {"web", false, true}, {"worker", false, true}, {"metrics", false, false}} {
		if got := agent.SeesSecrets(c.name, c.init); got != c.sees {
			t.Errorf("container %s sees the secrets: %v, want %v", c.name, got, c.sees)
		}
	}
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		for _, m := range c.VolumeMounts {
			for _, v := range agent.Volumes() {
				if m.MountPath == v.MountPath {
					t.Errorf("container %s mounts %s at %s, where the injector mounts %s", c.Name, m.Name, m.MountPath, v.Name)
				}
			}
		}
	}
	if got := agent.InitContainers([]string{"migrate"}); !slices.Equal(got, []string{agentinject.InitContainerName, "migrate"}) {
		t.Errorf("init order %q", got)
	}

	// web: its new command, with the rendered env file, gives the old environment and argv.
	web := res.Template.Spec.Containers[0]
	env, argv := runWithEnvFile(t, web, rendered)
	want := map[string]string{
		"MODE":    "prod",
		"API_KEY": rwSecretData["api"]["API_KEY"],
		"TOKEN":   rwSecretData["api"]["TOKEN"],
		"DB_USER": rwSecretData["db"]["user"],
		"LATIN":   rwSecretData["bin"]["latin1"],
	}
	for name, v := range want {
		if got, ok := env[name]; !ok || got != v {
			t.Errorf("web: %s = %q (set %v), want %q", name, got, ok, v)
		}
	}
	if !slices.Equal(argv, showArgv[3:]) {
		t.Errorf("web: argv %q, want %q", argv, showArgv[3:])
	}

	// migrate (init): the env file holds its password, quotes, $ and newline intact.
	initC := res.Template.Spec.InitContainers[0]
	initFile := strings.TrimSuffix(strings.TrimPrefix(initC.Command[2], ". "), ` && exec "$0" "$@"`)
	vars := sourceEnvFile(t, rendered[initFile])
	if vars["PGPASSWORD"] != rwSecretData["db"]["password"] {
		t.Errorf("migrate: PGPASSWORD = %q", vars["PGPASSWORD"])
	}
	if _, ok := vars["PGHOST"]; ok {
		t.Error("migrate: PGHOST is a plain env entry and must stay in the spec, not the file")
	}
	if !reflect.DeepEqual(initC.Env, []corev1.EnvVar{{Name: "PGHOST", Value: "db"}}) || !slices.Equal(initC.Args, []string{"/app/migrate", "--port", "8080"}) {
		t.Errorf("migrate: env %v args %q", initC.Env, initC.Args)
	}
}

// runWithEnvFile runs a rewritten container's command and args as the container runtime would,
// with the env file the agent rendered (moved to a temporary directory) and the spec's plain
// env values, and returns what showArgv printed.
func runWithEnvFile(t *testing.T, c corev1.Container, rendered map[string]string) (map[string]string, []string) {
	t.Helper()
	dir := t.TempDir()
	script := c.Command[2]
	for p, content := range rendered {
		if !strings.HasPrefix(p, injectorSecretsDir+"/") || !strings.Contains(script, p) {
			continue
		}
		local := filepath.Join(dir, filepath.Base(p))
		if err := os.WriteFile(local, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		script = strings.ReplaceAll(script, p, local)
	}
	if script == c.Command[2] {
		t.Fatalf("container %s sources no rendered file: %q", c.Name, c.Command)
	}
	cmd := exec.Command(c.Command[0], append([]string{c.Command[1], script}, c.Args...)...)
	cmd.Env = []string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("container %s: %v: %s", c.Name, err, stderr.String())
	}
	envPart, argvPart, ok := bytes.Cut(out, []byte{036})
	if !ok {
		t.Fatalf("container %s printed %q", c.Name, out)
	}
	argv := strings.Split(strings.TrimSuffix(string(argvPart), "\x00"), "\x00")
	return parseEnv0(envPart), argv
}
