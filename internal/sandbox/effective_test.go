package sandbox

import (
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

const effNS = "shop"

func effSecret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: effNS}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func effConfigMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: effNS}, Data: data}
}

func effPod(c corev1.Container, vols ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: effNS, UID: "uid-web-1", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{c}, Volumes: vols},
		Status:     corev1.PodStatus{PodIP: "10.0.0.7", HostIP: "10.1.0.1"},
	}
}

func ptrBool(b bool) *bool   { return &b }
func ptrMode(m int32) *int32 { return &m }

// errorCase checks err against a table case's wanted error (empty: none) and says whether the
// case ends there.
func errorCase(t *testing.T, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatal(err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("err = %v, want it to contain %q", err, want)
	}
	return want != ""
}

func TestEffectiveEnv(t *testing.T) {
	objs := []runtime.Object{
		effSecret("db", map[string]string{"USER": "app", "PASS": "p@ss word", "HOST": "db.internal"}),
		effSecret("db2", map[string]string{"USER": "override"}),
		effConfigMap("cfg", map[string]string{"MODE": "prod", "USER": "from-cm"}),
	}
	secretFrom := func(name, prefix string, optional bool) corev1.EnvFromSource {
		return corev1.EnvFromSource{Prefix: prefix, SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: ptrBool(optional)}}
	}
	cmFrom := func(name string) corev1.EnvFromSource {
		return corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}
	}
	secretKey := func(name, key string, optional bool) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: ptrBool(optional)}}
	}
	for _, tc := range []struct {
		name    string
		envFrom []corev1.EnvFromSource
		env     []corev1.EnvVar
		want    map[string]string
		wantErr string
	}{
		{name: "envFrom a Secret", envFrom: []corev1.EnvFromSource{secretFrom("db", "", false)},
			want: map[string]string{"USER": "app", "PASS": "p@ss word", "HOST": "db.internal"}},
		{name: "a later envFrom wins", envFrom: []corev1.EnvFromSource{cmFrom("cfg"), secretFrom("db2", "", false)},
			want: map[string]string{"MODE": "prod", "USER": "override"}},
		{name: "env beats envFrom", envFrom: []corev1.EnvFromSource{secretFrom("db2", "", false)},
			env:  []corev1.EnvVar{{Name: "USER", Value: "literal"}},
			want: map[string]string{"USER": "literal"}},
		{name: "the last of two env entries wins", env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "A", Value: "2"}},
			want: map[string]string{"A": "2"}},
		{name: "prefix", envFrom: []corev1.EnvFromSource{secretFrom("db2", "DB_", false)},
			want: map[string]string{"DB_USER": "override"}},
		{name: "optional missing envFrom is skipped", envFrom: []corev1.EnvFromSource{secretFrom("gone", "", true), secretFrom("db2", "", false)},
			want: map[string]string{"USER": "override"}},
		{name: "required missing envFrom fails", envFrom: []corev1.EnvFromSource{secretFrom("gone", "", false)}, wantErr: `secret "gone" not found`},
		{name: "secretKeyRef and configMapKeyRef", env: []corev1.EnvVar{
			{Name: "DB_PASS", ValueFrom: secretKey("db", "PASS", false)},
			{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "MODE"}}},
		}, want: map[string]string{"DB_PASS": "p@ss word", "MODE": "prod"}},
		{name: "optional missing key is unset", env: []corev1.EnvVar{{Name: "X", ValueFrom: secretKey("db", "NOPE", true)}, {Name: "Y", ValueFrom: secretKey("gone", "k", true)}},
			want: map[string]string{}},
		{name: "required missing key fails", env: []corev1.EnvVar{{Name: "X", ValueFrom: secretKey("db", "NOPE", false)}}, wantErr: `key "NOPE" of secret "db" not found`},
		{name: "$(VAR) expansion", envFrom: []corev1.EnvFromSource{secretFrom("db", "", false)}, env: []corev1.EnvVar{
			{Name: "URL", Value: "postgres://$(USER)@$(HOST)/$(DB)"},
			{Name: "DB", Value: "orders"},
			{Name: "LATER", Value: "$(DB) $$(DB) $$ $x $(UNSET"},
		}, want: map[string]string{"USER": "app", "PASS": "p@ss word", "HOST": "db.internal",
			// $(DB) is defined only after URL: it stays as written there.
			"URL": "postgres://app@db.internal/$(DB)", "DB": "orders", "LATER": "orders $(DB) $ $x $(UNSET"}},
		{name: "fieldRef", env: []corev1.EnvVar{
			{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
		}, want: map[string]string{"POD": "web-1", "IP": "10.0.0.7", "APP": "web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(objs...)
			pod := effPod(corev1.Container{Name: "web", Image: "shop/web", EnvFrom: tc.envFrom, Env: tc.env})
			eff, err := computeEffective(context.Background(), cs, t.TempDir(), pod, "")
			if errorCase(t, err, tc.wantErr) {
				return
			}
			if !maps.Equal(eff.Env, tc.want) {
				t.Errorf("env = %q\nwant  %q", eff.Env, tc.want)
			}
		})
	}
}

func TestEffectiveVolumeFiles(t *testing.T) {
	cm := effConfigMap("cfg", map[string]string{"app.yaml": "a: 1\n"})
	cm.BinaryData = map[string][]byte{"logo.bin": {0xff, 0x00, 0xfe}}
	objs := []runtime.Object{
		effSecret("db", map[string]string{"user": "app", "pass": "s3cret", "unused": "x"}),
		cm,
	}
	secretVol := func(name string, src corev1.SecretVolumeSource) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &src}}
	}
	for _, tc := range []struct {
		name      string
		vols      []corev1.Volume
		mounts    []corev1.VolumeMount
		wantFiles map[string]string
		wantModes map[string]fs.FileMode
		wantErr   string
	}{
		{name: "items rename keys and pick their mode",
			vols: []corev1.Volume{secretVol("creds", corev1.SecretVolumeSource{SecretName: "db", DefaultMode: ptrMode(0o440), Items: []corev1.KeyToPath{
				{Key: "user", Path: "db/username"}, {Key: "pass", Path: "db/password", Mode: ptrMode(0o400)}}})},
			mounts:    []corev1.VolumeMount{{Name: "creds", MountPath: "/etc/creds"}},
			wantFiles: map[string]string{"/etc/creds/db/username": "app", "/etc/creds/db/password": "s3cret"},
			wantModes: map[string]fs.FileMode{"/etc/creds/db/username": 0o440, "/etc/creds/db/password": 0o400}},
		{name: "every key at 0644 by default",
			vols:      []corev1.Volume{secretVol("creds", corev1.SecretVolumeSource{SecretName: "db"})},
			mounts:    []corev1.VolumeMount{{Name: "creds", MountPath: "/etc/creds/"}},
			wantFiles: map[string]string{"/etc/creds/user": "app", "/etc/creds/pass": "s3cret", "/etc/creds/unused": "x"},
			wantModes: map[string]fs.FileMode{"/etc/creds/user": 0o644, "/etc/creds/pass": 0o644, "/etc/creds/unused": 0o644}},
		{name: "optional missing Secret is an empty volume",
			vols:      []corev1.Volume{secretVol("creds", corev1.SecretVolumeSource{SecretName: "gone", Optional: ptrBool(true)})},
			mounts:    []corev1.VolumeMount{{Name: "creds", MountPath: "/etc/creds"}},
			wantFiles: map[string]string{}, wantModes: map[string]fs.FileMode{}},
		{name: "optional Secret missing a key leaves the file out",
			vols: []corev1.Volume{secretVol("creds", corev1.SecretVolumeSource{SecretName: "db", Optional: ptrBool(true), Items: []corev1.KeyToPath{
				{Key: "user", Path: "u"}, {Key: "nope", Path: "n"}}})},
			mounts:    []corev1.VolumeMount{{Name: "creds", MountPath: "/c"}},
			wantFiles: map[string]string{"/c/u": "app"}, wantModes: map[string]fs.FileMode{"/c/u": 0o644}},
		{name: "required missing Secret fails",
			vols:    []corev1.Volume{secretVol("creds", corev1.SecretVolumeSource{SecretName: "gone"})},
			mounts:  []corev1.VolumeMount{{Name: "creds", MountPath: "/etc/creds"}},
			wantErr: `Secret "gone" not found`},
		{name: "required missing key fails",
			vols:    []corev1.Volume{secretVol("creds", corev1.SecretVolumeSource{SecretName: "db", Items: []corev1.KeyToPath{{Key: "nope", Path: "n"}}})},
			mounts:  []corev1.VolumeMount{{Name: "creds", MountPath: "/etc/creds"}},
			wantErr: `key "nope" of Secret "db" not found`},
		{name: "ConfigMap binaryData, subPath file, projected downward API",
			vols: []corev1.Volume{
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
				{Name: "info", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: ptrMode(0o600), Sources: []corev1.VolumeProjection{
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Items: []corev1.KeyToPath{{Key: "user", Path: "user"}}}},
				}}}},
			},
			mounts: []corev1.VolumeMount{{Name: "cfg", MountPath: "/app"}, {Name: "cfg", MountPath: "/etc/app.yaml", SubPath: "app.yaml"}, {Name: "info", MountPath: "/info"}},
			wantFiles: map[string]string{"/app/app.yaml": "a: 1\n", "/app/logo.bin": "\xff\x00\xfe", "/etc/app.yaml": "a: 1\n",
				"/info/name": "web-1", "/info/user": "app"},
			wantModes: map[string]fs.FileMode{"/app/app.yaml": 0o644, "/app/logo.bin": 0o644, "/etc/app.yaml": 0o644, "/info/name": 0o600, "/info/user": 0o600}},
		{name: "an emptyDir of a pod nobody runs is empty",
			vols:      []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			mounts:    []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}},
			wantFiles: map[string]string{}, wantModes: map[string]fs.FileMode{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := effPod(corev1.Container{Name: "web", VolumeMounts: tc.mounts}, tc.vols...)
			eff, err := computeEffective(context.Background(), fake.NewClientset(objs...), t.TempDir(), pod, "web")
			if errorCase(t, err, tc.wantErr) {
				return
			}
			got := map[string]string{}
			for p, b := range eff.Files {
				got[p] = string(b)
			}
			if !maps.Equal(got, tc.wantFiles) {
				t.Errorf("files = %q\nwant    %q", got, tc.wantFiles)
			}
			if !maps.Equal(eff.Modes, tc.wantModes) {
				t.Errorf("modes = %v\nwant    %v", eff.Modes, tc.wantModes)
			}
		})
	}
}

// runnerPodDir lays out what the runner keeps for a pod it runs: DIR/pods/NS_NAME/uid and the
// emptyDirs' files under volumes/VOLNAME.
func runnerPodDir(t *testing.T, dir string, pod *corev1.Pod, uid string, files map[string]string) {
	t.Helper()
	podDir := layout{dir: dir}.podDir(pod.Namespace, pod.Name)
	for rel, content := range files {
		p := filepath.Join(podDir, "volumes", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(podDir, "uid"), []byte(uid), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestEffectiveEmptyDirFromRunner(t *testing.T) {
	pod := effPod(corev1.Container{Name: "web", VolumeMounts: []corev1.VolumeMount{{Name: "vault-secrets", MountPath: "/vault/secrets"}}},
		corev1.Volume{Name: "vault-secrets", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
	dir := t.TempDir()
	runnerPodDir(t, dir, pod, string(pod.UID), map[string]string{"vault-secrets/db-creds": "user=app\n", "vault-secrets/sub/x": "y"})
	eff, err := computeEffective(context.Background(), fake.NewClientset(), dir, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	if string(eff.Files["/vault/secrets/db-creds"]) != "user=app\n" || string(eff.Files["/vault/secrets/sub/x"]) != "y" || len(eff.Files) != 2 {
		t.Errorf("files = %q", eff.Files)
	}
	if eff.Modes["/vault/secrets/db-creds"] != 0o640 {
		t.Errorf("mode = %v, want 0640 as on disk", eff.Modes["/vault/secrets/db-creds"])
	}

	// The files of an earlier pod with the same name are not this pod's.
	runnerPodDir(t, dir, pod, "uid-of-an-older-pod", nil)
	eff, err = computeEffective(context.Background(), fake.NewClientset(), dir, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(eff.Files) != 0 {
		t.Errorf("files of another pod UID shown: %q", eff.Files)
	}
}

func TestParseEnvFile(t *testing.T) {
	file := "# config\n\n  DB_HOST = db.internal  \nQUOTED='x y'\nEMPTY=\nURL=a=b\nLONG=one \\\n   two\\\n three\nDB_HOST=second\n"
	for key, want := range map[string]string{
		"DB_HOST": "db.internal", // the first one wins
		"QUOTED":  "'x y'",       // quotes are kept
		"EMPTY":   "",
		"URL":     "a=b",
		"LONG":    "one two three",
	} {
		got, ok, err := parseEnvFile([]byte(file), key)
		if err != nil || !ok || got != want {
			t.Errorf("%s = %q %v %v, want %q", key, got, ok, err, want)
		}
	}
	if _, ok, err := parseEnvFile([]byte(file), "NOPE"); ok || err != nil {
		t.Errorf("a missing key: ok=%v err=%v, want not found", ok, err)
	}
	for _, bad := range []string{"no equals sign\nK=v\n", "=v\nK=v\n", "A=1 \\\n\nK=v\n", "K2=1 \\\n# c\nK=v\n", "K2=1 \\\n"} {
		if _, _, err := parseEnvFile([]byte(bad), "K"); err == nil {
			t.Errorf("%q: want a parse error", bad)
		}
	}
	// Lines after the key are not read, as the kubelet stops there.
	if got, ok, err := parseEnvFile([]byte("K=v\nbroken\n"), "K"); err != nil || !ok || got != "v" {
		t.Errorf("got %q %v %v", got, ok, err)
	}
}

func TestEffectiveFileKeyRef(t *testing.T) {
	fileKey := func(path, key string, optional bool) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{VolumeName: "config", Path: path, Key: key, Optional: ptrBool(optional)}}
	}
	vol := corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	for _, tc := range []struct {
		name    string
		env     []corev1.EnvVar
		want    map[string]string
		wantErr string
	}{
		{name: "reads the key", env: []corev1.EnvVar{{Name: "DB_USER", ValueFrom: fileKey("app.env", "USER", false)}, {Name: "DSN", Value: "$(DB_USER)@db"}},
			want: map[string]string{"DB_USER": "app", "DSN": "app@db"}},
		{name: "optional missing key or file", env: []corev1.EnvVar{{Name: "A", ValueFrom: fileKey("app.env", "NOPE", true)}, {Name: "B", ValueFrom: fileKey("gone.env", "USER", true)}},
			want: map[string]string{}},
		{name: "required missing key", env: []corev1.EnvVar{{Name: "A", ValueFrom: fileKey("app.env", "NOPE", false)}}, wantErr: `key "NOPE" not found in env file app.env`},
		{name: "required missing file", env: []corev1.EnvVar{{Name: "A", ValueFrom: fileKey("gone.env", "USER", false)}}, wantErr: `env file gone.env of volume "config" does not exist`},
		{name: "unparsable file", env: []corev1.EnvVar{{Name: "A", ValueFrom: fileKey("bad.env", "USER", false)}}, wantErr: "want NAME=VALUE"},
		{name: "path escaping the volume", env: []corev1.EnvVar{{Name: "A", ValueFrom: fileKey("../x", "USER", false)}}, wantErr: "bad path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := effPod(corev1.Container{Name: "web", Env: tc.env}, vol)
			dir := t.TempDir()
			runnerPodDir(t, dir, pod, string(pod.UID), map[string]string{"config/app.env": "USER = app\nPASS='x'\n", "config/bad.env": "oops\nUSER=app\n"})
			eff, err := computeEffective(context.Background(), fake.NewClientset(), dir, pod, "")
			if errorCase(t, err, tc.wantErr) {
				return
			}
			if !maps.Equal(eff.Env, tc.want) {
				t.Errorf("env = %q, want %q", eff.Env, tc.want)
			}
		})
	}
}

// The values an agent template renders into an export file, quoted for sh as a careful
// template would: single quotes, with ' written as '\”.
var sourcedValues = map[string]string{
	"DB_USER":  "v-kubernetes-app-7f3a",
	"DB_PASS":  `it's "quoted" $HOME \n and	tab`,
	"MULTI":    "line one\nline two\n",
	"BINARY":   "a\xff\xfeb",
	"SPACES":   "  lead and trail  ",
	"EMPTYVAL": "",
}

func exportFile() string {
	var b strings.Builder
	for k, v := range sourcedValues {
		b.WriteString("export " + k + "=" + shellQuote(v) + "\n")
	}
	b.WriteString("NOT_EXPORTED=hidden\n")
	return b.String()
}

func TestEffectiveSourcesFile(t *testing.T) {
	mount := corev1.VolumeMount{Name: "vault-secrets", MountPath: "/vault/secrets"}
	vol := corev1.Volume{Name: "vault-secrets", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	for _, tc := range []struct {
		name          string
		command, args []string
	}{
		{"sh -c with args", []string{"/bin/sh", "-c"}, []string{". /vault/secrets/db-creds && exec /app/web --port=$(PORT)"}},
		{"sh -ec in command", []string{"sh", "-ec", "echo start; source '/vault/secrets/db-creds'; exec web"}, nil},
		{"bash through args only", nil, []string{"bash", "-c", "cd /app && . \"/vault/secrets/db-creds\" && exec web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := corev1.Container{Name: "web", Command: tc.command, Args: tc.args, VolumeMounts: []corev1.VolumeMount{mount},
				Env: []corev1.EnvVar{{Name: "PORT", Value: "8080"}, {Name: "DB_USER", Value: "overridden by the file"}}}
			if tc.command == nil { // the image's entrypoint would run args; here args[0] is the shell
				c.Command, c.Args = tc.args, nil
			}
			pod := effPod(c, vol)
			dir := t.TempDir()
			runnerPodDir(t, dir, pod, string(pod.UID), map[string]string{"vault-secrets/db-creds": exportFile()})
			eff, err := computeEffective(context.Background(), fake.NewClientset(), dir, pod, "web")
			if err != nil {
				t.Fatal(err)
			}
			want := maps.Clone(sourcedValues)
			want["PORT"] = "8080"
			if !maps.Equal(eff.Env, want) {
				t.Errorf("env after sourcing =\n%q\nwant\n%q", eff.Env, want)
			}
		})
	}
}

func TestEffectiveSourcesSecretVolume(t *testing.T) {
	// A kwok-faked pod: the sourced file comes from the API, not from a host directory.
	c := corev1.Container{Name: "web", Command: []string{"sh", "-c", ". /etc/env/app.sh && exec web"},
		VolumeMounts: []corev1.VolumeMount{{Name: "env", MountPath: "/etc/env"}}}
	pod := effPod(c, corev1.Volume{Name: "env", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "env"}}})
	cs := fake.NewClientset(effSecret("env", map[string]string{"app.sh": exportFile()}))
	eff, err := computeEffective(context.Background(), cs, t.TempDir(), pod, "")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(eff.Env, sourcedValues) {
		t.Errorf("env = %q, want %q", eff.Env, sourcedValues)
	}

	// Before the agent has rendered it, the file is not there: the container would fail.
	c.Command = []string{"sh", "-c", ". /vault/secrets/db && exec web"}
	_, err = computeEffective(context.Background(), cs, t.TempDir(), effPod(c, pod.Spec.Volumes...), "")
	if err == nil || !strings.Contains(err.Error(), "/vault/secrets/db") {
		t.Errorf("err = %v, want one naming the missing sourced file", err)
	}
}

func TestEffectiveJSONAndSnapshot(t *testing.T) {
	e := &Effective{
		Env:   map[string]string{"A": "plain", "B": "x\xffy"},
		Files: map[string][]byte{"/vault/secrets/bin": {0, 0xff, '\n'}, "/empty": {}},
		Modes: map[string]fs.FileMode{"/vault/secrets/bin": 0o400, "/empty": 0o644},
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if byValue, err := json.Marshal(*e); err != nil || string(byValue) != string(b) {
		t.Errorf("an Effective value marshals as %s, its pointer as %s", byValue, b)
	}
	var wire map[string]any
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	if wire["files"].(map[string]any)["/vault/secrets/bin"] != "AP8K" || wire["modes"].(map[string]any)["/vault/secrets/bin"] != "0400" ||
		wire["env"].(map[string]any)["A"] != "plain" || wire["envBase64"].(map[string]any)["B"] != "eP95" {
		t.Errorf("wire form = %s", b)
	}
	var back Effective
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, e) {
		t.Errorf("round trip = %+v, want %+v", back, *e)
	}

	// An app init container returns what the runner saved when it "ran", for this pod only.
	pod := effPod(corev1.Container{Name: "web"})
	pod.Spec.InitContainers = []corev1.Container{{Name: "migrate", Env: []corev1.EnvVar{{Name: "NOW", Value: "computed"}}}}
	dir := t.TempDir()
	podDir := layout{dir: dir}.podDir(pod.Namespace, pod.Name)
	if err := saveEffectiveSnapshot(podDir, pod, "migrate", e); err != nil {
		t.Fatal(err)
	}
	got, err := computeEffective(context.Background(), fake.NewClientset(), dir, pod, "migrate")
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Errorf("snapshot = %+v %v, want %+v", got, err, e)
	}
	newer := pod.DeepCopy()
	newer.UID = "uid-web-1-recreated"
	got, err = computeEffective(context.Background(), fake.NewClientset(), dir, newer, "migrate")
	if err != nil || got.Env["NOW"] != "computed" {
		t.Errorf("a snapshot of an earlier pod was used: %+v %v", got, err)
	}
}

func TestEffectiveContainerChoice(t *testing.T) {
	pod := effPod(corev1.Container{Name: "vault-agent"})
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "web", Env: []corev1.EnvVar{{Name: "WHO", Value: "web"}}})
	eff, err := computeEffective(context.Background(), fake.NewClientset(), t.TempDir(), pod, "")
	if err != nil || eff.Env["WHO"] != "web" {
		t.Errorf("default container: %+v %v, want web (the agent sidecar is skipped)", eff, err)
	}
	if _, err := computeEffective(context.Background(), fake.NewClientset(), t.TempDir(), pod, "nope"); err == nil || !strings.Contains(err.Error(), "vault-agent, web") {
		t.Errorf("unknown container: %v, want the list of containers", err)
	}
}
