package agentinject

import (
	"maps"
	"reflect"
	"strings"
	"testing"
)

// testDefaults is an injector with only the required settings.
var testDefaults = Defaults{Address: "https://vault.vault.svc:8200", Namespace: "app", Token: apiAccess}

// ann builds annotations from name/value pairs; names are given without the vault.hashicorp.com/
// prefix, and agent-inject is "true" unless the pairs set it.
func ann(kv ...string) map[string]string {
	m := map[string]string{AnnotationInject: "true"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[Prefix+kv[i]] = kv[i+1]
	}
	return m
}

// withRole adds a role, the one annotation every injected pod needs.
func withRole(kv ...string) map[string]string { return ann(append([]string{"role", "r"}, kv...)...) }

func mustParse(t *testing.T, a map[string]string) *Agent {
	t.Helper()
	ag, err := Parse(a, testDefaults)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if ag == nil {
		t.Fatal("Parse: no injection")
	}
	return ag
}

func TestParseWhetherToInject(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		inject  bool
		wantErr string
	}{
		{"no annotations", map[string]string{}, false, ""},
		{"only a role", map[string]string{Prefix + "role": "r"}, false, ""},
		{"true", withRole("agent-inject", "true"), true, ""},
		{"1", withRole("agent-inject", "1"), true, ""},
		{"t", withRole("agent-inject", "t"), true, ""},
		{"TRUE", withRole("agent-inject", "TRUE"), true, ""},
		{"True", withRole("agent-inject", "True"), true, ""},
		{"false", withRole("agent-inject", "false"), false, ""},
		{"0", withRole("agent-inject", "0"), false, ""},
		{"F", withRole("agent-inject", "F"), false, ""},
		{"empty reads as false", withRole("agent-inject", ""), false, ""},
		{"yes is not a boolean", withRole("agent-inject", "yes"), false,
			`error checking if should inject agent: cannot parse '' as bool: strconv.ParseBool: parsing "yes": invalid syntax`},
		{"padded true is not a boolean", withRole("agent-inject", " true"), false,
			`error checking if should inject agent: cannot parse '' as bool: strconv.ParseBool: parsing " true": invalid syntax`},
		{"already injected", withRole("agent-inject-status", "injected"), false, ""},
		{"another status is ignored", withRole("agent-inject-status", "update"), true, ""},
		{"status is case-sensitive", withRole("agent-inject-status", "Injected"), true, ""},
		{"false wins before a bad value elsewhere", ann("agent-inject", "false", "agent-pre-populate", "maybe"), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(tc.ann, testDefaults)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (a != nil) != tc.inject {
				t.Fatalf("inject = %v, want %v", a != nil, tc.inject)
			}
		})
	}
}

func TestParseDoesNotModifyAnnotations(t *testing.T) {
	in := withRole("agent-inject-secret-DB", "secret/data/db")
	before := maps.Clone(in)
	mustParse(t, in)
	if !maps.Equal(in, before) {
		t.Fatalf("annotations changed: %v", in)
	}
}

// TestParseRefusals covers the admission errors that are not a value failing to parse.
func TestParseRefusals(t *testing.T) {
	noToken := testDefaults
	noToken.Token = TokenVolume{}
	halfToken := testDefaults
	halfToken.Token = TokenVolume{Name: "t", MountPath: "/var/run/secrets/x"}
	noAddr := testDefaults
	noAddr.Address = ""
	noNS := testDefaults
	noNS.Namespace = ""
	system := testDefaults
	system.Namespace = "kube-system"
	public := testDefaults
	public.Namespace = "kube-public"
	for _, tc := range []struct {
		name string
		ann  map[string]string
		d    Defaults
		want string
	}{
		{"kube-system", withRole(), system, "error with request namespace: cannot inject into system namespaces: kube-system"},
		{"kube-public", withRole(), public, "error with request namespace: cannot inject into system namespaces: kube-public"},
		{"no address", withRole(), noAddr, "error adding default annotations: address for Vault required"},
		// The injector's own address is required even when the pod names another.
		{"no address, service set", withRole("service", "https://v:8200"), noAddr, "error adding default annotations: address for Vault required"},
		{"no namespace", withRole(), noNS, "error adding default annotations: kubernetes namespace required"},
		{"no token", withRole(), noToken, "error creating new agent sidecar: failed to find service account volume mount"},
		{"incomplete token", withRole(), halfToken, "error validating agent configuration: no service account token volume name, mount path or token path found"},
		{"no role", ann(), testDefaults, "error validating agent configuration: no Vault role found"},
		{"empty role", ann("role", ""), testDefaults, "error validating agent configuration: no Vault role found"},
		{"empty service", withRole("service", ""), testDefaults, "error validating agent configuration: no Vault address found"},
		{"empty auth-path", withRole("auth-path", ""), testDefaults, "error validating agent configuration: no Vault Auth Path found"},
		{"empty auth-type", withRole("auth-type", ""), testDefaults, "error validating agent configuration: no Vault Auth Type found"},
		{"empty agent-image", withRole("agent-image", ""), testDefaults, "error validating agent configuration: no Vault image found"},
		{"empty agent-request-namespace", withRole("agent-request-namespace", ""), testDefaults, "error validating agent configuration: namespace missing from request"},
		// The first failure in vault-k8s's order wins: New's parse errors come before Validate's.
		{"parse error before missing role", ann("agent-init-first", "maybe"), testDefaults,
			`error creating new agent sidecar: cannot parse '' as bool: strconv.ParseBool: parsing "maybe": invalid syntax`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(tc.ann, tc.d)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Parse = %v, %v; want error %q", a, err, tc.want)
			}
		})
	}

	// A role may come from auth-config-role alone; another auth type needs no role.
	for _, a := range []map[string]string{ann("auth-config-role", "r"), ann("auth-type", "jwt")} {
		if _, err := Parse(a, testDefaults); err != nil {
			t.Errorf("Parse(%v): %v", a, err)
		}
	}
}

// TestParseInvalidValues gives each annotation that vault-k8s parses a value it refuses.
func TestParseInvalidValues(t *testing.T) {
	const badBool = `error creating new agent sidecar: cannot parse '' as bool: strconv.ParseBool: parsing "maybe": invalid syntax`
	for _, tc := range []struct {
		kv   []string
		want string
	}{
		{[]string{"agent-init-first", "maybe"}, badBool},
		{[]string{"agent-pre-populate", "maybe"}, badBool},
		{[]string{"agent-pre-populate-only", "maybe"}, badBool},
		{[]string{"agent-revoke-on-shutdown", "maybe"}, badBool},
		{[]string{"tls-skip-verify", "maybe"}, badBool},
		{[]string{"agent-run-as-same-user", "maybe"}, badBool},
		{[]string{"agent-set-security-context", "maybe"}, badBool},
		{[]string{"agent-cache-enable", "maybe"}, badBool},
		{[]string{"agent-cache-exit-on-err", "maybe"}, badBool},
		{[]string{"agent-inject-token", "maybe"}, badBool},
		{[]string{"template-config-exit-on-retry-failure", "maybe"}, badBool},
		{[]string{"agent-enable-quit", "maybe"}, badBool},
		{[]string{"agent-auto-auth-exit-on-err", "maybe"}, badBool},
		{[]string{"agent-inject-secret-db", "kv/db", "error-on-missing-key-db", "maybe"}, badBool},
		{[]string{"agent-share-process-namespace", "maybe"},
			`error creating new agent sidecar: invalid value maybe for annotation "vault.hashicorp.com/agent-share-process-namespace", err=cannot parse '' as bool: strconv.ParseBool: parsing "maybe": invalid syntax`},
		{[]string{"agent-revoke-grace", "soon"}, `error creating new agent sidecar: strconv.ParseUint: parsing "soon": invalid syntax`},
		{[]string{"agent-revoke-grace", "-1"}, `error creating new agent sidecar: strconv.ParseUint: parsing "-1": invalid syntax`},
		{[]string{"agent-revoke-grace", ""}, `error creating new agent sidecar: strconv.ParseUint: parsing "": invalid syntax`},
		{[]string{"agent-run-as-user", "root"}, `error creating new agent sidecar: strconv.ParseInt: parsing "root": invalid syntax`},
		{[]string{"agent-run-as-group", "1.5"}, `error creating new agent sidecar: strconv.ParseInt: parsing "1.5": invalid syntax`},
		{[]string{"template-max-connections-per-host", "many"}, `error creating new agent sidecar: strconv.ParseInt: parsing "many": invalid syntax`},
		{[]string{"template-lease-renewal-threshold", "half"}, `error creating new agent sidecar: strconv.ParseFloat: parsing "half": invalid syntax`},
		{[]string{"template-lease-renewal-threshold", ""}, `error creating new agent sidecar: strconv.ParseFloat: parsing "": invalid syntax`},
		{[]string{"agent-inject-default-template", "yaml"}, "error creating new agent sidecar: invalid default template type: yaml"},
		{[]string{"agent-inject-default-template", ""}, "error creating new agent sidecar: invalid default template type: "},
		{[]string{"auth-min-backoff", "1"}, `error adding default annotations: error parsing min backoff as duration: time: missing unit in duration "1"`},
		{[]string{"auth-max-backoff", "soon"}, `error adding default annotations: error parsing max backoff as duration: time: invalid duration "soon"`},
		{[]string{"agent-limits-cpu", "lots"}, "error creating patch for agent: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"},
		{[]string{"agent-requests-mem", "1 GiB"}, "error creating patch for agent: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"},
	} {
		t.Run(strings.Join(tc.kv, "="), func(t *testing.T) {
			a, err := Parse(withRole(tc.kv...), testDefaults)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Parse = %v, %v; want error %q", a, err, tc.want)
			}
		})
	}

	// Values vault-k8s accepts although they look wrong.
	for _, kv := range [][]string{
		{"agent-run-as-user", ""},                           // "" is 0
		{"template-max-connections-per-host", ""},           // "" is 0
		{"auth-min-backoff", ""},                            // an empty backoff is not checked
		{"agent-limits-cpu", ""},                            // an empty quantity is no limit
		{"preserve-secret-case", "maybe"},                   // read as false, never reported
		{"template-static-secret-render-interval", "often"}, // passed to the agent unchecked
		{"agent-inject-perms-db", "rw-r--r--"},              // passed to the agent unchecked (see Files)
		// No init container and no sidecar: vault-k8s builds no container, so checks no resources.
		{"agent-pre-populate", "false", "agent-pre-populate-only", "true", "agent-limits-cpu", "lots"},
	} {
		if _, err := Parse(withRole(kv...), testDefaults); err != nil {
			t.Errorf("Parse(%v): %v", kv, err)
		}
	}
	// The injector's own backoffs are copied without a check.
	d := testDefaults
	d.AuthMaxBackoff = "soon"
	if a, err := Parse(withRole(), d); err != nil || a.AuthMaxBackoff != "soon" {
		t.Errorf("injector backoff: %v, %v", a, err)
	}
}

func TestParseAuth(t *testing.T) {
	tok := apiAccess.Path()
	for _, tc := range []struct {
		name  string
		ann   map[string]string
		d     func(*Defaults)
		check func(*Agent) any
		want  any
	}{
		{"default auth path", withRole(), nil, func(a *Agent) any { return a.AuthPath }, "auth/kubernetes"},
		{"injector's auth path", withRole(), func(d *Defaults) { d.AuthPath = "auth/k8s-a" }, func(a *Agent) any { return a.AuthPath }, "auth/k8s-a"},
		{"annotation wins", withRole("auth-path", "auth/other"), func(d *Defaults) { d.AuthPath = "auth/k8s-a" }, func(a *Agent) any { return a.AuthPath }, "auth/other"},
		// vault-k8s does not normalise: a trailing slash stays, a missing auth/ is not added.
		{"trailing slash kept", withRole("auth-path", "auth/k8s/"), nil, func(a *Agent) any { return a.AuthPath }, "auth/k8s/"},
		{"login path trims one slash", withRole("auth-path", "auth/k8s/"), nil, func(a *Agent) any { return a.LoginPath() }, "auth/k8s/login"},
		{"no auth/ prefix added", withRole("auth-path", "kubernetes"), nil, func(a *Agent) any { return a.LoginPath() }, "kubernetes/login"},
		{"default auth type", withRole(), nil, func(a *Agent) any { return a.AuthType }, "kubernetes"},
		{"injector's auth type", ann("role", "r"), func(d *Defaults) { d.AuthType = "jwt" }, func(a *Agent) any { return a.AuthType }, "jwt"},
		{"role and token path", withRole(), nil, func(a *Agent) any { return a.AuthConfig }, map[string]any{"role": "r", "token_path": tok}},
		{"auth-config params, dashes to underscores", withRole("auth-config-token-path", "/t", "auth-config-some-thing", "v"), nil,
			func(a *Agent) any { return a.AuthConfig }, map[string]any{"role": "r", "token_path": "/t", "some_thing": "v"}},
		{"role annotation beats auth-config-role", withRole("auth-config-role", "other"), nil,
			func(a *Agent) any { return a.AuthConfig["role"] }, "r"},
		{"auth-config-role alone", ann("auth-config-role", "other"), nil, func(a *Agent) any { return a.AuthConfig["role"] }, "other"},
		{"vault namespace", withRole("namespace", "team"), nil, func(a *Agent) any { return a.VaultNamespace }, "team"},
		{"injector's vault namespace", withRole(), func(d *Defaults) { d.VaultNamespace = "eng" }, func(a *Agent) any { return a.VaultNamespace }, "eng"},
		{"backoffs", withRole("auth-min-backoff", "1s", "auth-max-backoff", "1m"), nil,
			func(a *Agent) any { return [2]string{a.AuthMinBackoff, a.AuthMaxBackoff} }, [2]string{"1s", "1m"}},
		{"injector's backoffs", withRole(), func(d *Defaults) { d.AuthMinBackoff, d.AuthMaxBackoff = "3s", "3m" },
			func(a *Agent) any { return [2]string{a.AuthMinBackoff, a.AuthMaxBackoff} }, [2]string{"3s", "3m"}},
		{"auto-auth exit on error", withRole("agent-auto-auth-exit-on-err", "true"), nil, func(a *Agent) any { return a.AutoAuthExitOnError }, true},
		{"service overrides the address", withRole("service", "https://other:8200"), nil, func(a *Agent) any { return a.Address }, "https://other:8200"},
		{"TLS settings", withRole("ca-cert", "/ca.crt", "ca-key", "/cadir", "client-cert", "/c.crt", "client-key", "/c.key", "tls-server-name", "v", "tls-skip-verify", "1", "tls-secret", "s"), nil,
			func(a *Agent) any {
				return []any{a.CACert, a.CAPath, a.ClientCert, a.ClientKey, a.TLSServerName, a.TLSSkipVerify, a.TLSSecret}
			}, []any{"/ca.crt", "/cadir", "/c.crt", "/c.key", "v", true, "s"}},
		{"CA bytes from the injector", withRole(), func(d *Defaults) { d.CACertBytes = "PEM" }, func(a *Agent) any { return a.CACertBytes }, "PEM"},
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
			if got := tc.check(a); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestParseSecrets(t *testing.T) {
	const kvPath = "secret/data/production/db-credentials"
	for _, tc := range []struct {
		name string
		ann  map[string]string
		d    func(*Defaults)
		want []Secret
	}{
		{"none", withRole(), nil, []Secret{}},
		{"path only", withRole("agent-inject-secret-db", kvPath), nil,
			[]Secret{{Name: "db", RawName: "db", Path: kvPath, MountPath: "/vault/secrets"}}},
		{"uppercase name is lowercased; its annotations use the raw name", withRole(
			"agent-inject-secret-DB-Creds", kvPath,
			"agent-inject-template-DB-Creds", "T",
			"agent-inject-template-db-creds", "ignored: not the raw name",
			"agent-inject-file-DB-Creds", "f"), nil,
			[]Secret{{Name: "db-creds", RawName: "DB-Creds", Path: kvPath, Template: "T", MountPath: "/vault/secrets", File: "f"},
				// The lowercase template names a second secret of its own, with no path.
				{Name: "db-creds", RawName: "db-creds", Template: "ignored: not the raw name", MountPath: "/vault/secrets"}}},
		{"preserve-secret-case for all", withRole("agent-inject-secret-DB", "p", "preserve-secret-case", "true"), nil,
			[]Secret{{Name: "DB", RawName: "DB", Path: "p", MountPath: "/vault/secrets"}}},
		{"preserve-secret-case per secret wins", withRole("agent-inject-secret-DB", "p", "agent-inject-secret-Api", "q",
			"preserve-secret-case", "true", "preserve-secret-case-Api", "false"), nil,
			[]Secret{{Name: "api", RawName: "Api", Path: "q", MountPath: "/vault/secrets"}, {Name: "DB", RawName: "DB", Path: "p", MountPath: "/vault/secrets"}}},
		{"preserve-secret-case that does not parse lowercases", withRole("agent-inject-secret-DB", "p", "preserve-secret-case", "yes"), nil,
			[]Secret{{Name: "db", RawName: "DB", Path: "p", MountPath: "/vault/secrets"}}},
		{"a template alone names a secret", withRole("agent-inject-template-cfg", "static"), nil,
			[]Secret{{Name: "cfg", RawName: "cfg", Template: "static", MountPath: "/vault/secrets"}}},
		{"a template file alone names a secret", withRole("agent-inject-template-file-cfg", "/t.ctmpl"), nil,
			[]Secret{{Name: "cfg", RawName: "cfg", TemplateFile: "/t.ctmpl", MountPath: "/vault/secrets"}}},
		{"template-file-X names X, not file-X", withRole("agent-inject-secret-x", "p", "agent-inject-template-file-x", "/t"), nil,
			[]Secret{{Name: "x", RawName: "x", Path: "p", TemplateFile: "/t", MountPath: "/vault/secrets"}}},
		{"a template wins over a template file", withRole("agent-inject-secret-x", "p", "agent-inject-template-x", "T", "agent-inject-template-file-x", "/t"), nil,
			[]Secret{{Name: "x", RawName: "x", Path: "p", Template: "T", MountPath: "/vault/secrets"}}},
		{"blank values name no secret", withRole("agent-inject-secret-a", " ", "agent-inject-template-b", "", "agent-inject-file-c", "f"), nil,
			[]Secret{}},
		{"a blank path is kept when a template names the secret", withRole("agent-inject-secret-a", " ", "agent-inject-template-a", "T"), nil,
			[]Secret{{Name: "a", RawName: "a", Path: " ", Template: "T", MountPath: "/vault/secrets"}}},
		{"an empty name is no secret", withRole("agent-inject-secret-", "p"), nil, []Secret{}},
		// agent-inject-template-file- with nothing after it is, to the next prefix, the template
		// of a secret named "file-".
		{"empty template-file name falls through to template", withRole("agent-inject-template-file-", "T"), nil,
			[]Secret{{Name: "file-", RawName: "file-", Template: "T", MountPath: "/vault/secrets"}}},
		{"per-secret settings", withRole("agent-inject-secret-db", "p",
			"agent-inject-file-db", "sub/db.env", "agent-inject-perms-db", "0400",
			"secret-volume-path-db", "/etc/db", "agent-inject-command-db", "kill -HUP 1",
			"error-on-missing-key-db", "true", "agent-template-left-delim-db", "[[", "agent-template-right-delim-db", "]]"), nil,
			[]Secret{{Name: "db", RawName: "db", Path: "p", MountPath: "/etc/db", Command: "kill -HUP 1", File: "sub/db.env",
				Perms: "0400", LeftDelim: "[[", RightDelim: "]]", ErrorOnMissingKey: true}}},
		{"error-on-missing-key false and empty", withRole("agent-inject-secret-a", "p", "error-on-missing-key-a", "false",
			"agent-inject-secret-b", "q", "error-on-missing-key-b", ""), nil,
			[]Secret{{Name: "a", RawName: "a", Path: "p", MountPath: "/vault/secrets"}, {Name: "b", RawName: "b", Path: "q", MountPath: "/vault/secrets"}}},
		{"pod-wide secret-volume-path", withRole("agent-inject-secret-a", "p", "secret-volume-path", "/etc/secrets"), nil,
			[]Secret{{Name: "a", RawName: "a", Path: "p", MountPath: "/etc/secrets"}}},
		{"sorted by raw name", withRole("agent-inject-secret-b", "2", "agent-inject-secret-A", "1", "agent-inject-secret-a", "3"), nil,
			[]Secret{{Name: "a", RawName: "A", Path: "1", MountPath: "/vault/secrets"}, {Name: "a", RawName: "a", Path: "3", MountPath: "/vault/secrets"},
				{Name: "b", RawName: "b", Path: "2", MountPath: "/vault/secrets"}}},
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
			if !reflect.DeepEqual(a.Secrets, tc.want) {
				t.Fatalf("secrets:\n got %+v\nwant %+v", a.Secrets, tc.want)
			}
		})
	}
}

func TestParseContainersAndFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ann   map[string]string
		d     func(*Defaults)
		check func(*Agent) any
		want  any
	}{
		{"defaults: init container and sidecar", withRole(), nil,
			func(a *Agent) any { return [3]bool{a.PrePopulate, a.PrePopulateOnly, a.InitFirst} }, [3]bool{true, false, false}},
		{"pre-populate-only", withRole("agent-pre-populate-only", "true"), nil,
			func(a *Agent) any { return [3]bool{a.PrePopulate, a.PrePopulateOnly, a.InitFirst} }, [3]bool{true, true, false}},
		{"no pre-populate", withRole("agent-pre-populate", "false"), nil,
			func(a *Agent) any { return [3]bool{a.PrePopulate, a.PrePopulateOnly, a.InitFirst} }, [3]bool{false, false, false}},
		{"init-first", withRole("agent-init-first", "true"), nil,
			func(a *Agent) any { return [3]bool{a.PrePopulate, a.PrePopulateOnly, a.InitFirst} }, [3]bool{true, false, true}},
		{"inject-containers absent", withRole(), nil, func(a *Agent) any { return a.Containers }, []string(nil)},
		{"inject-containers split, not trimmed", withRole("agent-inject-containers", "app, worker"), nil,
			func(a *Agent) any { return a.Containers }, []string{"app", " worker"}},
		{"inject-containers empty", withRole("agent-inject-containers", ""), nil, func(a *Agent) any { return a.Containers }, []string{""}},
		{"default template", withRole(), nil, func(a *Agent) any { return a.DefaultTemplate }, "map"},
		{"default template annotation, lowercased", withRole("agent-inject-default-template", "JSON"), nil, func(a *Agent) any { return a.DefaultTemplate }, "json"},
		{"injector's default template", withRole(), func(d *Defaults) { d.DefaultTemplate = "json" }, func(a *Agent) any { return a.DefaultTemplate }, "json"},
		{"annotation beats injector's template", withRole("agent-inject-default-template", "map"), func(d *Defaults) { d.DefaultTemplate = "json" },
			func(a *Agent) any { return a.DefaultTemplate }, "map"},
		{"cache off", withRole(), nil, func(a *Agent) any { return [2]bool{a.CacheEnable, a.CachePersist} }, [2]bool{false, false}},
		{"cache persisted with init and sidecar", withRole("agent-cache-enable", "true"), nil,
			func(a *Agent) any { return [2]bool{a.CacheEnable, a.CachePersist} }, [2]bool{true, true}},
		{"cache not persisted without init", withRole("agent-cache-enable", "true", "agent-pre-populate", "false"), nil,
			func(a *Agent) any { return [2]bool{a.CacheEnable, a.CachePersist} }, [2]bool{true, false}},
		{"cache not persisted without sidecar", withRole("agent-cache-enable", "true", "agent-pre-populate-only", "true"), nil,
			func(a *Agent) any { return [2]bool{a.CacheEnable, a.CachePersist} }, [2]bool{true, false}},
		{"cache settings", withRole("agent-cache-listener-port", "8100", "agent-cache-use-auto-auth-token", "force", "agent-cache-exit-on-err", "true"), nil,
			func(a *Agent) any { return []any{a.CacheListenerPort, a.CacheUseAutoAuth, a.CacheExitOnErr} }, []any{"8100", "force", true}},
		{"cache defaults", withRole(), nil,
			func(a *Agent) any { return []any{a.CacheListenerPort, a.CacheUseAutoAuth, a.CacheExitOnErr} }, []any{"8200", "true", false}},
		{"template config defaults", withRole(), nil,
			func(a *Agent) any {
				return []any{a.ExitOnRetryFailure, a.StaticSecretRenderInterval, a.MaxConnectionsPerHost, a.LeaseRenewalThreshold}
			}, []any{true, "", int64(0), 0.0}},
		{"template config annotations", withRole("template-config-exit-on-retry-failure", "false", "template-static-secret-render-interval", "2s",
			"template-max-connections-per-host", "3", "template-lease-renewal-threshold", "0.5"), nil,
			func(a *Agent) any {
				return []any{a.ExitOnRetryFailure, a.StaticSecretRenderInterval, a.MaxConnectionsPerHost, a.LeaseRenewalThreshold}
			}, []any{false, "2s", int64(3), 0.5}},
		{"injector's template config", withRole(), func(d *Defaults) {
			f := false
			d.ExitOnRetryFailure, d.StaticSecretRenderInterval, d.MaxConnectionsPerHost = &f, "1m", 9
		}, func(a *Agent) any {
			return []any{a.ExitOnRetryFailure, a.StaticSecretRenderInterval, a.MaxConnectionsPerHost}
		}, []any{false, "1m", int64(9)}},
		{"connection lists, split untrimmed", withRole("agent-disable-idle-connections", "auto-auth, caching", "agent-disable-keep-alives", "templating"), nil,
			func(a *Agent) any { return [][]string{a.DisableIdleConnections, a.DisableKeepAlives} }, [][]string{{"auto-auth", " caching"}, {"templating"}}},
		{"injector's connection lists", withRole(), func(d *Defaults) { d.DisableIdleConnections = "caching" },
			func(a *Agent) any { return [][]string{a.DisableIdleConnections, a.DisableKeepAlives} }, [][]string{{"caching"}, nil}},
		{"token, quit", withRole("agent-inject-token", "true", "agent-enable-quit", "true"), nil,
			func(a *Agent) any { return [2]bool{a.InjectToken, a.EnableQuit} }, [2]bool{true, true}},
		{"environment defaults", withRole(), nil,
			func(a *Agent) any {
				return []string{a.LogLevel, a.LogFormat, a.GoMaxProcs, a.ClientTimeout, a.ClientMaxRetries, a.ProxyAddress}
			},
			[]string{"info", "standard", "", "", "", ""}},
		{"environment annotations", withRole("log-level", "debug", "log-format", "json", "go-max-procs", "2", "client-timeout", "5s",
			"client-max-retries", "3", "proxy-address", "http://p:3128"), nil,
			func(a *Agent) any {
				return []string{a.LogLevel, a.LogFormat, a.GoMaxProcs, a.ClientTimeout, a.ClientMaxRetries, a.ProxyAddress}
			},
			[]string{"debug", "json", "2", "5s", "3", "http://p:3128"}},
		{"injector's proxy", withRole(), func(d *Defaults) { d.ProxyAddress = "http://q:1" }, func(a *Agent) any { return a.ProxyAddress }, "http://q:1"},
		{"revoke defaults", withRole(), nil, func(a *Agent) any { return []any{a.RevokeOnShutdown, a.RevokeGrace} }, []any{false, uint64(5)}},
		{"revoke annotations", withRole("agent-revoke-on-shutdown", "true", "agent-revoke-grace", "9"), nil,
			func(a *Agent) any { return []any{a.RevokeOnShutdown, a.RevokeGrace} }, []any{true, uint64(9)}},
		{"injector revokes", withRole(), func(d *Defaults) { d.RevokeOnShutdown = true }, func(a *Agent) any { return a.RevokeOnShutdown }, true},
		{"secret volume path default", withRole(), nil, func(a *Agent) any { return a.SecretVolumePath }, "/vault/secrets"},
		{"nothing unsupported", withRole(), nil, func(a *Agent) any { return a.Unsupported }, []string(nil)},
		{"unsupported listed, sorted", withRole("agent-telemetry-prometheus_retention_time", "30s", "agent-extra-secret", "s",
			"agent-copy-volume-mounts", "app", "agent-json-patch", `[{"op":"remove","path":"/x"}]`, "agent-init-json-patch", "", "auth-type", "aws"), nil,
			func(a *Agent) any { return a.Unsupported }, []string{Prefix + "agent-copy-volume-mounts", Prefix + "agent-extra-secret",
				Prefix + "agent-json-patch", Prefix + "agent-telemetry-prometheus_retention_time", Prefix + "auth-type"}},
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
			if got := tc.check(a); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}
