// Package yamlnode says which mappings a YAML merge key (<<) on a yaml.v3 node tree merges in,
// so that the config decoder and the manifest checker read `<<: *base`, `<<: [*a, *b]` and
// `<<: {k: v}` the same way.
package yamlnode

import "gopkg.in/yaml.v3"

// maxAliasHops bounds alias following: yaml.v3 hands back node trees with cycles for
// self-referencing anchors, and a bad tree must not hang the caller.
const maxAliasHops = 100

// resolve follows aliases; nil when they do not end within maxAliasHops.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxAliasHops; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// MergeSources returns the nodes a merge key's value v merges in, aliases resolved, in the order
// they are listed: one for a single alias or inline mapping, one per entry for a sequence.
// Precedence is the caller's to apply (YAML 1.1: explicit keys first, then the first source
// listed). Nodes are returned whatever their kind; callers report or skip non-mappings.
func MergeSources(v *yaml.Node) []*yaml.Node {
	v = resolve(v)
	if v == nil {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		return []*yaml.Node{v}
	}
	out := make([]*yaml.Node, 0, len(v.Content))
	for _, c := range v.Content {
		if c = resolve(c); c != nil {
			out = append(out, c)
		}
	}
	return out
}
