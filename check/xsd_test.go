package check

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// A small XML Schema validator, enough for testdata/schema/junit.xsd: global and local element
// declarations, element refs, named and anonymous complex types, sequence and choice with
// minOccurs/maxOccurs, attributes with use="required", simple content, and the built-in types
// the schema uses. No XSD validator ships with Go and the tests must run offline.

type xsdSchema struct {
	elements map[string]*xsdElement
	types    map[string]*xsdComplex
}

type xsdElement struct {
	name, ref, typ string
	min, max       int // max -1: unbounded
	complex        *xsdComplex
}

type xsdParticle struct {
	kind     string // element, sequence, choice
	elem     *xsdElement
	children []*xsdParticle
	min, max int
}

type xsdComplex struct {
	content    *xsdParticle // nil: no child elements
	simple     bool         // text content allowed
	attributes map[string]xsdAttr
}

type xsdAttr struct {
	typ      string
	required bool
}

// rawXML is a generic parsed element.
type rawXML struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []rawXML   `xml:",any"`
	Text     string     `xml:",chardata"`
}

func loadXSD(path string) (*xsdSchema, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var root rawXML
	if err := xml.NewDecoder(f).Decode(&root); err != nil {
		return nil, err
	}
	s := &xsdSchema{elements: map[string]*xsdElement{}, types: map[string]*xsdComplex{}}
	for _, c := range root.Children {
		switch c.XMLName.Local {
		case "element":
			e, err := s.element(c)
			if err != nil {
				return nil, err
			}
			s.elements[e.name] = e
		case "complexType":
			ct, err := s.complex(c)
			if err != nil {
				return nil, err
			}
			s.types[attr(c, "name")] = ct
		default:
			return nil, fmt.Errorf("xsd: unsupported top-level %s", c.XMLName.Local)
		}
	}
	return s, nil
}

func attr(x rawXML, name string) string {
	for _, a := range x.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func occurs(x rawXML) (int, int) {
	min, max := 1, 1
	if v := attr(x, "minOccurs"); v != "" {
		fmt.Sscan(v, &min)
	}
	switch v := attr(x, "maxOccurs"); v {
	case "":
	case "unbounded":
		max = -1
	default:
		fmt.Sscan(v, &max)
	}
	return min, max
}

func (s *xsdSchema) element(x rawXML) (*xsdElement, error) {
	e := &xsdElement{name: attr(x, "name"), ref: attr(x, "ref"), typ: attr(x, "type")}
	e.min, e.max = occurs(x)
	for _, c := range x.Children {
		if c.XMLName.Local == "complexType" {
			ct, err := s.complex(c)
			if err != nil {
				return nil, err
			}
			e.complex = ct
		}
	}
	return e, nil
}

func (s *xsdSchema) complex(x rawXML) (*xsdComplex, error) {
	ct := &xsdComplex{attributes: map[string]xsdAttr{}}
	for _, c := range x.Children {
		switch c.XMLName.Local {
		case "sequence", "choice":
			p, err := s.particle(c)
			if err != nil {
				return nil, err
			}
			ct.content = p
		case "attribute":
			ct.attributes[attr(c, "name")] = xsdAttr{typ: attr(c, "type"), required: attr(c, "use") == "required"}
		case "simpleContent":
			ct.simple = true
			for _, ext := range c.Children {
				if ext.XMLName.Local != "extension" || attr(ext, "base") != "xs:string" {
					return nil, fmt.Errorf("xsd: unsupported simpleContent")
				}
				for _, a := range ext.Children {
					ct.attributes[attr(a, "name")] = xsdAttr{typ: attr(a, "type"), required: attr(a, "use") == "required"}
				}
			}
		default:
			return nil, fmt.Errorf("xsd: unsupported %s in complexType", c.XMLName.Local)
		}
	}
	return ct, nil
}

func (s *xsdSchema) particle(x rawXML) (*xsdParticle, error) {
	p := &xsdParticle{kind: x.XMLName.Local}
	p.min, p.max = occurs(x)
	for _, c := range x.Children {
		switch c.XMLName.Local {
		case "element":
			e, err := s.element(c)
			if err != nil {
				return nil, err
			}
			p.children = append(p.children, &xsdParticle{kind: "element", elem: e, min: e.min, max: e.max})
		case "sequence", "choice":
			cp, err := s.particle(c)
			if err != nil {
				return nil, err
			}
			p.children = append(p.children, cp)
		default:
			return nil, fmt.Errorf("xsd: unsupported %s in %s", c.XMLName.Local, p.kind)
		}
	}
	return p, nil
}

// validate checks an XML document against the schema.
func (s *xsdSchema) validate(r io.Reader) error {
	var root rawXML
	if err := xml.NewDecoder(r).Decode(&root); err != nil {
		return err
	}
	decl := s.elements[root.XMLName.Local]
	if decl == nil {
		return fmt.Errorf("root element %s is not declared", root.XMLName.Local)
	}
	return s.check(root, decl, "/"+root.XMLName.Local)
}

func (s *xsdSchema) resolve(e *xsdElement) (*xsdElement, error) {
	if e.ref == "" {
		return e, nil
	}
	g := s.elements[e.ref]
	if g == nil {
		return nil, fmt.Errorf("xsd: ref to undeclared element %s", e.ref)
	}
	return g, nil
}

func (s *xsdSchema) check(x rawXML, decl *xsdElement, where string) error {
	decl, err := s.resolve(decl)
	if err != nil {
		return err
	}
	var ct *xsdComplex
	switch {
	case decl.complex != nil:
		ct = decl.complex
	case decl.typ == "xs:string":
		if len(x.Children) > 0 || len(x.Attrs) > 0 {
			return fmt.Errorf("%s: a string element has children or attributes", where)
		}
		return nil
	default:
		ct = s.types[decl.typ]
		if ct == nil {
			return fmt.Errorf("xsd: unknown type %s", decl.typ)
		}
	}
	for _, a := range x.Attrs {
		if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
			continue
		}
		ad, ok := ct.attributes[a.Name.Local]
		if !ok || a.Name.Space != "" {
			return fmt.Errorf("%s: attribute %s is not declared", where, a.Name.Local)
		}
		if err := checkBuiltin(ad.typ, a.Value); err != nil {
			return fmt.Errorf("%s/@%s: %v", where, a.Name.Local, err)
		}
	}
	for name, ad := range ct.attributes {
		if ad.required && attr(x, name) == "" && !hasAttr(x, name) {
			return fmt.Errorf("%s: required attribute %s missing", where, name)
		}
	}
	if ct.simple {
		if len(x.Children) > 0 {
			return fmt.Errorf("%s: simple content has child elements", where)
		}
		return nil
	}
	if strings.TrimSpace(x.Text) != "" {
		return fmt.Errorf("%s: text %q not allowed here", where, strings.TrimSpace(x.Text))
	}
	if ct.content == nil {
		if len(x.Children) > 0 {
			return fmt.Errorf("%s: no child elements allowed", where)
		}
		return nil
	}
	names := make([]string, len(x.Children))
	for i, c := range x.Children {
		names[i] = c.XMLName.Local
	}
	ends := s.match(ct.content, names, 0)
	if !ends[len(names)] {
		return fmt.Errorf("%s: children %v do not match the content model", where, names)
	}
	for i, c := range x.Children {
		d := s.findDecl(ct.content, c.XMLName.Local)
		if d == nil {
			return fmt.Errorf("%s: undeclared child %s", where, c.XMLName.Local)
		}
		if err := s.check(c, d, fmt.Sprintf("%s/%s[%d]", where, c.XMLName.Local, i)); err != nil {
			return err
		}
	}
	return nil
}

func hasAttr(x rawXML, name string) bool {
	for _, a := range x.Attrs {
		if a.Name.Local == name {
			return true
		}
	}
	return false
}

func (s *xsdSchema) findDecl(p *xsdParticle, name string) *xsdElement {
	if p.kind == "element" {
		e, _ := s.resolve(p.elem)
		if e != nil && e.name == name {
			return p.elem
		}
		return nil
	}
	for _, c := range p.children {
		if d := s.findDecl(c, name); d != nil {
			return d
		}
	}
	return nil
}

// match returns the set of positions in names where particle p can end, starting at i.
func (s *xsdSchema) match(p *xsdParticle, names []string, i int) map[int]bool {
	once := func(at int) map[int]bool {
		out := map[int]bool{}
		switch p.kind {
		case "element":
			e, _ := s.resolve(p.elem)
			if e != nil && at < len(names) && names[at] == e.name {
				out[at+1] = true
			}
		case "sequence":
			cur := map[int]bool{at: true}
			for _, c := range p.children {
				next := map[int]bool{}
				for pos := range cur {
					for e := range s.matchOccurs(c, names, pos) {
						next[e] = true
					}
				}
				cur = next
			}
			out = cur
		case "choice":
			for _, c := range p.children {
				for e := range s.matchOccurs(c, names, at) {
					out[e] = true
				}
			}
		}
		return out
	}
	return repeat(once, i, p.min, p.max, len(names))
}

func (s *xsdSchema) matchOccurs(p *xsdParticle, names []string, i int) map[int]bool {
	if p.kind == "element" {
		e, _ := s.resolve(p.elem)
		single := func(at int) map[int]bool {
			if e != nil && at < len(names) && names[at] == e.name {
				return map[int]bool{at + 1: true}
			}
			return map[int]bool{}
		}
		return repeat(single, i, p.min, p.max, len(names))
	}
	return s.match(p, names, i)
}

func repeat(once func(int) map[int]bool, i, min, max, n int) map[int]bool {
	out := map[int]bool{}
	cur := map[int]bool{i: true}
	for k := 0; len(cur) > 0 && (max < 0 || k <= max) && k <= n+1; k++ {
		if k >= min {
			for pos := range cur {
				out[pos] = true
			}
		}
		next := map[int]bool{}
		for pos := range cur {
			for e := range once(pos) {
				if e > pos || k < min { // no progress: stop looping on empty matches
					next[e] = true
				}
			}
		}
		cur = next
	}
	return out
}

var (
	nonNegRE  = regexp.MustCompile(`^\+?[0-9]+$`)
	decimalRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)
)

func checkBuiltin(typ, v string) error {
	switch typ {
	case "xs:string", "":
		return nil
	case "xs:nonNegativeInteger":
		if !nonNegRE.MatchString(v) {
			return fmt.Errorf("%q is not a non-negative integer", v)
		}
	case "xs:positiveInteger":
		if !nonNegRE.MatchString(v) || strings.Trim(strings.TrimPrefix(v, "+"), "0") == "" {
			return fmt.Errorf("%q is not a positive integer", v)
		}
	case "xs:decimal":
		if !decimalRE.MatchString(v) {
			return fmt.Errorf("%q is not a decimal", v)
		}
	case "xs:dateTime":
		if _, err := time.Parse("2006-01-02T15:04:05Z07:00", v); err != nil {
			if _, err := time.Parse("2006-01-02T15:04:05", v); err != nil {
				return fmt.Errorf("%q is not a dateTime", v)
			}
		}
	default:
		return fmt.Errorf("xsd: unsupported type %s", typ)
	}
	return nil
}
