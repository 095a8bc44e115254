package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// readmeExample is the README's "Config validation" output, produced from base with three edits.
const readmeExample = `3 problems in config:
vaultctl.yaml:5: vault.replicas: must be odd so Raft keeps a quorum through a failure (3 or 5), got 2
vaultctl.yaml:9: vault.seal.awskms.kmsKeyID: unknown key (did you mean "kmsKeyId"?)
vaultctl.yaml:21: roles[0].maxTTL: must be at least ttl (1h), got 30m`

func TestReadmeExampleReportsDecodeAndSemanticProblemsTogether(t *testing.T) {
	text := strings.NewReplacer("replicas: 3", "replicas: 2", "kmsKeyId:", "kmsKeyID:", "maxTTL: 4h", "maxTTL: 30m").Replace(base)
	_, err := Parse("vaultctl.yaml", []byte(text), LoadOptions{Environ: []string{}})
	if err == nil || err.Error() != readmeExample {
		t.Fatalf("got:\n%v\nwant (the README's example):\n%s", err, readmeExample)
	}
	readme, rerr := os.ReadFile("../README.md")
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !strings.Contains(string(readme), "```\n"+readmeExample+"\n```") {
		t.Error("README.md no longer shows what `config validate` prints for this config")
	}
}

// Each case mixes problems the decoder finds (unknown keys, wrong types, duplicates) with ones
// only validation finds; all must be reported, and nothing the decode problem itself causes.
func TestDecodeProblemsDoNotHideOthers(t *testing.T) {
	cases := []struct {
		name  string
		edits []string // old, new pairs applied to base
		want  []string // every problem, in order
	}{
		{"wrong type and semantic", []string{"replicas: 3", "replicas: three", "maxTTL: 4h", "maxTTL: 30m"}, []string{
			`config.yaml:5: vault.replicas: must be a whole number, got "three"`,
			"config.yaml:21: roles[0].maxTTL: must be at least ttl (1h), got 30m",
		}},
		{"bad duration is not also 'required'", []string{"ttl: 1h", "ttl: soon", "region: us-east-1", "region: moon"}, []string{
			"config.yaml:8: vault.seal.awskms.region: must be an AWS region such as us-east-1, got \"moon\"",
			`config.yaml:20: roles[0].ttl: must be a duration such as 30m or 1h, got "soon"`,
		}},
		{"unknown top-level key and semantic", []string{"kind: Platform", "kind: Platform\nvaults: {}", "replicas: 3", "replicas: 4"}, []string{
			`config.yaml:3: vaults: unknown key (did you mean "vault"?)`,
			"config.yaml:6: vault.replicas: must be odd so Raft keeps a quorum through a failure (3 or 5), got 4",
		}},
		{"duplicate key keeps the first", []string{"  replicas: 3", "  replicas: 2\n  replicas: 3"}, []string{
			"config.yaml:5: vault.replicas: must be odd so Raft keeps a quorum through a failure (3 or 5), got 2",
			"config.yaml:6: vault.replicas: duplicate key (first set on line 5)",
		}},
		{"list where a mapping belongs", []string{"  seal:\n    awskms:\n      region: us-east-1\n      kmsKeyId: alias/vault-unseal-key\n", "  seal: [awskms]\n", "ttl: 1h", "ttl: 5h"}, []string{
			"config.yaml:6: vault.seal: must be a mapping (found a list)",
			"config.yaml:18: roles[0].maxTTL: must be at least ttl (5h), got 4h",
		}},
		{"two documents", []string{"maxTTL: 4h", "maxTTL: 30m", "file_path: stdout}}\n", "file_path: stdout}}\n---\nkind: Platform\n"}, []string{
			"config.yaml:21: roles[0].maxTTL: must be at least ttl (1h), got 30m",
			"config.yaml:26: holds more than one YAML document; keep one Platform per file",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := base
			for i := 0; i < len(tc.edits); i += 2 {
				if !strings.Contains(text, tc.edits[i]) {
					t.Fatalf("test bug: %q not in base", tc.edits[i])
				}
				text = strings.Replace(text, tc.edits[i], tc.edits[i+1], 1)
			}
			_, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}})
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a *ValidationError, got %v", err)
			}
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// Values that may be secrets are never repeated in a message, whichever key or variable held them.
func TestSecretsAreNeverEchoed(t *testing.T) {
	const secret = "s3cret-hunter2"
	external := strings.Replace(base, "  mode: in-cluster", "  mode: external", 1)
	cases := []struct {
		name, text string
		env        []string
		want       string
	}{
		{"pasted into password.env", strings.Replace(base, "roles:\n", dbWithPasswordEnv(secret+"!")+"roles:\n", 1), nil,
			"databases[0].password.env: must be the name of an environment variable"},
		{"user:password in vault.address", strings.Replace(external, "  mode: external", "  mode: external\n  address: https://admin:"+secret+"@vault.example.com", 1), nil,
			"vault.address: must not hold credentials"},
		{"user:password in a malformed vault.address", strings.Replace(external, "  mode: external", "  mode: external\n  address: https://admin:"+secret+"/x@vault example.com", 1), nil,
			"vault.address: must be an http(s) URL"},
		{"user:password in VAULTCTL_VAULT_ADDRESS", external, []string{"VAULTCTL_VAULT_ADDRESS=https://admin:" + secret + "@vault.example.com"},
			"env VAULTCTL_VAULT_ADDRESS: vault.address: must not hold credentials"},
		{"user:password in VAULT_ADDR", external, []string{"VAULT_ADDR=https://admin:" + secret + "@vault.example.com"},
			"env VAULT_ADDR: vault.address: must not hold credentials"},
		{"user:password in kubernetesAuth.host", strings.Replace(base, "roles:\n", "kubernetesAuth: {host: 'https://k:"+secret+"@api.example.com'}\nroles:\n", 1), nil,
			"kubernetesAuth.host: must not hold credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("config.yaml", []byte(tc.text), LoadOptions{Environ: append([]string{}, tc.env...)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the message echoes the secret: %v", err)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	external := strings.Replace(base, "  mode: in-cluster", "  mode: external\n  address: https://vault.example.com:8200", 1)
	clients := "networkPolicies:\n  allowedClients: [{namespace: production}]\n"
	cases := []struct {
		name, text string
		want       string
	}{
		{"allowedClients with enabled omitted", base + clients,
			"config.yaml:26: networkPolicies.enabled: is false (the default), so no NetworkPolicies are installed and allowedClients limits nothing; set networkPolicies.enabled: true, or remove allowedClients"},
		{"allowedClients with enabled false", base + "networkPolicies:\n  enabled: false\n  allowedClients: [{namespace: production}]\n",
			"config.yaml:27: networkPolicies.enabled: is false (the default)"},
		{"external mode allowedClients", external + "networkPolicies:\n  enabled: true\n  allowedClients: [{namespace: production}]\n",
			"config.yaml:29: networkPolicies.allowedClients: change nothing in external mode: no Vault pod runs in the cluster for a policy to admit them, and appEgress is not applied in external mode either"},
		{"external mode allowedClients with appEgress", external + "networkPolicies:\n  enabled: true\n  appEgress: true\n  allowedClients: [{namespace: production}]\n",
			"config.yaml:30: networkPolicies.allowedClients: change nothing in external mode"},
		{"policy on a mount vaultctl does not manage", strings.Replace(base, "path: secret/production/db-credentials", "path: transit/encrypt/app", 1),
			`config.yaml:13: policies[0].rules[0].path: "transit" is not a mount vaultctl manages (kv lists secret; databases use their mount), so the path is written to the policy as is`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Parse("config.yaml", []byte(tc.text), LoadOptions{Environ: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range l.Warnings {
				got = append(got, w.String())
				if strings.Contains(w.String(), tc.want) {
					return
				}
			}
			t.Errorf("no warning %q; got:\n%s", tc.want, strings.Join(got, "\n"))
		})
	}
	// Nothing to warn about: in-cluster NetworkPolicies with their clients, and policies on a
	// database mount and on Vault's own mounts.
	quiet := base + "networkPolicies:\n  enabled: true\n  appEgress: true\n  allowedClients: [{namespace: production}]\n"
	quiet = strings.Replace(quiet, "        capabilities: [read]\n", "        capabilities: [read]\n      - {path: sys/health, capabilities: [read]}\n      - {path: database/creds/r, capabilities: [read]}\n", 1)
	quiet = strings.Replace(quiet, "roles:\n", dbWithPasswordEnv("DB_PASSWORD")+"roles:\n", 1)
	l, err := Parse("config.yaml", []byte(quiet), LoadOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range l.Warnings {
		t.Errorf("unexpected warning: %s", w)
	}
}

// The CLI renders warnings even when the config is invalid, so they travel with the error.
func TestWarningsComeWithErrors(t *testing.T) {
	text := strings.Replace(base, "replicas: 3", "replicas: 4\n  init: {keepRootToken: true}", 1)
	_, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{"VAULTCTL_NO_SUCH_KEY=1"}})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 {
		t.Fatalf("want one problem, got %v", err)
	}
	var got []string
	for _, w := range ve.Warnings {
		got = append(got, w.String())
	}
	want := []string{"env VAULTCTL_NO_SUCH_KEY: not a known config key; ignored", "config.yaml:6: vault.init.keepRootToken: a live root token is a standing risk; leave it false and use the vaultctl-admin role"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(err.Error(), "keepRootToken") {
		t.Errorf("Error() must hold the problems only: %v", err)
	}
}

// vaultctl follows the vault CLI where the config is silent, and a problem with a value that
// came from the environment or a flag names it rather than a line of the file.
func TestEnvironmentAndFlagsAreNamed(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	external := strings.Replace(base, "  mode: in-cluster", "  mode: external", 1)
	kubeconfig := pflag.NewFlagSet("x", pflag.ContinueOnError)
	kubeconfig.String("kubeconfig", "", "")
	if err := kubeconfig.Set("kubeconfig", "/nonexistent/from-flag"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		text  string
		env   []string
		flags map[string]*pflag.Flag
		want  string // "" means valid
	}{
		{"external mode takes VAULT_ADDR", external, []string{"VAULT_ADDR=https://vault.example.com:8200"}, nil, ""},
		{"external mode takes VAULT_ADDR and VAULT_CACERT", external, []string{"VAULT_ADDR=https://vault.example.com:8200", "VAULT_CACERT=" + ca}, nil, ""},
		{"VAULT_ADDR that is not a URL", external, []string{"VAULT_ADDR=vault.example.com"}, nil,
			`env VAULT_ADDR: vault.address: must be an http(s) URL such as https://vault.example.com:8200, got "vault.example.com"`},
		{"VAULT_CACERT naming no file", external, []string{"VAULT_ADDR=https://vault.example.com:8200", "VAULT_CACERT=/nonexistent/ca.pem"}, nil,
			"env VAULT_CACERT: vault.tls.caCert: CA file /nonexistent/ca.pem does not exist"},
		{"VAULTCTL_VAULT_ADDRESS that is not a URL", external, []string{"VAULTCTL_VAULT_ADDRESS=vault:8200"}, nil,
			`env VAULTCTL_VAULT_ADDRESS: vault.address: must be an http(s) URL`},
		{"VAULTCTL_CLUSTER_KUBECONFIG naming no file", base, []string{"VAULTCTL_CLUSTER_KUBECONFIG=/nonexistent/kc"}, nil,
			"env VAULTCTL_CLUSTER_KUBECONFIG: cluster.kubeconfig: kubeconfig /nonexistent/kc does not exist"},
		{"VAULTCTL_VAULT_SEAL_AWSKMS_REGION invalid", base, []string{"VAULTCTL_VAULT_SEAL_AWSKMS_REGION=mars"}, nil,
			`env VAULTCTL_VAULT_SEAL_AWSKMS_REGION: vault.seal.awskms.region: must be an AWS region such as us-east-1, got "mars"`},
		{"--kubeconfig naming no file", base, nil, map[string]*pflag.Flag{"cluster.kubeconfig": kubeconfig.Lookup("kubeconfig")},
			"flag --kubeconfig: cluster.kubeconfig: kubeconfig /nonexistent/from-flag does not exist"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("config.yaml", []byte(tc.text), LoadOptions{Environ: append([]string{}, tc.env...), Flags: tc.flags, CheckFiles: true})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want %q, got %v", tc.want, err)
			case tc.want != "" && strings.Contains(err.Error(), "config.yaml:") && !strings.Contains(tc.want, "config.yaml:"):
				t.Fatalf("an environment or flag value must not be blamed on a line of the file: %v", err)
			}
		})
	}
	// The file's own mistake is still the file's, and the override that replaces it is checked.
	_, err := Parse("config.yaml", []byte(strings.Replace(base, "replicas: 3", "replicas: three", 1)), LoadOptions{Environ: []string{"VAULTCTL_VAULT_REPLICAS=4"}})
	want := "2 problems in config:\nenv VAULTCTL_VAULT_REPLICAS: vault.replicas: must be odd so Raft keeps a quorum through a failure (3 or 5), got 4\nconfig.yaml:5: vault.replicas: must be a whole number, got \"three\""
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestRelativePathsResolveAgainstTheConfigDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"kubeconfig", "ca.pem", "k8s-ca.pem", "keys/alice.asc"} {
		p := filepath.Join(dir, "deploy", f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	text := strings.Replace(base, "vault:\n  mode: in-cluster\n", `cluster: {kubeconfig: kubeconfig}
vault:
  mode: external
  address: https://vault.example.com:8200
  tls: {caCert: ca.pem}
  init: {recoveryShares: 1, recoveryThreshold: 1, pgpKeys: [keys/alice.asc], recoveryKeysFile: out/keys.enc}
`, 1)
	text = strings.Replace(text, "policies:\n", "kubernetesAuth: {caCert: k8s-ca.pem}\npolicies:\n", 1)
	cfgPath := filepath.Join(dir, "deploy", "vaultctl.yaml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir) // the files are not in the working directory
	l, err := Load(LoadOptions{Path: "deploy/vaultctl.yaml", Environ: []string{}, CheckFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{l.Cluster.Kubeconfig, l.Vault.TLS.CACert, l.KubernetesAuth.CACert, l.Vault.Init.PGPKeys[0], l.Vault.Init.RecoveryKeysFile}
	want := []string{"deploy/kubeconfig", "deploy/ca.pem", "deploy/k8s-ca.pem", "deploy/keys/alice.asc", "deploy/out/keys.enc"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paths = %q, want %q", got, want)
	}

	// A value from the environment was typed relative to the working directory.
	l, err = Load(LoadOptions{Path: "deploy/vaultctl.yaml", Environ: []string{"VAULTCTL_VAULT_TLS_CACERT=deploy/ca.pem", "VAULTCTL_VAULT_INIT_RECOVERYKEYSFILE=keys.enc"}, CheckFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	if l.Vault.TLS.CACert != "deploy/ca.pem" || l.Vault.Init.RecoveryKeysFile != "keys.enc" {
		t.Errorf("env paths must stay relative to the working directory: %q, %q", l.Vault.TLS.CACert, l.Vault.Init.RecoveryKeysFile)
	}

	// A missing file is reported as resolved, with what the file said.
	if err := os.Remove(filepath.Join(dir, "deploy", "ca.pem")); err != nil {
		t.Fatal(err)
	}
	_, err = Load(LoadOptions{Path: "deploy/vaultctl.yaml", Environ: []string{}, CheckFiles: true})
	want1 := "deploy/vaultctl.yaml:7: vault.tls.caCert: CA file deploy/ca.pem does not exist (ca.pem, resolved against the config file's directory)"
	if err == nil || err.Error() != want1 {
		t.Errorf("got %v, want %s", err, want1)
	}
	// Without CheckFiles (vaultctl check, the wizard) the files are not looked at.
	if _, err := Load(LoadOptions{Path: "deploy/vaultctl.yaml", Environ: []string{}}); err != nil {
		t.Errorf("without CheckFiles: %v", err)
	}
}

func TestHugeFileIsRefusedBeforeReading(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vaultctl.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 38 MiB that cost nothing to write, and would take seconds to decode.
	if err := f.Truncate(38 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Load(LoadOptions{Path: path, Environ: []string{}})
	want := path + ": is 38 MiB, over the 4 MiB limit for a config file (a vaultctl config is a few KiB): is -c/--config pointing at the right file?"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	_, err = Parse("big.yaml", make([]byte, MaxFileSize+1), LoadOptions{Environ: []string{}})
	if err == nil || !strings.Contains(err.Error(), "big.yaml: is 4 MiB, over the 4 MiB limit") {
		t.Fatalf("Parse: got %v", err)
	}
}

// config.example.yaml says that an omitted key takes the value shown unless its comment starts
// with "required" or "example": hold every key to that.
func TestExampleShowsTheDefaults(t *testing.T) {
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	defaults := &Config{}
	ApplyDefaults(defaults)
	var check func(n *yaml.Node, v reflect.Value, path string)
	check = func(n *yaml.Node, v reflect.Value, path string) {
		fields := yamlFields(v.Type())
		present := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			present[k.Value] = true
			f := fields[k.Value]
			fv := v.FieldByIndex(f.Index)
			comment := strings.TrimSpace(strings.TrimPrefix(k.LineComment+val.LineComment, "#"))
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != durationType:
				check(val, fv, p)
			case strings.HasPrefix(comment, "required") || strings.HasPrefix(comment, "example"):
			default:
				shown := reflect.New(f.Type)
				if err := val.Decode(shown.Interface()); err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				if !sameValue(shown.Elem(), fv) {
					t.Errorf("config.example.yaml:%d: %s shows %v but an omitted %s is %v; mark it required or example, or fix the default", k.Line, p, shown.Elem(), p, fv)
				}
			}
		}
		for name := range fields {
			if !present[name] {
				t.Errorf("config.example.yaml does not document %s", joinPath(path, name))
			}
		}
	}
	check(doc.Content[0], reflect.ValueOf(defaults).Elem(), "")
}

// sameValue is DeepEqual with nil and empty lists and maps equal, and pointers compared by value.
func sameValue(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Slice, reflect.Map:
		if a.Len() == 0 && b.Len() == 0 {
			return true
		}
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

func TestMigrationEntrypointsProblemsNameTheirLine(t *testing.T) {
	text := base + `migration:
  entrypoints:
    - namespace: team-a
      workload: Deployment/web
      container: app
      entrypoint: [/usr/local/bin/web, serve]
    - namespace: Team_A
      workload: Rollout/web
      container: app
      entrypoint: []
    - namespace: team-a
      workload: Deployment/web
      container: app
      entrypoint: [/bin/web]
    - namespace: team-a
      workload: web
      container: App
      entrypoint: [""]
`
	_, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}})
	want := []string{
		`config.yaml:32: migration.entrypoints[1].namespace: must be a namespace name, got "Team_A"`,
		`config.yaml:33: migration.entrypoints[1].workload: kind "Rollout" is not one migrate rewrites; use Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod`,
		`config.yaml:35: migration.entrypoints[1].entrypoint: must be the image's entrypoint argv, its program first, e.g. [/usr/local/bin/web, serve]`,
		`config.yaml:36: migration.entrypoints[2]: container app of Deployment/web in namespace team-a already has its entrypoint in migration.entrypoints[0]; keep one`,
		`config.yaml:41: migration.entrypoints[3].workload: must be KIND/NAME, e.g. Deployment/web, got "web"`,
		`config.yaml:42: migration.entrypoints[3].container: must be a container name, got "App"`,
		`config.yaml:43: migration.entrypoints[3].entrypoint: must be the image's entrypoint argv, its program first, e.g. [/usr/local/bin/web, serve]`,
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a ValidationError", err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestInjectorNamespaceLabelsAreLabels(t *testing.T) {
	text := base + `injector:
  namespaceLabels:
    vault.example.com/injection: team-a
    "bad key!": x
    ok: "not a value!"
`
	_, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}})
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a ValidationError", err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	joined := strings.Join(got, "\n")
	if len(got) != 2 || !strings.Contains(joined, `injector.namespaceLabels: "bad key!" is not a label key`) || !strings.Contains(joined, `injector.namespaceLabels.ok: "not a value!" is not a label value`) || !strings.Contains(joined, "config.yaml:") {
		t.Fatalf("problems:\n%s", joined)
	}
}
