package lifecycle

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"

	"github.com/vaultctl/vaultctl/auditlog"
	"github.com/vaultctl/vaultctl/check"
	"github.com/vaultctl/vaultctl/config"
)

// The rules of `vaultctl policies audit`, the quarterly review of what vaultctl manages.
const (
	RuleUnusedPolicy    = "unused-policy"
	RuleUnusedRole      = "unused-role"
	RuleWildcardGrant   = "wildcard-grant"
	RuleListGrant       = "list-grant"
	RuleSudoGrant       = "sudo-grant"
	RuleNoExplicitDeny  = "no-explicit-deny"
	RuleWildcardBinding = "wildcard-binding"
	RuleMaxTTL          = "max-ttl-exceeded"
	RuleNotInVault      = "not-in-vault"
)

// PolicyAuditRules describe each rule (for SARIF and `policies audit --help`).
var PolicyAuditRules = []check.Rule{
	{ID: RuleUnusedPolicy, Name: "UnusedPolicy", Severity: check.SeverityWarning,
		Summary: "A managed policy no audit event used in the review window.",
		Checks:  `With --audit, every policy in the config that no request in the audit log made with a token carrying it, between --since and the end of the window. Unused grants are standing access nobody needs.`,
		Fix:     "Remove the policy from the config (and from every role's policies), then vaultctl apply --prune; or widen the window if the log is short."},
	{ID: RuleUnusedRole, Name: "UnusedRole", Severity: check.SeverityWarning,
		Summary: "A managed Kubernetes auth role nobody logged in with in the review window.",
		Checks:  `With --audit, every role in the config without a successful login or a request by a token it issued in the window. The role name is read from auth.metadata.role (always in clear).`,
		Fix:     "Remove the role from the config, then vaultctl apply --prune."},
	{ID: RuleWildcardGrant, Name: "WildcardGrant", Severity: check.SeverityError,
		Summary: "A policy grants on a path with * or +.",
		Checks:  `Every path in the live policy whose capabilities include anything but deny and whose path contains a glob (*) or a segment wildcard (+). It reaches secrets written later, which nobody reviewed.`,
		Fix:     "Grant exact paths (secret/production/db-credentials), one rule each."},
	{ID: RuleListGrant, Name: "ListGrant", Severity: check.SeverityWarning,
		Summary: "A policy grants list.",
		Checks:  `Every path whose capabilities include list: a compromised pod can enumerate secret names.`,
		Fix:     "Drop list unless the workload really enumerates keys; read needs no list."},
	{ID: RuleSudoGrant, Name: "SudoGrant", Severity: check.SeverityError,
		Summary: "A policy grants sudo.",
		Checks:  `Every path whose capabilities include sudo, which opens root-protected endpoints.`,
		Fix:     "Remove sudo; application policies never need it."},
	{ID: RuleNoExplicitDeny, Name: "NoExplicitDeny", Severity: check.SeverityWarning,
		Summary: "A policy has no explicit deny.",
		Checks:  `A live policy without any deny rule: a broader grant in another policy attached to the same token is not held back.`,
		Fix:     "Leave denyParent at its default (true), so vaultctl adds the deny on each rule's parent."},
	{ID: RuleWildcardBinding, Name: "WildcardBinding", Severity: check.SeverityError,
		Summary: "A role is bound to * ServiceAccounts or namespaces.",
		Checks:  `A live role whose bound_service_account_names or bound_service_account_namespaces contain *: any pod that can reach Vault in those namespaces gets the role's policies.`,
		Fix:     "Bind the role to the exact ServiceAccounts and namespaces, and drop allowWildcard."},
	{ID: RuleMaxTTL, Name: "MaxTTLExceeded", Severity: check.SeverityError,
		Summary: "A role's live max TTL exceeds the config's.",
		Checks:  `A live role whose token_max_ttl is longer than the config's maxTTL for it, or unset (Vault's system maximum, 32 days by default) while the config sets one: someone changed it by hand.`,
		Fix:     "Run vaultctl apply --only roles to restore the config's max TTL, and find out who changed it (vaultctl audit analyze)."},
	{ID: RuleNotInVault, Name: "NotInVault", Severity: check.SeverityError,
		Summary: "A policy or role in the config does not exist in Vault.",
		Checks:  `Every policy and role in the config that Vault does not have: the review would be of what is not deployed.`,
		Fix:     "Run vaultctl apply."},
}

// PolicyAuditTool names the rules in SARIF logs.
var PolicyAuditTool = check.SARIFTool{Name: "vaultctl policies audit", Rules: PolicyAuditRules, Tags: []string{"security", "vault", "policy"}}

// LivePolicy is a policy as Vault holds it; Found is false when Vault has none by that name.
type LivePolicy struct {
	Name  string
	HCL   string
	Found bool
}

// LiveRole is a Kubernetes auth role as Vault returns it (nil Data: no such role).
type LiveRole struct {
	Name string
	Data map[string]any
}

// PolicyAuditInput is what the review looks at.
type PolicyAuditInput struct {
	Config *config.Config
	// Source locates config keys for findings (file and line); nil: line 1 of ConfigFile.
	Source     *config.Source
	ConfigFile string
	AuthPath   string
	Policies   []LivePolicy // one per config policy, same order
	Roles      []LiveRole   // one per config role, same order
	// Usage is from --audit; nil leaves the unused rules out.
	Usage        *auditlog.Usage
	Since, Until time.Time
}

// PolicyAudit reviews the policies and roles the config manages, as Vault holds them now.
// Findings are located at the policy or role in the config file, so SARIF alerts land there.
func PolicyAudit(in PolicyAuditInput) (*check.Report, error) {
	rep := &check.Report{Findings: []check.Finding{}, Config: in.ConfigFile}
	at := func(key string) (string, int) {
		line := 1
		if in.Source != nil {
			if l := in.Source.Line(key); l > 0 {
				line = l
			}
		}
		return in.ConfigFile, line
	}
	add := func(key, kind, where, name, rule, msg string) {
		f, l := at(key)
		r := ruleByID(rule)
		rep.Findings = append(rep.Findings, check.Finding{File: f, Line: l, Kind: kind, Namespace: where, Name: name, Rule: rule, Severity: r.Severity, Message: msg, Fix: r.Fix})
	}
	window := ""
	if in.Usage != nil {
		window = usageWindow(in)
	}
	for i, p := range in.Config.Policies {
		key := fmt.Sprintf("policies[%d]", i)
		rep.Objects++
		var live LivePolicy
		if i < len(in.Policies) {
			live = in.Policies[i]
		}
		if !live.Found {
			add(key, "policy", "sys/policies/acl", p.Name, RuleNotInVault, "Vault has no policy "+p.Name)
			continue
		}
		rules, err := parsePolicyHCL(live.HCL)
		if err != nil {
			return nil, fmt.Errorf("policy %s as Vault holds it does not parse: %w", p.Name, err)
		}
		hasDeny := false
		for _, r := range rules {
			if slices.Contains(r.caps, "deny") {
				hasDeny = true
				continue
			}
			if strings.ContainsAny(r.path, "*+") {
				add(key, "policy", "sys/policies/acl", p.Name, RuleWildcardGrant, fmt.Sprintf("grants %s on %q, a wildcard path", strings.Join(r.caps, ", "), r.path))
			}
			if slices.Contains(r.caps, "list") {
				add(key, "policy", "sys/policies/acl", p.Name, RuleListGrant, fmt.Sprintf("grants list on %q", r.path))
			}
			if slices.Contains(r.caps, "sudo") {
				add(key, "policy", "sys/policies/acl", p.Name, RuleSudoGrant, fmt.Sprintf("grants sudo on %q", r.path))
			}
		}
		if !hasDeny {
			add(key, "policy", "sys/policies/acl", p.Name, RuleNoExplicitDeny, "has no deny rule")
		}
		if in.Usage != nil && in.Usage.Policies[p.Name] == 0 {
			add(key, "policy", "sys/policies/acl", p.Name, RuleUnusedPolicy, "no request used it "+window)
		}
	}
	mount := "auth/" + strings.Trim(in.AuthPath, "/") + "/role"
	for i, r := range in.Config.Roles {
		key := fmt.Sprintf("roles[%d]", i)
		rep.Objects++
		var live LiveRole
		if i < len(in.Roles) {
			live = in.Roles[i]
		}
		if live.Data == nil {
			add(key, "role", mount, r.Name, RuleNotInVault, "Vault has no role "+r.Name+" at "+mount)
			continue
		}
		for _, field := range []string{"bound_service_account_names", "bound_service_account_namespaces"} {
			if slices.ContainsFunc(stringsOf(live.Data[field]), func(s string) bool { return strings.Contains(s, "*") }) {
				add(key, "role", mount, r.Name, RuleWildcardBinding, fmt.Sprintf("%s is %v", field, stringsOf(live.Data[field])))
			}
		}
		if want := r.MaxTTL.Duration; want > 0 {
			got, ok := seconds(live.Data["token_max_ttl"])
			switch {
			case !ok || got == 0:
				add(key, "role", mount, r.Name, RuleMaxTTL, fmt.Sprintf("token_max_ttl is unset (Vault's system maximum) but the config's maxTTL is %s", r.MaxTTL))
			case got > want:
				add(key, "role", mount, r.Name, RuleMaxTTL, fmt.Sprintf("token_max_ttl is %s, more than the config's maxTTL %s", config.Duration{Duration: got}, r.MaxTTL))
			}
		}
		if in.Usage != nil && in.Usage.Roles[r.Name] == 0 {
			add(key, "role", mount, r.Name, RuleUnusedRole, "nobody logged in with it "+window)
		}
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool { return rep.Findings[i].Line < rep.Findings[j].Line })
	return rep, nil
}

func usageWindow(in PolicyAuditInput) string {
	from := "the start of the log"
	if !in.Since.IsZero() {
		from = in.Since.UTC().Format("2006-01-02")
	}
	to := "its end"
	if !in.Until.IsZero() {
		to = in.Until.UTC().Format("2006-01-02")
	}
	s := fmt.Sprintf("between %s and %s (%d audit entries", from, to, in.Usage.Stats.Entries)
	if !in.Usage.First.IsZero() {
		s += fmt.Sprintf(", %s to %s", in.Usage.First.UTC().Format(time.RFC3339), in.Usage.Last.UTC().Format(time.RFC3339))
	}
	return s + ")"
}

func ruleByID(id string) check.Rule {
	for _, r := range PolicyAuditRules {
		if r.ID == id {
			return r
		}
	}
	return check.Rule{ID: id, Severity: check.SeverityError}
}

type hclRule struct {
	path string
	caps []string
}

// parsePolicyHCL reads the path blocks of an ACL policy (Vault's HCL v1 syntax).
func parsePolicyHCL(src string) ([]hclRule, error) {
	root, err := hcl.Parse(src)
	if err != nil {
		return nil, err
	}
	list, ok := root.Node.(*ast.ObjectList)
	if !ok {
		return nil, fmt.Errorf("not an HCL object")
	}
	var out []hclRule
	for _, item := range list.Filter("path").Items {
		if len(item.Keys) == 0 {
			continue
		}
		path, err := strconv.Unquote(item.Keys[0].Token.Text)
		if err != nil {
			path = strings.Trim(item.Keys[0].Token.Text, `"`)
		}
		var body struct {
			Capabilities []string `hcl:"capabilities"`
		}
		if err := hcl.DecodeObject(&body, item.Val); err != nil {
			return nil, fmt.Errorf("path %q: %w", path, err)
		}
		out = append(out, hclRule{path: path, caps: body.Capabilities})
	}
	return out, nil
}

func stringsOf(v any) []string {
	switch t := v.(type) {
	case []string:
		return t
	case []any:
		out := make([]string, 0, len(t))
		for _, x := range t {
			out = append(out, fmt.Sprint(x))
		}
		return out
	case string:
		if t == "" {
			return nil
		}
		return strings.Split(t, ",")
	}
	return nil
}

// seconds reads a TTL as Vault returns it (json.Number seconds, or a duration string).
func seconds(v any) (time.Duration, bool) {
	switch t := v.(type) {
	case json.Number:
		n, err := t.Int64()
		return time.Duration(n) * time.Second, err == nil
	case float64:
		return time.Duration(t) * time.Second, true
	case int:
		return time.Duration(t) * time.Second, true
	case int64:
		return time.Duration(t) * time.Second, true
	case string:
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			return time.Duration(n) * time.Second, true
		}
		d, err := time.ParseDuration(t)
		return d, err == nil
	}
	return 0, false
}

// DefaultReviewWindow is the quarter a policy review looks back on.
const DefaultReviewWindow = 90 * 24 * time.Hour
