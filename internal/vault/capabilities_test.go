package vault

import (
	"slices"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
)

func TestCapabilitiesByPath(t *testing.T) {
	s := &vaultapi.Secret{Data: map[string]any{"a/b": []any{"read", "list"}, "c": []any{}}}
	got := capabilitiesByPath(s, []string{"a/b", "c", "missing"})
	if !slices.Equal(got["a/b"], []string{"read", "list"}) {
		t.Errorf("a/b = %v", got["a/b"])
	}
	for _, p := range []string{"c", "missing"} {
		if !slices.Equal(got[p], []string{"deny"}) {
			t.Errorf("%s = %v, want [deny] where Vault gave none", p, got[p])
		}
	}
	if got := capabilitiesByPath(nil, []string{"x"}); !slices.Equal(got["x"], []string{"deny"}) {
		t.Errorf("no answer: %v", got)
	}
}
