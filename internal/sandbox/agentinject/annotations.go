package agentinject

import (
	"fmt"
	"strconv"
)

// Prefix starts every annotation the injector reads.
const Prefix = "vault.hashicorp.com/"

// Annotation keys, as named in vault-k8s agent-inject/agent/annotations.go (the constant block).
// Keys ending in "-" take a suffix: a secret's raw name, or a parameter name.
const (
	AnnotationInject = Prefix + "agent-inject"
	AnnotationStatus = Prefix + "agent-inject-status"

	annSecret         = Prefix + "agent-inject-secret-"
	annTemplate       = Prefix + "agent-inject-template-"
	annTemplateFile   = Prefix + "agent-inject-template-file-"
	annFile           = Prefix + "agent-inject-file-"
	annPerms          = Prefix + "agent-inject-perms-"
	annCommand        = Prefix + "agent-inject-command-"
	annLeftDelim      = Prefix + "agent-template-left-delim-"
	annRightDelim     = Prefix + "agent-template-right-delim-"
	annErrMissingKey  = Prefix + "error-on-missing-key-"
	annSecretVolPath  = Prefix + "secret-volume-path" // also with "-" + raw name
	annPreserveCase   = Prefix + "preserve-secret-case"
	annAuthConfig     = Prefix + "auth-config-"
	annTelemetry      = Prefix + "agent-telemetry-"
	annContainers     = Prefix + "agent-inject-containers"
	annDefaultTmpl    = Prefix + "agent-inject-default-template"
	annInjectToken    = Prefix + "agent-inject-token"
	annImage          = Prefix + "agent-image"
	annRequestNS      = Prefix + "agent-request-namespace"
	annInitFirst      = Prefix + "agent-init-first"
	annPrePopulate    = Prefix + "agent-pre-populate"
	annPrePopOnly     = Prefix + "agent-pre-populate-only"
	annConfigMap      = Prefix + "agent-configmap"
	annExtraSecret    = Prefix + "agent-extra-secret"
	annLimitsCPU      = Prefix + "agent-limits-cpu"
	annLimitsMem      = Prefix + "agent-limits-mem"
	annLimitsEph      = Prefix + "agent-limits-ephemeral"
	annRequestsCPU    = Prefix + "agent-requests-cpu"
	annRequestsMem    = Prefix + "agent-requests-mem"
	annRequestsEph    = Prefix + "agent-requests-ephemeral"
	annRevoke         = Prefix + "agent-revoke-on-shutdown"
	annRevokeGrace    = Prefix + "agent-revoke-grace"
	annVaultNS        = Prefix + "namespace"
	annRunAsUser      = Prefix + "agent-run-as-user"
	annRunAsGroup     = Prefix + "agent-run-as-group"
	annRunAsSame      = Prefix + "agent-run-as-same-user"
	annShareProcNS    = Prefix + "agent-share-process-namespace"
	annSetSecCtx      = Prefix + "agent-set-security-context"
	annSATokenVolume  = Prefix + "agent-service-account-token-volume-name"
	annService        = Prefix + "service"
	annProxy          = Prefix + "proxy-address"
	annTLSSkipVerify  = Prefix + "tls-skip-verify"
	annTLSSecret      = Prefix + "tls-secret"
	annTLSServerName  = Prefix + "tls-server-name"
	annCACert         = Prefix + "ca-cert"
	annCAKey          = Prefix + "ca-key"
	annClientCert     = Prefix + "client-cert"
	annClientKey      = Prefix + "client-key"
	annMaxRetries     = Prefix + "client-max-retries"
	annClientTimeout  = Prefix + "client-timeout"
	annGoMaxProcs     = Prefix + "go-max-procs"
	annLogLevel       = Prefix + "log-level"
	annLogFormat      = Prefix + "log-format"
	annRole           = Prefix + "role"
	annAuthType       = Prefix + "auth-type"
	annAuthPath       = Prefix + "auth-path"
	annCacheEnable    = Prefix + "agent-cache-enable"
	annCacheAutoToken = Prefix + "agent-cache-use-auto-auth-token"
	annCachePort      = Prefix + "agent-cache-listener-port"
	annCacheExitOnErr = Prefix + "agent-cache-exit-on-err"
	annCopyMounts     = Prefix + "agent-copy-volume-mounts"
	annExitOnRetry    = Prefix + "template-config-exit-on-retry-failure"
	annStaticInterval = Prefix + "template-static-secret-render-interval"
	annMaxConns       = Prefix + "template-max-connections-per-host"
	annLeaseThreshold = Prefix + "template-lease-renewal-threshold"
	annEnableQuit     = Prefix + "agent-enable-quit"
	annMinBackoff     = Prefix + "auth-min-backoff"
	annMaxBackoff     = Prefix + "auth-max-backoff"
	annDisableIdle    = Prefix + "agent-disable-idle-connections"
	annDisableKA      = Prefix + "agent-disable-keep-alives"
	annJSONPatch      = Prefix + "agent-json-patch"
	annInitJSONPatch  = Prefix + "agent-init-json-patch"
	annAutoAuthExit   = Prefix + "agent-auto-auth-exit-on-err"
)

// annotations is the pod's annotation set after the injector filled in its defaults.
type annotations map[string]string

// get returns the annotation and whether the pod sets it (an empty value counts as set).
func (a annotations) get(key string) (string, bool) {
	v, ok := a[key]
	return v, ok
}

// setDefault sets key unless the pod sets it. vault-k8s annotations.go Init writes every
// default into the pod's annotations this way, so a present-but-empty annotation is kept as "".
func (a annotations) setDefault(key, value string) {
	if _, ok := a[key]; !ok {
		a[key] = value
	}
}

// boolOr reads a boolean annotation, def when absent. Each optional boolean in vault-k8s
// (annotations.go: initFirst, prePopulate, cacheEnable, ...) is "absent means default, present
// means parseutil.ParseBool".
func (a annotations) boolOr(key string, def bool) (bool, error) {
	raw, ok := a[key]
	if !ok {
		return def, nil
	}
	return parseBool(raw)
}

// secretValue is the per-secret annotation key+raw, or def when the pod does not set it
// (vault-k8s annotations.go annotationsSecretValue).
func (a annotations) secretValue(key, raw, def string) string {
	if v, ok := a[key+raw]; ok {
		return v
	}
	return def
}

// parseBool reads a boolean the way vault-k8s does everywhere (go-secure-stdlib parseutil.ParseBool,
// a weak mapstructure decode): strconv.ParseBool's spellings, "" reads as false, and any other
// value fails with mapstructure's wording, which names no field.
func parseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(s)
	if err == nil {
		return b, nil
	}
	if s == "" {
		return false, nil
	}
	return false, fmt.Errorf("cannot parse '' as bool: %w", err)
}

// parseInt is parseutil.ParseInt on a string, as vault-k8s uses it for run-as-user, run-as-group
// and template-max-connections-per-host: "" is 0, otherwise a base-10 int64.
func parseInt(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}
