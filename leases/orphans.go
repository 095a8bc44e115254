package leases

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/internal/vault"
)

// Orphan is a Kubernetes-auth token whose ServiceAccount no longer exists (or was recreated:
// same name, new UID). Revoking it revokes the leases it obtained (database credentials).
type Orphan struct {
	Accessor       string `json:"accessor"`
	Path           string `json:"path"`
	Role           string `json:"role"`
	ServiceAccount string `json:"serviceAccount"` // namespace/name
	Reason         string `json:"reason"`
	ExpireTime     string `json:"expireTime,omitempty"`
}

// Orphans is what the search found.
type Orphans struct {
	// Checked counts the Kubernetes-auth tokens examined; Unattributed those whose metadata
	// names no ServiceAccount (another auth method, or a token made by hand).
	Checked      int      `json:"checked"`
	Unattributed int      `json:"unattributed"`
	Tokens       []Orphan `json:"tokens"`
}

// Revocation is one revocation asked for: what, how many, whether it was done (confirmed).
type Revocation struct {
	What  string `json:"what"`
	Count int    `json:"count"`
	Done  bool   `json:"done"`
}

// OrphanFinder attributes tokens to ServiceAccounts through what the Kubernetes auth method
// records in the token's metadata.
type OrphanFinder struct {
	Tokens    vault.TokenAccessors
	Kube      kubernetes.Interface
	AuthMount string // "kubernetes"; only tokens issued at auth/<mount>/login are judged
}

// Find lists the token accessors (sudo), looks each up and checks its ServiceAccount.
func (f *OrphanFinder) Find(ctx context.Context) (*Orphans, error) {
	if f.Tokens == nil {
		return nil, fmt.Errorf("this Vault client cannot look tokens up by accessor")
	}
	accs, err := f.Tokens.ListAccessors(ctx)
	if err != nil {
		if vault.IsForbidden(err) {
			return nil, fmt.Errorf("LIST auth/token/accessors: %w (needs list and sudo on auth/token/accessors: vaultctl apply --only bootstrap updates the vaultctl-admin policy)", err)
		}
		return nil, fmt.Errorf("LIST auth/token/accessors: %w", err)
	}
	login := "auth/" + strings.Trim(f.AuthMount, "/") + "/login"
	out := &Orphans{Tokens: []Orphan{}}
	var mu sync.Mutex
	sas := map[string]string{} // ns/name -> uid, "" when gone
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, a := range accs {
		g.Go(func() error {
			info, err := f.Tokens.LookupAccessor(gctx, a)
			if err != nil {
				return nil // expired or revoked since the LIST
			}
			if !strings.HasPrefix(info.Path, login) {
				return nil
			}
			ns, name, uid := info.Meta["service_account_namespace"], info.Meta["service_account_name"], info.Meta["service_account_uid"]
			mu.Lock()
			out.Checked++
			if ns == "" || name == "" {
				out.Unattributed++
				mu.Unlock()
				return nil
			}
			live, known := sas[ns+"/"+name]
			mu.Unlock()
			if !known {
				sa, err := f.Kube.CoreV1().ServiceAccounts(ns).Get(gctx, name, metav1.GetOptions{})
				switch {
				case apierrors.IsNotFound(err):
					live = ""
				case err != nil:
					return fmt.Errorf("reading ServiceAccount %s/%s: %w", ns, name, err)
				default:
					live = string(sa.UID)
				}
				mu.Lock()
				sas[ns+"/"+name] = live
				mu.Unlock()
			}
			reason := ""
			switch {
			case live == "":
				reason = "ServiceAccount deleted"
			case uid != "" && uid != live:
				reason = fmt.Sprintf("ServiceAccount recreated (token for uid %s, now %s)", uid, live)
			default:
				return nil
			}
			o := Orphan{Accessor: a, Path: info.Path, Role: info.Meta["role"], ServiceAccount: ns + "/" + name, Reason: reason}
			if !info.ExpireTime.IsZero() {
				o.ExpireTime = info.ExpireTime.UTC().Format("2006-01-02T15:04:05Z")
			}
			mu.Lock()
			out.Tokens = append(out.Tokens, o)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.Slice(out.Tokens, func(i, j int) bool {
		a, b := out.Tokens[i], out.Tokens[j]
		return a.ServiceAccount+a.Accessor < b.ServiceAccount+b.Accessor
	})
	return out, nil
}

// Revoke revokes each orphan's token by accessor, which also revokes its child leases.
func (f *OrphanFinder) Revoke(ctx context.Context, o *Orphans) (int, error) {
	n := 0
	for _, t := range o.Tokens {
		if err := f.Tokens.RevokeAccessor(ctx, t.Accessor); err != nil {
			return n, fmt.Errorf("revoking the token of %s (accessor %s): %w", t.ServiceAccount, t.Accessor, err)
		}
		n++
	}
	return n, nil
}
