package action

import (
	"context"

	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/leases"
)

// LeasesOptions are `vaultctl leases`'s choices.
type LeasesOptions struct {
	Prefix string
	// RevokePrefix, when set, revokes every lease under it once Confirm says yes.
	RevokePrefix string
	// Orphaned also finds the Kubernetes-auth tokens whose ServiceAccount is gone;
	// RevokeOrphaned revokes them (and their child leases) once Confirm says yes.
	Orphaned       bool
	RevokeOrphaned bool
	// Confirm is asked with what would be revoked and the count, before anything is; nil
	// means no.
	Confirm func(what string, count int) bool
}

// LeasesResult is what `vaultctl leases` found and did.
type LeasesResult struct {
	Count    *leases.Count
	Orphans  *leases.Orphans
	Revoked  []leases.Revocation
	Warnings []string
}

// Leases counts leases by prefix and, when asked and confirmed, revokes. It takes no lock:
// revoking is idempotent and the counts are read again after.
func Leases(ctx context.Context, c *Configuration, o LeasesOptions) (*LeasesResult, error) {
	res := &LeasesResult{}
	ss, err := c.run(ctx, scope{name: "leases"}, func(ctx context.Context, ss *session) error {
		v, err := ss.env.Vault.Admin(ctx)
		if err != nil {
			return err
		}
		cfg := ss.env.Config
		counter := &leases.Counter{Vault: v, Thresholds: leases.Thresholds{Count: cfg.Leases.WarnCount, Age: cfg.Leases.WarnAge.Duration}}
		confirm := o.Confirm
		if confirm == nil {
			confirm = func(string, int) bool { return false }
		}
		if o.RevokePrefix != "" {
			ids, err := counter.IDs(ctx, o.RevokePrefix)
			if err != nil {
				return err
			}
			n := 0
			for _, l := range ids {
				n += len(l)
			}
			r := leases.Revocation{What: "prefix " + leases.NormalizePrefix(o.RevokePrefix), Count: n}
			if n > 0 && confirm(r.What, n) {
				c.debugf("leases: revoking %d leases under %s", n, r.What)
				if r.Count, err = counter.RevokePrefix(ctx, o.RevokePrefix); err != nil {
					return err
				}
				r.Done = true
			}
			res.Revoked = append(res.Revoked, r)
		}
		if o.Orphaned || o.RevokeOrphaned {
			tokens, _ := v.(vault.TokenAccessors)
			finder := &leases.OrphanFinder{Tokens: tokens, Kube: ss.env.Kube, AuthMount: cfg.KubernetesAuth.Path}
			orphans, err := finder.Find(ctx)
			if err != nil {
				return err
			}
			res.Orphans = orphans
			if o.RevokeOrphaned {
				r := leases.Revocation{What: "orphaned Kubernetes-auth tokens (and their leases)", Count: len(orphans.Tokens)}
				if r.Count > 0 && confirm(r.What, r.Count) {
					if r.Count, err = finder.Revoke(ctx, orphans); err != nil {
						return err
					}
					r.Done = true
				}
				res.Revoked = append(res.Revoked, r)
			}
		}
		res.Count, err = counter.Count(ctx, o.Prefix)
		return err
	})
	if ss != nil {
		res.Warnings = ss.warnings
	}
	return res, err
}
