package check

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// syntaxError is a parse problem at a line (1-based).
type syntaxError struct {
	Line, Column int
	Msg          string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// parseDocuments splits a YAML or JSON stream into document roots (empty documents dropped). On a
// syntax error it returns the documents before it together with the error, so that they are
// still checked. It never panics. fp (may be nil) is reused between calls.
func parseDocuments(data []byte, fp *fastParser) (docs []*yaml.Node, serr *syntaxError) {
	if fp == nil {
		fp = new(fastParser)
	}
	if docs, ok := fp.parse(data); ok {
		for i, d := range docs {
			if e := duplicateKey(d, 0); e != nil {
				return docs[:i], e // the ambiguous document itself is not checked
			}
		}
		return docs, nil
	}
	return yamlParse(data)
}

// yamlParse is the general parser: gopkg.in/yaml.v3, which handles all of YAML (flow style,
// anchors, tags, folded scalars) and JSON.
func yamlParse(data []byte) (docs []*yaml.Node, serr *syntaxError) {
	defer func() {
		// yaml.v3 has panicked on hostile input in the past; a guard must not.
		if r := recover(); r != nil {
			serr = &syntaxError{Line: 1, Msg: fmt.Sprintf("cannot parse: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, yamlError(err, data)
		}
		if root := documentRoot(&doc); root != nil {
			if d := duplicateKey(root, 0); d != nil {
				return docs, d
			}
			docs = append(docs, root)
		}
	}
}

// documentRoot returns the content of a document node, or nil for an empty document.
func documentRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil
	}
	return root
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a yaml.v3 error into a syntaxError with a line. yaml.v3 leaves the line out
// when it is the first one, and for reader errors (bad UTF-8, control characters) altogether.
func yamlError(err error, data []byte) *syntaxError {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &syntaxError{Line: line, Msg: m[2]}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	return &syntaxError{Line: badByteLine(data), Msg: msg}
}

// badByteLine finds the first byte YAML refuses (invalid UTF-8 or a control character) and
// returns its line; 1 if there is none.
func badByteLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return line
		}
		switch {
		case r == '\n':
			line++
		case r == '\t' || r == '\r':
		case r < 0x20 || (r >= 0x7f && r <= 0x9f && r != 0x85) || r == 0xfffe || r == 0xffff:
			return line
		}
		i += size
	}
	return 1
}

// maxDepth bounds nesting so that a hostile file cannot exhaust the stack.
const maxDepth = 1000

// duplicateKey reports the first mapping with a key given twice. YAML forbids it, and tools
// disagree on which value wins, which is exactly how a guard gets bypassed (kind: ConfigMap
// first, kind: Secret second). Aliases are not followed: their targets are checked where defined.
func duplicateKey(n *yaml.Node, depth int) *syntaxError {
	if depth > maxDepth {
		return &syntaxError{Line: n.Line, Column: n.Column, Msg: "nesting too deep"}
	}
	switch n.Kind {
	case yaml.MappingNode:
		c := n.Content
		if len(c) <= 32 {
			for i := 0; i+1 < len(c); i += 2 {
				for j := i + 2; j+1 < len(c); j += 2 {
					if sameKey(c[i], c[j]) {
						return dupError(c[i], c[j])
					}
				}
			}
		} else {
			seen := make(map[string]*yaml.Node, len(c)/2)
			for i := 0; i+1 < len(c); i += 2 {
				if c[i].Kind != yaml.ScalarNode || c[i].Value == "<<" {
					continue
				}
				if first, ok := seen[c[i].Value]; ok {
					return dupError(first, c[i])
				}
				seen[c[i].Value] = c[i]
			}
		}
		for _, ch := range c {
			if d := duplicateKey(ch, depth+1); d != nil {
				return d
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, ch := range n.Content {
			if d := duplicateKey(ch, depth+1); d != nil {
				return d
			}
		}
	}
	return nil
}

func sameKey(a, b *yaml.Node) bool {
	return a.Kind == yaml.ScalarNode && b.Kind == yaml.ScalarNode && a.Value == b.Value && a.Value != "<<"
}

func dupError(first, second *yaml.Node) *syntaxError {
	return &syntaxError{Line: second.Line, Column: second.Column,
		Msg: fmt.Sprintf("duplicate key %q (first at line %d)", second.Value, first.Line)}
}
