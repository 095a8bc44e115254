package yamlnode

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// parse reads text, a mapping, into its top-level values by key.
func parse(t *testing.T, text string) map[string]*yaml.Node {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		t.Fatal(err)
	}
	m := root.Content[0]
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		out[m.Content[i].Value] = m.Content[i+1]
	}
	return out
}

// mergeValue is the value of the << key of mapping m.
func mergeValue(t *testing.T, m *yaml.Node) *yaml.Node {
	t.Helper()
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "<<" {
			return m.Content[i+1]
		}
	}
	t.Fatalf("no merge key on line %d", m.Line)
	return nil
}

func TestMergeSources(t *testing.T) {
	text := `
a: &a {x: 1, y: 1}
b: &b {x: 2, z: 2}
list: &list [*b, *a]
single: {<<: *a}
seq: {<<: [*b, *a]}
inline: {<<: {x: 3}}
mixed: {<<: [*a, {w: 4}, *b]}
aliasedSeq: {<<: *list}
`
	n := parse(t, text)
	a, b := n["a"], n["b"]
	inline := mergeValue(t, n["inline"])
	mixedInline := mergeValue(t, n["mixed"]).Content[1]
	for _, tc := range []struct {
		name string
		want []*yaml.Node
	}{
		{"single", []*yaml.Node{a}},
		{"seq", []*yaml.Node{b, a}}, // listed order: the caller lets the first win
		{"inline", []*yaml.Node{inline}},
		{"mixed", []*yaml.Node{a, mixedInline, b}},
		{"aliasedSeq", []*yaml.Node{b, a}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MergeSources(mergeValue(t, n[tc.name]))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d sources, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("source %d: got the node on line %d, want line %d", i, got[i].Line, tc.want[i].Line)
				}
				if got[i].Kind != yaml.MappingNode {
					t.Errorf("source %d: kind %v, want a mapping", i, got[i].Kind)
				}
			}
		})
	}
}

func TestMergeSourcesOddValues(t *testing.T) {
	if got := MergeSources(nil); got != nil {
		t.Errorf("nil: got %v", got)
	}
	// A scalar is handed back for the caller to report, not dropped.
	s := &yaml.Node{Kind: yaml.ScalarNode, Value: "x"}
	if got := MergeSources(s); len(got) != 1 || got[0] != s {
		t.Errorf("scalar: got %v", got)
	}
	// An alias cycle (a hand-built tree) ends instead of hanging, and yields nothing.
	loop := &yaml.Node{Kind: yaml.AliasNode}
	loop.Alias = loop
	if got := MergeSources(loop); got != nil {
		t.Errorf("alias loop: got %v", got)
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{loop, s}}
	if got := MergeSources(seq); len(got) != 1 || got[0] != s {
		t.Errorf("sequence with an alias loop: got %v", got)
	}
}

// TestPrecedenceMatchesDecoder checks that a lookup applying YAML 1.1 precedence over
// MergeSources (explicit keys, then sources in listed order, first wins) gives what yaml.v3's
// own decoder gives: the rule both callers build on.
func TestPrecedenceMatchesDecoder(t *testing.T) {
	text := `
a: &a {x: 1, y: 1}
b: &b {x: 2, z: 2}
c: &c {<<: *b, w: 3}
seq: {<<: [*b, *a]}
explicit: {<<: [*a, *b], x: 9}
nested: {<<: [*c, *a]}
inline: {<<: [{x: 5}, *a]}
`
	var decoded map[string]map[string]int
	if err := yaml.Unmarshal([]byte(text), &decoded); err != nil {
		t.Fatal(err)
	}
	n := parse(t, text)
	var lookup func(m *yaml.Node, key string) (string, bool)
	lookup = func(m *yaml.Node, key string) (string, bool) {
		var merge *yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			switch m.Content[i].Value {
			case key:
				return m.Content[i+1].Value, true
			case "<<":
				merge = m.Content[i+1]
			}
		}
		if merge != nil {
			for _, src := range MergeSources(merge) {
				if v, ok := lookup(src, key); ok {
					return v, true
				}
			}
		}
		return "", false
	}
	for _, name := range []string{"seq", "explicit", "nested", "inline"} {
		for _, key := range []string{"w", "x", "y", "z"} {
			want, inDecoded := decoded[name][key]
			got, ok := lookup(n[name], key)
			if ok != inDecoded {
				t.Errorf("%s.%s: present %v, decoder says %v", name, key, ok, inDecoded)
				continue
			}
			if ok && got != yamlInt(want) {
				t.Errorf("%s.%s = %s, decoder says %d", name, key, got, want)
			}
		}
	}
}

func yamlInt(i int) string {
	out, _ := yaml.Marshal(i)
	return string(out[:len(out)-1])
}
