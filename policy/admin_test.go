package policy

import (
	"strings"
	"testing"
)

func TestAdminPolicyIsScopedToTheConfigsMountsAndDeterministic(t *testing.T) {
	scope := AdminScope{AuthPath: "k8s-prod", KVMounts: []string{"secret", "apps"}, DatabaseMounts: []string{"pg"}}
	a := Admin(scope)
	if a != Admin(scope) {
		t.Fatal("policy text must be deterministic so re-runs do not rewrite it")
	}
	if !strings.HasPrefix(a, Header) {
		t.Error("the admin policy must carry vaultctl's header like every policy it writes")
	}
	for _, want := range []string{`path "auth/k8s-prod/*"`, `path "secret/*"`, `path "apps/*"`, `path "sys/audit/*"`,
		`path "pg/config/*"`, `path "pg/roles/*"`, `path "pg/rotate-root/*"`, `path "sys/mounts/pg"`} {
		if !strings.Contains(a, want) {
			t.Errorf("policy lacks %s", want)
		}
	}
	for _, never := range []string{`path "*"`, `path "sys/*"`, `path "auth/*"`, `path "database/*"`, `path "pg/*"`, `path "pg/creds/*"`, `"root"`} {
		if strings.Contains(a, never) {
			t.Errorf("policy grants too much: %s", never)
		}
	}
}
