// Package agentinject decides, from a pod's vault.hashicorp.com/ annotations, what the Vault
// Agent Injector would inject: the Vault Agent configuration of the init container and of the
// sidecar, the files they render and the volumes those files live in. It mirrors
// hashicorp/vault-k8s v1.7.x (read at v1.7.6) rule by rule, without its code, so the sandbox can
// run a real Vault Agent for a pod that no real injector mutated; each rule names where in
// vault-k8s it comes from.
//
// It is test infrastructure: only the sandbox uses it, never cmd/vaultctl.
package agentinject

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Injector defaults, as vault-k8s v1.7.6 ships them (agent-inject/agent/agent.go constants,
// subcommand/injector/flags.go flag defaults).
const (
	DefaultAuthType         = "kubernetes"
	DefaultAuthPath         = "auth/kubernetes"
	DefaultSecretVolumePath = "/vault/secrets" // container_volume.go secretVolumePath
	defaultImage            = "hashicorp/vault:2.0.4"
	defaultTemplateType     = "map"
	defaultListenerPort     = "8200"
	defaultRevokeGrace      = "5"
	defaultLogLevel         = "info"
	defaultLogFormat        = "standard"
	defaultRunAsUser        = "100"
	defaultRunAsGroup       = "1000"
	// flags.go: -cpu-limit, -memory-limit, -cpu-request, -memory-request.
	defaultLimitsCPU   = "500m"
	defaultLimitsMem   = "128Mi"
	defaultRequestsCPU = "250m"
	defaultRequestsMem = "64Mi"
)

// Defaults is what the injector knows that is not in the pod's annotations: its own flags (the
// injector Deployment's AGENT_INJECT_* environment) and the admission request. Zero values mean
// the injector's flag defaults.
type Defaults struct {
	// Address is -vault-address (AGENT_INJECT_VAULT_ADDR); required.
	Address string
	// CACertBytes is -vault-cacert-bytes (AGENT_INJECT_VAULT_CACERT_BYTES): PEM, or base64 of PEM.
	// vault-k8s does not put it in the agent configuration: the agent gets it as the
	// VAULT_CACERT_BYTES environment variable (see Env). A CA *path* reaches the configuration
	// only through the pod's vault.hashicorp.com/ca-cert annotation.
	CACertBytes string
	// Namespace is the admission request's namespace: the pod's; required.
	Namespace string
	// Token is the pod's ServiceAccount token volume as the injector finds it in the pod spec
	// (ServiceAccountToken); required, as vault-k8s refuses a pod without one.
	Token TokenVolume
	// AuthType is -vault-auth-type; "" is "kubernetes".
	AuthType string
	// AuthPath is -vault-auth-path; "" is "auth/kubernetes".
	AuthPath string
	// VaultNamespace is -vault-namespace (Vault Enterprise).
	VaultNamespace string
	// ProxyAddress is -proxy-address.
	ProxyAddress string
	// DefaultTemplate is -default-template; "" is "map".
	DefaultTemplate string
	// ExitOnRetryFailure is -template-config-exit-on-retry-failure; nil is true.
	ExitOnRetryFailure *bool
	// StaticSecretRenderInterval is -template-static-secret-render-interval.
	StaticSecretRenderInterval string
	// MaxConnectionsPerHost is -template-max-connections-per-host.
	MaxConnectionsPerHost int64
	// AuthMinBackoff and AuthMaxBackoff are -auth-min-backoff and -auth-max-backoff.
	AuthMinBackoff, AuthMaxBackoff string
	// DisableIdleConnections and DisableKeepAlives are the comma-separated flags of those names.
	DisableIdleConnections, DisableKeepAlives string
	// RevokeOnShutdown is -revoke-on-shutdown.
	RevokeOnShutdown bool
	// Image is -vault-image (AGENT_INJECT_VAULT_IMAGE): the agent containers' image; "" is
	// hashicorp/vault:2.0.4.
	Image string
	// RunAsUser and RunAsGroup are -run-as-user and -run-as-group; "" is 100 and 1000.
	RunAsUser, RunAsGroup string
	// RunAsSameUser is -run-as-same-user.
	RunAsSameUser bool
	// SetSecurityContext is -set-security-context; nil is true.
	SetSecurityContext *bool
	// The agent containers' resources: -cpu-limit, -memory-limit, -ephemeral-storage-limit,
	// -cpu-request, -memory-request, -ephemeral-storage-request (AGENT_INJECT_CPU_LIMIT, ...);
	// "" is the flag default (500m, 128Mi, none, 250m, 64Mi, none).
	LimitCPU, LimitMem, LimitEphemeral       string
	RequestCPU, RequestMem, RequestEphemeral string
	// There is no LeaseRenewalThreshold: v1.7.6 parses -template-lease-renewal-threshold but
	// annotations.go Init never copies it into the pod, so only the annotation has an effect.
}

// Agent is what the injector would inject for one pod.
type Agent struct {
	// Namespace is the pod's namespace (the admission request's).
	Namespace string

	// Vault connection (the agent configuration's vault stanza).
	Address       string // service annotation, else Defaults.Address
	CACert        string // ca-cert: a path in the agent container
	CAPath        string // ca-key: vault-k8s emits it as vault.ca_path (config.go newConfig)
	ClientCert    string
	ClientKey     string
	TLSServerName string
	TLSSkipVerify bool
	TLSSecret     string // tls-secret: a Secret the agent containers mount at /vault/tls
	CACertBytes   string // Defaults.CACertBytes, for the environment

	// Auto-auth.
	AuthType            string
	AuthPath            string // verbatim: vault-k8s does not normalise it (see LoginPath)
	Role                string
	VaultNamespace      string
	AuthConfig          map[string]any
	AuthMinBackoff      string
	AuthMaxBackoff      string
	AutoAuthExitOnError bool
	Token               TokenVolume

	// Secrets in the order the templates are emitted.
	Secrets []Secret
	// SecretVolumePath is the shared secrets volume's mount path (secret-volume-path).
	SecretVolumePath string
	// DefaultTemplate is "map" or "json": the template of a secret without its own.
	DefaultTemplate string

	// Containers.
	PrePopulate     bool     // an init container renders before the application starts
	PrePopulateOnly bool     // no sidecar
	InitFirst       bool     // the agent's init container runs before the pod's own
	Containers      []string // agent-inject-containers as split by vault-k8s; nil: every container

	// Cache and listener.
	CacheEnable       bool
	CachePersist      bool
	CacheListenerPort string
	CacheUseAutoAuth  string
	CacheExitOnErr    bool
	EnableQuit        bool
	InjectToken       bool

	// template_config.
	ExitOnRetryFailure         bool
	StaticSecretRenderInterval string
	MaxConnectionsPerHost      int64
	LeaseRenewalThreshold      float64

	DisableIdleConnections []string
	DisableKeepAlives      []string

	// The agent container's environment (container_env.go ContainerEnvVars).
	LogLevel         string
	LogFormat        string
	GoMaxProcs       string
	ClientTimeout    string
	ClientMaxRetries string
	ProxyAddress     string

	RevokeOnShutdown bool
	RevokeGrace      uint64

	// The agent containers themselves (container_sidecar.go): image, resources as the
	// annotations give them ("" is no such resource), and the security context.
	Image                                       string
	LimitsCPU, LimitsMem, LimitsEphemeral       string
	RequestsCPU, RequestsMem, RequestsEphemeral string
	RunAsUser, RunAsGroup                       int64
	SetSecurityContext                          bool
	// ShareProcessNamespace is agent-share-process-namespace when set: the pod's
	// shareProcessNamespace is then patched (with the init container only, as agent.go Patch does).
	ShareProcessNamespace *bool

	// ConfigMap is agent-configmap: the whole agent configuration comes from that ConfigMap,
	// so Config refuses to build one.
	ConfigMap string
	// Unsupported lists, sorted, the annotations this pod sets whose effect the package does
	// not reproduce (see unsupportedAnnotations); a runner should refuse or report such a pod.
	Unsupported []string
}

// Secret is one agent-inject-secret-NAME (or template) and its per-secret annotations.
type Secret struct {
	// Name is the file name: the raw name lowercased unless preserve-secret-case.
	Name string
	// RawName is the annotation suffix as written; the other per-secret annotations use it.
	RawName           string
	Path              string // the Vault path, used by the default template
	Template          string // agent-inject-template-NAME
	TemplateFile      string // agent-inject-template-file-NAME, only when Template is empty
	MountPath         string // secret-volume-path-NAME, else secret-volume-path
	Command           string
	File              string // agent-inject-file-NAME
	Perms             string // agent-inject-perms-NAME, verbatim
	LeftDelim         string
	RightDelim        string
	ErrorOnMissingKey bool
}

// TokenVolume is the ServiceAccount token the agent authenticates with: a volume of the pod, the
// path the agent containers mount it at, and the token file inside it (vault-k8s agent.go
// ServiceAccountTokenVolume).
type TokenVolume struct {
	Name      string
	MountPath string
	TokenPath string
}

// Path is the token file's path in the agent containers.
func (t TokenVolume) Path() string { return path.Join(t.MountPath, t.TokenPath) }

// unsupportedAnnotations have an effect on the injected containers that this package does not
// reproduce (a runner would need more than the agent configuration for them).
var unsupportedAnnotations = []string{
	annConfigMap,     // the whole configuration comes from a ConfigMap
	annExtraSecret,   // a Secret mounted at /vault/custom
	annCopyMounts,    // another container's mounts copied onto the agent
	annJSONPatch,     // JSON patches to the agent containers: neither validated nor applied
	annInitJSONPatch, //
}

// systemNamespaces are the namespaces the injector refuses (vault-k8s handler.go
// kubeSystemNamespaces, checked in Mutate).
var systemNamespaces = []string{"kube-system", "kube-public"}

// Parse returns what the injector would inject into a pod with these annotations, or nil and
// no error when it would leave the pod alone. A non-nil error is the admission error vault-k8s
// would deny the pod's creation with, worded as its handler words it (handler.go Mutate). The
// annotations are not modified.
func Parse(podAnnotations map[string]string, d Defaults) (*Agent, error) {
	return parse(podAnnotations, d, nil)
}

// parse is Parse, with the pod spec when there is one (ParsePod).
func parse(podAnnotations map[string]string, d Defaults, pod *corev1.Pod) (*Agent, error) {
	// Whether to inject: vault-k8s agent.go ShouldInject. No agent-inject annotation, or one that
	// reads false, means no injection; agent-inject-status "injected" (a pod a real injector
	// already mutated) means no second injection. Any other status value is ignored.
	raw, ok := podAnnotations[AnnotationInject]
	if !ok {
		return nil, nil
	}
	inject, err := parseBool(raw)
	if err != nil {
		return nil, fmt.Errorf("error checking if should inject agent: %s", err)
	}
	if !inject || podAnnotations[AnnotationStatus] == "injected" {
		return nil, nil
	}
	// handler.go Mutate refuses the system namespaces before anything else.
	for _, ns := range systemNamespaces {
		if d.Namespace == ns {
			return nil, fmt.Errorf("error with request namespace: cannot inject into system namespaces: %s", ns)
		}
	}

	ann := annotations{}
	for k, v := range podAnnotations {
		ann[k] = v
	}
	if err := applyDefaults(ann, d); err != nil {
		return nil, fmt.Errorf("error adding default annotations: %s", err)
	}
	if pod != nil {
		// Init: agent-inject-containers defaults to every application container.
		names := make([]string, len(pod.Spec.Containers))
		for i, c := range pod.Spec.Containers {
			names[i] = c.Name
		}
		ann.setDefault(annContainers, strings.Join(names, ","))
	}
	a, err := newAgent(ann, d, pod)
	if err != nil {
		return nil, fmt.Errorf("error creating new agent sidecar: %s", err)
	}
	a.CACertBytes = d.CACertBytes // handler.go Mutate sets it after agent.New
	if err := validate(a, ann); err != nil {
		return nil, fmt.Errorf("error validating agent configuration: %s", err)
	}
	if err := checkResources(a, ann); err != nil {
		return nil, fmt.Errorf("error creating patch for agent: %s", err)
	}
	return a, nil
}

// applyDefaults fills in what the pod does not set, as vault-k8s annotations.go Init does before
// anything reads the annotations: each default that something here reads.
func applyDefaults(ann annotations, d Defaults) error {
	// Init's own checks, in its order.
	if d.Address == "" {
		return errors.New("address for Vault required")
	}
	authPath := d.AuthPath
	if authPath == "" {
		authPath = DefaultAuthPath // flags.go -vault-auth-path default
	}
	if d.Namespace == "" {
		return errors.New("kubernetes namespace required")
	}
	authType := d.AuthType
	if authType == "" {
		authType = DefaultAuthType // Init: an empty -vault-auth-type is "kubernetes"
	}
	tmpl := d.DefaultTemplate
	if tmpl == "" {
		tmpl = defaultTemplateType // flags.go -default-template default
	}
	exitOnRetry := true // agent.go DefaultTemplateConfigExitOnRetryFailure
	if d.ExitOnRetryFailure != nil {
		exitOnRetry = *d.ExitOnRetryFailure
	}

	ann.setDefault(annService, d.Address)
	ann.setDefault(annAuthType, authType)
	ann.setDefault(annAuthPath, authPath)
	ann.setDefault(annVaultNS, d.VaultNamespace)
	ann.setDefault(annProxy, d.ProxyAddress)
	ann.setDefault(annImage, orDefault(d.Image, defaultImage))
	ann.setDefault(annRequestNS, d.Namespace)
	ann.setDefault(annLimitsCPU, orDefault(d.LimitCPU, defaultLimitsCPU))
	ann.setDefault(annLimitsMem, orDefault(d.LimitMem, defaultLimitsMem))
	ann.setDefault(annLimitsEph, d.LimitEphemeral)
	ann.setDefault(annRequestsCPU, orDefault(d.RequestCPU, defaultRequestsCPU))
	ann.setDefault(annRequestsMem, orDefault(d.RequestMem, defaultRequestsMem))
	ann.setDefault(annRequestsEph, d.RequestEphemeral)
	ann.setDefault(annSecretVolPath, DefaultSecretVolumePath)
	ann.setDefault(annRevoke, strconv.FormatBool(d.RevokeOnShutdown))
	ann.setDefault(annRevokeGrace, defaultRevokeGrace)
	ann.setDefault(annLogLevel, defaultLogLevel)
	ann.setDefault(annLogFormat, defaultLogFormat)
	// Init: the security context annotations; when the injector sets no security context but
	// the pod asks for a user or group, it gets one anyway.
	setSecCtx := d.SetSecurityContext == nil || *d.SetSecurityContext
	_, secCtxSet := ann.get(annSetSecCtx)
	_, userSet := ann.get(annRunAsUser)
	_, sameSet := ann.get(annRunAsSame)
	_, groupSet := ann.get(annRunAsGroup)
	ann.setDefault(annSetSecCtx, strconv.FormatBool(setSecCtx))
	ann.setDefault(annRunAsUser, orDefault(d.RunAsUser, defaultRunAsUser))
	ann.setDefault(annRunAsSame, strconv.FormatBool(d.RunAsSameUser))
	ann.setDefault(annRunAsGroup, orDefault(d.RunAsGroup, defaultRunAsGroup))
	if !setSecCtx && !secCtxSet && (userSet || sameSet || groupSet) {
		ann[annSetSecCtx] = "true"
	}
	ann.setDefault(annCacheEnable, "false")
	ann.setDefault(annCachePort, defaultListenerPort)
	ann.setDefault(annCacheAutoToken, "true")
	ann.setDefault(annCacheExitOnErr, "false")
	// agent-inject-containers defaults to every container of the pod spec; Parse sees no spec,
	// so an absent annotation stays absent and means "every container" (Agent.Containers nil).
	ann.setDefault(annDefaultTmpl, tmpl)
	ann.setDefault(annExitOnRetry, strconv.FormatBool(exitOnRetry))
	ann.setDefault(annStaticInterval, d.StaticSecretRenderInterval)
	ann.setDefault(annMaxConns, strconv.FormatInt(d.MaxConnectionsPerHost, 10))
	ann.setDefault(annDisableIdle, d.DisableIdleConnections)
	ann.setDefault(annDisableKA, d.DisableKeepAlives)

	// Init checks the backoffs the pod sets (an empty one is ignored) and copies the injector's
	// own without checking them.
	for _, b := range []struct{ key, which, def string }{
		{annMinBackoff, "min", d.AuthMinBackoff},
		{annMaxBackoff, "max", d.AuthMaxBackoff},
	} {
		if v, ok := ann.get(b.key); ok {
			if v != "" {
				if _, err := time.ParseDuration(v); err != nil {
					return fmt.Errorf("error parsing %s backoff as duration: %v", b.which, err)
				}
			}
		} else if b.def != "" {
			ann[b.key] = b.def
		}
	}
	// Init drops an empty JSON patch annotation; a non-empty one is unsupported (Unsupported).
	for _, k := range []string{annJSONPatch, annInitJSONPatch} {
		if v, ok := ann.get(k); ok && v == "" {
			delete(ann, k)
		}
	}
	return nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// newAgent reads the defaulted annotations, in the order of vault-k8s agent.go New, so the first
// bad value is the one reported.
func newAgent(ann annotations, d Defaults, pod *corev1.Pod) (*Agent, error) {
	a := &Agent{
		Namespace:                  d.Namespace,
		Address:                    ann[annService],
		CACert:                     ann[annCACert],
		CAPath:                     ann[annCAKey],
		ClientCert:                 ann[annClientCert],
		ClientKey:                  ann[annClientKey],
		TLSServerName:              ann[annTLSServerName],
		TLSSecret:                  ann[annTLSSecret],
		AuthType:                   ann[annAuthType],
		AuthPath:                   ann[annAuthPath],
		Role:                       ann[annRole],
		VaultNamespace:             ann[annVaultNS],
		AuthMinBackoff:             ann[annMinBackoff],
		AuthMaxBackoff:             ann[annMaxBackoff],
		SecretVolumePath:           ann[annSecretVolPath],
		LogLevel:                   ann[annLogLevel],
		LogFormat:                  ann[annLogFormat],
		GoMaxProcs:                 ann[annGoMaxProcs],
		ClientTimeout:              ann[annClientTimeout],
		ClientMaxRetries:           ann[annMaxRetries],
		ProxyAddress:               ann[annProxy],
		ConfigMap:                  ann[annConfigMap],
		CacheListenerPort:          ann[annCachePort],
		CacheUseAutoAuth:           ann[annCacheAutoToken],
		StaticSecretRenderInterval: ann[annStaticInterval],
		Image:                      ann[annImage],
		LimitsCPU:                  ann[annLimitsCPU],
		LimitsMem:                  ann[annLimitsMem],
		LimitsEphemeral:            ann[annLimitsEph],
		RequestsCPU:                ann[annRequestsCPU],
		RequestsMem:                ann[annRequestsMem],
		RequestsEphemeral:          ann[annRequestsEph],
	}

	// New starts with the token volume (agent.go serviceaccount): found in the pod spec, or
	// given in Defaults by a caller that found it.
	var err error
	if pod != nil {
		if a.Token, err = ServiceAccountToken(pod); err != nil {
			return nil, err
		}
	} else if d.Token == (TokenVolume{}) {
		return nil, errors.New("failed to find service account volume mount")
	} else {
		a.Token = d.Token
	}

	if a.Secrets, err = secrets(ann); err != nil {
		return nil, err
	}
	a.AuthConfig = authConfig(ann, a.Token, a.Role)
	a.Unsupported = unsupported(ann)

	bools := []struct {
		key string
		def bool
		dst *bool
	}{
		// agent.go New, in order; defaults from annotations.go initFirst, prePopulate, ...
		{annInitFirst, false, &a.InitFirst},
		{annPrePopulate, true, &a.PrePopulate},
		{annPrePopOnly, false, &a.PrePopulateOnly},
		{annRevoke, false, &a.RevokeOnShutdown},
	}
	for _, b := range bools {
		if *b.dst, err = ann.boolOr(b.key, b.def); err != nil {
			return nil, err
		}
	}

	// agent.go New: strings.Split of the annotation, no trimming, so "a, b" names " b".
	if v, ok := ann.get(annContainers); ok {
		a.Containers = strings.Split(v, ",")
	}

	// annotations.go revokeGrace: strconv.ParseUint, so an empty annotation is an error.
	if v, ok := ann.get(annRevokeGrace); ok {
		if a.RevokeGrace, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, err
		}
	}
	if a.TLSSkipVerify, err = ann.boolOr(annTLSSkipVerify, false); err != nil {
		return nil, err
	}
	// agent.go New: run-as-user and run-as-group go through parseutil.ParseInt.
	if a.RunAsUser, err = parseInt(ann[annRunAsUser]); err != nil {
		return nil, err
	}
	if a.RunAsGroup, err = parseInt(ann[annRunAsGroup]); err != nil {
		return nil, err
	}
	// annotations.go runAsSameID: a boolean; when true, the first container must run as a
	// non-root uid. Only ParsePod sees the spec to check that.
	same, err := ann.boolOr(annRunAsSame, false)
	if err != nil {
		return nil, err
	}
	if same && pod != nil {
		if err := checkRunAsSame(pod); err != nil {
			return nil, err
		}
		a.RunAsUser = *pod.Spec.Containers[0].SecurityContext.RunAsUser
	}
	// annotations.go setShareProcessNamespace words its error itself, and refuses to turn on
	// what the spec turns off (checked by ParsePod only).
	if v, ok := ann.get(annShareProcNS); ok {
		share, err := parseBool(v)
		if err != nil {
			return nil, fmt.Errorf("invalid value %v for annotation %q, err=%w", v, annShareProcNS, err)
		}
		if share && pod != nil && pod.Spec.ShareProcessNamespace != nil && !*pod.Spec.ShareProcessNamespace {
			return nil, errors.New("shareProcessNamespace explicitly disabled on the pod, refusing to enable it")
		}
		a.ShareProcessNamespace = &share
	}
	if a.SetSecurityContext, err = ann.boolOr(annSetSecCtx, true); err != nil {
		return nil, err
	}
	if a.CacheEnable, err = ann.boolOr(annCacheEnable, false); err != nil {
		return nil, err
	}
	if a.CacheExitOnErr, err = ann.boolOr(annCacheExitOnErr, false); err != nil {
		return nil, err
	}

	// agent.go New: the default template type is lowercased and must be map or json; an empty
	// annotation is "" and fails.
	a.DefaultTemplate = strings.ToLower(ann[annDefaultTmpl])
	if a.DefaultTemplate != "map" && a.DefaultTemplate != "json" {
		return nil, fmt.Errorf("invalid default template type: %s", a.DefaultTemplate)
	}

	if a.InjectToken, err = ann.boolOr(annInjectToken, false); err != nil {
		return nil, err
	}
	// annotations.go cachePersist: with an init container and a sidecar, an enabled cache is
	// persisted between them.
	a.CachePersist = a.CacheEnable && a.PrePopulate && !a.PrePopulateOnly

	if a.ExitOnRetryFailure, err = ann.boolOr(annExitOnRetry, true); err != nil {
		return nil, err
	}
	if v, ok := ann.get(annMaxConns); ok {
		if a.MaxConnectionsPerHost, err = parseInt(v); err != nil {
			return nil, err
		}
	}
	// annotations.go templateConfigLeaseRenewalThreshold: strconv.ParseFloat when present.
	if v, ok := ann.get(annLeaseThreshold); ok {
		if a.LeaseRenewalThreshold, err = strconv.ParseFloat(v, 64); err != nil {
			return nil, err
		}
	}
	if a.EnableQuit, err = ann.boolOr(annEnableQuit, false); err != nil {
		return nil, err
	}
	// agent.go New: the lists are split on "," when non-empty, untrimmed.
	if v := ann[annDisableIdle]; v != "" {
		a.DisableIdleConnections = strings.Split(v, ",")
	}
	if v := ann[annDisableKA]; v != "" {
		a.DisableKeepAlives = strings.Split(v, ",")
	}
	if a.AutoAuthExitOnError, err = ann.boolOr(annAutoAuthExit, false); err != nil {
		return nil, err
	}
	return a, nil
}

// secrets finds the pod's secrets and their per-secret annotations (vault-k8s annotations.go
// (*Agent).secrets).
//
// A secret is named by a non-blank agent-inject-secret-X, agent-inject-template-file-X or
// agent-inject-template-X, the prefixes tried in that order: agent-inject-template-file-X names
// X, not "file-X". A prefix that leaves an empty name does not match, so the next one is tried.
//
// v1.7.6 collects them from a Go map and never sorts, so the order of the templates (and of the
// custom volumes' indexes) changes from one admission to the next. Sorting by raw name picks one
// of the orders it can produce, and the same one every time.
func secrets(ann annotations) ([]Secret, error) {
	seen := map[string]bool{}
	var raws []string
	for key, value := range ann {
		if strings.TrimSpace(value) == "" {
			continue
		}
		for _, prefix := range []string{annSecret, annTemplateFile, annTemplate} {
			raw, ok := strings.CutPrefix(key, prefix)
			if !ok || raw == "" {
				continue
			}
			if !seen[raw] {
				seen[raw] = true
				raws = append(raws, raw)
			}
			break
		}
	}
	sort.Strings(raws)

	out := make([]Secret, 0, len(raws))
	for _, raw := range raws {
		s := Secret{
			Name:    secretName(ann, raw),
			RawName: raw,
			Path:    ann.secretValue(annSecret, raw, ""),
			// Without a template of its own a secret may name a template file; a template wins.
			Template: ann.secretValue(annTemplate, raw, ""),
			// A per-secret volume path, else the pod's (already defaulted to /vault/secrets).
			MountPath:  ann.secretValue(annSecretVolPath+"-", raw, ann[annSecretVolPath]),
			Command:    ann.secretValue(annCommand, raw, ""),
			LeftDelim:  ann.secretValue(annLeftDelim, raw, ""),
			RightDelim: ann.secretValue(annRightDelim, raw, ""),
			File:       ann.secretValue(annFile, raw, ""),
			Perms:      ann.secretValue(annPerms, raw, ""),
		}
		if s.Template == "" {
			s.TemplateFile = ann.secretValue(annTemplateFile, raw, "")
		}
		// error-on-missing-key-X: absent reads as "", which parses as false.
		var err error
		if s.ErrorOnMissingKey, err = parseBool(ann.secretValue(annErrMissingKey, raw, "")); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// secretName is the file name of a secret (annotations.go secretName, preserveSecretCase): the raw
// name lowercased, unless preserve-secret-case-RAW, else preserve-secret-case, reads true. A value
// that does not parse is not an error there: the name is lowercased.
func secretName(ann annotations, raw string) string {
	v, ok := ann.get(annPreserveCase + "-" + raw)
	if !ok {
		v, ok = ann.get(annPreserveCase)
	}
	if ok {
		if keep, err := parseBool(v); err == nil && keep {
			return raw
		}
	}
	return strings.ToLower(raw)
}

// authConfig is the auto_auth method's config map (annotations.go authConfig): the token path
// first, then every auth-config-PARAM (dashes in PARAM become underscores, so auth-config-token-path
// overrides the token path), then role when the role annotation is set.
func authConfig(ann annotations, tok TokenVolume, role string) map[string]any {
	cfg := map[string]any{}
	if tok.MountPath != "" && tok.TokenPath != "" {
		cfg["token_path"] = tok.Path()
	}
	for key, value := range ann {
		if param, ok := strings.CutPrefix(key, annAuthConfig); ok {
			cfg[strings.ReplaceAll(param, "-", "_")] = value
		}
	}
	if role != "" {
		cfg["role"] = role
	}
	return cfg
}

// unsupported lists the annotations set on the pod whose effect is not reproduced here.
func unsupported(ann annotations) []string {
	var out []string
	for _, k := range unsupportedAnnotations {
		if _, ok := ann[k]; ok {
			out = append(out, k)
		}
	}
	for k := range ann {
		// agent-telemetry-*: the telemetry stanza is not emitted.
		if strings.HasPrefix(k, annTelemetry) {
			out = append(out, k)
		}
	}
	// auth-type aws takes IRSA volumes and environment from the pod's containers.
	if ann[annAuthType] == "aws" {
		out = append(out, annAuthType)
	}
	sort.Strings(out)
	return out
}

// validate is vault-k8s agent.go (*Agent).Validate, after New.
func validate(a *Agent, ann annotations) error {
	if ann[annRequestNS] == "" {
		return errors.New("namespace missing from request")
	}
	if a.Token.Name == "" || a.Token.MountPath == "" || a.Token.TokenPath == "" {
		return errors.New("no service account token volume name, mount path or token path found")
	}
	if ann[annImage] == "" {
		return errors.New("no Vault image found")
	}
	if a.ConfigMap != "" {
		return nil // the ConfigMap holds the auth settings
	}
	if a.AuthType == "" {
		return errors.New("no Vault Auth Type found")
	}
	// A role may also come from auth-config-role.
	if a.AuthType == DefaultAuthType && a.Role == "" && ann[annAuthConfig+"role"] == "" {
		return errors.New("no Vault role found")
	}
	if a.AuthPath == "" {
		return errors.New("no Vault Auth Path found")
	}
	if a.Address == "" {
		return errors.New("no Vault address found")
	}
	return nil
}

// checkResources parses the agent containers' resource annotations, as vault-k8s
// container_sidecar.go parseResources does while building them in agent.go Patch. Patch builds a
// container only for an init container or a sidecar, so a pod with neither is not checked.
func checkResources(a *Agent, ann annotations) error {
	if !a.PrePopulate && a.PrePopulateOnly {
		return nil
	}
	for _, k := range []string{annLimitsCPU, annLimitsMem, annLimitsEph, annRequestsCPU, annRequestsMem, annRequestsEph} {
		if v := ann[k]; v != "" {
			if _, err := resource.ParseQuantity(v); err != nil {
				return err
			}
		}
	}
	return nil
}
