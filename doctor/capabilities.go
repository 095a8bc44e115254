package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/vaultctl/vaultctl/internal/vault"
)

// TokenProbe finds an agent's live token by accessor and asks Vault what it may do; the real
// Vault client implements it.
type TokenProbe interface {
	vault.TokenAccessors
	vault.AccessorCapabilities
}

// maxAccessorScan bounds the lookups spent finding an agent's token on a large Vault.
const maxAccessorScan = 5000

// agentAccessor returns the accessor of a live token the pod's agent holds: issued at its
// auth mount for its role, ServiceAccount and namespace (a 403 on a read means the login
// worked, so such a token exists). "" when none is found.
func (d *Doctor) agentAccessor(ctx context.Context, c *podCheck, mount, role string) string {
	if d.Tokens == nil {
		return ""
	}
	if d.accessors == nil {
		list, err := d.Tokens.ListAccessors(ctx)
		if err != nil {
			list = []string{}
		}
		if len(list) > maxAccessorScan {
			list = list[:maxAccessorScan]
		}
		d.accessors = map[string]*vault.TokenInfo{}
		for _, a := range list {
			if info, err := d.Tokens.LookupAccessor(ctx, a); err == nil {
				d.accessors[a] = info
			}
		}
	}
	best, bestExp := "", ""
	for a, info := range d.accessors {
		m := info.Meta
		if strings.HasPrefix(info.Path, "auth/"+mount+"/login") && m["role"] == role &&
			m["service_account_name"] == c.serviceAccount() && m["service_account_namespace"] == c.pod.Namespace {
			if exp := info.ExpireTime.UTC().Format("20060102150405"); best == "" || exp > bestExp {
				best, bestExp = a, exp
			}
		}
	}
	return best
}

// vaultSays is Vault's own answer (sys/capabilities-accessor) on api for the agent's token,
// as evidence; "" when it cannot be asked.
func (d *Doctor) vaultSays(ctx context.Context, c *podCheck, mount, role, api string) string {
	acc := d.agentAccessor(ctx, c, mount, role)
	if acc == "" {
		return ""
	}
	caps, err := d.Tokens.CapabilitiesAccessor(ctx, acc, api)
	if err != nil {
		return ""
	}
	// The accessor is left out: Vault's own audit devices HMAC accessors by default.
	return fmt.Sprintf("Vault (sys/capabilities-accessor, the agent's live token): %s: [%s]", api, strings.Join(caps[api], ", "))
}
