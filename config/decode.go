package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vaultctl/vaultctl/internal/textdist"
	"github.com/vaultctl/vaultctl/internal/yamlnode"
)

// Source remembers where each key of a config came from, so that every problem can name its
// file:line (or the environment variable or flag that set it).
type Source struct {
	File      string
	lines     map[string]int    // key path -> line in File
	overrides map[string]string // key path -> "env VAULTCTL_X" or "flag --x"
}

func newSource(file string) *Source {
	return &Source{File: file, lines: map[string]int{}, overrides: map[string]string{}}
}

// Line returns the line of path, or of its nearest ancestor present in the file, or 0.
func (s *Source) Line(path string) int {
	if s == nil {
		return 0
	}
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := s.lines[p]; ok {
			return l
		}
	}
	return s.lines[""]
}

func (s *Source) problem(path, msg string) Problem {
	if s == nil {
		return Problem{Path: path, Message: msg}
	}
	if o, ok := s.overrides[path]; ok {
		return Problem{Source: o, Path: path, Message: msg}
	}
	return Problem{File: s.File, Line: s.Line(path), Path: path, Message: msg}
}

// parentPath strips the last element: "a.b[2].c" -> "a.b[2]" -> "a.b" -> "a" -> "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndex(p, "["); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndex(p, "."); i >= 0 {
		return p[:i]
	}
	return ""
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

var (
	durationType = reflect.TypeOf(Duration{})
	configType   = reflect.TypeOf(Config{})
)

// decode parses one YAML document strictly: unknown keys, duplicate keys and wrong types are all
// reported (with lines) before anything is decoded, so users see every mistake at once.
func decode(file string, data []byte) (*Config, *Source, *problems) {
	src := newSource(file)
	ps := &problems{src: src}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.errorf("", "file is empty; start from config.example.yaml or run `vaultctl init`")
			return nil, src, ps
		}
		ps.errs = append(ps.errs, yamlSyntaxProblem(file, err))
		return nil, src, ps
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		ps.errs = append(ps.errs, Problem{File: file, Line: extra.Line, Message: "holds more than one YAML document; keep one Platform per file"})
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	src.lines[""] = root.Line
	walk(root, configType, "", src, ps)
	if len(ps.errs) > 0 {
		return nil, src, ps
	}
	cfg := &Config{}
	if err := root.Decode(cfg); err != nil {
		// The walk accepts only what Decode accepts; reaching here is a bug, but still say where.
		ps.errs = append(ps.errs, yamlSyntaxProblem(file, err))
		return nil, src, ps
	}
	return cfg, src, ps
}

func yamlSyntaxProblem(file string, err error) Problem {
	msg := err.Error()
	line := 0
	// yaml.v3 reports "yaml: line N: message".
	if _, scanErr := fmt.Sscanf(msg, "yaml: line %d:", &line); scanErr == nil {
		if i := strings.Index(msg, ": "); i >= 0 {
			if j := strings.Index(msg[i+2:], ": "); j >= 0 {
				msg = msg[i+2+j+2:]
			}
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return Problem{File: file, Line: line, Message: "invalid YAML: " + msg}
}

// resolve follows aliases so anchors and *references are checked like inline values.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func walk(n *yaml.Node, t reflect.Type, path string, src *Source, ps *problems) {
	n = resolve(n)
	if n == nil {
		return
	}
	if path != "" {
		if _, seen := src.lines[path]; !seen {
			src.lines[path] = n.Line
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an explicit empty value leaves the default
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			ps.errorf(path, "must be a duration such as 30m or 1h")
			return
		}
		if _, err := ParseDuration(n.Value); err != nil {
			ps.errorf(path, "%v", err)
		}
	case t.Kind() == reflect.Struct:
		walkStruct(n, t, path, src, ps)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ps.errorf(path, "must be a list (%s)", kindName(n))
			return
		}
		for i, item := range n.Content {
			walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), src, ps)
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			ps.errorf(path, "must be a mapping of names to values (%s)", kindName(n))
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], resolve(n.Content[i+1])
			// Map keys are user data (labels such as app.kubernetes.io/name), so quote them in paths.
			kp := fmt.Sprintf("%s[%q]", path, k.Value)
			src.lines[kp] = k.Line
			if seen[k.Value] {
				ps.errorf(kp, "duplicate key")
			}
			seen[k.Value] = true
			if v.Kind != yaml.ScalarNode {
				ps.errorf(kp, "must be a plain value (%s)", kindName(v))
			}
		}
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			ps.errorf(path, "must be a string (%s)", kindName(n))
		}
	case t.Kind() == reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			ps.errorf(path, "must be a whole number, got %s", describe(n))
		}
	case t.Kind() == reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			ps.errorf(path, "must be true or false, got %s", describe(n))
		}
	}
}

func walkStruct(n *yaml.Node, t reflect.Type, path string, src *Source, ps *problems) {
	if n.Kind != yaml.MappingNode {
		if path == "" {
			ps.errorf(path, "the document must be a mapping with apiVersion, kind, vault, ... (%s)", kindName(n))
		} else {
			ps.errorf(path, "must be a mapping (%s)", kindName(n))
		}
		return
	}
	fields := yamlFields(t)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" { // a YAML merge key: check the merged mapping's keys in place
			for _, m := range yamlnode.MergeSources(v) {
				walkStruct(m, t, path, src, ps)
			}
			continue
		}
		kp := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			src.lines[kp] = k.Line
			ps.errorf(kp, "duplicate key (first set on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			src.lines[kp] = k.Line
			ps.errorf(kp, "unknown key%s", suggest(k.Value, fields))
			continue
		}
		src.lines[kp] = k.Line
		walk(v, f.Type, kp, src, ps)
	}
}

// yamlFields maps yaml key -> struct field for t.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		out[name] = f
	}
	return out
}

// suggest names the closest known key, for typos like "kmsKeyID" or "replica".
func suggest(key string, fields map[string]reflect.StructField) string {
	best, bestDist := "", 4
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if d := textdist.Levenshtein(strings.ToLower(key), strings.ToLower(name)); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Sprintf("; known keys: %s", strings.Join(names, ", "))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "found a mapping"
	case yaml.SequenceNode:
		return "found a list"
	default:
		// Never echo the value: where a mapping was expected (database password: {env: ...})
		// a user may have pasted the secret itself.
		return "found a plain value"
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}
