package check

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Template sources (Helm chart templates, Kustomize kustomizations) are not what kubectl applies,
// but they produce Secrets and workloads when rendered. check reports what it can see where it
// stands, and points at the rendered output, rather than letting such a file pass silently.

// templated returns the source text of a value that is an unrendered template directive, else "".
func (fc *fileChecker) templated(n *yaml.Node) string {
	n = deref(n)
	if n == nil {
		return ""
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if strings.Contains(n.Value, "{{") {
			return n.Value
		}
	case yaml.MappingNode:
		// Unquoted, {{ .Values.name }} is YAML for a flow mapping whose only key is a flow mapping.
		if n.Style&yaml.FlowStyle != 0 && len(n.Content) > 0 && n.Content[0].Kind == yaml.MappingNode &&
			n.Content[0].Style&yaml.FlowStyle != 0 {
			return fc.sourceAt(n.Line, n.Column)
		}
	}
	return ""
}

// sourceAt returns the rest of the source line from a 1-based line and column, without a
// trailing comment, for messages about text the YAML tree no longer holds.
func (fc *fileChecker) sourceAt(line, col int) string {
	data := fc.data
	for i := 1; i < line; i++ {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			return "{{ }}"
		}
		data = data[j+1:]
	}
	if j := bytes.IndexByte(data, '\n'); j >= 0 {
		data = data[:j]
	}
	for i := 1; i < col && len(data) > 0; i++ {
		_, size := utf8.DecodeRune(data)
		data = data[size:]
	}
	s := string(data)
	if k := strings.Index(s, " #"); k >= 0 && !strings.Contains(s[k:], "}}") {
		s = s[:k]
	}
	s = strings.TrimSpace(s)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// helmHint is the command that renders the file's chart.
func (fc *fileChecker) helmHint() string {
	return "helm template . | vaultctl check -"
}

// fromTemplate reports whether o is part of a template source, whose findings get the hint to
// check the rendered output.
func (o *object) fromTemplate() bool { return o.unrendered != "" }

// unrenderedSecret reports a Secret in a template source: rendered, it is a raw Secret.
func (fc *fileChecker) unrenderedSecret(o *object, typ string) {
	fix := fmt.Sprintf("check the rendered output (%s), and move the Secret's values to Vault and inject them with vault.hashicorp.com/agent-inject-secret-* annotations", fc.helmHint())
	if typ != "Opaque" {
		fix += fmt.Sprintf("; or --allow-secret-type %s if this type must stay a Secret", typ)
	}
	fc.add(o, RuleRawSecret, o.kindKey,
		fmt.Sprintf("unrendered template (%s): rendered, this is a Secret of type %s, whose values belong in Vault", o.unrendered, typ), fix)
}
