package policy

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/config"
)

func TestSameRoleValueIgnoresOrderAndJSONTypes(t *testing.T) {
	if !SameRoleValue([]any{"b", "a"}, []string{"a", "b"}) {
		t.Error("lists in another order must compare equal")
	}
	if !SameRoleValue(float64(900), int64(900)) || !SameRoleValue(json.Number("900"), int64(900)) {
		t.Error("JSON numbers must compare with ints")
	}
	if SameRoleValue([]any{"a"}, []string{"a", "b"}) {
		t.Error("different lists compared equal")
	}
}

func TestRoleDiffNamesOnlyTheKeysThatDiffer(t *testing.T) {
	want := RoleData(config.Role{ServiceAccounts: []string{"api"}, Namespaces: []string{"team-a"}, Policies: []string{"p"},
		TTL: config.Duration{Duration: time.Hour}, MaxTTL: config.Duration{Duration: 4 * time.Hour}})
	// As Vault returns it: lists as []any, durations as json.Number seconds, defaults added.
	live := map[string]any{
		"bound_service_account_names": []any{"api"}, "bound_service_account_namespaces": []any{"team-a"},
		"token_policies": []any{"p"}, "token_ttl": json.Number("3600"), "token_max_ttl": json.Number("14400"),
		"audience": "", "token_type": "default",
	}
	if d := RoleDiff(live, want); len(d) != 0 {
		t.Fatalf("same role: diff %v", d)
	}
	live["bound_service_account_names"] = []any{"default"}
	live["token_ttl"] = json.Number("60")
	if d := RoleDiff(live, want); !slices.Equal(d, []string{"bound_service_account_names", "token_ttl"}) {
		t.Fatalf("diff %v", d)
	}
}
