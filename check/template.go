package check

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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
	chart := fc.chart
	if chart == "" {
		chart = "."
	}
	return "helm template " + shellWord(chart) + " | vaultctl check -"
}

// shellWord quotes a path for a command line when it needs it.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+@%:,=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fromTemplate reports whether o is part of a template source, whose findings get the hint to
// check the rendered output.
func (fc *fileChecker) fromTemplate(o *object) bool { return o.unrendered != "" || fc.chart != "" }

// templateSource describes where a template object comes from, for messages.
func (fc *fileChecker) templateSource(o *object) string {
	src := "unrendered template"
	if fc.chart != "" {
		src = "template of Helm chart " + fc.chart
	}
	if o.unrendered != "" {
		src += " (" + o.unrendered + ")"
	}
	return src
}

// templateSecret reports a Secret in a template source: rendered, it is a raw Secret.
func (fc *fileChecker) templateSecret(o *object, typ string) {
	fix := fmt.Sprintf("check the rendered output (%s), and move the Secret's values to Vault and inject them with vault.hashicorp.com/agent-inject-secret-* annotations", fc.helmHint())
	if typ != "Opaque" {
		fix += fmt.Sprintf("; or --allow-secret-type %s if this type must stay a Secret", typ)
	}
	fc.add(o, RuleRawSecret, o.kindKey,
		fmt.Sprintf("%s: rendered, this is a Secret of type %s, whose values belong in Vault", fc.templateSource(o), typ), fix)
}

// helmChart returns the chart directory when file p lies under a chart's templates/ directory
// (one next to a Chart.yaml), else "". cache maps directories already looked at.
func helmChart(p string, cache map[string]string) string {
	dir := filepath.Dir(p)
	if c, ok := cache[dir]; ok {
		return c
	}
	chart := ""
	abs, err := filepath.Abs(dir)
	if err == nil {
		for d := abs; ; {
			if filepath.Base(d) == "templates" {
				if fi, err := os.Stat(filepath.Join(filepath.Dir(d), "Chart.yaml")); err == nil && !fi.IsDir() {
					chart = displayPath(filepath.Dir(d))
					break
				}
			}
			up := filepath.Dir(d)
			if up == d {
				break
			}
			d = up
		}
	}
	cache[dir] = chart
	return chart
}

// displayPath shows an absolute path relative to the working directory, as a user would type it.
func displayPath(abs string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, abs); err == nil {
			return rel
		}
	}
	return abs
}

// Line patterns of the text scan of template sources that are not YAML.
var (
	topKeyRE  = regexp.MustCompile(`^([A-Za-z]+):[ \t]*(.*)$`)
	metaKeyRE = regexp.MustCompile(`^( +)(name|namespace):[ \t]*(.*)$`)
)

// scanTemplateSecrets finds the Secrets a template source that is not YAML would render, line by
// line: a document whose top-level kind is Secret. Secrets in the documents before the syntax
// error were parsed and checked already.
func (fc *fileChecker) scanTemplateSecrets(data []byte) {
	parsed := make(map[int]bool, len(fc.secretLines))
	for _, l := range fc.secretLines {
		parsed[l] = true
	}
	type doc struct {
		apiVersion, kind, typ, name, namespace string
		kindLine, metaIndent                   int
		inMeta                                 bool
	}
	var d doc
	emit := func() {
		if d.kind == "Secret" && (d.apiVersion == "" || d.apiVersion == "v1" || strings.Contains(d.apiVersion, "{{")) && !parsed[d.kindLine] {
			fc.textSecret(d.kindLine, d.name, d.namespace, d.typ)
		}
		d = doc{}
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		l = strings.TrimRight(l, "\r")
		if strings.HasPrefix(l, "---") {
			emit()
			continue
		}
		if m := topKeyRE.FindStringSubmatch(l); m != nil {
			d.inMeta = m[1] == "metadata"
			v := scalarText(m[2])
			switch m[1] {
			case "apiVersion":
				d.apiVersion = v
			case "kind":
				d.kind, d.kindLine = v, i+1
			case "type":
				d.typ = v
			}
			continue
		}
		if !d.inMeta {
			continue
		}
		if m := metaKeyRE.FindStringSubmatch(l); m != nil {
			if d.metaIndent == 0 {
				d.metaIndent = len(m[1])
			}
			if len(m[1]) != d.metaIndent {
				continue // a label called name, say
			}
			if m[2] == "name" && d.name == "" {
				d.name = scalarText(m[3])
			} else if m[2] == "namespace" && d.namespace == "" {
				d.namespace = scalarText(m[3])
			}
		} else if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") && !strings.HasPrefix(t, "{{") && d.metaIndent == 0 {
			d.metaIndent = len(l) - len(strings.TrimLeft(l, " "))
		}
	}
	emit()
}

// scalarText is a line's value without quotes and a trailing comment.
func scalarText(v string) string {
	if k := strings.Index(v, " #"); k >= 0 && !strings.Contains(v[k:], "}}") {
		v = v[:k]
	}
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		v = v[1 : len(v)-1]
	}
	return v
}

// textSecret reports a Secret found by the text scan of a template source.
func (fc *fileChecker) textSecret(line int, name, ns, typ string) {
	o := &object{kind: "Secret", name: name, line: line, column: 1, kindKey: &yaml.Node{Line: line, Column: 1},
		unrendered: "not YAML until rendered"}
	switch {
	case strings.Contains(ns, "{{"):
		o.namespace, o.nsUnknown = ns, true
	case ns != "":
		o.namespace = ns
	default:
		o.namespace = fc.s.defaultNS
	}
	if typ == "" || strings.Contains(typ, "{{") {
		typ = "Opaque"
	}
	fc.res.objects++
	if !fc.required(o) || fc.s.allowTypes[typ] {
		return
	}
	fc.templateSecret(o, typ)
}

// kustomizationNames are the file names kustomize reads.
var kustomizationNames = map[string]bool{"kustomization.yaml": true, "kustomization.yml": true, "Kustomization": true}

// isKustomization reports whether a top-level document is a kustomization (a Kustomization or a
// Component): by its apiVersion, or by the file name for the usual one without apiVersion and
// kind. Flux's Kustomization (kustomize.toolkit.fluxcd.io) is another thing.
func (fc *fileChecker) isKustomization(api, kind string) bool {
	if strings.HasPrefix(api, "kustomize.config.k8s.io/") {
		return kind == "Kustomization" || kind == "Component"
	}
	return api == "" && (kind == "" || kind == "Kustomization") && kustomizationNames[filepath.Base(fc.file)]
}

// kustomization reports the Secrets a kustomization's secretGenerator produces when built.
func (fc *fileChecker) kustomization(n *yaml.Node) {
	w := &fc.w
	ns := w.getStr(n, "namespace")
	_, gens := w.get(n, "secretGenerator")
	dir := "."
	if fc.file != StdinName {
		dir = filepath.Dir(fc.file)
	}
	for _, g := range w.items(gens) {
		nk, nn := w.get(g, "name")
		name, _ := str(nn)
		o := &object{n: g, kind: "Secret", name: name, line: g.Line, column: g.Column}
		o.kindKey = nk
		if o.kindKey == nil {
			o.kindKey = g
		}
		if gns := w.getStr(g, "namespace"); gns != "" {
			o.namespace = gns
		} else if ns != "" {
			o.namespace = ns // the kustomization's namespace: applies to what it generates
		} else {
			o.namespace = fc.s.defaultNS
		}
		typ := w.getStr(g, "type")
		if typ == "" {
			typ = "Opaque"
		}
		fc.res.objects++
		fc.res.secrets = append(fc.res.secrets, secretInfo{ref: o.namespace + "/" + name, typ: typ})
		if !fc.required(o) || fc.s.allowTypes[typ] {
			continue
		}
		fix := fmt.Sprintf("check the rendered output (kustomize build %s | vaultctl check -), and move the values to Vault and inject them with vault.hashicorp.com/agent-inject-secret-* annotations", shellWord(dir))
		if typ != "Opaque" {
			fix += fmt.Sprintf("; or --allow-secret-type %s if this type must stay a Secret", typ)
		}
		fc.add(o, RuleRawSecret, o.kindKey,
			fmt.Sprintf("secretGenerator %s: when the kustomization is built, this is a Secret of type %s, whose values belong in Vault", name, typ), fix)
	}
}
