package vault

import (
	"context"
	"fmt"
	"time"
)

// TokenInfo is a token as auth/token/lookup-accessor describes it: never the token itself.
type TokenInfo struct {
	Accessor string
	// Path is where the token was issued: "auth/kubernetes/login".
	Path string
	// Meta is what the auth method recorded; the Kubernetes method records role,
	// service_account_name, service_account_namespace, service_account_uid and
	// service_account_secret_name (no pod).
	Meta       map[string]string
	ExpireTime time.Time
}

// TokenAccessors finds tokens by accessor (auth/token/accessors, which needs sudo) and
// revokes them with their child leases. The real client implements it; it is kept out of
// Client so that test doubles of Client need not.
type TokenAccessors interface {
	ListAccessors(ctx context.Context) ([]string, error)
	LookupAccessor(ctx context.Context, accessor string) (*TokenInfo, error)
	RevokeAccessor(ctx context.Context, accessor string) error
}

func (c *httpClient) ListAccessors(ctx context.Context) ([]string, error) {
	return c.list(ctx, "auth/token/accessors")
}

func (c *httpClient) LookupAccessor(ctx context.Context, accessor string) (*TokenInfo, error) {
	s, err := c.write(ctx, "auth/token/lookup-accessor", map[string]any{"accessor": accessor})
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("vault: lookup of accessor %s returned nothing", accessor)
	}
	info := &TokenInfo{Accessor: accessor, Meta: map[string]string{}}
	info.Path, _ = s.Data["path"].(string)
	if m, ok := s.Data["meta"].(map[string]any); ok {
		for k, v := range m {
			if str, ok := v.(string); ok {
				info.Meta[k] = str
			}
		}
	}
	if v, ok := s.Data["expire_time"].(string); ok {
		info.ExpireTime, _ = time.Parse(time.RFC3339Nano, v)
	}
	return info, nil
}

func (c *httpClient) RevokeAccessor(ctx context.Context, accessor string) error {
	_, err := c.write(ctx, "auth/token/revoke-accessor", map[string]any{"accessor": accessor})
	return err
}

// AccessorCapabilities asks Vault what the token behind an accessor may do on each path
// (sys/capabilities-accessor): Vault's own answer, without holding the token. ["deny"] where
// it has none.
type AccessorCapabilities interface {
	CapabilitiesAccessor(ctx context.Context, accessor string, paths ...string) (map[string][]string, error)
}

func (c *httpClient) CapabilitiesAccessor(ctx context.Context, accessor string, paths ...string) (map[string][]string, error) {
	s, err := c.write(ctx, "sys/capabilities-accessor", map[string]any{"accessor": accessor, "paths": paths})
	if err != nil {
		return nil, err
	}
	return capabilitiesByPath(s, paths), nil
}
