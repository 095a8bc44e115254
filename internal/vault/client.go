package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// HTTPDialer dials real Vault servers over HTTP(S) with hashicorp/vault/api.
//
// The client it returns is built only from the Endpoint and the token given to SetToken:
// vaultapi reads VAULT_* variables by itself (address, CA, skip-verify, token, namespace,
// headers, proxy, agent address, rate limit, wrap TTL, …) and each of them is neutralised
// here, so a developer's shell pointing at another Vault can never redirect, downgrade or
// re-scope vaultctl's requests. What the environment may legitimately contribute is decided
// once, visibly, by ResolveEndpoint.
type HTTPDialer struct {
	// Timeout bounds each request; 0 means vaultapi's 60 seconds.
	Timeout time.Duration
	// MaxRetries is how often a 5xx (or 412) answer is retried; 0 means vaultapi's 2, a
	// negative value disables retries.
	MaxRetries int
}

// Dial returns an unauthenticated client for ep.
func (d HTTPDialer) Dial(ep Endpoint) (Client, error) {
	if ep.Address == "" {
		return nil, errors.New("vault: no address to dial")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(ep.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ep.CAPEM) {
			return nil, errors.New("vault: the CA for " + ep.Address + " holds no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	hc := &http.Client{
		// No Proxy: neither VAULT_PROXY_ADDR (which vaultapi would install) nor HTTPS_PROXY
		// (which http.DefaultTransport would honour) decides where vaultctl's token goes.
		Transport: &http.Transport{
			TLSClientConfig:     tlsCfg,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 32, // phases keep up to 16 requests in flight
			IdleConnTimeout:     90 * time.Second,
		},
		// vaultapi follows Vault's standby redirects itself (once, never to plain HTTP).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	retries := d.MaxRetries
	switch {
	case retries == 0:
		retries = 2
	case retries < 0:
		retries = 0
	}
	newAPI := func() (*vaultapi.Client, error) {
		// A Config built here, not by DefaultConfig, so that none of the TLS, proxy, agent,
		// SRV, rate-limit or timeout variables reach it.
		cfg := &vaultapi.Config{
			Address:      ep.Address,
			HttpClient:   hc,
			Timeout:      timeout,
			MaxRetries:   retries,
			MinRetryWait: time.Second,
			MaxRetryWait: 1500 * time.Millisecond,
		}
		c, err := vaultapi.NewClient(cfg)
		if err != nil {
			// NewClient still parses the VAULT_* environment (and fails on a malformed
			// value) even though nothing of it is used below.
			return nil, fmt.Errorf("vault: building the API client for %s: %w (hashicorp/vault/api parses VAULT_* variables even though vaultctl ignores them: fix or unset the one named)", ep.Address, err)
		}
		// NewClient copied VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from the
		// environment: drop them all, keeping only Vault's SSRF-protection header.
		c.ClearToken()
		c.ClearNamespace()
		c.SetHeaders(http.Header{vaultapi.RequestHeaderName: []string{"true"}})
		// Without a lookup function vaultapi asks for response wrapping whenever
		// VAULT_WRAP_TTL is set, which would hand back wrapping tokens instead of data.
		c.SetWrappingLookupFunc(func(string, string) string { return "" })
		return c, nil
	}
	api, err := newAPI()
	if err != nil {
		return nil, err
	}
	anon, err := newAPI()
	if err != nil {
		return nil, err
	}
	return &httpClient{api: api, anon: anon}, nil
}

// httpClient is the Client over vaultapi (which guards its own state: safe for concurrent
// use). anon never carries a token: logins and sys/ status calls must work whatever token
// (revoked, foreign) the client holds.
type httpClient struct {
	api  *vaultapi.Client
	anon *vaultapi.Client
}

// Errors are returned as vaultapi produced them: a *vaultapi.ResponseError already names the
// method, URL, status and Vault's messages, and callers reach it with errors.As (IsNotFound,
// IsForbidden, StatusCode).

// IsNotFound reports whether err is (or wraps) a 404 answer from Vault.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// IsForbidden reports whether err is (or wraps) a 403 answer: a missing, revoked or
// under-privileged token.
func IsForbidden(err error) bool { return StatusCode(err) == http.StatusForbidden }

// StatusCode is the HTTP status of the Vault answer err carries, or 0 when err is not (or
// does not wrap) a *vaultapi.ResponseError, e.g. a connection failure.
func StatusCode(err error) int {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func (c *httpClient) logical() *vaultapi.Logical { return c.api.Logical() }

func (c *httpClient) read(ctx context.Context, path string) (map[string]any, error) {
	s, err := c.logical().ReadWithContext(ctx, path)
	if err != nil || s == nil {
		return nil, err
	}
	return s.Data, nil
}

func (c *httpClient) write(ctx context.Context, path string, data map[string]any) (*vaultapi.Secret, error) {
	return c.logical().WriteWithContext(ctx, path, data)
}

func (c *httpClient) del(ctx context.Context, path string) error {
	_, err := c.logical().DeleteWithContext(ctx, path)
	return err
}

// list returns the keys under path (vaultapi drops a trailing slash; Vault lists the folder
// either way). Vault answers an empty list with 404, which vaultapi turns into nil: an empty
// list here.
func (c *httpClient) list(ctx context.Context, path string) ([]string, error) {
	s, err := c.logical().ListWithContext(ctx, path)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return []string{}, nil
	}
	return stringList(s.Data["keys"]), nil
}

func stringList(v any) []string {
	raw, _ := v.([]any)
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		if s, ok := k.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// ACL

func (c *httpClient) ReadPolicy(ctx context.Context, name string) (string, bool, error) {
	d, err := c.read(ctx, "sys/policies/acl/"+name)
	if err != nil || d == nil {
		return "", false, err
	}
	hcl, _ := d["policy"].(string)
	return hcl, true, nil
}

func (c *httpClient) WritePolicy(ctx context.Context, name, hcl string) error {
	_, err := c.write(ctx, "sys/policies/acl/"+name, map[string]any{"policy": hcl})
	return err
}

func (c *httpClient) DeletePolicy(ctx context.Context, name string) error {
	return c.del(ctx, "sys/policies/acl/"+name)
}

func (c *httpClient) ListPolicies(ctx context.Context) ([]string, error) {
	return c.list(ctx, "sys/policies/acl")
}

// AuthMethods

func (c *httpClient) ListAuthMethods(ctx context.Context) (map[string]MountInfo, error) {
	m, err := c.api.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]MountInfo, len(m))
	for k, v := range m {
		out[k] = MountInfo{Type: v.Type, Description: v.Description, Options: v.Options}
	}
	return out, nil
}

func (c *httpClient) EnableAuthMethod(ctx context.Context, path string, m MountInfo) error {
	return c.api.Sys().EnableAuthWithOptionsWithContext(ctx, path, &vaultapi.EnableAuthOptions{Type: m.Type, Description: m.Description, Options: m.Options})
}

func (c *httpClient) Login(ctx context.Context, mount string, body map[string]any) (string, error) {
	s, err := c.anon.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", body)
	if err != nil {
		return "", err
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return "", fmt.Errorf("vault: login at auth/%s returned no client token", mount)
	}
	return s.Auth.ClientToken, nil
}

func (c *httpClient) ReadAuthTune(ctx context.Context, path string) (AuthTune, error) {
	// sys/auth/<path>/tune rather than vaultapi's sys/mounts/auth/<path>/tune: the admin
	// policy grants the former.
	d, err := c.read(ctx, "sys/auth/"+strings.Trim(path, "/")+"/tune")
	if err != nil {
		return AuthTune{}, err
	}
	keys := stringList(d["audit_non_hmac_request_keys"])
	if len(keys) == 0 {
		keys = nil
	}
	return AuthTune{AuditNonHMACRequestKeys: keys}, nil
}

func (c *httpClient) TuneAuthMethod(ctx context.Context, path string, t AuthTune) error {
	// Only the keys given are sent: vaultapi's MountConfigInput would send zero TTLs too.
	_, err := c.write(ctx, "sys/auth/"+strings.Trim(path, "/")+"/tune", map[string]any{"audit_non_hmac_request_keys": t.AuditNonHMACRequestKeys})
	return err
}

// AuthRoles

func (c *httpClient) ReadRole(ctx context.Context, mount, name string) (map[string]any, error) {
	return c.read(ctx, "auth/"+mount+"/role/"+name)
}

func (c *httpClient) WriteRole(ctx context.Context, mount, name string, data map[string]any) error {
	_, err := c.write(ctx, "auth/"+mount+"/role/"+name, data)
	return err
}

func (c *httpClient) DeleteRole(ctx context.Context, mount, name string) error {
	return c.del(ctx, "auth/"+mount+"/role/"+name)
}

func (c *httpClient) ListRoles(ctx context.Context, mount string) ([]string, error) {
	return c.list(ctx, "auth/"+mount+"/role")
}

func (c *httpClient) ReadAuthConfig(ctx context.Context, mount string) (map[string]any, error) {
	return c.read(ctx, "auth/"+mount+"/config")
}

func (c *httpClient) WriteAuthConfig(ctx context.Context, mount string, data map[string]any) error {
	_, err := c.write(ctx, "auth/"+mount+"/config", data)
	return err
}

// Mounts

func (c *httpClient) ListMounts(ctx context.Context) (map[string]MountInfo, error) {
	m, err := c.api.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]MountInfo, len(m))
	for k, v := range m {
		out[k] = MountInfo{Type: v.Type, Description: v.Description, Options: v.Options}
	}
	return out, nil
}

func (c *httpClient) EnableMount(ctx context.Context, path string, m MountInfo) error {
	return c.api.Sys().MountWithContext(ctx, path, &vaultapi.MountInput{Type: m.Type, Description: m.Description, Options: m.Options})
}

// KV v2

func (c *httpClient) KVRead(ctx context.Context, mount, path string) (*KVSecret, error) {
	d, err := c.read(ctx, mount+"/data/"+path)
	if err != nil || d == nil {
		return nil, err
	}
	// A deleted or destroyed current version comes back (as a 404 with a body) with
	// data: null and its metadata: to callers that is no secret.
	data, ok := d["data"].(map[string]any)
	if !ok {
		return nil, nil
	}
	meta, _ := d["metadata"].(map[string]any)
	return &KVSecret{Data: data, Version: jsonInt(meta["version"])}, nil
}

// KVWrite's options follow the engine: {"cas": n}; no options means an unconditional write.
func (c *httpClient) KVWrite(ctx context.Context, mount, path string, data map[string]any, cas int) (int, error) {
	body := map[string]any{"data": data}
	if cas >= 0 {
		body["options"] = map[string]any{"cas": cas}
	}
	s, err := c.write(ctx, mount+"/data/"+path, body)
	if err != nil {
		return 0, err
	}
	if s == nil {
		return 0, fmt.Errorf("vault: writing %s/data/%s returned no version", mount, path)
	}
	return jsonInt(s.Data["version"]), nil
}

func (c *httpClient) KVReadMetadata(ctx context.Context, mount, path string) (*KVMetadata, error) {
	d, err := c.read(ctx, mount+"/metadata/"+path)
	if err != nil || d == nil {
		return nil, err
	}
	m := &KVMetadata{CurrentVersion: jsonInt(d["current_version"]), CustomMetadata: map[string]string{}}
	if cm, ok := d["custom_metadata"].(map[string]any); ok {
		for k, v := range cm {
			m.CustomMetadata[k] = fmt.Sprint(v)
		}
	}
	if s, ok := d["updated_time"].(string); ok {
		m.UpdatedTime, _ = time.Parse(time.RFC3339Nano, s)
	}
	return m, nil
}

func (c *httpClient) KVWriteMetadata(ctx context.Context, mount, path string, custom map[string]string) error {
	_, err := c.write(ctx, mount+"/metadata/"+path, map[string]any{"custom_metadata": custom})
	return err
}

func (c *httpClient) KVList(ctx context.Context, mount, path string) ([]string, error) {
	return c.list(ctx, mount+"/metadata/"+path)
}

func (c *httpClient) KVDeleteAll(ctx context.Context, mount, path string) error {
	return c.del(ctx, mount+"/metadata/"+path)
}

// KVDelete soft-deletes the current version (KVSoftDeleter).
func (c *httpClient) KVDelete(ctx context.Context, mount, path string) error {
	return c.del(ctx, mount+"/data/"+path)
}

// jsonInt reads an integer that vaultapi decoded as json.Number (or a test double as int).
func jsonInt(v any) int {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			f, _ := n.Float64()
			return int(f)
		}
		return int(i)
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

// Audit

func (c *httpClient) ListAuditDevices(ctx context.Context) (map[string]AuditDevice, error) {
	m, err := c.api.Sys().ListAuditWithContext(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]AuditDevice, len(m))
	for k, v := range m {
		out[k] = AuditDevice{Type: v.Type, Description: v.Description, Options: v.Options}
	}
	return out, nil
}

func (c *httpClient) EnableAuditDevice(ctx context.Context, path string, d AuditDevice) error {
	return c.api.Sys().EnableAuditWithOptionsWithContext(ctx, path, &vaultapi.EnableAuditOptions{Type: d.Type, Description: d.Description, Options: d.Options})
}

func (c *httpClient) DisableAuditDevice(ctx context.Context, path string) error {
	return c.api.Sys().DisableAuditWithContext(ctx, path)
}

// Raft

func (c *httpClient) AutopilotState(ctx context.Context) (*vaultapi.AutopilotState, error) {
	return c.api.Sys().RaftAutopilotStateWithContext(ctx)
}

func (c *httpClient) AutopilotConfig(ctx context.Context) (*vaultapi.AutopilotConfig, error) {
	return c.api.Sys().RaftAutopilotConfigurationWithContext(ctx)
}

func (c *httpClient) WriteAutopilotConfig(ctx context.Context, body map[string]any) error {
	_, err := c.write(ctx, "sys/storage/raft/autopilot/configuration", body)
	return err
}

// System

func (c *httpClient) SealStatus(ctx context.Context) (*vaultapi.SealStatusResponse, error) {
	return c.anon.Sys().SealStatusWithContext(ctx)
}

func (c *httpClient) Health(ctx context.Context) (*vaultapi.HealthResponse, error) {
	return c.anon.Sys().HealthWithContext(ctx)
}

func (c *httpClient) Init(ctx context.Context, req *vaultapi.InitRequest) (*vaultapi.InitResponse, error) {
	return c.anon.Sys().InitWithContext(ctx, req)
}

// Tokens

func (c *httpClient) Token() string { return c.api.Token() }

func (c *httpClient) SetToken(token string) {
	if token == "" {
		c.api.ClearToken()
		return
	}
	c.api.SetToken(token)
}

func (c *httpClient) LookupSelf(ctx context.Context) error {
	_, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
	return err
}

func (c *httpClient) RevokeSelf(ctx context.Context) error {
	// The argument is ignored by vaultapi: auth/token/revoke-self revokes the request's token.
	return c.api.Auth().Token().RevokeSelfWithContext(ctx, "")
}

func (c *httpClient) CapabilitiesSelf(ctx context.Context, paths ...string) (map[string][]string, error) {
	s, err := c.write(ctx, "sys/capabilities-self", map[string]any{"paths": paths})
	if err != nil {
		return nil, err
	}
	return capabilitiesByPath(s, paths), nil
}

// capabilitiesByPath reads a sys/capabilities* answer: each path's capabilities, ["deny"]
// where Vault gave none.
func capabilitiesByPath(s *vaultapi.Secret, paths []string) map[string][]string {
	out := make(map[string][]string, len(paths))
	for _, p := range paths {
		var caps []string
		if s != nil {
			if list, ok := s.Data[p].([]any); ok {
				for _, c := range list {
					if str, ok := c.(string); ok {
						caps = append(caps, str)
					}
				}
			}
		}
		if len(caps) == 0 {
			caps = []string{"deny"}
		}
		out[p] = caps
	}
	return out
}

// Leases

func (c *httpClient) ListLeases(ctx context.Context, prefix string) ([]string, error) {
	return c.list(ctx, "sys/leases/lookup/"+strings.TrimPrefix(prefix, "/"))
}

func (c *httpClient) LookupLease(ctx context.Context, id string) (*Lease, error) {
	s, err := c.api.Sys().LookupWithContext(ctx, id)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("vault: lookup of lease %s returned nothing", id)
	}
	l := &Lease{ID: id, Renewable: s.Data["renewable"] == true}
	if v, ok := s.Data["id"].(string); ok && v != "" {
		l.ID = v
	}
	if v, ok := s.Data["issue_time"].(string); ok {
		l.IssueTime, _ = time.Parse(time.RFC3339Nano, v)
	}
	if v, ok := s.Data["expire_time"].(string); ok {
		l.ExpireTime, _ = time.Parse(time.RFC3339Nano, v)
	}
	return l, nil
}

func (c *httpClient) RevokeLease(ctx context.Context, id string) error {
	return c.api.Sys().RevokeWithContext(ctx, id)
}

func (c *httpClient) RevokePrefix(ctx context.Context, prefix string) error {
	return c.api.Sys().RevokePrefixWithContext(ctx, prefix)
}

// Database

func (c *httpClient) ReadDBConnection(ctx context.Context, mount, name string) (map[string]any, error) {
	return c.read(ctx, mount+"/config/"+name)
}

func (c *httpClient) WriteDBConnection(ctx context.Context, mount, name string, data map[string]any) error {
	_, err := c.write(ctx, mount+"/config/"+name, data)
	return err
}

func (c *httpClient) DeleteDBConnection(ctx context.Context, mount, name string) error {
	return c.del(ctx, mount+"/config/"+name)
}

func (c *httpClient) RotateDBRoot(ctx context.Context, mount, name string) error {
	_, err := c.write(ctx, mount+"/rotate-root/"+name, nil)
	return err
}

func (c *httpClient) ReadDBRole(ctx context.Context, mount, name string) (map[string]any, error) {
	return c.read(ctx, mount+"/roles/"+name)
}

func (c *httpClient) WriteDBRole(ctx context.Context, mount, name string, data map[string]any) error {
	_, err := c.write(ctx, mount+"/roles/"+name, data)
	return err
}

func (c *httpClient) DeleteDBRole(ctx context.Context, mount, name string) error {
	return c.del(ctx, mount+"/roles/"+name)
}

func (c *httpClient) GenerateDBCredentials(ctx context.Context, mount, role string) (*Credentials, error) {
	// Each read of creds/ issues new credentials and a lease: read once.
	sec, err := c.logical().ReadWithContext(ctx, mount+"/creds/"+role)
	if err != nil {
		return nil, err
	}
	if sec == nil {
		return nil, fmt.Errorf("vault: %s/creds/%s returned no credentials", mount, role)
	}
	return &Credentials{Data: sec.Data, LeaseID: sec.LeaseID, Duration: time.Duration(sec.LeaseDuration) * time.Second}, nil
}
