package leases

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vaultctl/vaultctl/internal/vault"
)

// loginTimes logs in n times at mount as role: each login is a lease under auth/MOUNT/login/.
func loginTimes(t *testing.T, s *vault.FakeServer, mount string, n int) {
	t.Helper()
	ctx := context.Background()
	c := s.RootClient()
	if err := c.EnableAuthMethod(ctx, mount, vault.MountInfo{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteAuthConfig(ctx, mount, map[string]any{"kubernetes_host": "https://k8s"}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteRole(ctx, mount, "web", map[string]any{"token_ttl": 3600, "bound_service_account_names": "web", "bound_service_account_namespaces": "app"}); err != nil {
		t.Fatal(err)
	}
	s.AllowLogin(mount, "web", "jwt")
	for range n {
		if _, err := s.Client("").Login(ctx, mount, map[string]any{"role": "web", "jwt": "jwt"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCountRecursesAndFlagsThresholds(t *testing.T) {
	s := vault.NewFakeServer()
	loginTimes(t, s, "kubernetes", 5)
	loginTimes(t, s, "other", 2)
	c := &Counter{Vault: s.RootClient(), Thresholds: Thresholds{Count: 3, Age: time.Hour}, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
	res, err := c.Count(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 7 || len(res.Prefixes) != 2 {
		t.Fatalf("count: %+v", res)
	}
	top := res.Prefixes[0]
	if top.Prefix != "auth/kubernetes/login/" || top.Count != 5 || top.OldestIssue.IsZero() || top.LastExpiry.Before(top.NextExpiry) {
		t.Errorf("top row: %+v", top)
	}
	if len(top.Warnings) != 2 || !strings.Contains(top.Warnings[0], "leases.warnCount (3)") || !strings.Contains(top.Warnings[1], "leases.warnAge (1h0m0s)") {
		t.Errorf("warnings: %v", top.Warnings)
	}
	if got := res.Prefixes[1]; got.Prefix != "auth/other/login/" || len(got.Warnings) != 1 {
		t.Errorf("second row (2 leases, under warnCount, but old): %+v", got)
	}
	if res.Warned() != 2 {
		t.Errorf("warned rows: %d", res.Warned())
	}
	only, err := c.Count(context.Background(), "/auth/other/login")
	if err != nil || only.Total != 2 || only.Root != "auth/other/login/" {
		t.Errorf("prefix count: %+v %v", only, err)
	}
}

func TestRevokePrefixEmptiesItOnly(t *testing.T) {
	s := vault.NewFakeServer()
	loginTimes(t, s, "kubernetes", 4)
	loginTimes(t, s, "other", 1)
	c := &Counter{Vault: s.RootClient()}
	n, err := c.RevokePrefix(context.Background(), "auth/kubernetes/login")
	if err != nil || n != 4 {
		t.Fatalf("revoked %d, %v", n, err)
	}
	res, err := c.Count(context.Background(), "")
	if err != nil || res.Total != 1 {
		t.Errorf("after revoking: %+v %v", res, err)
	}
	if _, err := c.RevokePrefix(context.Background(), "/"); err == nil {
		t.Error("revoking every lease must be refused")
	}
}

// tokens is a stand-in for Vault's accessor endpoints.
type tokens struct {
	infos   map[string]*vault.TokenInfo
	revoked []string
}

func (f *tokens) ListAccessors(context.Context) ([]string, error) {
	var out []string
	for a := range f.infos {
		out = append(out, a)
	}
	return out, nil
}

func (f *tokens) LookupAccessor(_ context.Context, a string) (*vault.TokenInfo, error) {
	if i, ok := f.infos[a]; ok {
		return i, nil
	}
	return nil, fmt.Errorf("invalid accessor")
}

func (f *tokens) RevokeAccessor(_ context.Context, a string) error {
	f.revoked = append(f.revoked, a)
	return nil
}

func TestOrphansAreTokensWhoseServiceAccountIsGone(t *testing.T) {
	kube := fake.NewSimpleClientset(
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "app", UID: types.UID("uid-web")}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "app", UID: types.UID("uid-api-new")}})
	meta := func(ns, name, uid string) map[string]string {
		return map[string]string{"role": "r", "service_account_namespace": ns, "service_account_name": name, "service_account_uid": uid}
	}
	tk := &tokens{infos: map[string]*vault.TokenInfo{
		"a-live":      {Path: "auth/kubernetes/login", Meta: meta("app", "web", "uid-web")},
		"a-deleted":   {Path: "auth/kubernetes/login", Meta: meta("app", "gone", "uid-gone")},
		"a-recreated": {Path: "auth/kubernetes/login", Meta: meta("app", "api", "uid-api-old")},
		"a-approle":   {Path: "auth/approle/login", Meta: map[string]string{"role_name": "ci"}},
		"a-nometa":    {Path: "auth/kubernetes/login", Meta: map[string]string{}},
	}}
	f := &OrphanFinder{Tokens: tk, Kube: kube, AuthMount: "kubernetes"}
	o, err := f.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if o.Checked != 4 || o.Unattributed != 1 || len(o.Tokens) != 2 {
		t.Fatalf("orphans: %+v", o)
	}
	if o.Tokens[0].ServiceAccount != "app/api" || !strings.Contains(o.Tokens[0].Reason, "recreated") ||
		o.Tokens[1].ServiceAccount != "app/gone" || o.Tokens[1].Reason != "ServiceAccount deleted" {
		t.Errorf("orphans: %+v", o.Tokens)
	}
	if n, err := f.Revoke(context.Background(), o); err != nil || n != 2 || len(tk.revoked) != 2 {
		t.Errorf("revoke: %d %v %v", n, err, tk.revoked)
	}
}
