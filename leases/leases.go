// Package leases counts Vault's leases by prefix (recursing LIST sys/leases/lookup/..., one
// level per LIST, as Vault answers), flags prefixes beyond the warning thresholds, finds the
// Kubernetes-auth tokens whose ServiceAccount is gone, and revokes by prefix or those tokens.
// Listing leases and revoking by prefix need sudo in Vault.
package leases

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vaultctl/vaultctl/internal/vault"
)

// Thresholds flag a prefix: more leases than Count, or an oldest lease issued longer ago than
// Age (zero: that check is off).
type Thresholds struct {
	Count int
	Age   time.Duration
}

// Prefix is one row: the leases directly under a prefix.
type Prefix struct {
	Prefix string `json:"prefix"`
	Count  int    `json:"count"`
	// OldestIssue is the issue time of the oldest lease; NextExpiry and LastExpiry bound when
	// they expire. Zero when no lease could be looked up.
	OldestIssue time.Time `json:"oldestIssue"`
	NextExpiry  time.Time `json:"nextExpiry"`
	LastExpiry  time.Time `json:"lastExpiry"`
	// Warnings say which threshold the row is beyond.
	Warnings []string `json:"warnings"`
}

// Count is what counting found.
type Count struct {
	Root     string   `json:"root"`
	Total    int      `json:"total"`
	Prefixes []Prefix `json:"prefixes"`
	// LookupErrors counts leases that vanished (expired, revoked) between LIST and lookup.
	LookupErrors int `json:"lookupErrors"`
}

// Warned counts the rows beyond a threshold.
func (c *Count) Warned() int {
	n := 0
	for _, p := range c.Prefixes {
		if len(p.Warnings) > 0 {
			n++
		}
	}
	return n
}

// Counter counts and revokes leases.
type Counter struct {
	Vault       vault.Leases
	Thresholds  Thresholds
	Concurrency int // lookups at once; default 16
	Now         func() time.Time
}

func (c *Counter) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// NormalizePrefix gives a prefix the trailing slash Vault's LIST wants, "" for the root.
func NormalizePrefix(p string) string {
	p = strings.Trim(strings.TrimSpace(p), "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// IDs lists every lease ID under prefix, recursing into sub-prefixes: Vault lists one level
// per LIST, folders ending in "/".
func (c *Counter) IDs(ctx context.Context, prefix string) (map[string][]string, error) {
	out := map[string][]string{}
	var walk func(p string) error
	walk = func(p string) error {
		keys, err := c.Vault.ListLeases(ctx, p)
		if err != nil {
			if vault.IsForbidden(err) {
				return fmt.Errorf("LIST sys/leases/lookup/%s: %w (listing leases needs the sudo capability on sys/leases/lookup/*; the vaultctl-admin policy has it after vaultctl apply --only bootstrap)", p, err)
			}
			return fmt.Errorf("LIST sys/leases/lookup/%s: %w", p, err)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				if err := walk(p + k); err != nil {
					return err
				}
				continue
			}
			out[p] = append(out[p], p+k)
		}
		return nil
	}
	return out, walk(NormalizePrefix(prefix))
}

// Count counts the leases under prefix, looking each up for its issue and expiry times.
func (c *Counter) Count(ctx context.Context, prefix string) (*Count, error) {
	ids, err := c.IDs(ctx, prefix)
	if err != nil {
		return nil, err
	}
	res := &Count{Root: NormalizePrefix(prefix), Prefixes: []Prefix{}}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	n := c.Concurrency
	if n <= 0 {
		n = 16
	}
	g.SetLimit(n)
	rows := map[string]*Prefix{}
	for p, list := range ids {
		row := &Prefix{Prefix: p, Count: len(list), Warnings: []string{}}
		rows[p] = row
		res.Total += len(list)
		for _, id := range list {
			g.Go(func() error {
				l, err := c.Vault.LookupLease(gctx, id)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					res.LookupErrors++ // gone since the LIST: expired or revoked
					return nil
				}
				if row.OldestIssue.IsZero() || l.IssueTime.Before(row.OldestIssue) {
					row.OldestIssue = l.IssueTime
				}
				if row.NextExpiry.IsZero() || l.ExpireTime.Before(row.NextExpiry) {
					row.NextExpiry = l.ExpireTime
				}
				if l.ExpireTime.After(row.LastExpiry) {
					row.LastExpiry = l.ExpireTime
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	now := c.now()
	for _, row := range rows {
		if t := c.Thresholds.Count; t > 0 && row.Count > t {
			row.Warnings = append(row.Warnings, fmt.Sprintf("%d leases, more than leases.warnCount (%d): credentials or logins pile up (are they revoked when pods stop?)", row.Count, t))
		}
		if a := c.Thresholds.Age; a > 0 && !row.OldestIssue.IsZero() && now.Sub(row.OldestIssue) > a {
			row.Warnings = append(row.Warnings, fmt.Sprintf("oldest lease issued %s ago, more than leases.warnAge (%s): check the role's max_ttl", now.Sub(row.OldestIssue).Round(time.Second), a))
		}
		res.Prefixes = append(res.Prefixes, *row)
	}
	sort.Slice(res.Prefixes, func(i, j int) bool {
		a, b := res.Prefixes[i], res.Prefixes[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Prefix < b.Prefix
	})
	return res, nil
}

// RevokePrefix revokes every lease under prefix (sys/leases/revoke-prefix, sudo) and returns
// how many were there just before. An empty prefix is refused: that would be every lease.
func (c *Counter) RevokePrefix(ctx context.Context, prefix string) (int, error) {
	p := NormalizePrefix(prefix)
	if p == "" {
		return 0, fmt.Errorf("refusing to revoke every lease: give a prefix, e.g. database/creds/ROLE")
	}
	ids, err := c.IDs(ctx, p)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range ids {
		n += len(l)
	}
	if err := c.Vault.RevokePrefix(ctx, p); err != nil {
		if vault.IsForbidden(err) {
			return 0, fmt.Errorf("revoke-prefix %s: %w (needs update and sudo on sys/leases/revoke-prefix/*)", p, err)
		}
		return 0, fmt.Errorf("revoke-prefix %s: %w", p, err)
	}
	return n, nil
}
