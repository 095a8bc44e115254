package check

import (
	"gopkg.in/yaml.v3"

	"github.com/vaultctl/vaultctl/internal/yamlnode"
)

// walker reads yaml.v3 node trees the way Kubernetes reads the objects: aliases resolved and
// merge keys (<<: *base) applied. Aliases can make a small file expand enormously, so every node
// visited is charged to a budget; when it runs out the document is reported instead of checked.
type walker struct {
	budget int
}

// nodeBudget is the number of nodes one document may make the rules visit.
const nodeBudget = 1 << 20

func (w *walker) exhausted() bool { return w.budget <= 0 }

func (w *walker) charge(n int) bool {
	w.budget -= n
	return w.budget > 0
}

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

type pair struct{ k, v *yaml.Node }

// isMergeKey reports a YAML merge key (<<).
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// get returns the key and value nodes of key in mapping m (nil if absent or m is not a mapping).
// Explicit keys beat merged ones; among merged mappings the first listed wins, as in YAML 1.1.
func (w *walker) get(m *yaml.Node, key string) (k, v *yaml.Node) {
	return w.getDepth(m, key, 0)
}

func (w *walker) getDepth(m *yaml.Node, key string, depth int) (k, v *yaml.Node) {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode || depth > 20 || !w.charge(1) {
		return nil, nil
	}
	c := m.Content
	var merges []*yaml.Node
	// Last occurrence wins, like encoding/json (duplicates are reported as parse errors anyway).
	for i := len(c) - 2; i >= 0; i -= 2 {
		kn := c[i]
		if kn.Kind == yaml.ScalarNode && kn.Value == key && !isMergeKey(kn) {
			return kn, deref(c[i+1])
		}
		if isMergeKey(kn) {
			merges = append(merges, c[i+1])
		}
	}
	for j := len(merges) - 1; j >= 0; j-- {
		for _, src := range yamlnode.MergeSources(merges[j]) {
			if k, v := w.getDepth(src, key, depth+1); k != nil {
				return k, v
			}
		}
	}
	return nil, nil
}

// path follows a chain of keys.
func (w *walker) path(m *yaml.Node, keys ...string) (k, v *yaml.Node) {
	v = m
	for _, key := range keys {
		k, v = w.get(v, key)
		if v == nil {
			return k, nil
		}
	}
	return k, v
}

// pairs lists a mapping's entries with merge keys applied, explicit keys first.
func (w *walker) pairs(m *yaml.Node) []pair {
	return w.pairsDepth(m, 0, nil)
}

func (w *walker) pairsDepth(m *yaml.Node, depth int, seen map[string]bool) []pair {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode || depth > 20 || !w.charge(len(m.Content)/2+1) {
		return nil
	}
	var out []pair
	var merges []*yaml.Node
	c := m.Content
	if seen == nil {
		seen = make(map[string]bool, len(c)/2)
	}
	for i := len(c) - 2; i >= 0; i -= 2 {
		kn := c[i]
		if isMergeKey(kn) {
			merges = append(merges, c[i+1])
			continue
		}
		if kn.Kind == yaml.ScalarNode {
			if seen[kn.Value] {
				continue
			}
			seen[kn.Value] = true
		}
		out = append(out, pair{kn, deref(c[i+1])})
	}
	// Restore document order for the explicit keys (collected back to front).
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	for j := len(merges) - 1; j >= 0; j-- {
		for _, src := range yamlnode.MergeSources(merges[j]) {
			out = append(out, w.pairsDepth(src, depth+1, seen)...)
		}
	}
	return out
}

// items lists a sequence's entries, aliases resolved.
func (w *walker) items(s *yaml.Node) []*yaml.Node {
	s = deref(s)
	if s == nil || s.Kind != yaml.SequenceNode || !w.charge(len(s.Content)+1) {
		return nil
	}
	out := make([]*yaml.Node, 0, len(s.Content))
	for _, it := range s.Content {
		if it = deref(it); it != nil {
			out = append(out, it)
		}
	}
	return out
}

// str returns a scalar's text; ok is false for non-scalars and nulls.
func str(n *yaml.Node) (string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return "", false
	}
	return n.Value, true
}

// getStr is get followed by str.
func (w *walker) getStr(m *yaml.Node, key string) string {
	_, v := w.get(m, key)
	s, _ := str(v)
	return s
}
