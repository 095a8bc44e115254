package migrate

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"text/template"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// rwSecretData is what the test Secrets hold, by Secret and key. The values carry what a shell or
// a template could mangle: quotes, $, spaces, newlines, bytes that are not UTF-8, a NUL.
var rwSecretData = map[string]map[string]string{
	"db": {
		"password": "p'a\"s$s w\nord$(HOME)\n",
		"user":     "app user",
	},
	"tls": {
		"tls.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		"tls.key": "-----BEGIN KEY-----\nk3y\n-----END KEY-----",
	},
	"bin": {
		"blob":   "\x00\xff\xfebinary\x00",
		"latin1": "caf\xe9 '$x'",
	},
	"api": {
		"API_KEY": "ak-`whoami`-\\n",
		"TOKEN":   "",
	},
	"kept": {"other": "kept-value"}, // not migrated: stays a Kubernetes Secret
}

// rwSources are the migrated Secrets (every one but "kept"), as the plan describes them.
func rwSources() map[string]Source {
	out := map[string]Source{}
	for secret, data := range rwSecretData {
		if secret == "kept" {
			continue
		}
		src := Source{Secret: secret, KVPath: "secret/team-a/" + secret, Mount: "secret", Binary: map[string]bool{}}
		for _, k := range slices.Sorted(maps.Keys(data)) {
			src.Keys = append(src.Keys, k)
			if !utf8.ValidString(data[k]) {
				src.Binary[k] = true
			}
		}
		out[secret] = src
	}
	return out
}

// rwKV is the KV v2 entries the migration wrote: the read path's data, binary values base64.
func rwKV() map[string]map[string]any {
	out := map[string]map[string]any{}
	for secret, src := range rwSources() {
		data := map[string]any{}
		for k, v := range rwSecretData[secret] {
			if src.Binary[k] {
				v = base64.StdEncoding.EncodeToString([]byte(v))
			}
			data[k] = v
		}
		out["secret/data/team-a/"+secret] = data
	}
	return out
}

// rwKVSecret is what consul-template's secret function returns for a KV v2 read.
type rwKVSecret struct{ Data map[string]any }

// render executes a template the way the agent does for the functions the rewrite uses:
// secret reads KV, base64Decode is standard base64 returning an error on bad input, and
// replaceAll takes (from, to, s) so it can end a pipeline.
func rwRender(t *testing.T, text string) string {
	t.Helper()
	kv := rwKV()
	funcs := template.FuncMap{
		"secret": func(p string) (*rwKVSecret, error) {
			data, ok := kv[p]
			if !ok {
				return nil, fmt.Errorf("no secret at %s", p)
			}
			return &rwKVSecret{Data: map[string]any{"data": data, "metadata": map[string]any{"version": 1}}}, nil
		},
		"base64Decode": func(s string) (string, error) {
			b, err := base64.StdEncoding.DecodeString(s)
			return string(b), err
		},
		"replaceAll": func(from, to, s string) string { return strings.ReplaceAll(s, from, to) },
	}
	tmpl, err := template.New("t").Funcs(funcs).Parse(text)
	if err != nil {
		t.Fatalf("template does not parse: %v\n%s", err, text)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, nil); err != nil {
		t.Fatalf("template does not render: %v\n%s", err, text)
	}
	return b.String()
}

func rwSecretVolume(name, secret string, edit func(*corev1.SecretVolumeSource)) corev1.Volume {
	s := &corev1.SecretVolumeSource{SecretName: secret}
	if edit != nil {
		edit(s)
	}
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: s}}
}

func rwMount(volume, dir string) corev1.VolumeMount {
	return corev1.VolumeMount{Name: volume, MountPath: dir, ReadOnly: true}
}

func rwSecretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key,
	}}}
}

func rwEnvFrom(secret, prefix string) corev1.EnvFromSource {
	return corev1.EnvFromSource{Prefix: prefix, SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}}
}

func rwMode(m int32) *int32 { return &m }

func rwPod(containers ...corev1.Container) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"team": "a"}},
		Spec:       corev1.PodSpec{Containers: containers},
	}
}

func rwInput(t corev1.PodTemplateSpec) RewriteInput {
	return RewriteInput{
		Workload: WorkloadID{Kind: "Deployment", Name: "web"},
		Template: t,
		Role:     "team-a-web",
		AuthPath: "auth/kubernetes",
		Sources:  rwSources(),
	}
}

func rwMust(t *testing.T, in RewriteInput) RewriteResult {
	t.Helper()
	res, err := Rewrite(in)
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	return res
}

// injectorSecrets lists the injector secret names the annotations define.
func rwInjectorSecrets(ann map[string]string) []string {
	var out []string
	for k := range ann {
		if name, ok := strings.CutPrefix(k, annSecret); ok {
			out = append(out, name)
		}
	}
	return out
}

// secretFor finds the injector secret whose annotations render the file at that path.
func rwSecretFor(t *testing.T, ann map[string]string, file string) string {
	t.Helper()
	for _, name := range rwInjectorSecrets(ann) {
		dir, ok := ann[annVolumePath+name]
		if !ok {
			dir = injectorSecretsDir
		}
		rel, ok := ann[annFile+name]
		if !ok {
			rel = name
		}
		if dir+"/"+rel == file {
			return name
		}
	}
	t.Fatalf("no injector secret renders %s; annotations: %v", file, ann)
	return ""
}
