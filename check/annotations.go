package check

import (
	"strings"

	"github.com/vaultctl/vaultctl/internal/textdist"
)

// Annotation names the Vault Agent Injector (vault-k8s) reads from a pod. The list follows
// vault-k8s's agent-inject/agent/annotations.go; anything else under vault.hashicorp.com/ is
// silently ignored by the injector, which is how a typo turns into a pod without its secret.
const (
	annPrefix          = "vault.hashicorp.com/"
	annInject          = annPrefix + "agent-inject"
	annRole            = annPrefix + "role"
	annAuthConfigRole  = annPrefix + "auth-config-role"
	annAuthPath        = annPrefix + "auth-path"
	annConfigMap       = annPrefix + "agent-configmap"
	annPrePopulateOnly = annPrefix + "agent-pre-populate-only"
	annSecret          = annPrefix + "agent-inject-secret-"
	annTemplate        = annPrefix + "agent-inject-template-"
	annTemplateFile    = annPrefix + "agent-inject-template-file-"
	annVaultNamespace  = annPrefix + "namespace"
)

// knownAnnotations are the names the injector reads verbatim (after vault.hashicorp.com/).
var knownAnnotations = map[string]bool{
	"agent-inject":                            true,
	"agent-inject-status":                     true,
	"agent-inject-containers":                 true,
	"agent-inject-default-template":           true,
	"agent-inject-token":                      true,
	"agent-image":                             true,
	"agent-request-namespace":                 true,
	"agent-init-first":                        true,
	"agent-pre-populate":                      true,
	"agent-pre-populate-only":                 true,
	"agent-configmap":                         true,
	"agent-extra-secret":                      true,
	"agent-limits-cpu":                        true,
	"agent-limits-mem":                        true,
	"agent-limits-ephemeral":                  true,
	"agent-requests-cpu":                      true,
	"agent-requests-mem":                      true,
	"agent-requests-ephemeral":                true,
	"agent-revoke-on-shutdown":                true,
	"agent-revoke-grace":                      true,
	"namespace":                               true,
	"agent-run-as-user":                       true,
	"agent-run-as-group":                      true,
	"agent-run-as-same-user":                  true,
	"agent-share-process-namespace":           true,
	"agent-set-security-context":              true,
	"agent-service-account-token-volume-name": true,
	"service":                                 true,
	"proxy-address":                           true,
	"tls-skip-verify":                         true,
	"tls-secret":                              true,
	"tls-server-name":                         true,
	"ca-cert":                                 true,
	"ca-key":                                  true,
	"client-cert":                             true,
	"client-key":                              true,
	"client-max-retries":                      true,
	"client-timeout":                          true,
	"go-max-procs":                            true,
	"log-level":                               true,
	"log-format":                              true,
	"role":                                    true,
	"auth-type":                               true,
	"auth-path":                               true,
	"secret-volume-path":                      true,
	"preserve-secret-case":                    true,
	"agent-cache-enable":                      true,
	"agent-cache-use-auto-auth-token":         true,
	"agent-cache-listener-port":               true,
	"agent-cache-exit-on-err":                 true,
	"agent-copy-volume-mounts":                true,
	"template-config-exit-on-retry-failure":   true,
	"template-static-secret-render-interval":  true,
	"template-max-connections-per-host":       true,
	"template-lease-renewal-threshold":        true,
	"agent-enable-quit":                       true,
	"auth-min-backoff":                        true,
	"auth-max-backoff":                        true,
	"agent-disable-idle-connections":          true,
	"agent-disable-keep-alives":               true,
	"agent-json-patch":                        true,
	"agent-init-json-patch":                   true,
	"agent-auto-auth-exit-on-err":             true,
}

// knownAnnotationPrefixes take a user-chosen suffix: a secret name (agent-inject-secret-db) or a
// parameter name (auth-config-role, agent-telemetry-prometheus_retention_time).
var knownAnnotationPrefixes = []string{
	"agent-inject-secret-",
	"agent-inject-template-",
	"agent-inject-template-file-",
	"agent-inject-file-",
	"agent-inject-perms-",
	"agent-inject-command-",
	"agent-template-left-delim-",
	"agent-template-right-delim-",
	"secret-volume-path-",
	"preserve-secret-case-",
	"error-on-missing-key-",
	"auth-config-",
	"agent-telemetry-",
}

// knownAnnotation reports whether the injector reads the vault.hashicorp.com/ annotation key.
func knownAnnotation(key string) bool {
	name, ok := strings.CutPrefix(key, annPrefix)
	if !ok {
		return true // not ours to judge
	}
	if knownAnnotations[name] {
		return true
	}
	for _, p := range knownAnnotationPrefixes {
		if len(name) > len(p) && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// suggestAnnotation returns the known annotation closest to an unknown one, for the fix text.
func suggestAnnotation(key string) string {
	name := strings.TrimPrefix(key, annPrefix)
	best, bestD := "", 4 // suggest only near misses
	try := func(cand string) {
		// Ties go to the smaller name so the suggestion does not depend on map order.
		if d := textdist.Levenshtein(name, cand); d < bestD || (d == bestD && best != "" && cand < best) {
			best, bestD = cand, d
		}
	}
	for k := range knownAnnotations {
		try(k)
	}
	// For prefixed names compare the part up to a dash with each prefix:
	// agent-inject-secrets-db is agent-inject-secret- plus db.
	for i := 1; i < len(name); i++ {
		if name[i-1] != '-' {
			continue
		}
		for _, p := range knownAnnotationPrefixes {
			cand := p + name[i:]
			if d := textdist.Levenshtein(name[:i], p); d < bestD || (d == bestD && best != "" && cand < best) {
				best, bestD = cand, d
			}
		}
	}
	if best == "" {
		return ""
	}
	return annPrefix + best
}
