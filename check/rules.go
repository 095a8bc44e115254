package check

import (
	"fmt"
	"sort"
	"strings"
)

// Rule ids, as they appear in findings, --explain and SARIF.
const (
	RuleRawSecret         = "raw-secret"
	RuleMissingInjection  = "missing-injection"
	RuleJobSidecar        = "job-sidecar"
	RuleSecretReference   = "secret-reference"
	RuleKVPath            = "kv-path"
	RulePolicyMismatch    = "policy-mismatch"
	RuleUnknownAnnotation = "unknown-annotation"
	RuleParseError        = "parse-error"
)

// Rule documents one check.
type Rule struct {
	ID       string
	Name     string // CamelCase name, for SARIF
	Severity Severity
	Summary  string // one line
	Checks   string // what it checks, a paragraph
	Fix      string // how to fix a finding, a paragraph
	Example  string // a manifest fragment that passes
}

var rules = []Rule{
	{
		ID: RuleRawSecret, Name: "RawSecret", Severity: SeverityError,
		Summary: "A v1 Secret in a namespace where secrets must come from Vault.",
		Checks: `Every object with apiVersion v1 and kind Secret, in a file, in a multi-document
stream or inside a List, whose namespace is one of the required namespaces (--namespace, or
check.requiredNamespaces in the config; every namespace when neither is set). Objects without
metadata.namespace are in --default-namespace. Secret types given with --allow-secret-type or
check.allowSecretTypes in the config are exempt (kubernetes.io/tls for an Ingress certificate,
kubernetes.io/dockerconfigjson for image pulls). A Secret without a type is Opaque.
Look-alikes are not Secrets: SecretProviderClass, ExternalSecret, SealedSecret, or the text
"kind: Secret" inside a ConfigMap. Template sources are reported where they stand, with the
command that renders them: a Secret in a Helm chart's templates/ (found line by line when the
template is not YAML), a Secret whose name or namespace is an unrendered {{ }} directive (a
templated namespace counts as required), and each secretGenerator entry of a kustomization
(in the kustomization's namespace unless the entry names one).`,
		Fix: `Write the values to Vault (vault kv put secret/<namespace>/<name> key=value), delete the
Secret from the manifests and read the values through the Vault Agent Injector annotations
(see --explain missing-injection). If the type is legitimately managed as a Secret, exempt it:
--allow-secret-type kubernetes.io/tls.`,
		Example: `# instead of a Secret:
vault.hashicorp.com/agent-inject-secret-db: "secret/data/production/db-credentials"`,
	},
	{
		ID: RuleMissingInjection, Name: "MissingInjection", Severity: SeverityError,
		Summary: `A workload's pod template lacks vault.hashicorp.com/agent-inject: "true" or a role.`,
		Checks: `For every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job
and CronJob in a required namespace, the pod template's annotations (spec.template.metadata,
spec.jobTemplate.spec.template.metadata for a CronJob, metadata for a Pod) must carry
vault.hashicorp.com/agent-inject with a value the injector reads as true (it parses a boolean:
"true", "1", "t", "T", "TRUE", "True"; "false", "0" or "yes" do not inject) and a Vault role
(vault.hashicorp.com/role, or auth-config-role, or an agent-configmap holding the whole agent
config). Annotations on the workload's own metadata do not count: the injector only ever sees
the pod, so they are reported with a pointer to where they belong. A template that carries
vault.hashicorp.com/agent-inject-status: injected (copied from a running pod) is reported too:
the injector skips pods so marked. Vault's own server, Agent Injector and CSI provider are
exempt (they cannot get their secrets from Vault): they are recognised by the labels vaultctl's
chart and the official hashicorp/vault chart give them (app.kubernetes.io/name vault with
component server, vault-agent-injector with component webhook, vault-csi-provider) together
with a container running a Vault image.`,
		Fix: `Add to spec.template.metadata.annotations (not the Deployment's metadata):
  vault.hashicorp.com/agent-inject: "true"
  vault.hashicorp.com/role: "<role bound to the pod's service account>"`,
		Example: `spec:
  template:
    metadata:
      annotations:
        vault.hashicorp.com/agent-inject: "true"
        vault.hashicorp.com/role: "webapp-production"`,
	},
	{
		ID: RuleJobSidecar, Name: "JobSidecar", Severity: SeverityError,
		Summary: `A Job, CronJob or run-to-completion Pod gets the agent sidecar and never completes.`,
		Checks: `Any Job or CronJob (and any Pod with restartPolicy Never or OnFailure) whose pod template
turns injection on without vault.hashicorp.com/agent-pre-populate-only: "true". The injector
then adds a long-running vault-agent sidecar; the main container finishes but the pod does
not, so the Job never reports success and CronJob runs pile up. Checked in every namespace.`,
		Fix: `Add vault.hashicorp.com/agent-pre-populate-only: "true" to the pod template: the agent runs
only as an init container, renders the secrets once and exits.`,
		Example: `vault.hashicorp.com/agent-pre-populate-only: "true"`,
	},
	{
		ID: RuleSecretReference, Name: "SecretReference", Severity: SeverityError,
		Summary: "A container in a required namespace still reads a Kubernetes Secret.",
		Checks: `In required namespaces, every container, init container and ephemeral container of a
workload is checked for env[].valueFrom.secretKeyRef and envFrom[].secretRef, and the pod's
volumes for secret volumes and projected secret sources. A reference to a Secret that is
defined in the checked input with an allowed type (--allow-secret-type) is not reported.
imagePullSecrets are not reported, nor are Vault's own workloads (see missing-injection).`,
		Fix: `Put the value in Vault, inject it with vault.hashicorp.com/agent-inject-secret-<name> (and a
template), and read the rendered file under /vault/secrets/<name> instead of the environment
variable or Secret volume.`,
		Example: `vault.hashicorp.com/agent-inject-secret-db: "secret/data/production/db-credentials"
vault.hashicorp.com/agent-inject-template-db: |
  {{- with secret "secret/data/production/db-credentials" -}}
  export DB_PASS="{{ .Data.data.password }}"
  {{- end }}`,
	},
	{
		ID: RuleKVPath, Name: "KVPath", Severity: SeverityError,
		Summary: "An injected path on a KV version 2 mount lacks data/.",
		Checks: `For every secret the agent will fetch (vault.hashicorp.com/agent-inject-secret-<name>, or
the secret "<path>" calls in agent-inject-template-<name> when a template is given), a path on
a KV v2 mount must have data/ right after the mount: secret/data/production/db, not
secret/production/db (the CLI path). The KV v2 mounts come from the config's kv list and
--kv-mount; with neither, secret/. The agent's template engine tries to insert data/ itself,
but only after asking Vault's sys/internal/ui/mounts endpoint; when that lookup fails it reads
the path as written and gets a 403 or an empty secret. Policies and audit logs always name the
data/ path, so writing it keeps the annotation, the policy and the audit trail in agreement.`,
		Fix:     `Insert data/ after the mount: secret/production/db becomes secret/data/production/db.`,
		Example: `vault.hashicorp.com/agent-inject-secret-db: "secret/data/production/db-credentials"`,
	},
	{
		ID: RulePolicyMismatch, Name: "PolicyMismatch", Severity: SeverityError,
		Summary: "The pod's Vault role or its policies would not let the agent read its secrets.",
		Checks: `Only with --config. For every pod template that turns injection on: the role it names must
be one of the config's roles; the role's bound service accounts and namespaces must include
the pod's serviceAccountName (default "default") and namespace; and the role's policies, as
vaultctl will write them (logical KV paths expanded to data/ and metadata/, plus the explicit
deny on each rule's parent unless denyParent is false), must grant read on every path the
agent fetches. Matching follows Vault: an exact path beats a glob, the more specific glob
wins, and a deny on the winning path refuses. Pods with vault.hashicorp.com/agent-configmap,
a Vault namespace, or an auth-path other than the config's are skipped: their login is not
described by the config. Without this check the mismatch shows up only after deploy, as a
403 in the vault-agent-init log and a pod stuck in Init:0/1.`,
		Fix: `Either correct the annotation (role name, secret path) or extend the config: add the role,
bind it to the pod's service account and namespace, and give one of its policies a rule with
read on the logical path (secret/production/db-credentials), then run vaultctl apply.`,
		Example: `roles:
  - name: webapp-production
    serviceAccounts: [webapp-sa]
    namespaces: [production]
    policies: [webapp-db]
policies:
  - name: webapp-db
    rules:
      - path: secret/production/db-credentials
        capabilities: [read]`,
	},
	{
		ID: RuleUnknownAnnotation, Name: "UnknownAnnotation", Severity: SeverityWarning,
		Summary: "A vault.hashicorp.com/ annotation the injector does not read.",
		Checks: `Every vault.hashicorp.com/ annotation on a pod template is compared with the names the
injector (vault-k8s) reads, including the per-secret forms such as agent-inject-secret-<name>
and agent-inject-template-<name>. The injector ignores anything else without an error, so a
typo (agent-inject-secrets-db, vault.hashicorp.com/roles) silently drops a secret. Also
reported: vault.hashicorp.com/ annotations on a workload's own metadata (a Deployment's
metadata.annotations) that the pod template lacks, because the injector never sees them.`,
		Fix: `Correct the name (the finding suggests the closest known one) or move the annotation to
spec.template.metadata.annotations.`,
		Example: `vault.hashicorp.com/agent-inject-secret-db: "secret/data/production/db"`,
	},
	{
		ID: RuleParseError, Name: "ParseError", Severity: SeverityError,
		Summary: "A file that is not valid YAML or JSON.",
		Checks: `Every file is parsed as a stream of YAML documents (JSON is read the same way). A syntax
error, a duplicate key in a mapping (tools disagree on which value wins, so the guard could
see a different object than kubectl applies) or a file that cannot be read is reported with
its file and line, and makes vaultctl check exit 2. Documents before the error are still
checked. Helm charts and Kustomize bases are templates, not manifests: check what they
render instead. A template that is not YAML is still scanned for the Secrets it renders
(see raw-secret).`,
		Fix: `Fix the syntax at the reported line. For a Helm or Kustomize source tree, exclude it and check
the rendered output:
  helm template . | vaultctl check -
  kustomize build overlays/production | vaultctl check -
  vaultctl check k8s/ --exclude 'charts/**'`,
	},
}

var rulesByID = func() map[string]*Rule {
	m := make(map[string]*Rule, len(rules))
	for i := range rules {
		m[rules[i].ID] = &rules[i]
	}
	return m
}()

// Rules returns every rule, in a stable order.
func Rules() []Rule { return append([]Rule(nil), rules...) }

// LookupRule returns the rule with the given id.
func LookupRule(id string) (Rule, bool) {
	r, ok := rulesByID[id]
	if !ok {
		return Rule{}, false
	}
	return *r, true
}

// Explain describes what a rule checks and how to fix its findings.
func Explain(id string) (string, error) {
	r, ok := rulesByID[id]
	if !ok {
		ids := make([]string, 0, len(rules))
		for _, r := range rules {
			ids = append(ids, r.ID)
		}
		sort.Strings(ids)
		return "", fmt.Errorf("unknown rule %q; rules: %s", id, strings.Join(ids, ", "))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s\n\nWhat it checks:\n%s\n\nHow to fix:\n%s\n", r.ID, r.Severity, r.Summary,
		indent(r.Checks), indent(r.Fix))
	if r.Example != "" {
		fmt.Fprintf(&b, "\nExample:\n%s\n", indent(r.Example))
	}
	return b.String(), nil
}

func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n")
}
