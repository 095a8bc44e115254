package vault

import (
	"context"
	"testing"
)

// The accessor endpoints: what is sent, and how Vault's answers are read.
func TestHTTPClientAccessors(t *testing.T) {
	r := newRecorder(t, map[string]answer{
		"GET /v1/auth/token/accessors":       {200, `{"data":{"keys":["a1","a2"]}}`},
		"PUT /v1/auth/token/lookup-accessor": {200, `{"data":{"accessor":"a1","path":"auth/kubernetes/login","expire_time":"2026-12-01T10:00:00.5Z","meta":{"role":"web","service_account_name":"web-sa","service_account_namespace":"prod","service_account_uid":"u1"}}}`},
		"PUT /v1/auth/token/revoke-accessor": {204, ``},
		"PUT /v1/sys/capabilities-accessor":  {200, `{"data":{"secret/data/x":["read"],"capabilities":["read"]}}`},
	})
	c, err := HTTPDialer{MaxRetries: -1}.Dial(r.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("hvs.t")
	ctx := context.Background()
	tok := c.(TokenAccessors)
	if l, err := tok.ListAccessors(ctx); err != nil || len(l) != 2 || l[0] != "a1" {
		t.Errorf("ListAccessors = %v, %v", l, err)
	}
	info, err := tok.LookupAccessor(ctx, "a1")
	if err != nil || info.Path != "auth/kubernetes/login" || info.Meta["service_account_uid"] != "u1" || info.ExpireTime.Nanosecond() != 500000000 {
		t.Errorf("LookupAccessor = %+v, %v", info, err)
	}
	if got := r.last(t).body; !jsonEqual(got, `{"accessor":"a1"}`) {
		t.Errorf("LookupAccessor sent %s", got)
	}
	if err := tok.RevokeAccessor(ctx, "a2"); err != nil {
		t.Errorf("RevokeAccessor: %v", err)
	}
	caps, err := c.(AccessorCapabilities).CapabilitiesAccessor(ctx, "a1", "secret/data/x", "secret/data/y")
	if err != nil || caps["secret/data/x"][0] != "read" || caps["secret/data/y"][0] != "deny" {
		t.Errorf("CapabilitiesAccessor = %v, %v", caps, err)
	}
	if got := r.last(t).body; !jsonEqual(got, `{"accessor":"a1","paths":["secret/data/x","secret/data/y"]}`) {
		t.Errorf("CapabilitiesAccessor sent %s", got)
	}
}
