package wizard

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/textdist"
)

// setKey is one --set answer. Keys are config key paths where one answer is one config value, and
// wizard-level names (waves.*, networkPolicies.allowedNamespaces, audit.devices) where one
// answer expands into several config entries.
type setKey struct {
	name    string
	aliases []string
	arg     string // placeholder in messages: --set name=ARG
	help    string
	// paths are the config key paths whose validation problems belong to this answer.
	paths func(a Answers) []string
	set   func(a *Answers, v string) error
}

func fixed(paths ...string) func(Answers) []string { return func(Answers) []string { return paths } }

func wavePaths(name string) func(Answers) []string {
	return func(a Answers) []string {
		if i := a.waveIndex(name); i >= 0 {
			return []string{fmt.Sprintf("migration.waves[%d]", i)}
		}
		return nil
	}
}

func setString(field func(a *Answers) *string) func(*Answers, string) error {
	return func(a *Answers, v string) error { *field(a) = strings.TrimSpace(v); return nil }
}

func setBool(field func(a *Answers) *bool) func(*Answers, string) error {
	return func(a *Answers, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", v)
		}
		*field(a) = b
		return nil
	}
}

func setInt(field func(a *Answers) *int) func(*Answers, string) error {
	return func(a *Answers, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("must be a whole number, got %q", v)
		}
		*field(a) = n
		return nil
	}
}

func setWave(name string) func(*Answers, string) error {
	return func(a *Answers, v string) error {
		if a.Waves == nil {
			a.Waves = map[string][]string{}
		}
		a.Waves[name] = splitList(v)
		return nil
	}
}

// setKeys lists every --set key; `vaultctl init --help` prints them from here.
var setKeys = []setKey{
	{name: "cluster.context", arg: "NAME", help: "kubeconfig context (default: --context; empty = the current context at run time)",
		paths: fixed("cluster.context"), set: setString(func(a *Answers) *string { return &a.Context })},
	{name: "cluster.kubeconfig", arg: "PATH", help: "kubeconfig path to write into the file (default: none, so $KUBECONFIG or ~/.kube/config)",
		paths: fixed("cluster.kubeconfig"), set: setString(func(a *Answers) *string { return &a.Kubeconfig })},
	{name: "vault.mode", arg: "in-cluster|external", help: "in-cluster HA Raft Vault installed by vaultctl, or an external Vault (default in-cluster)",
		paths: fixed("vault.mode"), set: setString(func(a *Answers) *string { return &a.Mode })},
	{name: "vault.address", arg: "URL", help: "Vault API address; required when vault.mode is external, refused in in-cluster mode",
		paths: fixed("vault.address"), set: setString(func(a *Answers) *string { return &a.Address })},
	{name: "vault.replicas", arg: "N", help: "Vault servers (Raft voters) in in-cluster mode: 3 or 5 (default 3); refused for an external Vault",
		paths: fixed("vault.replicas"), set: setInt(func(a *Answers) *int { return &a.Replicas })},
	{name: "vault.namespace", arg: "NS", help: "namespace for Vault and the injector (default vault)",
		paths: fixed("vault.namespace"), set: setString(func(a *Answers) *string { return &a.Namespace })},
	{name: "vault.seal.awskms.region", arg: "REGION", help: "AWS region of the KMS unseal key; required unless AWS_REGION or AWS_DEFAULT_REGION is set",
		paths: fixed("vault.seal.awskms.region"), set: setString(func(a *Answers) *string { return &a.Region })},
	{name: "vault.seal.awskms.kmsKeyId", arg: "ID|ARN|alias/NAME", help: "KMS key (default " + DefaultKMSKeyID + ")",
		paths: fixed("vault.seal.awskms.kmsKeyId"), set: setString(func(a *Answers) *string { return &a.KMSKeyID })},
	{name: "vault.seal.awskms.createKey", arg: "true|false", help: "let vaultctl create the key and its alias when missing (default false)",
		paths: fixed("vault.seal.awskms.createKey"), set: setBool(func(a *Answers) *bool { return &a.CreateKey })},
	{name: "vault.seal.awskms.irsaRoleArn", arg: "ARN", help: "IAM role for Vault's ServiceAccount (EKS IRSA); optional",
		paths: fixed("vault.seal.awskms.irsaRoleArn"), set: setString(func(a *Answers) *string { return &a.IRSARoleARN })},
	{name: "waves.pilot", arg: "NS[,NS...]", help: "namespaces migrated in week 1, the pilot wave",
		paths: wavePaths(WavePilot), set: setWave(WavePilot)},
	{name: "waves.staging", arg: "NS[,NS...]", help: "namespaces migrated in the staging wave",
		paths: wavePaths(WaveStaging), set: setWave(WaveStaging)},
	{name: "waves.production", arg: "NS[,NS...]", help: "namespaces migrated in the production wave (at least one wave needs a namespace)",
		paths: wavePaths(WaveProduction), set: setWave(WaveProduction)},
	{name: "networkPolicies.allowedNamespaces", arg: "NS[,NS...]", help: "namespaces that may reach Vault (default: every migrated namespace; empty turns NetworkPolicies off)",
		paths: fixed("networkPolicies"), set: func(a *Answers, v string) error { a.AllowedNamespaces = splitList(v); return nil }},
	{name: "audit.devices", arg: "file,stdout,syslog", help: "audit devices, at least two (default file,stdout)",
		paths: fixed("audit.devices"), set: func(a *Answers, v string) error { a.AuditDevices = splitList(v); return nil }},
	{name: "audit.allowSingleDevice", arg: "true|false", help: "accept a single audit device (not recommended)",
		paths: fixed("audit.allowSingleDevice"), set: setBool(func(a *Answers) *bool { return &a.AllowSingleAuditDevice })},
	{name: "vault.init.pgpKeys", aliases: []string{"recovery.pgpKeys"}, arg: "FILE[,FILE...]", help: "recovery keys go to these PGP public keys, one share each",
		paths: fixed("vault.init.pgpKeys"), set: func(a *Answers, v string) error {
			a.Recovery, a.PGPKeys = RecoveryPGP, splitList(v)
			return nil
		}},
	{name: "vault.init.recoveryKeysFile", aliases: []string{"recovery.file"}, arg: "FILE", help: "recovery keys go, KMS-wrapped, to this file (default " + DefaultRecoveryKeysFile + ")",
		paths: fixed("vault.init.recoveryKeysFile"), set: func(a *Answers, v string) error {
			a.Recovery, a.RecoveryKeysFile = RecoveryKMSFile, strings.TrimSpace(v)
			return nil
		}},
	{name: "vault.init.recoveryShares", arg: "N", help: "recovery key shares (default 5, or one per PGP key)",
		paths: fixed("vault.init.recoveryShares"), set: setInt(func(a *Answers) *int { return &a.RecoveryShares })},
	{name: "vault.init.recoveryThreshold", arg: "N", help: "shares needed to recover (default: a majority)",
		paths: fixed("vault.init.recoveryThreshold"), set: setInt(func(a *Answers) *int { return &a.RecoveryThreshold })},
}

func lookupKey(name string) *setKey {
	for i := range setKeys {
		if setKeys[i].name == name || slices.Contains(setKeys[i].aliases, name) {
			return &setKeys[i]
		}
	}
	return nil
}

// SetHelp documents every --set key, one per line, for `vaultctl init --help`.
func SetHelp() string {
	var b strings.Builder
	width := 0
	for _, k := range setKeys {
		width = max(width, len(k.name)+1+len(k.arg))
	}
	for _, k := range setKeys {
		left := k.name + "=" + k.arg
		b.WriteString("  " + left + strings.Repeat(" ", width-len(left)+2) + k.help)
		if len(k.aliases) > 0 {
			b.WriteString(" (also " + strings.Join(k.aliases, ", ") + ")")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Problem is something wrong with the answers, named by the --set key that fixes it.
type Problem struct {
	Key     string `json:"key"`           // --set key
	Arg     string `json:"arg,omitempty"` // placeholder for its value
	Missing bool   `json:"missing"`       // no answer was given and there is no default
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Missing {
		return fmt.Sprintf("missing answer: pass --set %s=%s (%s)", p.Key, p.Arg, p.Message)
	}
	return fmt.Sprintf("--set %s: %s", p.Key, p.Message)
}

// AnswerError lists every problem with the answers, so a CI job is fixed in one round.
type AnswerError struct{ Problems []Problem }

func (e *AnswerError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].String()
	}
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("%d problems with the answers:", len(e.Problems)))
	for _, p := range e.Problems {
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
}

// ApplySet applies --set key=value answers to a, in order (a later one wins). It returns the
// canonical names of the keys given.
func ApplySet(a *Answers, sets []string) (map[string]bool, error) {
	given := map[string]bool{}
	var ps []Problem
	for _, kv := range sets {
		name, value, ok := strings.Cut(kv, "=")
		name = strings.TrimSpace(name)
		if !ok {
			ps = append(ps, Problem{Key: name, Message: "needs the form key=value"})
			continue
		}
		k := lookupKey(name)
		if k == nil {
			ps = append(ps, Problem{Key: name, Message: "unknown key" + suggestKey(name)})
			continue
		}
		if err := k.set(a, value); err != nil {
			ps = append(ps, Problem{Key: k.name, Arg: k.arg, Message: err.Error()})
			continue
		}
		given[k.name] = true
	}
	if len(ps) > 0 {
		return given, &AnswerError{Problems: ps}
	}
	return given, nil
}

// complete fills the answers that default to other answers.
func complete(a *Answers, given map[string]bool) {
	if !given["networkPolicies.allowedNamespaces"] {
		a.AllowedNamespaces = a.MigratedNamespaces()
	}
	if a.Recovery == RecoveryPGP && !given["vault.init.recoveryShares"] {
		a.RecoveryShares = len(a.PGPKeys)
	}
}

// FromSet is the non-interactive wizard: base (the defaults and what the environment says),
// then the --set answers, then the answers that default to others. It fails when a required
// answer is missing, naming the --set key to pass, or when `config validate` would reject the
// result, naming the --set key at fault.
func FromSet(base Answers, sets []string) (Answers, error) {
	a := base.Clone()
	given, err := ApplySet(&a, sets)
	if err != nil {
		return a, err
	}
	complete(&a, given)
	if ps := append(unused(a, given), Missing(a)...); len(ps) > 0 {
		return a, &AnswerError{Problems: ps}
	}
	if errs, _ := Check(a); len(errs) > 0 {
		return a, &AnswerError{Problems: keyProblems(a, errs)}
	}
	return a, nil
}

// unused lists the answers given that the chosen Vault mode would quietly drop: an address in
// in-cluster mode (a forgotten vault.mode=external would install a second Vault) or a replica
// count for an external Vault.
func unused(a Answers, given map[string]bool) []Problem {
	var ps []Problem
	if given["vault.address"] && a.Address != "" && a.Mode == config.ModeInCluster {
		ps = append(ps, Problem{Key: "vault.address", Message: "is only used when vault.mode is external, and vault.mode is in-cluster (vaultctl installs Vault in the cluster and knows its address); add --set vault.mode=external, or drop vault.address"})
	}
	if given["vault.replicas"] && a.External() {
		ps = append(ps, Problem{Key: "vault.replicas", Message: "is only used when vault.mode is in-cluster; an external Vault's servers are not vaultctl's to count, so drop vault.replicas"})
	}
	return ps
}

// Missing lists the required answers that a has not got.
func Missing(a Answers) []Problem {
	var ps []Problem
	miss := func(key, why string) {
		ps = append(ps, Problem{Key: key, Arg: lookupKey(key).arg, Missing: true, Message: why})
	}
	if a.External() && a.Address == "" {
		miss("vault.address", "the external Vault's API address, e.g. https://vault.example.com:8200")
	}
	if a.Region == "" {
		miss("vault.seal.awskms.region", "the AWS region of the KMS unseal key, e.g. us-east-1")
	}
	if a.KMSKeyID == "" {
		miss("vault.seal.awskms.kmsKeyId", "the KMS unseal key, e.g. "+DefaultKMSKeyID)
	}
	if len(a.MigratedNamespaces()) == 0 {
		miss("waves.pilot", "the namespaces to migrate; also waves.staging and waves.production")
	}
	if a.Recovery == RecoveryPGP && len(a.PGPKeys) == 0 {
		miss("vault.init.pgpKeys", "one PGP public key file per recovery share")
	}
	if a.Recovery != RecoveryPGP && a.RecoveryKeysFile == "" {
		miss("vault.init.recoveryKeysFile", "where the KMS-wrapped recovery keys go, e.g. "+DefaultRecoveryKeysFile)
	}
	return ps
}

// keyProblems names each config problem by the --set key whose answer it is about.
func keyProblems(a Answers, ps []config.Problem) []Problem {
	out := make([]Problem, 0, len(ps))
	for _, p := range ps {
		key, best := p.Path, -1
		for _, k := range setKeys {
			for _, q := range k.paths(a) {
				if under(p.Path, []string{q}) && len(q) > best {
					key, best = k.name, len(q)
				}
			}
		}
		out = append(out, Problem{Key: key, Message: p.Message})
	}
	return out
}

// suggestKey names the --set key closest to a mistyped one, by edit distance over the whole
// key and over its last element ("regon=" or "vault.seal.region=" for vault.seal.awskms.region),
// or as an abbreviation of a last element.
// Short names allow fewer edits, so that "foo" suggests nothing rather than "vault.mode".
func suggestKey(name string) string {
	lower := strings.ToLower(name)
	best, bestDist := "", min(3, max(1, len(lastElem(lower))/3))+1
	for _, k := range setKeys {
		for _, n := range append([]string{k.name}, k.aliases...) {
			n = strings.ToLower(n)
			d := min(textdist.Levenshtein(lower, n), textdist.Levenshtein(lastElem(lower), lastElem(n)))
			if len(lastElem(lower)) >= 3 && strings.HasPrefix(lastElem(n), lastElem(lower)) {
				d = min(d, 1) // an abbreviation: waves.prod, irsa
			}
			if d < bestDist {
				best, bestDist = k.name, d
			}
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	names := make([]string, 0, len(setKeys))
	for _, k := range setKeys {
		names = append(names, k.name)
	}
	sort.Strings(names)
	return "; known keys: " + strings.Join(names, ", ")
}

func lastElem(key string) string { return key[strings.LastIndex(key, ".")+1:] }
