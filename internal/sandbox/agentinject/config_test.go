package agentinject

import (
	"encoding/json"
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

// configOf parses the agent's configuration back into generic JSON.
func configOf(t *testing.T, a *Agent, init bool) map[string]any {
	t.Helper()
	b, err := a.Config(init)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at walks a JSON document by object keys and array indexes ("template.0.perms").
func at(m map[string]any, path string) any {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			var ok bool
			if cur, ok = v[k]; !ok {
				return nil
			}
		case []any:
			i := int(k[0] - '0')
			if len(k) != 1 || i >= len(v) {
				return nil
			}
			cur = v[i]
		default:
			return nil
		}
	}
	return cur
}

func TestConfigInitAndSidecar(t *testing.T) {
	a := mustParse(t, withRole("agent-inject-secret-db", "secret/data/db"))
	for _, init := range []bool{true, false} {
		c := configOf(t, a, init)
		for path, want := range map[string]any{
			"exit_after_auth":                       init,
			"pid_file":                              "/home/vault/.pid",
			"vault.address":                         "https://vault.vault.svc:8200",
			"auto_auth.method.type":                 "kubernetes",
			"auto_auth.method.mount_path":           "auth/kubernetes",
			"auto_auth.method.config.role":          "r",
			"auto_auth.method.config.token_path":    "/var/run/secrets/kubernetes.io/serviceaccount/token",
			"auto_auth.sink.0.type":                 "file",
			"auto_auth.sink.0.config.path":          "/home/vault/.vault-token",
			"template.0.destination":                "/vault/secrets/db",
			"template.0.left_delimiter":             "{{",
			"template.0.right_delimiter":            "}}",
			"template_config.exit_on_retry_failure": true,
		} {
			if got := at(c, path); !reflect.DeepEqual(got, want) {
				t.Errorf("init=%v %s = %#v, want %#v", init, path, got, want)
			}
		}
		// Unset things are absent, not empty.
		for _, path := range []string{"cache", "listener", "template.0.perms", "template.0.command", "template.0.source",
			"template.0.error_on_missing_key", "vault.ca_cert", "auto_auth.method.namespace", "auto_auth.sink.1",
			"template_config.static_secret_render_interval", "disable_idle_connections", "telemetry"} {
			if got := at(c, path); got != nil {
				t.Errorf("init=%v %s = %#v, want absent", init, path, got)
			}
		}
	}
	// Without secrets there is no template stanza at all.
	if got := at(configOf(t, mustParse(t, withRole()), true), "template"); got != nil {
		t.Errorf("template = %#v, want absent", got)
	}
}

func TestConfigTemplates(t *testing.T) {
	const kv = "secret/data/production/db-credentials"
	for _, tc := range []struct {
		name string
		ann  map[string]string
		d    func(*Defaults)
		want map[string]any // paths into template.0
	}{
		{"default map template around the path", withRole("agent-inject-secret-db", kv), nil, map[string]any{
			"contents": `{{ with secret "` + kv + `" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}` + "\n" + `{{ end }}{{ end }}`,
		}},
		{"default json template", withRole("agent-inject-secret-db", kv, "agent-inject-default-template", "json"), nil, map[string]any{
			"contents": `{{ with secret "` + kv + `" }}{{ .Data | toJSON }}` + "\n" + `{{ end }}`,
		}},
		{"injector's json default", withRole("agent-inject-secret-db", kv), func(d *Defaults) { d.DefaultTemplate = "json" }, map[string]any{
			"contents": `{{ with secret "` + kv + `" }}{{ .Data | toJSON }}` + "\n" + `{{ end }}`,
		}},
		{"the path is not escaped", withRole("agent-inject-secret-db", `a"b`), nil, map[string]any{
			"contents": `{{ with secret "a"b" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}` + "\n" + `{{ end }}{{ end }}`,
		}},
		{"own template", withRole("agent-inject-secret-db", kv, "agent-inject-template-db", "{{ .X }}"), nil, map[string]any{
			"contents": "{{ .X }}",
		}},
		{"template file: source, no contents", withRole("agent-inject-secret-db", kv, "agent-inject-template-file-db", "/t.ctmpl"), nil, map[string]any{
			"source": "/t.ctmpl", "contents": nil,
		}},
		{"file name override", withRole("agent-inject-secret-db", kv, "agent-inject-file-db", "app.env"), nil, map[string]any{
			"destination": "/vault/secrets/app.env",
		}},
		{"file with directories, cleaned", withRole("agent-inject-secret-db", kv, "agent-inject-file-db", "./conf//db/../app.env"), nil, map[string]any{
			"destination": "/vault/secrets/conf/app.env",
		}},
		{"file may leave the volume", withRole("agent-inject-secret-db", kv, "agent-inject-file-db", "../../etc/x"), nil, map[string]any{
			"destination": "/etc/x",
		}},
		{"uppercase name lowercased in the destination", withRole("agent-inject-secret-DB-Creds", kv), nil, map[string]any{
			"destination": "/vault/secrets/db-creds",
		}},
		{"file override keeps its case", withRole("agent-inject-secret-DB", kv, "agent-inject-file-DB", "DB.env"), nil, map[string]any{
			"destination": "/vault/secrets/DB.env",
		}},
		{"custom volume path", withRole("agent-inject-secret-db", kv, "secret-volume-path-db", "/etc/db"), nil, map[string]any{
			"destination": "/etc/db/db",
		}},
		{"a trailing slash doubles without a file override", withRole("agent-inject-secret-db", kv, "secret-volume-path-db", "/etc/db/"), nil, map[string]any{
			"destination": "/etc/db//db",
		}},
		{"perms verbatim", withRole("agent-inject-secret-db", kv, "agent-inject-perms-db", "400"), nil, map[string]any{
			"perms": "400",
		}},
		{"command, error on missing key, delimiters", withRole("agent-inject-secret-db", kv, "agent-inject-command-db", "kill -HUP 1",
			"error-on-missing-key-db", "TRUE", "agent-template-left-delim-db", "<<", "agent-template-right-delim-db", ">>"), nil, map[string]any{
			"command": "kill -HUP 1", "error_on_missing_key": true, "left_delimiter": "<<", "right_delimiter": ">>",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDefaults
			if tc.d != nil {
				tc.d(&d)
			}
			a, err := Parse(tc.ann, d)
			if err != nil {
				t.Fatal(err)
			}
			c := configOf(t, a, true)
			for k, want := range tc.want {
				if got := at(c, "template.0."+k); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", k, got, want)
				}
			}
		})
	}
}

// TestConfigBytes pins encoding details that change the bytes but not the meaning: vault-k8s
// marshals with encoding/json, so "<", ">" and "&" in a template are escaped, and the keys follow
// its field order.
func TestConfigBytes(t *testing.T) {
	a := mustParse(t, withRole("agent-inject-template-x", "a<b>&c"))
	b, err := a.Config(false)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"auto_auth":{"method":{"type":"kubernetes","mount_path":"auth/kubernetes","config":{"role":"r","token_path":"/var/run/secrets/kubernetes.io/serviceaccount/token"}},` +
		`"sink":[{"type":"file","config":{"path":"/home/vault/.vault-token"}}]},"exit_after_auth":false,"pid_file":"/home/vault/.pid",` +
		`"vault":{"address":"https://vault.vault.svc:8200"},` +
		`"template":[{"destination":"/vault/secrets/x","contents":"a\u003cb\u003e\u0026c","left_delimiter":"{{","right_delimiter":"}}"}],` +
		`"template_config":{"exit_on_retry_failure":true}}`
	if string(b) != want {
		t.Fatalf("config:\n got %s\nwant %s", b, want)
	}
}

func TestConfigCacheListenerSinks(t *testing.T) {
	persist := map[string]any{"type": "kubernetes", "path": "/vault/agent-cache"}
	listener := func(port string) []any {
		return []any{map[string]any{"type": "tcp", "address": "127.0.0.1:" + port, "tls_disable": true}}
	}
	for _, tc := range []struct {
		name                   string
		ann                    map[string]string
		initCache, sideCache   any
		initListen, sideListen any
	}{
		{"no cache", withRole(), nil, nil, nil, nil},
		{"cache persisted in both", withRole("agent-cache-enable", "true"),
			map[string]any{"use_auto_auth_token": "true", "persist": persist},
			map[string]any{"use_auto_auth_token": "true", "persist": persist},
			listener("8200"), listener("8200")},
		{"persist exit on error, port, force", withRole("agent-cache-enable", "true", "agent-cache-exit-on-err", "true",
			"agent-cache-listener-port", "8100", "agent-cache-use-auto-auth-token", "force"),
			map[string]any{"use_auto_auth_token": "force", "persist": map[string]any{"type": "kubernetes", "path": "/vault/agent-cache", "exit_on_err": true}},
			map[string]any{"use_auto_auth_token": "force", "persist": map[string]any{"type": "kubernetes", "path": "/vault/agent-cache", "exit_on_err": true}},
			listener("8100"), listener("8100")},
		{"no init container: plain cache in the sidecar only", withRole("agent-cache-enable", "true", "agent-pre-populate", "false"),
			nil, map[string]any{"use_auto_auth_token": "true"}, nil, listener("8200")},
		{"no sidecar: no cache", withRole("agent-cache-enable", "true", "agent-pre-populate-only", "true"), nil, nil, nil, nil},
		{"quit makes a listener and an empty cache", withRole("agent-enable-quit", "true"),
			map[string]any{}, map[string]any{},
			[]any{map[string]any{"type": "tcp", "address": "127.0.0.1:8200", "tls_disable": true, "agent_api": map[string]any{"enable_quit": true}}},
			[]any{map[string]any{"type": "tcp", "address": "127.0.0.1:8200", "tls_disable": true, "agent_api": map[string]any{"enable_quit": true}}}},
		{"quit on the cache's listener", withRole("agent-enable-quit", "true", "agent-cache-enable", "true", "agent-pre-populate", "false"),
			map[string]any{}, map[string]any{"use_auto_auth_token": "true"},
			[]any{map[string]any{"type": "tcp", "address": "127.0.0.1:8200", "tls_disable": true, "agent_api": map[string]any{"enable_quit": true}}},
			[]any{map[string]any{"type": "tcp", "address": "127.0.0.1:8200", "tls_disable": true, "agent_api": map[string]any{"enable_quit": true}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustParse(t, tc.ann)
			ic, sc := configOf(t, a, true), configOf(t, a, false)
			for _, c := range []struct {
				name      string
				got, want any
			}{
				{"init cache", ic["cache"], tc.initCache}, {"sidecar cache", sc["cache"], tc.sideCache},
				{"init listener", ic["listener"], tc.initListen}, {"sidecar listener", sc["listener"], tc.sideListen},
			} {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
				}
			}
		})
	}

	// agent-inject-token adds a sink at the pod-wide secret-volume-path, not a secret's own.
	a := mustParse(t, withRole("agent-inject-token", "true", "secret-volume-path", "/s/", "agent-inject-secret-db", "p", "secret-volume-path-db", "/db"))
	if got := at(configOf(t, a, true), "auto_auth.sink.1.config.path"); got != "/s/token" {
		t.Errorf("token sink = %#v", got)
	}
}

func TestConfigSettings(t *testing.T) {
	a := mustParse(t, withRole(
		"service", "https://active:8200", "ca-cert", "/tls/ca.crt", "ca-key", "/tls", "client-cert", "/c.crt", "client-key", "/c.key",
		"tls-skip-verify", "true", "tls-server-name", "vault.svc", "namespace", "team", "auth-path", "auth/k8s/",
		"auth-min-backoff", "1s", "auth-max-backoff", "1m", "agent-auto-auth-exit-on-err", "true",
		"template-config-exit-on-retry-failure", "false", "template-static-secret-render-interval", "5s",
		"template-max-connections-per-host", "2", "template-lease-renewal-threshold", "0.9",
		"agent-disable-idle-connections", "auto-auth,caching", "agent-disable-keep-alives", "templating"))
	c := configOf(t, a, false)
	for path, want := range map[string]any{
		"vault.address":                                 "https://active:8200",
		"vault.ca_cert":                                 "/tls/ca.crt",
		"vault.ca_path":                                 "/tls",
		"vault.client_cert":                             "/c.crt",
		"vault.client_key":                              "/c.key",
		"vault.tls_skip_verify":                         true,
		"vault.tls_server_name":                         "vault.svc",
		"auto_auth.method.namespace":                    "team",
		"auto_auth.method.mount_path":                   "auth/k8s/",
		"auto_auth.method.min_backoff":                  "1s",
		"auto_auth.method.max_backoff":                  "1m",
		"auto_auth.method.exit_on_err":                  true,
		"template_config.exit_on_retry_failure":         false,
		"template_config.static_secret_render_interval": "5s",
		"template_config.max_connections_per_host":      2.0,
		"template_config.lease_renewal_threshold":       0.9,
		"disable_idle_connections":                      []any{"auto-auth", "caching"},
		"disable_keep_alives":                           []any{"templating"},
	} {
		if got := at(c, path); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
}

func TestConfigRefusesConfigMap(t *testing.T) {
	a := mustParse(t, ann("agent-configmap", "agent-config")) // no role needed: the ConfigMap has it
	if _, err := a.Config(true); err == nil {
		t.Fatal("Config built a configuration for a ConfigMap pod")
	}
	if _, err := a.Env(true); err == nil {
		t.Fatal("Env built a configuration for a ConfigMap pod")
	}
	if !reflect.DeepEqual(a.Unsupported, []string{Prefix + "agent-configmap"}) {
		t.Errorf("Unsupported = %v", a.Unsupported)
	}
}

func TestFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		want    []File
		wantErr string
	}{
		{"default mode 0644", withRole("agent-inject-secret-db", "p"), []File{{"db", "/vault/secrets/db", 0o644}}, ""},
		{"0400", withRole("agent-inject-secret-db", "p", "agent-inject-perms-db", "0400"), []File{{"db", "/vault/secrets/db", 0o400}}, ""},
		{"octal without the leading 0", withRole("agent-inject-secret-db", "p", "agent-inject-perms-db", "640"), []File{{"db", "/vault/secrets/db", 0o640}}, ""},
		{"0 is the default", withRole("agent-inject-secret-db", "p", "agent-inject-perms-db", "000"), []File{{"db", "/vault/secrets/db", 0o644}}, ""},
		{"special bits do not survive chmod", withRole("agent-inject-secret-db", "p", "agent-inject-perms-db", "4750"), []File{{"db", "/vault/secrets/db", 0o750}}, ""},
		{"0o prefix refused", withRole("agent-inject-secret-db", "p", "agent-inject-perms-db", "0o400"), nil,
			`secret "db": vault.hashicorp.com/agent-inject-perms-db="0o400": the agent refuses the template's perms: strconv.ParseUint: parsing "0o400": invalid syntax`},
		{"not octal", withRole("agent-inject-secret-db", "p", "agent-inject-perms-db", "0800"), nil,
			`secret "db": vault.hashicorp.com/agent-inject-perms-db="0800": the agent refuses the template's perms: strconv.ParseUint: parsing "0800": invalid syntax`},
		{"more than 12 bits", withRole("agent-inject-secret-db", "p", "agent-inject-perms-db", "10000"), nil,
			`secret "db": vault.hashicorp.com/agent-inject-perms-db="10000": the agent refuses the template's perms: strconv.ParseUint: parsing "10000": value out of range`},
		{"uppercase name, file override, custom path", withRole(
			"agent-inject-secret-DB", "p", "agent-inject-perms-DB", "0440", "secret-volume-path-DB", "/etc/db",
			"agent-inject-secret-Api", "q", "agent-inject-file-Api", "keys/api.json"),
			[]File{{"api", "/vault/secrets/keys/api.json", 0o644}, {"db", "/etc/db/db", 0o440}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mustParse(t, tc.ann).Files()
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Files = %v, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Files = %+v, want %+v", got, tc.want)
			}
			for _, f := range got {
				if f.Mode&^fs.ModePerm != 0 {
					t.Errorf("%s: mode %v has more than permission bits", f.Path, f.Mode)
				}
			}
		})
	}
}

func TestVolumes(t *testing.T) {
	type vol struct{ name, path string }
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want []vol
	}{
		{"always the shared volume", withRole(), []vol{{"vault-secrets", "/vault/secrets"}}},
		{"its path follows secret-volume-path", withRole("secret-volume-path", "/etc/secrets"), []vol{{"vault-secrets", "/etc/secrets"}}},
		{"one volume per distinct path, in secret order", withRole(
			"agent-inject-secret-a", "p", "secret-volume-path-a", "/etc/x",
			"agent-inject-secret-b", "p", "secret-volume-path-b", "/etc/y",
			"agent-inject-secret-c", "p", "secret-volume-path-c", "/etc/x",
			"agent-inject-secret-d", "p", "secret-volume-path-d", "/vault/secrets", // the shared path: no new volume
			"agent-inject-secret-e", "p"),
			[]vol{{"vault-secrets", "/vault/secrets"}, {"vault-secrets-custom-0", "/etc/x"}, {"vault-secrets-custom-1", "/etc/y"}}},
		{"paths are compared as written", withRole(
			"agent-inject-secret-a", "p", "secret-volume-path-a", "/etc/x",
			"agent-inject-secret-b", "p", "secret-volume-path-b", "/etc/x/"),
			[]vol{{"vault-secrets", "/vault/secrets"}, {"vault-secrets-custom-0", "/etc/x"}, {"vault-secrets-custom-1", "/etc/x/"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []vol
			for _, m := range mustParse(t, tc.ann).Volumes() {
				if m.ReadOnly {
					t.Errorf("%s is read-only", m.Name)
				}
				got = append(got, vol{m.Name, m.MountPath})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Volumes = %v, want %v", got, tc.want)
			}
		})
	}
}
