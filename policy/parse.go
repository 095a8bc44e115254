package policy

import (
	"fmt"

	"github.com/hashicorp/hcl"
)

// ParseRules reads an ACL policy's HCL, as Vault stores it, into its path rules: pattern to
// capabilities. The doctor evaluates the live policies of a role with it (NewACL, Add).
func ParseRules(rules string) (map[string][]string, error) {
	var f struct {
		Path map[string]struct {
			Capabilities []string `hcl:"capabilities"`
		} `hcl:"path"`
	}
	if err := hcl.Decode(&f, rules); err != nil {
		return nil, fmt.Errorf("parsing policy HCL: %w", err)
	}
	out := make(map[string][]string, len(f.Path))
	for p, r := range f.Path {
		out[p] = r.Capabilities
	}
	return out, nil
}
