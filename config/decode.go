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
	written   map[string]string // key path -> a relative path as written, before resolvePaths
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
// reported with their lines. What they spoil is cut out of the tree and the rest is decoded, so
// that validation still runs and users see every mistake at once; the spoiled key paths are
// recorded in ps.damaged, so that validation does not report their consequences (a misspelt
// kmsKeyId is one problem, not also "kmsKeyId is required"). cfg is nil only when nothing can be
// decoded (not YAML, or not a mapping).
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
	normalizeGates(root)
	if r := resolve(root); r == nil || r.Kind != yaml.MappingNode {
		walkStruct(&walker{src: src, ps: ps}, r, configType, "")
		return nil, src, ps
	}
	w := &walker{src: src, ps: ps}
	w.walk(root, configType, "")
	// Cut only after the whole walk: an anchored node can be reached again through an alias,
	// and each path it appears at deserves its own report.
	for _, fix := range w.fixes {
		fix()
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

// walker checks a node tree against the Config type, recording problems and the cuts that make
// the rest of the tree decodable.
type walker struct {
	src   *Source
	ps    *problems
	fixes []func()
}

// bad reports a value of the wrong shape at path and empties it, so decoding leaves the default.
func (w *walker) bad(n *yaml.Node, path, format string, args ...any) {
	w.ps.errorf(path, format, args...)
	w.ps.damage(path)
	if n == nil {
		return
	}
	w.fixes = append(w.fixes, func() {
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	})
}

// reportAt reports a problem at line, leaving path's recorded line (its first occurrence, the
// one that is kept) for later problems.
func (w *walker) reportAt(path string, line int, msg string) {
	prev, had := w.src.lines[path]
	w.src.lines[path] = line
	w.ps.errorf(path, "%s", msg)
	if had {
		w.src.lines[path] = prev
	} else {
		delete(w.src.lines, path)
	}
}

// drop removes the key k (and its value) from mapping m.
func (w *walker) drop(m, k *yaml.Node) {
	w.fixes = append(w.fixes, func() {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i] == k {
				m.Content = append(m.Content[:i:i], m.Content[i+2:]...)
				return
			}
		}
	})
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	src := w.src
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
			w.bad(n, path, "must be a duration such as 30m or 1h")
			return
		}
		if _, err := ParseDuration(n.Value); err != nil {
			w.bad(n, path, "%v", err)
		}
	case t.Kind() == reflect.Struct:
		walkStruct(w, n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.bad(n, path, "must be a list (%s)", kindName(n))
			return
		}
		for i, item := range n.Content {
			w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.bad(n, path, "must be a mapping of names to values (%s)", kindName(n))
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], resolve(n.Content[i+1])
			// Map keys are user data (labels such as app.kubernetes.io/name), so quote them in paths.
			kp := fmt.Sprintf("%s[%q]", path, k.Value)
			if seen[k.Value] {
				w.reportAt(kp, k.Line, "duplicate key")
				w.drop(n, k)
				continue
			}
			src.lines[kp] = k.Line
			seen[k.Value] = true
			if v == nil {
				continue
			}
			if v.Kind != yaml.ScalarNode {
				w.bad(v, kp, "must be a plain value (%s)", kindName(v))
			}
		}
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.bad(n, path, "must be a string (%s)", kindName(n))
		}
	case t.Kind() == reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			w.bad(n, path, "must be a whole number, got %s", describe(n))
		}
	case t.Kind() == reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			w.bad(n, path, "must be true or false, got %s", describe(n))
		}
	}
}

func walkStruct(w *walker, n *yaml.Node, t reflect.Type, path string) {
	src, ps := w.src, w.ps
	if n == nil || n.Kind != yaml.MappingNode {
		kind := "found nothing"
		if n != nil {
			kind = kindName(n)
		}
		if path == "" {
			ps.errorf(path, "the document must be a mapping with apiVersion, kind, vault, ... (%s)", kind)
		} else {
			w.bad(n, path, "must be a mapping (%s)", kind)
		}
		return
	}
	fields := yamlFields(t)
	seen := map[string]int{}
	var misspelt []string // fields an unknown key was probably meant to be
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" { // a YAML merge key: check the merged mapping's keys in place
			for _, m := range yamlnode.MergeSources(v) {
				walkStruct(w, m, t, path)
			}
			continue
		}
		kp := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			w.reportAt(kp, k.Line, fmt.Sprintf("duplicate key (first set on line %d)", first))
			w.drop(n, k)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			src.lines[kp] = k.Line
			hint, best := suggest(k.Value, fields)
			ps.errorf(kp, "unknown key%s", hint)
			if best != "" {
				misspelt = append(misspelt, best)
			}
			w.drop(n, k)
			continue
		}
		src.lines[kp] = k.Line
		w.walk(v, f.Type, kp)
	}
	for _, name := range misspelt {
		// A key absent because it was misspelt: what validation would say about its absence
		// ("is required") is the same mistake again. When the key is also spelt right, it is
		// validated as usual.
		if _, present := seen[name]; !present {
			ps.damage(joinPath(path, name))
		}
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

// suggest names the closest known key, for typos like "kmsKeyID" or "replica": the hint for the
// message, and the key ("" when none is close).
func suggest(key string, fields map[string]reflect.StructField) (hint, best string) {
	bestDist := 4
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
		return fmt.Sprintf(" (did you mean %q?)", best), best
	}
	return fmt.Sprintf("; known keys: %s", strings.Join(names, ", ")), ""
}

func kindName(n *yaml.Node) string {
	if n == nil {
		return "found nothing"
	}
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
