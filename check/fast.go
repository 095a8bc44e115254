package check

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// fastParse parses the block-style subset of YAML that nearly all hand-written and generated
// manifests use, straight into yaml.Node trees, several times faster than yaml.v3 and with a
// handful of allocations per file. That is what lets check keep up with cat on a large tree.
//
// Anything outside the subset makes it give up (ok false) and the caller falls back to yaml.v3:
// flow collections other than [] and {} and one-line lists of scalars, anchors, aliases, tags,
// folded and multi-line scalars, escapes, explicit keys, directives, tabs, CR, non-ASCII bytes,
// and every syntax error (so yaml.v3 produces the message). FuzzParse checks that whenever it
// does not give up, it returns exactly what yaml.v3 returns.
func fastParse(data []byte) (docs []*yaml.Node, ok bool) {
	return new(fastParser).parse(data)
}

// parse is fastParse reusing the parser's buffers: the trees it returns are valid only until
// the next call, which is all a worker needs and saves most of the allocation.
func (p *fastParser) parse(data []byte) (docs []*yaml.Node, ok bool) {
	for _, c := range data {
		if (c < 0x20 && c != '\n') || c >= 0x7f {
			return nil, false
		}
	}
	p.src = string(data)
	p.i, p.depth = 0, 0
	p.splitLines()
	// About one node per line in manifests; more slabs are added if needed.
	if want := len(p.lines) + len(p.lines)/2 + 8; cap(p.nodes) < want {
		p.nodes = make([]yaml.Node, 0, want)
	} else {
		p.nodes = p.nodes[:0]
	}
	p.ptrs = p.ptrs[:0]
	p.stack = p.stack[:0]
	defer func() {
		if r := recover(); r != nil {
			if _, bail := r.(fastBail); !bail {
				panic(r)
			}
			docs, ok = nil, false
		}
	}()
	for p.i < len(p.lines) {
		if root := p.document(); root != nil {
			docs = append(docs, root)
		}
	}
	return docs, true
}

// fastBail unwinds the parser when the input leaves the subset.
type fastBail struct{}

func bail() { panic(fastBail{}) }

type fastLine struct {
	text   string // without the newline
	indent int    // leading spaces
	blank  bool   // empty, spaces only, or a comment
}

type fastParser struct {
	src   string
	lines []fastLine
	i     int // current line
	depth int
	nodes []yaml.Node
	ptrs  []*yaml.Node
	stack []*yaml.Node
}

func (p *fastParser) splitLines() {
	s := p.src
	if n := strings.Count(s, "\n") + 1; cap(p.lines) < n {
		p.lines = make([]fastLine, 0, n)
	} else {
		p.lines = p.lines[:0]
	}
	for len(s) > 0 {
		j := strings.IndexByte(s, '\n')
		var l string
		if j < 0 {
			l, s = s, ""
		} else {
			l, s = s[:j], s[j+1:]
		}
		ind := 0
		for ind < len(l) && l[ind] == ' ' {
			ind++
		}
		p.lines = append(p.lines, fastLine{text: l, indent: ind, blank: ind == len(l) || l[ind] == '#'})
	}
}

func (p *fastParser) node() *yaml.Node {
	if len(p.nodes) == cap(p.nodes) {
		// A new slab: earlier nodes stay where they are, pointers to them remain valid.
		p.nodes = make([]yaml.Node, 0, max(64, cap(p.nodes)))
	}
	p.nodes = p.nodes[:len(p.nodes)+1]
	n := &p.nodes[len(p.nodes)-1]
	*n = yaml.Node{} // the slab is reused across files
	return n
}

// content moves the nodes pushed since base into an exactly sized slice.
func (p *fastParser) content(base int) []*yaml.Node {
	k := len(p.stack) - base
	if k == 0 {
		return nil
	}
	if cap(p.ptrs)-len(p.ptrs) < k {
		p.ptrs = make([]*yaml.Node, 0, max(1024, k))
	}
	out := p.ptrs[len(p.ptrs) : len(p.ptrs)+k : len(p.ptrs)+k]
	p.ptrs = p.ptrs[:len(p.ptrs)+k]
	copy(out, p.stack[base:])
	p.stack = p.stack[:base]
	return out
}

func isDocMarker(l string) bool {
	return l == "---" || strings.HasPrefix(l, "--- #") || (strings.HasPrefix(l, "---") && strings.TrimRight(l, " ") == "---")
}

// document parses one document and leaves p.i at the next one; nil for an empty document.
func (p *fastParser) document() *yaml.Node {
	if isDocMarker(p.lines[p.i].text) {
		p.i++
	}
	var root *yaml.Node
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		switch {
		case isDocMarker(l.text):
			return root // the next document starts here
		case strings.HasPrefix(l.text, "---") || strings.HasPrefix(l.text, "...") || strings.HasPrefix(l.text, "%"):
			bail() // content after ---, document end markers, directives
		case l.blank:
			p.i++
		case root != nil:
			bail() // content after the root node ended: an error
		case isSeqEntry(l.text[l.indent:]):
			root = p.sequence(l.indent)
		default:
			root = p.mapping(l.indent)
		}
	}
	return root
}

// plainTag resolves a plain scalar's tag. Only scalars starting with one of these characters
// can be anything but a string (yaml.v3's own resolve table, plus < for the merge key), and
// resolving the rest through yaml.v3 costs more than the whole parse.
func plainTag(n *yaml.Node) string {
	if n.Value == "" || strings.IndexByte("+-0123456789yYnNtTfFoO~.<", n.Value[0]) >= 0 {
		return n.ShortTag()
	}
	return "!!str"
}

func isSeqEntry(t string) bool { return t == "-" || strings.HasPrefix(t, "- ") }

// next skips blank lines and returns the next content line's index, or -1 at the end of the
// document.
func (p *fastParser) next() int {
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		if isDocMarker(l.text) || strings.HasPrefix(l.text, "...") {
			return -1
		}
		if !l.blank {
			return p.i
		}
		p.i++
	}
	return -1
}

func (p *fastParser) enter() {
	p.depth++
	if p.depth > 100 {
		bail()
	}
}

// mapping parses a block mapping whose keys are at column ind.
func (p *fastParser) mapping(ind int) *yaml.Node {
	p.enter()
	defer func() { p.depth-- }()
	m := p.node()
	m.Kind = yaml.MappingNode
	m.Tag = "!!map"
	m.Line, m.Column = p.i+1, ind+1
	base := len(p.stack)
	for {
		line := p.i
		t := p.lines[line].text[ind:]
		end := keyEnd(t)
		if end <= 0 {
			bail()
		}
		key := p.node()
		*key = yaml.Node{Kind: yaml.ScalarNode, Value: t[:end], Line: line + 1, Column: ind + 1}
		key.Tag = plainTag(key)
		if key.Tag == "!!merge" {
			bail()
		}
		p.stack = append(p.stack, key)
		p.stack = append(p.stack, p.value(ind, ind+end+1, true))
		j := p.next()
		if j < 0 || p.lines[j].indent < ind {
			break
		}
		if p.lines[j].indent > ind || isSeqEntry(p.lines[j].text[ind:]) {
			bail() // more indented: continuation or error; "- " here: an error
		}
	}
	m.Content = p.content(base)
	return m
}

// keyEnd returns the length of a plain key at the start of t (t[end] is the ':'), or -1.
func keyEnd(t string) int {
	if t == "" || strings.IndexByte(`-?:,[]{}#&*!|>'"%@`+"`", t[0]) >= 0 {
		return -1
	}
	for j := 0; j < len(t); j++ {
		switch t[j] {
		case ':':
			if j+1 == len(t) || t[j+1] == ' ' {
				if t[j-1] == ' ' {
					return -1 // "key :" has trailing space in the key
				}
				return j
			}
		case '#':
			if t[j-1] == ' ' {
				return -1
			}
		}
	}
	return -1
}

// value parses what follows "key:" (inMap) or "- ": c is the column just after the indicator,
// ind the indentation of the collection that holds the value.
func (p *fastParser) value(ind, c int, inMap bool) *yaml.Node {
	line := p.i
	t := p.lines[line].text
	v := c
	for v < len(t) && t[v] == ' ' {
		v++
	}
	if v < len(t) && v == c {
		bail() // no space after the indicator
	}
	if v == len(t) || t[v] == '#' {
		// The value is on the following lines, or null.
		p.i++
		j := p.next()
		if j >= 0 {
			li := p.lines[j]
			if li.indent > ind {
				if isSeqEntry(li.text[li.indent:]) {
					return p.sequence(li.indent)
				}
				return p.mapping(li.indent)
			}
			if inMap && li.indent == ind && isSeqEntry(li.text[ind:]) {
				return p.sequence(ind) // "key:" followed by "- " at the key's own indentation
			}
		}
		n := p.node()
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: line + 1, Column: c + 1}
		return n
	}
	rest := t[v:]
	n := p.node()
	n.Kind = yaml.ScalarNode
	n.Line, n.Column = line+1, v+1
	switch rest[0] {
	case '"':
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 || strings.IndexByte(rest[1:end+1], '\\') >= 0 {
			bail() // multi-line or escaped: yaml.v3 knows the rules
		}
		n.Value, n.Style, n.Tag = rest[1:end+1], yaml.DoubleQuotedStyle, "!!str"
		p.trailer(rest[end+2:])
	case '\'':
		val, after := singleQuoted(rest)
		n.Value, n.Style, n.Tag = val, yaml.SingleQuotedStyle, "!!str"
		p.trailer(after)
	case '|':
		p.literal(n, ind, rest)
		return n
	case '[', '{':
		p.flow(n, rest, v)
	default:
		if strings.IndexByte(`&*!>%@,]}?:`+"`", rest[0]) >= 0 || isSeqEntry(rest) {
			bail()
		}
		val := rest
		if k := strings.Index(val, " #"); k >= 0 {
			val = val[:k]
		}
		val = strings.TrimRight(val, " ")
		if strings.Contains(val, ": ") || strings.HasSuffix(val, ":") {
			bail() // a mapping where a scalar must be: an error
		}
		n.Value = val
		n.Tag = plainTag(n)
		if n.Tag == "!!merge" {
			bail()
		}
	}
	p.i++
	if j := p.next(); j >= 0 && p.lines[j].indent > ind {
		bail() // a more indented line after a scalar: a multi-line scalar, or an error
	}
	return n
}

// trailer checks what follows a quoted scalar: spaces and an optional comment.
func (p *fastParser) trailer(s string) {
	k := 0
	for k < len(s) && s[k] == ' ' {
		k++
	}
	if k < len(s) && (s[k] != '#' || k == 0) {
		bail()
	}
}

func singleQuoted(s string) (val, after string) {
	var b strings.Builder
	esc := false
	for j := 1; j < len(s); j++ {
		if s[j] != '\'' {
			continue
		}
		if j+1 < len(s) && s[j+1] == '\'' {
			if !esc {
				b.Grow(len(s))
				esc = true
			}
			j++
			continue
		}
		if !esc {
			return s[1:j], s[j+1:]
		}
		return strings.ReplaceAll(s[1:j], "''", "'"), s[j+1:]
	}
	bail() // no closing quote on this line
	return "", ""
}

// flow handles [] and {}, and one-line sequences of simple scalars: ["sh", "-c", 'x'].
func (p *fastParser) flow(n *yaml.Node, rest string, v int) {
	n.Style = yaml.FlowStyle
	if rest[0] == '{' {
		if !strings.HasPrefix(rest, "{}") {
			bail()
		}
		n.Kind, n.Tag = yaml.MappingNode, "!!map"
		p.trailer(rest[2:])
		return
	}
	n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
	base := len(p.stack)
	j := 1
	for {
		for j < len(rest) && rest[j] == ' ' {
			j++
		}
		if j >= len(rest) {
			bail()
		}
		if rest[j] == ']' && len(p.stack) == base {
			j++
			break
		}
		item := p.node()
		*item = yaml.Node{Kind: yaml.ScalarNode, Line: n.Line, Column: v + j + 1}
		switch rest[j] {
		case '"':
			end := strings.IndexByte(rest[j+1:], '"')
			if end < 0 || strings.IndexByte(rest[j+1:j+1+end], '\\') >= 0 {
				bail()
			}
			item.Value, item.Style, item.Tag = rest[j+1:j+1+end], yaml.DoubleQuotedStyle, "!!str"
			j += end + 2
		case '\'':
			val, after := singleQuoted(rest[j:])
			item.Value, item.Style, item.Tag = val, yaml.SingleQuotedStyle, "!!str"
			j = len(rest) - len(after)
		default:
			k := j
			for k < len(rest) && strings.IndexByte(" ,[]{}#:'\"", rest[k]) < 0 {
				k++
			}
			if k == j || strings.IndexByte(`-?&*!|>%@`+"`", rest[j]) >= 0 {
				bail()
			}
			item.Value = rest[j:k]
			item.Tag = plainTag(item)
			if item.Tag == "!!merge" {
				bail()
			}
			j = k
		}
		p.stack = append(p.stack, item)
		for j < len(rest) && rest[j] == ' ' {
			j++
		}
		if j >= len(rest) {
			bail()
		}
		if rest[j] == ']' {
			j++
			break
		}
		if rest[j] != ',' {
			bail()
		}
		j++
		// A trailing comma before ] is legal YAML, but keep to the plain case.
		for j < len(rest) && rest[j] == ' ' {
			j++
		}
		if j >= len(rest) || rest[j] == ']' {
			bail()
		}
	}
	n.Content = p.content(base)
	p.trailer(rest[j:])
}

// literal parses a | block scalar (clip or strip chomping) whose indicator starts rest.
func (p *fastParser) literal(n *yaml.Node, ind int, rest string) {
	n.Style, n.Tag = yaml.LiteralStyle, "!!str"
	strip := false
	h := rest[1:]
	if strings.HasPrefix(h, "-") {
		strip, h = true, h[1:]
	}
	if h != "" {
		if h[0] != ' ' {
			bail() // |+, indentation indicators
		}
		if t := strings.TrimLeft(h, " "); t != "" && t[0] != '#' {
			bail()
		}
	}
	header := p.i
	p.i++
	// The first line's indentation is the block's; leading blank lines are left to yaml.v3.
	if p.i >= len(p.lines) {
		bail()
	}
	if fl := p.lines[p.i]; fl.indent == len(fl.text) || fl.indent <= ind {
		bail()
	}
	ci := p.lines[p.i].indent
	last := p.i // the last line with content
	for ; p.i < len(p.lines); p.i++ {
		l := p.lines[p.i]
		if l.indent == len(l.text) {
			if len(l.text) > ci {
				bail() // spaces beyond the indentation are content; leave that to yaml.v3
			}
			continue
		}
		if l.indent < ci {
			break
		}
		last = p.i
	}
	var b strings.Builder
	for j := header + 1; j <= last; j++ {
		if l := p.lines[j].text; len(l) > ci {
			b.WriteString(l[ci:])
		}
		// Clip keeps the final line break, if the file has one there.
		if j < last || (!strip && (j+1 < len(p.lines) || strings.HasSuffix(p.src, "\n"))) {
			b.WriteByte('\n')
		}
	}
	n.Value = b.String()
	if j := p.next(); j >= 0 && p.lines[j].indent > ind {
		bail()
	}
}

// sequence parses a block sequence whose dashes are at column ind.
func (p *fastParser) sequence(ind int) *yaml.Node {
	p.enter()
	defer func() { p.depth-- }()
	s := p.node()
	s.Kind, s.Tag = yaml.SequenceNode, "!!seq"
	s.Line, s.Column = p.i+1, ind+1
	base := len(p.stack)
	for {
		t := p.lines[p.i].text
		v := ind + 1
		for v < len(t) && t[v] == ' ' {
			v++
		}
		if v < len(t) && t[v] != '#' && keyEnd(t[v:]) > 0 {
			p.stack = append(p.stack, p.mapping(v)) // "- key: value" starts a mapping at the key
		} else {
			p.stack = append(p.stack, p.value(ind, ind+1, false))
		}
		j := p.next()
		if j < 0 || p.lines[j].indent < ind {
			break
		}
		if p.lines[j].indent > ind {
			bail()
		}
		if !isSeqEntry(p.lines[j].text[ind:]) {
			break // the enclosing mapping goes on ("key:" then "- " at the key's indentation)
		}
	}
	s.Content = p.content(base)
	return s
}
