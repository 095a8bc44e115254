package agentinject

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
)

// Paths inside the agent containers (vault-k8s config.go and container_volume.go constants).
const (
	// HomeDir is each agent container's own memory volume (home-init, home-sidecar): it holds
	// the configuration file, the pid file and the token sink.
	HomeDir        = "/home/vault"
	PidFile        = HomeDir + "/.pid"
	TokenSink      = HomeDir + "/.vault-token"
	ConfigFile     = HomeDir + "/config.json"
	CacheDir       = "/vault/agent-cache" // the persistent cache, shared by init and sidecar
	TLSDir         = "/vault/tls"         // where tls-secret is mounted
	defaultLeft    = "{{"
	defaultRight   = "}}"
	persistKind    = "kubernetes"
	sinkKindFile   = "file"
	listenerKind   = "tcp"
	listenerPrefix = "127.0.0.1:"
)

// The agent configuration vault-k8s emits, as JSON (config.go Config and its parts). Field
// order and omitempty decide the bytes, so they follow what vault-k8s marshals; fields it
// declares but never sets (wrap_ttl, dh_type, create_dest_dirs, keep_after_import, ...) are left
// out, since omitempty drops them there too. The telemetry stanza is not modelled (Unsupported).
type config struct {
	AutoAuth       *autoAuth       `json:"auto_auth"`
	ExitAfterAuth  bool            `json:"exit_after_auth"`
	PidFile        string          `json:"pid_file"`
	Vault          *vaultStanza    `json:"vault"`
	Templates      []*template     `json:"template,omitempty"`
	Listeners      []*listener     `json:"listener,omitempty"`
	Cache          *cache          `json:"cache,omitempty"`
	TemplateConfig *templateConfig `json:"template_config,omitempty"`
	DisableIdle    []string        `json:"disable_idle_connections,omitempty"`
	DisableKA      []string        `json:"disable_keep_alives,omitempty"`
}

type vaultStanza struct {
	Address       string `json:"address"`
	CACert        string `json:"ca_cert,omitempty"`
	CAPath        string `json:"ca_path,omitempty"`
	TLSSkipVerify bool   `json:"tls_skip_verify,omitempty"`
	ClientCert    string `json:"client_cert,omitempty"`
	ClientKey     string `json:"client_key,omitempty"`
	TLSServerName string `json:"tls_server_name,omitempty"`
}

type autoAuth struct {
	Method *method `json:"method,omitempty"`
	Sinks  []*sink `json:"sink,omitempty"`
}

type method struct {
	Type       string         `json:"type"`
	MountPath  string         `json:"mount_path,omitempty"`
	MinBackoff string         `json:"min_backoff,omitempty"`
	MaxBackoff string         `json:"max_backoff,omitempty"`
	Namespace  string         `json:"namespace,omitempty"`
	Config     map[string]any `json:"config,omitempty"`
	ExitOnErr  bool           `json:"exit_on_err,omitempty"`
}

type sink struct {
	Type   string         `json:"type"`
	Config map[string]any `json:"config,omitempty"`
}

type template struct {
	Destination   string `json:"destination"`
	Contents      string `json:"contents,omitempty"`
	LeftDelim     string `json:"left_delimiter,omitempty"`
	RightDelim    string `json:"right_delimiter,omitempty"`
	Command       string `json:"command,omitempty"`
	Source        string `json:"source,omitempty"`
	Perms         string `json:"perms,omitempty"`
	ErrMissingKey bool   `json:"error_on_missing_key,omitempty"`
}

type listener struct {
	Type       string    `json:"type"`
	Address    string    `json:"address"`
	TLSDisable bool      `json:"tls_disable"`
	AgentAPI   *agentAPI `json:"agent_api,omitempty"`
}

type agentAPI struct {
	EnableQuit bool `json:"enable_quit"`
}

type cache struct {
	UseAutoAuthToken string        `json:"use_auto_auth_token,omitempty"`
	Persist          *cachePersist `json:"persist,omitempty"`
}

type cachePersist struct {
	Type      string `json:"type"`
	Path      string `json:"path"`
	ExitOnErr bool   `json:"exit_on_err,omitempty"`
}

type templateConfig struct {
	ExitOnRetryFailure         bool    `json:"exit_on_retry_failure"`
	StaticSecretRenderInterval string  `json:"static_secret_render_interval,omitempty"`
	MaxConnectionsPerHost      int64   `json:"max_connections_per_host,omitempty"`
	LeaseRenewalThreshold      float64 `json:"lease_renewal_threshold,omitempty"`
}

// Config is the Vault Agent configuration vault-k8s gives the init container (init true:
// exit_after_auth, so the agent renders every template once and exits) or the sidecar. It is
// JSON, byte for byte what vault-k8s config.go newConfig marshals (it reaches the container
// base64-encoded in VAULT_CONFIG; see Env).
func (a *Agent) Config(init bool) ([]byte, error) {
	if a.ConfigMap != "" {
		return nil, fmt.Errorf("%s is set: the agent configuration is the ConfigMap %q's, not one the injector builds", annConfigMap, a.ConfigMap)
	}
	c := config{
		PidFile:       PidFile,
		ExitAfterAuth: init,
		// newConfig: ca-key becomes ca_path.
		Vault: &vaultStanza{
			Address:       a.Address,
			CACert:        a.CACert,
			CAPath:        a.CAPath,
			TLSSkipVerify: a.TLSSkipVerify,
			ClientCert:    a.ClientCert,
			ClientKey:     a.ClientKey,
			TLSServerName: a.TLSServerName,
		},
		AutoAuth: &autoAuth{
			// The mount path is the auth-path annotation as written.
			Method: &method{
				Type:       a.AuthType,
				MountPath:  a.AuthPath,
				MinBackoff: a.AuthMinBackoff,
				MaxBackoff: a.AuthMaxBackoff,
				Namespace:  a.VaultNamespace,
				Config:     a.AuthConfig,
				ExitOnErr:  a.AutoAuthExitOnError,
			},
			// One file sink, the token in the container's home.
			Sinks: []*sink{{Type: sinkKindFile, Config: map[string]any{"path": TokenSink}}},
		},
		Templates: a.templates(),
		// newConfig always writes template_config, so exit_on_retry_failure is always there.
		TemplateConfig: &templateConfig{
			ExitOnRetryFailure:         a.ExitOnRetryFailure,
			StaticSecretRenderInterval: a.StaticSecretRenderInterval,
			MaxConnectionsPerHost:      a.MaxConnectionsPerHost,
			LeaseRenewalThreshold:      a.LeaseRenewalThreshold,
		},
		DisableIdle: a.DisableIdleConnections,
		DisableKA:   a.DisableKeepAlives,
	}

	// agent-inject-token: a second sink writes the token next to the secrets (path.Join, on the
	// pod-wide secret-volume-path, not a per-secret one).
	if a.InjectToken {
		c.AutoAuth.Sinks = append(c.AutoAuth.Sinks, &sink{
			Type:   sinkKindFile,
			Config: map[string]any{"path": path.Join(a.SecretVolumePath, "token")},
		})
	}

	// newConfig: a persisted cache goes in both configurations; a plain cache only in the
	// sidecar's, and never with pre-populate-only.
	switch {
	case a.CachePersist:
		c.Listeners = a.cacheListener()
		c.Cache = &cache{
			UseAutoAuthToken: a.CacheUseAutoAuth,
			Persist:          &cachePersist{Type: persistKind, Path: CacheDir, ExitOnErr: a.CacheExitOnErr},
		}
	case a.CacheEnable && !a.PrePopulateOnly && !init:
		c.Listeners = a.cacheListener()
		c.Cache = &cache{UseAutoAuthToken: a.CacheUseAutoAuth}
	}

	// newConfig: agent-enable-quit puts the quit API on the first listener, making one (and an
	// empty cache stanza, which a listener needs) when there is none.
	if a.EnableQuit {
		if len(c.Listeners) == 0 {
			c.Listeners = a.cacheListener()
		}
		c.Listeners[0].AgentAPI = &agentAPI{EnableQuit: true}
		if c.Cache == nil {
			c.Cache = &cache{}
		}
	}

	// config.go render: json.Marshal, HTML escaping included (a template's "<" is \u003c).
	return json.Marshal(c)
}

// cacheListener is config.go makeCacheListener.
func (a *Agent) cacheListener() []*listener {
	return []*listener{{Type: listenerKind, Address: listenerPrefix + a.CacheListenerPort, TLSDisable: true}}
}

// templates is config.go newTemplateConfigs: one template stanza per secret, in Secrets order.
func (a *Agent) templates() []*template {
	var out []*template
	for _, s := range a.Secrets {
		t := &template{
			Destination:   s.Destination(),
			Contents:      a.Contents(s),
			Source:        s.TemplateFile,
			LeftDelim:     s.LeftDelim,
			RightDelim:    s.RightDelim,
			Command:       s.Command,
			Perms:         s.Perms, // verbatim; the agent parses it (see Files)
			ErrMissingKey: s.ErrorOnMissingKey,
		}
		// Unset delimiters are written out as the defaults.
		if t.LeftDelim == "" {
			t.LeftDelim = defaultLeft
		}
		if t.RightDelim == "" {
			t.RightDelim = defaultRight
		}
		out = append(out, t)
	}
	return out
}

// Destination is where the agent renders the secret (config.go newTemplateConfigs): the mount
// path and the secret's name joined by a plain "/" (so a mount path ending in "/" gives "//"),
// or, with agent-inject-file, the mount path and that file joined with filepath.Join (cleaned,
// and the file may hold directories).
func (s Secret) Destination() string {
	if s.File != "" {
		return filepath.Join(s.MountPath, s.File)
	}
	return s.MountPath + "/" + s.Name
}

// Contents is the template the agent renders for a secret (config.go newTemplateConfigs): its
// own template; else, when it names no template file, the default template of the pod's
// default-template type around the secret's path. The path is put between the quotes as
// written, unescaped. With a template file, Contents is empty and the agent reads the file.
func (a *Agent) Contents(s Secret) string {
	if s.Template != "" || s.TemplateFile != "" {
		return s.Template
	}
	open := `{{ with secret "` + s.Path + `" }}`
	if a.DefaultTemplate == "json" {
		// The secret's data as one JSON document and a newline.
		return open + "{{ .Data | toJSON }}\n{{ end }}"
	}
	// map: one "key: value" line per key of .Data. For KV v2 .Data holds "data" and
	// "metadata", so the file has those two lines, each a Go map printed by text/template.
	return open + "{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}"
}
