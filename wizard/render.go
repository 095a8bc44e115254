package wizard

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/vaultctl/vaultctl/config"
)

// Audit device settings for each preset.
var auditPresets = map[string]struct{ typ, option, value, comment string }{
	AuditFile:   {"file", "file_path", "/vault/audit/audit.log", "on the audit volume (vault.storage.auditSize)"},
	AuditStdout: {"file", "file_path", "stdout", "to the pod log, for your log shipper"},
	AuditSyslog: {"syslog", "tag", "vault", "to the node's syslog"},
}

// waveGates are the gates of the i-th of the rendered waves, as in config.example.yaml's plan:
// the first waits for the injector (there is no earlier wave to complete), a later one for the
// wave before it; staging and production also wait for `vaultctl check` to pass in CI.
func waveGates(ws []wave, i int) []string {
	switch {
	case i > 0:
		return []string{"previous-wave-complete", "check-passing"}
	case ws[i].Name == WavePilot:
		return []string{"injector-healthy"}
	default:
		return []string{"injector-healthy", "check-passing"}
	}
}

// waveComment says where the i-th wave stands in the plan actually written, so that a lone
// production wave is not described as coming after waves that do not exist.
func waveComment(ws []wave, i int) string {
	last := i == len(ws)-1
	switch name := ws[i].Name; {
	case name == WavePilot:
		return "a low-risk first wave, to learn the injector"
	case len(ws) == 1:
		return "the only wave: no pilot before it, so it starts once the injector is healthy"
	case i == 0:
		return "the first wave (no pilot), once the injector is healthy"
	case name == WaveStaging && !last:
		return "staging before production"
	case len(ws) == 2:
		return "last, once the " + ws[0].Name + " wave ran clean"
	default:
		return "last, once the earlier waves ran clean"
	}
}

// Render writes the answers as a commented vaultctl.yaml: a trimmed config.example.yaml that holds
// the user's answers and leaves every other key to its documented default. Values are quoted
// whenever they could break the YAML, so that a mistyped answer still parses and
// `config validate` reports it at its own key.
func Render(a Answers) ([]byte, error) {
	if a.Waves == nil {
		a.Waves = map[string][]string{}
	}
	var e emitter
	e.comment(0, "vaultctl config written by `vaultctl init`. Keys left out take the defaults documented in")
	e.comment(0, "config.example.yaml. Check it with `vaultctl config validate`, preview the changes with")
	e.comment(0, "`vaultctl plan`, and make them with `vaultctl apply`.")
	e.kv(0, "apiVersion", config.APIVersion, "schema version (required)")
	e.kv(0, "kind", config.Kind, "document kind (required)")

	e.blank()
	e.key(0, "cluster", "")
	if a.Kubeconfig != "" {
		e.kv(2, "kubeconfig", str(a.Kubeconfig), "kubeconfig path (flag --kubeconfig)")
	}
	if a.Context == "" {
		e.kv(2, "context", str(a.Context), "empty = the kubeconfig's current context when vaultctl runs")
	} else {
		e.kv(2, "context", str(a.Context), "kubeconfig context vaultctl works in (flag --context)")
	}

	e.blank()
	e.key(0, "vault", "")
	if a.External() {
		e.kv(2, "mode", str(a.Mode), "external: Vault runs elsewhere; vaultctl configures it")
		e.kv(2, "address", str(a.Address), "Vault API URL")
	} else {
		e.kv(2, "mode", str(a.Mode), "in-cluster: vaultctl Helm-installs HA Raft Vault")
	}
	e.kv(2, "namespace", str(a.Namespace), "namespace for Vault, the injector and vaultctl's checkpoints")
	if !a.External() {
		e.kv(2, "replicas", strconv.Itoa(a.Replicas), "Raft voters; odd (3 or 5) so a quorum survives a failure")
	}
	e.key(2, "seal", "")
	e.kv(4, "type", "awskms", "auto-unseal with AWS KMS (the only supported seal)")
	e.key(4, "awskms", "")
	e.kv(6, "region", str(a.Region), "region of the KMS key")
	e.kv(6, "kmsKeyId", str(a.KMSKeyID), "key ID, key ARN or alias/NAME")
	if a.CreateKey {
		e.kv(6, "createKey", "true", "the kms phase creates the key and alias when missing")
	} else {
		e.kv(6, "createKey", "false", "the key must exist; set true to let the kms phase create it")
	}
	if a.IRSARoleARN != "" || !a.External() {
		comment := "IAM role for Vault's ServiceAccount (IRSA)"
		if a.IRSARoleARN == "" {
			comment = "IRSA role for Vault's ServiceAccount; empty = credentials from the node or environment"
		}
		e.kv(6, "irsaRoleArn", str(a.IRSARoleARN), comment)
	}
	if a.External() {
		e.comment(2, "tls.caCert: PEM file of the CA that signed Vault's certificate, when it is private.")
	}
	e.key(2, "init", "recovery keys from operator init")
	e.kv(4, "recoveryShares", strconv.Itoa(a.Shares()), "recovery key shares")
	e.kv(4, "recoveryThreshold", strconv.Itoa(a.Threshold()), "shares needed to use the recovery key")
	if a.Recovery == RecoveryPGP {
		e.key(4, "pgpKeys", "one base64 PGP public key file per share; Vault encrypts each share to one")
		for _, k := range a.PGPKeys {
			e.item(6, str(k), "")
		}
		if len(a.PGPKeys) == 0 {
			e.lines[len(e.lines)-1].text += " []"
		}
	} else {
		e.kv(4, "recoveryKeysFile", str(a.RecoveryKeysFile), "KMS-wrapped recovery keys, mode 0600, besides the in-cluster copy")
	}

	e.blank()
	e.key(0, "networkPolicies", "")
	if len(a.AllowedNamespaces) == 0 {
		e.kv(2, "enabled", "false", "no NetworkPolicies: every pod may reach Vault")
	} else {
		e.kv(2, "enabled", "true", "only these namespaces may reach Vault on 8200")
		e.key(2, "allowedClients", "")
		for _, ns := range a.AllowedNamespaces {
			e.item(4, "namespace: "+str(ns), "")
		}
	}

	e.blank()
	e.key(0, "audit", "")
	e.key(2, "devices", "at least two: Vault blocks every request when all devices fail")
	for _, d := range a.AuditDevices {
		p, ok := auditPresets[d]
		if !ok {
			// Not a preset: write it as a device path so config validate names the problem.
			e.item(4, "path: "+str(d), "")
			e.kv(6, "type", str(d), "")
			continue
		}
		e.item(4, "path: "+str(d), p.comment)
		e.kv(6, "type", p.typ, "")
		e.key(6, "options", "")
		e.kv(8, p.option, str(p.value), "")
	}
	if len(a.AuditDevices) == 0 {
		e.lines[len(e.lines)-1].text += " []"
	}
	if a.AllowSingleAuditDevice {
		e.kv(2, "allowSingleDevice", "true", "accept fewer than two devices (not recommended)")
	}

	e.blank()
	e.key(0, "migration", "")
	ws := a.waves()
	if len(ws) == 0 {
		e.key(2, "waves", "add namespaces with `vaultctl init` or by hand")
		e.lines[len(e.lines)-1].text += " []"
	} else {
		e.key(2, "waves", "one wave a week; a wave starts when its gates hold")
	}
	for i, w := range ws {
		e.item(4, "week: "+strconv.Itoa(i+1), "")
		e.kv(6, "name", w.Name, waveComment(ws, i))
		e.kv(6, "namespaces", flow(w.Namespaces), "")
		e.kv(6, "gates", flow(waveGates(ws, i)), "")
	}

	e.blank()
	e.comment(0, "Next: say which workloads may read which secrets. Add `policies:` (logical KV paths such as")
	e.comment(0, "secret/production/db-credentials) and `roles:` (ServiceAccounts bound to those policies);")
	e.comment(0, "config.example.yaml shows both, and `databases:` for dynamic PostgreSQL credentials.")
	return e.bytes(), nil
}

// emitter builds YAML line by line so that every value can carry a comment, and lines up the
// comments of neighbouring keys the way config.example.yaml does.
type emitter struct{ lines []line }

type line struct {
	indent  int
	text    string // the YAML without indentation; empty for a blank or comment-only line
	comment string
}

func (e *emitter) kv(indent int, key, value, comment string) {
	e.lines = append(e.lines, line{indent, key + ": " + value, comment})
}

func (e *emitter) key(indent int, key, comment string) {
	e.lines = append(e.lines, line{indent, key + ":", comment})
}

func (e *emitter) item(indent int, text, comment string) {
	e.lines = append(e.lines, line{indent, "- " + text, comment})
}

func (e *emitter) comment(indent int, text string) {
	e.lines = append(e.lines, line{indent, "", text})
}

func (e *emitter) blank() { e.lines = append(e.lines, line{}) }

func (e *emitter) bytes() []byte {
	var b strings.Builder
	for i := 0; i < len(e.lines); {
		// A run of neighbouring commented key lines at one indentation shares a comment column.
		j, width := i, 0
		for j < len(e.lines) && e.lines[j].text != "" && e.lines[j].comment != "" && e.lines[j].indent == e.lines[i].indent {
			width = max(width, len(e.lines[j].text))
			j++
		}
		if j == i {
			j = i + 1
		}
		for _, l := range e.lines[i:j] {
			pad := strings.Repeat(" ", l.indent)
			switch {
			case l.text == "" && l.comment == "":
				b.WriteString("\n")
			case l.text == "":
				b.WriteString(pad + "# " + l.comment + "\n")
			case l.comment == "":
				b.WriteString(pad + l.text + "\n")
			default:
				b.WriteString(pad + l.text + strings.Repeat(" ", width-len(l.text)) + " # " + l.comment + "\n")
			}
		}
		i = j
	}
	return []byte(b.String())
}

// plain matches strings that YAML reads back as the same string without quotes; plainFlow is the
// same inside a [flow, list], where libyaml does not allow ':'.
var (
	plain     = regexp.MustCompile(`^[A-Za-z/][A-Za-z0-9._/:@=+-]*$`)
	plainFlow = regexp.MustCompile(`^[A-Za-z/][A-Za-z0-9._/@=+-]*$`)
)

var yamlWords = map[string]bool{"true": true, "false": true, "yes": true, "no": true, "on": true, "off": true, "null": true, "y": true, "n": true}

// str renders a string scalar, double-quoted (JSON quoting is valid YAML) unless plain is safe.
func str(s string) string { return scalar(s, plain) }

func scalar(s string, safe *regexp.Regexp) string {
	if safe.MatchString(s) && !yamlWords[strings.ToLower(s)] {
		return s
	}
	q, err := json.Marshal(s)
	if err != nil { // unreachable: json.Marshal of a string does not fail
		return fmt.Sprintf("%q", s)
	}
	return string(q)
}

// flow renders a list of strings as [a, b].
func flow(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = scalar(s, plainFlow)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
