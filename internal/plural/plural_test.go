package plural

import "testing"

func TestCount(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{0, "0 policies"}, {1, "1 policy"}, {2, "2 policies"}} {
		if got := Count(c.n, "policy", "policies"); got != c.want {
			t.Errorf("Count(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	if S(1, "role") != "1 role" || S(3, "role") != "3 roles" {
		t.Error("S")
	}
}
