package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/vaultctl/vaultctl/policy"
)

// FakeVersion is the Vault version the Fake reports.
const FakeVersion = "1.21.1"

// fakeAddress is the Endpoint address of clients built by FakeServer.Client; it only shows in
// error URLs.
const fakeAddress = "https://vault.fake:8200"

// defaultTokenTTL is Vault's system default lease TTL (768h).
const defaultTokenTTL = 768 * time.Hour

// FakeServer is one in-memory Vault that any number of clients (from Dialer or Client) share,
// safe for concurrent use. It behaves like Vault where vaultctl depends on it, and the
// contract suite in package vaulttest holds it to the real server:
//
//   - Authenticated calls need a live token (the root token from Init or RootToken, one from
//     Login, or one added with AddToken); a missing, unknown or revoked token gets a 403
//     *vaultapi.ResponseError, as does everything on a sealed (503) or uninitialized (503)
//     server. System methods (SealStatus, Health, Init) and Login need no token. Policies are
//     stored but not enforced: every live token may do everything.
//   - Data goes through a JSON round trip on the way in and out, so callers get the types
//     vaultapi decodes (json.Number for numbers, []any for lists, map[string]any for
//     objects) and never alias the server's state.
//   - Auth roles come back merged over what earlier writes stored, with durations
//     (token_ttl, period, …) as json.Number seconds whatever was written ("15m" or 900),
//     Vault's defaults for the token_* fields (and the kubernetes and approle ones), and a
//     deprecated field (policies, period) only when it was written. A kubernetes config
//     hides token_reviewer_jwt behind token_reviewer_jwt_set. Database connections and roles
//     come back in Vault's shape (connection_details without the password).
//   - Login at an approle mount matches role_id (roles need bind_secret_id=false: the Fake
//     issues no SecretIDs); at any other mount it succeeds only for an existing role and an
//     identity allowed with AllowLogin. Each login issues a token with a lease under
//     auth/<mount>/login/.
//
// Test hooks: Fail makes a method fail, Calls lists the calls made, AllowLogin binds
// identities, and the Set* methods move the server between states.
type FakeServer struct {
	mu sync.Mutex

	initialized, sealed bool
	sealType            string
	rootToken           string
	tokens              map[string]*fakeToken
	leases              map[string]*fakeLease

	policies map[string]string
	auths    map[string]*fakeAuth  // keyed "kubernetes/"
	mounts   map[string]*fakeMount // keyed "secret/"
	audits   map[string]AuditDevice

	raft            bool
	autopilotState  *vaultapi.AutopilotState
	autopilotConfig vaultapi.AutopilotConfig

	logins []loginRule
	fails  map[string]error
	calls  []string
}

type fakeToken struct {
	revoked  bool
	lease    string // "" for tokens without a lease (root, AddToken)
	policies []string
}

type fakeLease struct {
	id            string
	issue, expire time.Time
	renewable     bool
	token         string // the token this lease is for, or "" for secrets (DB credentials)
	creds         *fakeDB
	username      string
	// parent is the token that read the secret: like Vault, revoking it revokes the lease.
	parent string
}

type fakeAuth struct {
	info   MountInfo
	tune   AuthTune
	roles  map[string]map[string]any
	config map[string]any
}

type fakeMount struct {
	info MountInfo
	kv   map[string]*kvEntry // KV v2 only
	db   *fakeDB             // database only
}

type kvEntry struct {
	current  int
	versions map[int]*kvVersion
	custom   map[string]string
	created  time.Time
	updated  time.Time
}

type kvVersion struct {
	data    map[string]any
	deleted bool
}

type fakeDB struct {
	conns map[string]map[string]any
	roles map[string]map[string]any
	users map[string]string // username -> lease ID of live credentials
	// rotated counts each connection's root rotations.
	rotated map[string]int
}

type loginRule struct{ mount, role, jwt string }

// kvMaxVersions is KV v2's default max_versions.
const kvMaxVersions = 10

// NewFakeServer returns a Fake like a freshly installed production cluster after
// initialization with auto-unseal: initialized, unsealed, raft storage with a healthy
// three-voter autopilot, the token auth method, the cubbyhole/identity/sys mounts, the
// default and root policies, no audit device. RootToken is its root token.
func NewFakeServer() *FakeServer {
	s := &FakeServer{
		initialized: true,
		sealType:    "awskms",
		tokens:      map[string]*fakeToken{},
		leases:      map[string]*fakeLease{},
		policies:    map[string]string{"default": defaultPolicyHCL, "root": ""},
		auths: map[string]*fakeAuth{
			"token/": {info: MountInfo{Type: "token", Description: "token based credentials"}, roles: map[string]map[string]any{}},
		},
		mounts: map[string]*fakeMount{
			"cubbyhole/": {info: MountInfo{Type: "cubbyhole", Description: "per-token private secret storage"}},
			"identity/":  {info: MountInfo{Type: "identity", Description: "identity store"}},
			"sys/":       {info: MountInfo{Type: "system", Description: "system endpoints used for control, policy and debugging"}},
		},
		audits: map[string]AuditDevice{},
		raft:   true,
		autopilotConfig: vaultapi.AutopilotConfig{
			LastContactThreshold:           10 * time.Second,
			DeadServerLastContactThreshold: 24 * time.Hour,
			MaxTrailingLogs:                1000,
			ServerStabilizationTime:        10 * time.Second,
		},
		fails: map[string]error{},
	}
	s.autopilotState = healthyAutopilot(3)
	s.rootToken = newToken()
	s.tokens[s.rootToken] = &fakeToken{policies: []string{"root"}}
	return s
}

const defaultPolicyHCL = `# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}
`

func healthyAutopilot(n int) *vaultapi.AutopilotState {
	st := &vaultapi.AutopilotState{Healthy: true, FailureTolerance: (n - 1) / 2, Leader: "vault-0", Servers: map[string]*vaultapi.AutopilotServer{}}
	for i := range n {
		id := fmt.Sprintf("vault-%d", i)
		status := "voter"
		if i == 0 {
			status = "leader"
		}
		st.Voters = append(st.Voters, id)
		st.Servers[id] = &vaultapi.AutopilotServer{ID: id, Name: id, Address: id + ".vault-internal:8201", NodeStatus: "alive",
			Healthy: true, Status: status, Version: FakeVersion, LastContact: "0s", StableSince: time.Now().UTC().Format(time.RFC3339Nano)}
	}
	return st
}

// RootToken is the current root token (NewFakeServer's, or the last Init's).
func (s *FakeServer) RootToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rootToken
}

// Dialer returns a Dialer whose clients all reach this server; each starts without a token.
// Dial itself can be made to fail with Fail("Dial", err).
func (s *FakeServer) Dialer() Dialer { return fakeDialer{s} }

type fakeDialer struct{ s *FakeServer }

func (d fakeDialer) Dial(ep Endpoint) (Client, error) {
	s := d.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "Dial "+ep.Address)
	if err := s.fails["Dial"]; err != nil {
		return nil, err
	}
	addr := strings.TrimRight(ep.Address, "/")
	if addr == "" {
		addr = fakeAddress
	}
	return &fakeClient{s: s, addr: addr}, nil
}

// Client returns a new client of this server holding token ("" for none), without a Dial.
func (s *FakeServer) Client(token string) Client {
	return &fakeClient{s: s, addr: fakeAddress, token: token}
}

// RootClient is Client(RootToken()).
func (s *FakeServer) RootClient() Client { return s.Client(s.RootToken()) }

// Fail makes every later call of method (an interface method name, e.g. "WritePolicy", or
// "Dial") return err; a nil err removes the failure. Failing calls are still recorded.
func (s *FakeServer) Fail(method string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fails, method)
		return
	}
	s.fails[method] = err
}

// Calls lists the calls made so far, in order, as the method name and its key argument as
// passed: "WritePolicy vaultctl-admin", "WriteRole kubernetes/webapp", "KVWrite
// secret/production/db", "EnableAuthMethod kubernetes", "Login kubernetes", "ListLeases
// auth/kubernetes/login/", "Dial https://…"; methods without one are the bare name
// ("ListPolicies", "SealStatus", "LookupSelf"). Token and SetToken are not calls.
func (s *FakeServer) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// ResetCalls forgets the calls recorded so far.
func (s *FakeServer) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// AllowLogin lets Login at mount succeed for role with this jwt (body {"role", "jwt"}, as
// the kubernetes and jwt methods take); the role must also exist, and a kubernetes method
// must have its config written, as with Vault. Anything else is refused.
func (s *FakeServer) AllowLogin(mount, role, jwt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins = append(s.logins, loginRule{trimPath(mount), role, jwt})
}

// AddToken makes tok a live token (with the root policy, no lease).
func (s *FakeServer) AddToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = &fakeToken{policies: []string{"root"}}
}

// RevokeToken revokes tok (and its lease) as if an operator had.
func (s *FakeServer) RevokeToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revokeTokenLocked(tok)
}

// SetSealed seals or unseals the server.
func (s *FakeServer) SetSealed(sealed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = sealed
}

// SetInitialized(false) turns the server into a fresh, uninitialized, sealed cluster with no
// live token, ready for Init; other state is kept. SetInitialized(true) only sets the flag.
func (s *FakeServer) SetInitialized(initialized bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initialized = initialized
	if !initialized {
		s.sealed = true
		s.rootToken = ""
		for tok := range s.tokens {
			s.revokeTokenLocked(tok)
		}
	}
}

// SetSealType sets the seal SealStatus reports and Init follows: "shamir" issues unseal keys
// and stays sealed after Init; any other (default "awskms") issues recovery keys and unseals.
func (s *FakeServer) SetSealType(t string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealType = t
}

// SetRaft(false) makes the autopilot endpoints answer like a server without integrated
// storage: the reads return nil, nil and WriteAutopilotConfig a 404.
func (s *FakeServer) SetRaft(raft bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raft = raft
}

// SetAutopilotState sets what AutopilotState returns (a copy is kept).
func (s *FakeServer) SetAutopilotState(st *vaultapi.AutopilotState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.autopilotState = copyAutopilotState(st)
}

// Leases lists the IDs of all live leases, sorted.
func (s *FakeServer) Leases() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.leases))
}

// fakeClient is one client of a FakeServer; its token is its own.
type fakeClient struct {
	s    *FakeServer
	addr string

	tokMu sync.Mutex
	token string
}

// Lock order: FakeServer.mu, then fakeClient.tokMu.

// call is the common entry of every method: it records the call and applies, in Vault's
// order, the Fail hook, the context, the seal and the token. method is the interface method;
// key its key argument; verb and path the HTTP request the real client would make (for
// error URLs); auth whether a live token is needed. The server lock is held on return.
func (c *fakeClient) call(ctx context.Context, method, key, verb, path string, auth bool) error {
	s := c.s
	s.mu.Lock()
	if key != "" {
		s.calls = append(s.calls, method+" "+key)
	} else {
		s.calls = append(s.calls, method)
	}
	if err := s.fails[method]; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !auth {
		return nil
	}
	if !s.initialized {
		return c.errorf(503, verb, path, "Vault is not initialized")
	}
	if s.sealed {
		return c.errorf(503, verb, path, "Vault is sealed")
	}
	if method == "Login" {
		return nil
	}
	if t := s.tokens[c.Token()]; t == nil || t.revoked {
		return c.errorf(403, verb, path, "permission denied")
	}
	return nil
}

func (c *fakeClient) done() { c.s.mu.Unlock() }

// errorf builds the error the real client would return for this answer.
func (c *fakeClient) errorf(status int, verb, path string, msgs ...string) error {
	return &vaultapi.ResponseError{HTTPMethod: verb, URL: c.addr + "/v1/" + path, StatusCode: status, Errors: msgs}
}

// ACL

func (c *fakeClient) ReadPolicy(ctx context.Context, name string) (string, bool, error) {
	p := "sys/policies/acl/" + name
	defer c.done()
	if err := c.call(ctx, "ReadPolicy", name, "GET", p, true); err != nil {
		return "", false, err
	}
	hcl, ok := c.s.policies[strings.ToLower(name)]
	return hcl, ok, nil
}

func (c *fakeClient) WritePolicy(ctx context.Context, name, rules string) error {
	p := "sys/policies/acl/" + name
	defer c.done()
	if err := c.call(ctx, "WritePolicy", name, "PUT", p, true); err != nil {
		return err
	}
	name = strings.ToLower(strings.TrimSpace(name))
	switch {
	case name == "":
		return c.errorf(400, "PUT", p, "policy name must be provided in the URL")
	case name == "root":
		return c.errorf(400, "PUT", p, "cannot update \"root\" policy")
	case strings.TrimSpace(rules) == "":
		return c.errorf(400, "PUT", p, "'policy' parameter not supplied or empty")
	}
	if err := checkPolicy(rules); err != nil {
		return c.errorf(400, "PUT", p, "failed to parse policy: "+err.Error())
	}
	c.s.policies[name] = rules
	return nil
}

func (c *fakeClient) DeletePolicy(ctx context.Context, name string) error {
	p := "sys/policies/acl/" + name
	defer c.done()
	if err := c.call(ctx, "DeletePolicy", name, "DELETE", p, true); err != nil {
		return err
	}
	switch name = strings.ToLower(name); name {
	case "root", "default":
		return c.errorf(400, "DELETE", p, fmt.Sprintf("cannot delete %q policy", name))
	}
	delete(c.s.policies, name)
	return nil
}

func (c *fakeClient) ListPolicies(ctx context.Context) ([]string, error) {
	defer c.done()
	if err := c.call(ctx, "ListPolicies", "", "LIST", "sys/policies/acl", true); err != nil {
		return nil, err
	}
	return sortedKeys(c.s.policies), nil
}

// policyCapabilities are the capabilities Vault accepts in a path block.
var policyCapabilities = []string{"create", "read", "update", "patch", "delete", "list", "sudo", "deny", "subscribe", "recover"}

// policyRules parses a policy's HCL into its path rules.
func policyRules(rules string) (map[string][]string, error) {
	var f struct {
		Path map[string]struct {
			Capabilities []string `hcl:"capabilities"`
		} `hcl:"path"`
	}
	if err := hcl.Decode(&f, rules); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(f.Path))
	for p, r := range f.Path {
		out[p] = r.Capabilities
	}
	return out, nil
}

// checkPolicy parses HCL and checks capabilities, the errors Vault gives for a bad policy.
func checkPolicy(rules string) error {
	paths, err := policyRules(rules)
	if err != nil {
		return err
	}
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		for _, cp := range paths[p] {
			if !slices.Contains(policyCapabilities, cp) {
				return fmt.Errorf("path %q: invalid capability %q", p, cp)
			}
		}
	}
	return nil
}

// AuthMethods

func (c *fakeClient) ListAuthMethods(ctx context.Context) (map[string]MountInfo, error) {
	defer c.done()
	if err := c.call(ctx, "ListAuthMethods", "", "GET", "sys/auth", true); err != nil {
		return nil, err
	}
	out := make(map[string]MountInfo, len(c.s.auths))
	for k, a := range c.s.auths {
		out[k] = copyMountInfo(a.info)
	}
	return out, nil
}

func (c *fakeClient) EnableAuthMethod(ctx context.Context, path string, m MountInfo) error {
	key := trimPath(path) + "/"
	p := "sys/auth/" + trimPath(path)
	defer c.done()
	if err := c.call(ctx, "EnableAuthMethod", path, "POST", p, true); err != nil {
		return err
	}
	if err := c.checkNewMount(key, m.Type, p, authPlugins); err != nil {
		return err
	}
	if _, ok := c.s.auths[key]; ok {
		return c.errorf(400, "POST", p, "path is already in use at "+key)
	}
	c.s.auths[key] = &fakeAuth{info: copyMountInfo(m), roles: map[string]map[string]any{}}
	return nil
}

func (c *fakeClient) ReadAuthTune(ctx context.Context, path string) (AuthTune, error) {
	m := trimPath(path)
	p := "sys/auth/" + m + "/tune"
	defer c.done()
	if err := c.call(ctx, "ReadAuthTune", m, "GET", p, true); err != nil {
		return AuthTune{}, err
	}
	a := c.s.auths[m+"/"]
	if a == nil {
		return AuthTune{}, c.errorf(400, "GET", p, fmt.Sprintf("cannot fetch sysview for path %q", "auth/"+m+"/"))
	}
	return AuthTune{AuditNonHMACRequestKeys: slices.Clone(a.tune.AuditNonHMACRequestKeys)}, nil
}

func (c *fakeClient) TuneAuthMethod(ctx context.Context, path string, t AuthTune) error {
	m := trimPath(path)
	p := "sys/auth/" + m + "/tune"
	defer c.done()
	if err := c.call(ctx, "TuneAuthMethod", m, "POST", p, true); err != nil {
		return err
	}
	a := c.s.auths[m+"/"]
	if a == nil {
		return c.errorf(400, "POST", p, fmt.Sprintf("cannot fetch sysview for path %q", "auth/"+m+"/"))
	}
	if t.AuditNonHMACRequestKeys != nil {
		a.tune.AuditNonHMACRequestKeys = slices.Clone(t.AuditNonHMACRequestKeys)
	}
	return nil
}

// The builtin plugins of Vault Community Edition the Fake accepts at EnableAuthMethod and
// EnableMount; anything else is "not found in the catalog", as with Vault.
var (
	authPlugins   = []string{"alicloud", "approle", "aws", "azure", "cert", "cf", "gcp", "github", "jwt", "kerberos", "kubernetes", "ldap", "oci", "oidc", "okta", "radius", "userpass"}
	secretPlugins = []string{"aws", "azure", "consul", "database", "gcp", "gcpkms", "kubernetes", "kv", "kv-v2", "ldap", "mongodbatlas", "nomad", "pki", "rabbitmq", "ssh", "terraform", "totp", "transit"}
)

// checkNewMount applies Vault's rules for a new mount path (secrets or auth).
func (c *fakeClient) checkNewMount(key, typ, p string, catalog []string) error {
	if key == "/" {
		return c.errorf(400, "POST", p, "path cannot be empty")
	}
	if typ == "" {
		return c.errorf(400, "POST", p, "backend type must be specified as a string")
	}
	if !slices.Contains(catalog, typ) {
		return c.errorf(400, "POST", p, "plugin not found in the catalog: "+typ)
	}
	return nil
}

func (c *fakeClient) Login(ctx context.Context, mount string, body map[string]any) (string, error) {
	m := trimPath(mount)
	p := "auth/" + m + "/login"
	defer c.done()
	if err := c.call(ctx, "Login", mount, "PUT", p, true); err != nil {
		return "", err
	}
	s := c.s
	a := s.auths[m+"/"]
	if a == nil {
		// Not a login path at all: Vault wants a token for it.
		return "", c.errorf(403, "PUT", p, "permission denied")
	}
	in, err := jsonObject(body)
	if err != nil {
		return "", err
	}
	var role map[string]any
	switch a.info.Type {
	case "approle":
		roleID, _ := in["role_id"].(string)
		if roleID == "" {
			return "", c.errorf(500, "PUT", p, "failed to determine alias name from login request")
		}
		for _, r := range a.roles {
			if r["role_id"] == roleID {
				role = r
			}
		}
		if role == nil {
			return "", c.errorf(400, "PUT", p, "invalid role or secret ID")
		}
		if role["bind_secret_id"] != false {
			if sid, _ := in["secret_id"].(string); sid == "" {
				return "", c.errorf(400, "PUT", p, "missing secret_id")
			}
			return "", c.errorf(400, "PUT", p, "invalid role or secret ID")
		}
	default:
		name, _ := in["role"].(string)
		jwt, _ := in["jwt"].(string)
		if name == "" {
			return "", c.errorf(400, "PUT", p, "missing role")
		}
		if role = a.roles[name]; role == nil {
			return "", c.errorf(400, "PUT", p, fmt.Sprintf("invalid role name %q", name))
		}
		if a.info.Type == "kubernetes" && a.config == nil {
			return "", c.errorf(500, "PUT", p, "could not load backend configuration")
		}
		if !slices.Contains(s.logins, loginRule{m, name, jwt}) {
			return "", c.errorf(403, "PUT", p, "permission denied")
		}
	}
	ttl := defaultTokenTTL
	if n := jsonInt(role["token_ttl"]); n > 0 {
		ttl = time.Duration(n) * time.Second
	}
	tok := newToken()
	now := time.Now().UTC()
	lease := &fakeLease{id: p + "/h" + randomHex(20), issue: now, expire: now.Add(ttl), renewable: true, token: tok}
	pols := append([]string{"default"}, stringList(role["token_policies"])...)
	s.tokens[tok] = &fakeToken{lease: lease.id, policies: pols}
	s.leases[lease.id] = lease
	return tok, nil
}

// AuthRoles

// roleDefaults are the fields Vault returns for a role whatever was written, JSON-shaped.
func roleDefaults(typ string) map[string]any {
	zero := json.Number("0")
	d := map[string]any{"token_bound_cidrs": []any{}, "token_explicit_max_ttl": zero, "token_max_ttl": zero, "token_no_default_policy": false,
		"token_num_uses": zero, "token_period": zero, "token_policies": []any{}, "token_ttl": zero, "token_type": "default"}
	switch typ {
	case "kubernetes":
		d["alias_name_source"] = "serviceaccount_uid"
		d["bound_service_account_namespace_selector"] = ""
	case "approle":
		d["bind_secret_id"] = true
		d["local_secret_ids"] = false
		d["secret_id_bound_cidrs"] = nil
		d["secret_id_num_uses"] = zero
		d["secret_id_ttl"] = zero
	}
	return d
}

// roleDurations are the role fields Vault parses as durations and returns in seconds.
var roleDurations = []string{"token_ttl", "token_max_ttl", "token_explicit_max_ttl", "token_period", "period", "ttl", "max_ttl", "secret_id_ttl"}

func (c *fakeClient) ReadRole(ctx context.Context, mount, name string) (map[string]any, error) {
	m := trimPath(mount)
	defer c.done()
	if err := c.call(ctx, "ReadRole", m+"/"+name, "GET", "auth/"+m+"/role/"+name, true); err != nil {
		return nil, err
	}
	a := c.s.auths[m+"/"]
	if a == nil || a.roles[name] == nil {
		return nil, nil
	}
	out := roleDefaults(a.info.Type)
	for k, v := range jsonCopy(a.roles[name]) {
		out[k] = v
	}
	if a.info.Type == "approle" {
		delete(out, "role_id") // only readable at role/<name>/role-id
	}
	return out, nil
}

func (c *fakeClient) WriteRole(ctx context.Context, mount, name string, data map[string]any) error {
	m := trimPath(mount)
	p := "auth/" + m + "/role/" + name
	defer c.done()
	if err := c.call(ctx, "WriteRole", m+"/"+name, "PUT", p, true); err != nil {
		return err
	}
	a := c.s.auths[m+"/"]
	if a == nil {
		return c.errorf(404, "PUT", p, fmt.Sprintf("no handler for route %q. route entry not found.", p))
	}
	if a.info.Type == "token" { // token roles live at auth/token/roles/
		return c.errorf(404, "PUT", p, "1 error occurred:\n\t* unsupported path\n\n")
	}
	in, err := jsonObject(data)
	if err != nil {
		return err
	}
	// A write updates the fields given and keeps the others, as Vault's role endpoints do.
	role := jsonCopy(a.roles[name])
	if role == nil {
		role = map[string]any{}
	}
	for k, v := range in {
		role[k] = v
	}
	for _, k := range roleDurations {
		if v, ok := role[k]; ok {
			secs, err := durationSeconds(v)
			if err != nil {
				return c.errorf(400, "PUT", p, fmt.Sprintf("error converting input %v for field %q: %v", v, k, err))
			}
			role[k] = json.Number(strconv.FormatInt(secs, 10))
		}
	}
	for _, k := range []string{"policies", "token_policies", "bound_service_account_names", "bound_service_account_namespaces", "token_bound_cidrs", "secret_id_bound_cidrs", "bound_cidrs"} {
		if v, ok := in[k]; ok {
			role[k] = commaList(v)
		}
	}
	for _, k := range []string{"token_bound_cidrs", "secret_id_bound_cidrs"} {
		if l, ok := role[k].([]any); ok {
			for i, e := range l {
				// Vault stores single addresses without their /32 or /128.
				if s, ok := e.(string); ok {
					l[i] = strings.TrimSuffix(strings.TrimSuffix(s, "/32"), "/128")
				}
			}
		}
	}
	// A deprecated field (policies, period, …) sets its token_ twin too and both come back;
	// writing the token_ field alone drops the deprecated one.
	for _, pair := range [][2]string{{"policies", "token_policies"}, {"period", "token_period"}, {"ttl", "token_ttl"}, {"max_ttl", "token_max_ttl"}, {"bound_cidrs", "token_bound_cidrs"}} {
		old, tok := pair[0], pair[1]
		if _, ok := in[old]; ok {
			role[tok] = role[old]
		} else if _, ok := in[tok]; ok {
			delete(role, old)
		}
	}
	switch a.info.Type {
	case "kubernetes":
		if len(stringList(role["bound_service_account_names"])) == 0 {
			return c.errorf(400, "PUT", p, `"bound_service_account_names" can not be empty`)
		}
		if len(stringList(role["bound_service_account_namespaces"])) == 0 && role["bound_service_account_namespace_selector"] == nil {
			return c.errorf(400, "PUT", p, `"bound_service_account_namespaces" can not be empty if "bound_service_account_namespace_selector" is not set`)
		}
	case "approle":
		if _, ok := role["role_id"]; !ok {
			role["role_id"] = newUUID()
		}
		if role["bind_secret_id"] == false && len(stringList(role["secret_id_bound_cidrs"])) == 0 && len(stringList(role["token_bound_cidrs"])) == 0 {
			return c.errorf(400, "PUT", p, "at least one constraint should be enabled on the role")
		}
	}
	a.roles[name] = role
	return nil
}

func (c *fakeClient) DeleteRole(ctx context.Context, mount, name string) error {
	m := trimPath(mount)
	defer c.done()
	if err := c.call(ctx, "DeleteRole", m+"/"+name, "DELETE", "auth/"+m+"/role/"+name, true); err != nil {
		return err
	}
	if a := c.s.auths[m+"/"]; a != nil {
		delete(a.roles, name)
	}
	return nil
}

func (c *fakeClient) ListRoles(ctx context.Context, mount string) ([]string, error) {
	m := trimPath(mount)
	defer c.done()
	if err := c.call(ctx, "ListRoles", m, "LIST", "auth/"+m+"/role", true); err != nil {
		return nil, err
	}
	a := c.s.auths[m+"/"]
	if a == nil {
		return []string{}, nil
	}
	return sortedKeys(a.roles), nil
}

func (c *fakeClient) ReadAuthConfig(ctx context.Context, mount string) (map[string]any, error) {
	m := trimPath(mount)
	defer c.done()
	if err := c.call(ctx, "ReadAuthConfig", m, "GET", "auth/"+m+"/config", true); err != nil {
		return nil, err
	}
	a := c.s.auths[m+"/"]
	if a == nil || a.config == nil {
		return nil, nil
	}
	out := jsonCopy(a.config)
	if a.info.Type == "kubernetes" {
		// Vault never returns the reviewer JWT, only whether one is set, and fills defaults.
		jwt, _ := out["token_reviewer_jwt"].(string)
		delete(out, "token_reviewer_jwt")
		out["token_reviewer_jwt_set"] = jwt != ""
		for k, v := range map[string]any{"disable_iss_validation": true, "disable_local_ca_jwt": false, "issuer": "", "kubernetes_ca_cert": "",
			"pem_keys": []any{}, "use_annotations_as_alias_metadata": false} {
			if _, ok := out[k]; !ok {
				out[k] = v
			}
		}
	}
	return out, nil
}

func (c *fakeClient) WriteAuthConfig(ctx context.Context, mount string, data map[string]any) error {
	m := trimPath(mount)
	p := "auth/" + m + "/config"
	defer c.done()
	if err := c.call(ctx, "WriteAuthConfig", m, "PUT", p, true); err != nil {
		return err
	}
	a := c.s.auths[m+"/"]
	if a == nil || a.info.Type == "token" {
		return c.errorf(404, "PUT", p, fmt.Sprintf("no handler for route %q. route entry not found.", p))
	}
	in, err := jsonObject(data)
	if err != nil {
		return err
	}
	if a.info.Type == "kubernetes" {
		if h, _ := in["kubernetes_host"].(string); h == "" {
			return c.errorf(400, "PUT", p, "no host provided")
		}
	}
	a.config = in
	return nil
}

// Mounts

func (c *fakeClient) ListMounts(ctx context.Context) (map[string]MountInfo, error) {
	defer c.done()
	if err := c.call(ctx, "ListMounts", "", "GET", "sys/mounts", true); err != nil {
		return nil, err
	}
	out := make(map[string]MountInfo, len(c.s.mounts))
	for k, m := range c.s.mounts {
		out[k] = copyMountInfo(m.info)
	}
	return out, nil
}

func (c *fakeClient) EnableMount(ctx context.Context, path string, m MountInfo) error {
	key := trimPath(path) + "/"
	p := "sys/mounts/" + trimPath(path)
	defer c.done()
	if err := c.call(ctx, "EnableMount", path, "POST", p, true); err != nil {
		return err
	}
	if err := c.checkNewMount(key, m.Type, p, secretPlugins); err != nil {
		return err
	}
	if _, ok := c.s.mounts[key]; ok {
		return c.errorf(400, "POST", p, "path is already in use at "+key)
	}
	info := copyMountInfo(m)
	fm := &fakeMount{}
	switch info.Type {
	case "kv-v2": // Vault stores the alias as kv, version 2
		info.Type = "kv"
		if info.Options == nil {
			info.Options = map[string]string{}
		}
		info.Options["version"] = "2"
	case "database":
		fm.db = &fakeDB{conns: map[string]map[string]any{}, roles: map[string]map[string]any{}, users: map[string]string{}, rotated: map[string]int{}}
	}
	if info.Type == "kv" && info.Options["version"] == "2" {
		fm.kv = map[string]*kvEntry{}
	}
	fm.info = info
	c.s.mounts[key] = fm
	return nil
}

// KV v2

// kvMount returns the KV v2 engine at mount, or nil.
func (c *fakeClient) kvMount(mount string) map[string]*kvEntry {
	if m := c.s.mounts[trimPath(mount)+"/"]; m != nil {
		return m.kv
	}
	return nil
}

func kvKey(mount, path string) string { return trimPath(mount) + "/" + strings.TrimPrefix(path, "/") }

func (c *fakeClient) KVRead(ctx context.Context, mount, path string) (*KVSecret, error) {
	defer c.done()
	if err := c.call(ctx, "KVRead", kvKey(mount, path), "GET", trimPath(mount)+"/data/"+path, true); err != nil {
		return nil, err
	}
	e := c.kvMount(mount)[path]
	if e == nil || e.current == 0 {
		return nil, nil
	}
	v := e.versions[e.current]
	if v == nil || v.deleted {
		return nil, nil
	}
	return &KVSecret{Data: jsonCopy(v.data), Version: e.current}, nil
}

func (c *fakeClient) KVWrite(ctx context.Context, mount, path string, data map[string]any, cas int) (int, error) {
	p := trimPath(mount) + "/data/" + path
	defer c.done()
	if err := c.call(ctx, "KVWrite", kvKey(mount, path), "PUT", p, true); err != nil {
		return 0, err
	}
	kv := c.kvMount(mount)
	if kv == nil {
		return 0, c.errorf(404, "PUT", p, fmt.Sprintf("no handler for route %q. route entry not found.", p))
	}
	in, err := jsonObject(data) // nil is accepted: a version with no data
	if err != nil {
		return 0, err
	}
	e := kv[path]
	cur := 0
	if e != nil {
		cur = e.current
	}
	if cas >= 0 && cas != cur {
		return 0, c.errorf(400, "PUT", p, "check-and-set parameter did not match the current version")
	}
	now := time.Now().UTC()
	if e == nil {
		e = &kvEntry{versions: map[int]*kvVersion{}, custom: map[string]string{}, created: now}
		kv[path] = e
	}
	e.current++
	e.versions[e.current] = &kvVersion{data: in}
	delete(e.versions, e.current-kvMaxVersions)
	e.updated = now
	return e.current, nil
}

func (c *fakeClient) KVReadMetadata(ctx context.Context, mount, path string) (*KVMetadata, error) {
	defer c.done()
	if err := c.call(ctx, "KVReadMetadata", kvKey(mount, path), "GET", trimPath(mount)+"/metadata/"+path, true); err != nil {
		return nil, err
	}
	e := c.kvMount(mount)[path]
	if e == nil {
		return nil, nil
	}
	return &KVMetadata{CurrentVersion: e.current, CustomMetadata: maps.Clone(e.custom), UpdatedTime: e.updated}, nil
}

func (c *fakeClient) KVWriteMetadata(ctx context.Context, mount, path string, custom map[string]string) error {
	p := trimPath(mount) + "/metadata/" + path
	defer c.done()
	if err := c.call(ctx, "KVWriteMetadata", kvKey(mount, path), "PUT", p, true); err != nil {
		return err
	}
	kv := c.kvMount(mount)
	if kv == nil {
		return c.errorf(404, "PUT", p, fmt.Sprintf("no handler for route %q. route entry not found.", p))
	}
	now := time.Now().UTC()
	e := kv[path]
	if e == nil {
		// Vault creates the metadata of a secret that has no version yet.
		e = &kvEntry{versions: map[int]*kvVersion{}, custom: map[string]string{}, created: now}
		kv[path] = e
	}
	if custom != nil {
		e.custom = maps.Clone(custom)
	}
	e.updated = now
	return nil
}

func (c *fakeClient) KVList(ctx context.Context, mount, path string) ([]string, error) {
	defer c.done()
	if err := c.call(ctx, "KVList", kvKey(mount, path), "LIST", trimPath(mount)+"/metadata/"+path, true); err != nil {
		return nil, err
	}
	prefix := strings.TrimPrefix(path, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return childKeys(maps.Keys(c.kvMount(mount)), prefix), nil
}

// childKeys lists the names directly under prefix, sub-folders ending in "/", sorted.
func childKeys(keys func(func(string) bool), prefix string) []string {
	seen := map[string]bool{}
	for k := range keys {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || rest == "" {
			continue
		}
		if i := strings.Index(rest, "/"); i >= 0 {
			rest = rest[:i+1]
		}
		seen[rest] = true
	}
	return sortedKeys(seen)
}

// sortedKeys never returns nil: an empty list is [] from the real client too.
func sortedKeys[V any](m map[string]V) []string {
	return append([]string{}, slices.Sorted(maps.Keys(m))...)
}

func (c *fakeClient) KVDeleteAll(ctx context.Context, mount, path string) error {
	defer c.done()
	if err := c.call(ctx, "KVDeleteAll", kvKey(mount, path), "DELETE", trimPath(mount)+"/metadata/"+path, true); err != nil {
		return err
	}
	delete(c.kvMount(mount), path)
	return nil
}

// KVDelete soft-deletes the current version (KVSoftDeleter): KVRead then returns nil, the
// metadata and the version number stay.
func (c *fakeClient) KVDelete(ctx context.Context, mount, path string) error {
	defer c.done()
	if err := c.call(ctx, "KVDelete", kvKey(mount, path), "DELETE", trimPath(mount)+"/data/"+path, true); err != nil {
		return err
	}
	if e := c.kvMount(mount)[path]; e != nil {
		if v := e.versions[e.current]; v != nil {
			v.deleted = true
			e.updated = time.Now().UTC()
		}
	}
	return nil
}

// Audit

func (c *fakeClient) ListAuditDevices(ctx context.Context) (map[string]AuditDevice, error) {
	defer c.done()
	if err := c.call(ctx, "ListAuditDevices", "", "GET", "sys/audit", true); err != nil {
		return nil, err
	}
	out := make(map[string]AuditDevice, len(c.s.audits))
	for k, d := range c.s.audits {
		d.Options = maps.Clone(d.Options)
		out[k] = d
	}
	return out, nil
}

func (c *fakeClient) EnableAuditDevice(ctx context.Context, path string, d AuditDevice) error {
	key := trimPath(path) + "/"
	p := "sys/audit/" + trimPath(path)
	defer c.done()
	if err := c.call(ctx, "EnableAuditDevice", path, "PUT", p, true); err != nil {
		return err
	}
	if key == "/" {
		return c.errorf(400, "PUT", p, "audit device path must be specified")
	}
	if _, ok := c.s.audits[key]; ok {
		return c.errorf(400, "PUT", p, "path already in use")
	}
	switch d.Type {
	case "file":
		if d.Options["file_path"] == "" {
			return c.errorf(400, "PUT", p, "unable to create new audit backend: config cannot be nil: invalid internal parameter")
		}
	case "socket", "syslog":
	case "":
		return c.errorf(400, "PUT", p, "audit device type must be specified")
	default:
		return c.errorf(400, "PUT", p, fmt.Sprintf("unknown backend type: %q: invalid configuration", d.Type))
	}
	d.Options = maps.Clone(d.Options)
	c.s.audits[key] = d
	return nil
}

func (c *fakeClient) DisableAuditDevice(ctx context.Context, path string) error {
	defer c.done()
	if err := c.call(ctx, "DisableAuditDevice", path, "DELETE", "sys/audit/"+trimPath(path), true); err != nil {
		return err
	}
	delete(c.s.audits, trimPath(path)+"/")
	return nil
}

// Raft

const autopilotConfigPath = "sys/storage/raft/autopilot/configuration"

func (c *fakeClient) AutopilotState(ctx context.Context) (*vaultapi.AutopilotState, error) {
	p := "sys/storage/raft/autopilot/state"
	defer c.done()
	if err := c.call(ctx, "AutopilotState", "", "GET", p, true); err != nil {
		return nil, err
	}
	if !c.s.raft {
		return nil, nil // the path does not exist: vaultapi turns the 404 into nil
	}
	return copyAutopilotState(c.s.autopilotState), nil
}

func (c *fakeClient) AutopilotConfig(ctx context.Context) (*vaultapi.AutopilotConfig, error) {
	defer c.done()
	if err := c.call(ctx, "AutopilotConfig", "", "GET", autopilotConfigPath, true); err != nil {
		return nil, err
	}
	if !c.s.raft {
		return nil, nil
	}
	cfg := c.s.autopilotConfig
	return &cfg, nil
}

// WriteAutopilotConfig follows Vault's handler: durations are seconds or Go durations, the
// Enterprise-only key is refused, and cleanup_dead_servers needs min_quorum >= 3 and a dead
// server threshold of at least a minute.
func (c *fakeClient) WriteAutopilotConfig(ctx context.Context, body map[string]any) error {
	p := autopilotConfigPath
	defer c.done()
	if err := c.call(ctx, "WriteAutopilotConfig", "", "PUT", p, true); err != nil {
		return err
	}
	if !c.s.raft {
		return c.errorf(404, "PUT", p, "1 error occurred:\n\t* unsupported path\n\n")
	}
	in, err := jsonObject(body)
	if err != nil {
		return err
	}
	cfg := c.s.autopilotConfig
	bad := func(k string, v any, err error) error {
		return c.errorf(400, "PUT", p, fmt.Sprintf("error converting input %v for field %q: %v", v, k, err))
	}
	for k, v := range in {
		switch k {
		case "cleanup_dead_servers":
			b, err := jsonBool(v)
			if err != nil {
				return bad(k, v, err)
			}
			cfg.CleanupDeadServers = b
		case "last_contact_threshold", "dead_server_last_contact_threshold", "server_stabilization_time":
			secs, err := durationSeconds(v)
			if err != nil {
				return bad(k, v, err)
			}
			d := time.Duration(secs) * time.Second
			switch k {
			case "last_contact_threshold":
				cfg.LastContactThreshold = d
			case "dead_server_last_contact_threshold":
				cfg.DeadServerLastContactThreshold = d
			default:
				cfg.ServerStabilizationTime = d
			}
		case "max_trailing_logs", "min_quorum":
			n, err := strconv.ParseUint(fmt.Sprint(v), 10, 32)
			if err != nil {
				return bad(k, v, err)
			}
			if k == "min_quorum" {
				cfg.MinQuorum = uint(n)
			} else {
				cfg.MaxTrailingLogs = n
			}
		case "disable_upgrade_migration":
			return c.errorf(400, "PUT", p, "disable_upgrade_migration is only available in Vault Enterprise")
		}
	}
	if cfg.CleanupDeadServers && cfg.MinQuorum < 3 {
		return c.errorf(400, "PUT", p, fmt.Sprintf("min_quorum must be set when cleanup_dead_servers is set and it should at least be 3; cleanup_dead_servers: %v, min_quorum: %d", cfg.CleanupDeadServers, cfg.MinQuorum))
	}
	if cfg.CleanupDeadServers && cfg.DeadServerLastContactThreshold < time.Minute {
		return c.errorf(400, "PUT", p, "dead_server_last_contact_threshold should not be set to less than 1m")
	}
	c.s.autopilotConfig = cfg
	return nil
}

// System

func (c *fakeClient) SealStatus(ctx context.Context) (*vaultapi.SealStatusResponse, error) {
	defer c.done()
	if err := c.call(ctx, "SealStatus", "", "GET", "sys/seal-status", false); err != nil {
		return nil, err
	}
	s := c.s
	st := &vaultapi.SealStatusResponse{Type: s.sealType, Initialized: s.initialized, Sealed: s.sealed, Version: FakeVersion,
		RecoverySeal: s.sealType != "shamir", StorageType: "raft"}
	if s.initialized {
		st.ClusterName = "vault-cluster-fake"
		st.T, st.N = 1, 1
	}
	return st, nil
}

func (c *fakeClient) Health(ctx context.Context) (*vaultapi.HealthResponse, error) {
	defer c.done()
	if err := c.call(ctx, "Health", "", "GET", "sys/health", false); err != nil {
		return nil, err
	}
	s := c.s
	h := &vaultapi.HealthResponse{Initialized: s.initialized, Sealed: s.sealed, Version: FakeVersion, ServerTimeUTC: time.Now().Unix()}
	if s.initialized {
		h.ClusterName = "vault-cluster-fake"
	}
	return h, nil
}

func (c *fakeClient) Init(ctx context.Context, req *vaultapi.InitRequest) (*vaultapi.InitResponse, error) {
	p := "sys/init"
	defer c.done()
	if err := c.call(ctx, "Init", "", "PUT", p, false); err != nil {
		return nil, err
	}
	s := c.s
	if s.initialized {
		return nil, c.errorf(400, "PUT", p, "Vault is already initialized")
	}
	if req == nil {
		req = &vaultapi.InitRequest{}
	}
	resp := &vaultapi.InitResponse{}
	keys := func(n int) (hexKeys, b64 []string) {
		for range n {
			k := make([]byte, 33)
			rand.Read(k)
			hexKeys = append(hexKeys, hex.EncodeToString(k))
			b64 = append(b64, base64.StdEncoding.EncodeToString(k))
		}
		return hexKeys, b64
	}
	shares, threshold := req.RecoveryShares, req.RecoveryThreshold
	if s.sealType == "shamir" {
		shares, threshold = req.SecretShares, req.SecretThreshold
	}
	if shares == 0 && s.sealType != "shamir" {
		shares, threshold = 5, 3 // Vault's defaults for recovery keys
	}
	switch {
	case shares < 1:
		return nil, c.errorf(400, "PUT", p, "invalid seal configuration: share count must be at least one")
	case threshold < 1 || threshold > shares:
		return nil, c.errorf(400, "PUT", p, "invalid seal configuration: threshold must be between 1 and the share count")
	case shares > 1 && threshold == 1:
		return nil, c.errorf(400, "PUT", p, "invalid seal configuration: threshold must be greater than one for multiple shares")
	}
	if s.sealType == "shamir" {
		resp.Keys, resp.KeysB64 = keys(shares)
	} else {
		resp.RecoveryKeys, resp.RecoveryKeysB64 = keys(shares)
		s.sealed = false // auto-unseal
	}
	s.initialized = true
	s.rootToken = newToken()
	s.tokens[s.rootToken] = &fakeToken{policies: []string{"root"}}
	resp.RootToken = s.rootToken
	return resp, nil
}

// Tokens

func (c *fakeClient) Token() string {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	return c.token
}

func (c *fakeClient) SetToken(token string) {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	c.token = token
}

func (c *fakeClient) LookupSelf(ctx context.Context) error {
	defer c.done()
	return c.call(ctx, "LookupSelf", "", "GET", "auth/token/lookup-self", true)
}

// CapabilitiesSelf evaluates the token's policies with package policy's ACL, which follows
// Vault's rule selection (exact path, else the highest-priority glob; deny wins in the rule).
func (c *fakeClient) CapabilitiesSelf(ctx context.Context, paths ...string) (map[string][]string, error) {
	defer c.done()
	if err := c.call(ctx, "CapabilitiesSelf", "", "PUT", "sys/capabilities-self", true); err != nil {
		return nil, err
	}
	t := c.s.tokens[c.Token()]
	out := make(map[string][]string, len(paths))
	if slices.Contains(t.policies, "root") {
		for _, p := range paths {
			out[p] = []string{"root"}
		}
		return out, nil
	}
	acl := policy.NewACL()
	for _, name := range t.policies {
		rules, err := policyRules(c.s.policies[name])
		if err != nil {
			return nil, c.errorf(500, "PUT", "sys/capabilities-self", "policy "+name+": "+err.Error())
		}
		for path, caps := range rules {
			acl.Add(path, caps)
		}
	}
	for _, p := range paths {
		var caps []string
		for _, cp := range policyCapabilities {
			if ok, _ := acl.Allows(p, cp); ok && cp != "deny" {
				caps = append(caps, cp)
			}
		}
		if len(caps) == 0 {
			caps = []string{"deny"}
		}
		out[p] = caps
	}
	return out, nil
}

func (c *fakeClient) RevokeSelf(ctx context.Context) error {
	defer c.done()
	if err := c.call(ctx, "RevokeSelf", "", "PUT", "auth/token/revoke-self", true); err != nil {
		return err
	}
	c.s.revokeTokenLocked(c.Token())
	return nil
}

func (s *FakeServer) revokeTokenLocked(tok string) {
	t := s.tokens[tok]
	if t == nil {
		return
	}
	t.revoked = true
	if t.lease != "" {
		delete(s.leases, t.lease)
	}
	for id, l := range s.leases {
		if l.parent == tok {
			s.revokeLeaseLocked(id)
		}
	}
	if tok == s.rootToken {
		s.rootToken = ""
	}
}

func (s *FakeServer) revokeLeaseLocked(id string) {
	l := s.leases[id]
	if l == nil {
		return
	}
	delete(s.leases, id)
	if l.token != "" {
		s.revokeTokenLocked(l.token)
	}
	if l.creds != nil {
		delete(l.creds.users, l.username)
	}
}

// Leases

func (c *fakeClient) ListLeases(ctx context.Context, prefix string) ([]string, error) {
	p := strings.TrimPrefix(prefix, "/")
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/" // Vault lists a folder whether or not the slash is given
	}
	defer c.done()
	if err := c.call(ctx, "ListLeases", prefix, "LIST", "sys/leases/lookup/"+p, true); err != nil {
		return nil, err
	}
	return childKeys(maps.Keys(c.s.leases), p), nil
}

func (c *fakeClient) LookupLease(ctx context.Context, id string) (*Lease, error) {
	p := "sys/leases/lookup"
	defer c.done()
	if err := c.call(ctx, "LookupLease", id, "PUT", p, true); err != nil {
		return nil, err
	}
	l := c.s.leases[id]
	if l == nil {
		return nil, c.errorf(400, "PUT", p, "invalid lease")
	}
	return &Lease{ID: l.id, IssueTime: l.issue, ExpireTime: l.expire, Renewable: l.renewable}, nil
}

func (c *fakeClient) RevokeLease(ctx context.Context, id string) error {
	defer c.done()
	if err := c.call(ctx, "RevokeLease", id, "PUT", "sys/leases/revoke", true); err != nil {
		return err
	}
	c.s.revokeLeaseLocked(id)
	return nil
}

// RevokePrefix follows Vault: a prefix without a trailing slash that names a lease revokes
// that lease, else it is a folder.
func (c *fakeClient) RevokePrefix(ctx context.Context, prefix string) error {
	defer c.done()
	if err := c.call(ctx, "RevokePrefix", prefix, "PUT", "sys/leases/revoke-prefix/"+prefix, true); err != nil {
		return err
	}
	p := strings.TrimPrefix(prefix, "/")
	if !strings.HasSuffix(p, "/") {
		if _, ok := c.s.leases[p]; ok {
			c.s.revokeLeaseLocked(p)
			return nil
		}
		p += "/"
	}
	for id := range c.s.leases {
		if strings.HasPrefix(id, p) {
			c.s.revokeLeaseLocked(id)
		}
	}
	return nil
}

// Database

func (c *fakeClient) dbMount(mount string) *fakeDB {
	if m := c.s.mounts[trimPath(mount)+"/"]; m != nil {
		return m.db
	}
	return nil
}

// dbTopLevel are the connection fields Vault keeps beside connection_details.
var dbTopLevel = []string{"plugin_name", "plugin_version", "allowed_roles", "verify_connection", "root_rotation_statements", "password_policy",
	"skip_static_role_import_rotation", "disable_automated_rotation", "rotation_period", "rotation_schedule", "rotation_window"}

// ReadDBConnection returns Vault's shape: plugin settings at the top, the rest under
// connection_details without secrets, the URL's password redacted.
func (c *fakeClient) ReadDBConnection(ctx context.Context, mount, name string) (map[string]any, error) {
	m := trimPath(mount)
	defer c.done()
	if err := c.call(ctx, "ReadDBConnection", m+"/"+name, "GET", m+"/config/"+name, true); err != nil {
		return nil, err
	}
	db := c.dbMount(mount)
	if db == nil || db.conns[name] == nil {
		return nil, nil
	}
	in := jsonCopy(db.conns[name])
	out := map[string]any{
		"plugin_name":                        in["plugin_name"],
		"plugin_version":                     "",
		"allowed_roles":                      []any{},
		"root_credentials_rotate_statements": []any{},
		"password_policy":                    "",
		"verify_connection":                  true,
		"skip_static_role_import_rotation":   false,
		"disable_automated_rotation":         false,
		"rotation_period":                    json.Number("0"),
		"rotation_schedule":                  "",
		"rotation_window":                    json.Number("0"),
	}
	details := map[string]any{}
	for k, v := range in {
		switch {
		case k == "allowed_roles":
			out[k] = commaList(v)
		case k == "root_rotation_statements":
			out["root_credentials_rotate_statements"] = commaList(v)
		case slices.Contains(dbTopLevel, k):
			out[k] = v
		case k == "password" || k == "private_key" || k == "service_account_json":
		case k == "connection_url":
			if s, ok := v.(string); ok {
				if u, err := url.Parse(s); err == nil {
					v = u.Redacted()
				}
			}
			details[k] = v
		default:
			details[k] = v
		}
	}
	out["connection_details"] = details
	return out, nil
}

func (c *fakeClient) WriteDBConnection(ctx context.Context, mount, name string, data map[string]any) error {
	m := trimPath(mount)
	p := m + "/config/" + name
	defer c.done()
	if err := c.call(ctx, "WriteDBConnection", m+"/"+name, "PUT", p, true); err != nil {
		return err
	}
	db := c.dbMount(mount)
	if db == nil {
		return c.errorf(404, "PUT", p, fmt.Sprintf("no handler for route %q. route entry not found.", p))
	}
	in, err := jsonObject(data)
	if err != nil {
		return err
	}
	old := db.conns[name]
	if pn, _ := in["plugin_name"].(string); pn == "" && old == nil {
		return c.errorf(400, "PUT", p, "empty plugin name")
	}
	// Like Vault, an update keeps what it does not send (the rotated password above all).
	merged := map[string]any{}
	if old != nil {
		merged = jsonCopy(old)
	}
	for k, v := range in {
		merged[k] = v
	}
	db.conns[name] = merged
	return nil
}

func (c *fakeClient) DeleteDBConnection(ctx context.Context, mount, name string) error {
	m := trimPath(mount)
	defer c.done()
	if err := c.call(ctx, "DeleteDBConnection", m+"/"+name, "DELETE", m+"/config/"+name, true); err != nil {
		return err
	}
	if db := c.dbMount(mount); db != nil {
		delete(db.conns, name)
		delete(db.rotated, name)
	}
	return nil
}

// RotateDBRoot replaces the stored password with one nobody else knows, as Vault does.
func (c *fakeClient) RotateDBRoot(ctx context.Context, mount, name string) error {
	m := trimPath(mount)
	p := m + "/rotate-root/" + name
	defer c.done()
	if err := c.call(ctx, "RotateDBRoot", m+"/"+name, "PUT", p, true); err != nil {
		return err
	}
	db := c.dbMount(mount)
	if db == nil {
		return c.errorf(404, "PUT", p, fmt.Sprintf("no handler for route %q. route entry not found.", p))
	}
	conn := db.conns[name]
	if conn == nil {
		return c.errorf(500, "PUT", p, fmt.Sprintf("1 error occurred:\n\t* unable to rotate root credentials: no configuration found for database %q\n\n", name))
	}
	conn["password"] = randomHex(16)
	db.rotated[name]++
	return nil
}

// DBRootRotations reports how often the connection's root credentials were rotated.
func (s *FakeServer) DBRootRotations(mount, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.mounts[trimPath(mount)+"/"]; m != nil && m.db != nil {
		return m.db.rotated[name]
	}
	return 0
}

// DBConnectionPassword is the password the Fake stores for a connection ("" when none), so
// tests can see which one a write sent; the real Vault never returns it.
func (s *FakeServer) DBConnectionPassword(mount, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.mounts[trimPath(mount)+"/"]; m != nil && m.db != nil && m.db.conns[name] != nil {
		pw, _ := m.db.conns[name]["password"].(string)
		return pw
	}
	return ""
}

func (c *fakeClient) ReadDBRole(ctx context.Context, mount, name string) (map[string]any, error) {
	m := trimPath(mount)
	defer c.done()
	if err := c.call(ctx, "ReadDBRole", m+"/"+name, "GET", m+"/roles/"+name, true); err != nil {
		return nil, err
	}
	db := c.dbMount(mount)
	if db == nil || db.roles[name] == nil {
		return nil, nil
	}
	return jsonCopy(db.roles[name]), nil
}

func (c *fakeClient) WriteDBRole(ctx context.Context, mount, name string, data map[string]any) error {
	m := trimPath(mount)
	p := m + "/roles/" + name
	defer c.done()
	if err := c.call(ctx, "WriteDBRole", m+"/"+name, "PUT", p, true); err != nil {
		return err
	}
	db := c.dbMount(mount)
	if db == nil {
		return c.errorf(404, "PUT", p, fmt.Sprintf("no handler for route %q. route entry not found.", p))
	}
	in, err := jsonObject(data)
	if err != nil {
		return err
	}
	role := map[string]any{"db_name": "", "default_ttl": json.Number("0"), "max_ttl": json.Number("0"), "credential_type": "password",
		"creation_statements": []any{}, "revocation_statements": []any{}, "rollback_statements": []any{}, "renew_statements": []any{}}
	if old := db.roles[name]; old != nil {
		role = jsonCopy(old)
	}
	for k, v := range in {
		switch k {
		case "default_ttl", "max_ttl":
			secs, err := durationSeconds(v)
			if err != nil {
				return c.errorf(400, "PUT", p, fmt.Sprintf("error converting input %v for field %q: %v", v, k, err))
			}
			role[k] = json.Number(strconv.FormatInt(secs, 10))
		case "creation_statements", "revocation_statements", "rollback_statements", "renew_statements":
			role[k] = commaList(v)
		default:
			role[k] = v
		}
	}
	if s, _ := role["db_name"].(string); s == "" {
		return c.errorf(400, "PUT", p, "database name is required")
	}
	db.roles[name] = role
	return nil
}

func (c *fakeClient) DeleteDBRole(ctx context.Context, mount, name string) error {
	m := trimPath(mount)
	defer c.done()
	if err := c.call(ctx, "DeleteDBRole", m+"/"+name, "DELETE", m+"/roles/"+name, true); err != nil {
		return err
	}
	if db := c.dbMount(mount); db != nil {
		delete(db.roles, name)
	}
	return nil
}

// GenerateDBCredentials issues a username/password pair with a lease under
// <mount>/creds/<role>/; revoking the lease drops the user.
func (c *fakeClient) GenerateDBCredentials(ctx context.Context, mount, role string) (*Credentials, error) {
	m := trimPath(mount)
	p := m + "/creds/" + role
	defer c.done()
	if err := c.call(ctx, "GenerateDBCredentials", m+"/"+role, "GET", p, true); err != nil {
		return nil, err
	}
	db := c.dbMount(mount)
	if db == nil {
		return nil, c.errorf(404, "GET", p, fmt.Sprintf("no handler for route %q. route entry not found.", p))
	}
	r := db.roles[role]
	if r == nil {
		return nil, c.errorf(400, "GET", p, "unknown role: "+role)
	}
	dbName, _ := r["db_name"].(string)
	conn := db.conns[dbName]
	if conn == nil {
		return nil, c.errorf(500, "GET", p, fmt.Sprintf("1 error occurred:\n\t* failed to find entry for connection with name: %q\n\n", dbName))
	}
	allowed := stringList(commaList(conn["allowed_roles"]))
	if !slices.Contains(allowed, "*") && !slices.Contains(allowed, role) {
		return nil, c.errorf(500, "GET", p, fmt.Sprintf("1 error occurred:\n\t* %q is not an allowed role\n\n", role))
	}
	ttl := defaultTokenTTL
	if n := jsonInt(r["default_ttl"]); n > 0 {
		ttl = time.Duration(n) * time.Second
	}
	user := "v-token-" + role + "-" + randomHex(10)
	now := time.Now().UTC()
	l := &fakeLease{id: p + "/" + randomHex(12), issue: now, expire: now.Add(ttl), renewable: true, creds: db, username: user, parent: c.Token()}
	c.s.leases[l.id] = l
	db.users[user] = l.id
	return &Credentials{Data: map[string]any{"username": user, "password": randomHex(16)}, LeaseID: l.id, Duration: ttl}, nil
}

// helpers

func trimPath(p string) string { return strings.Trim(p, "/") }

func copyMountInfo(m MountInfo) MountInfo {
	m.Options = maps.Clone(m.Options)
	return m
}

func copyAutopilotState(st *vaultapi.AutopilotState) *vaultapi.AutopilotState {
	if st == nil {
		return nil
	}
	b, _ := json.Marshal(st)
	out := &vaultapi.AutopilotState{}
	json.Unmarshal(b, out)
	return out
}

// jsonObject is data as Vault receives it: JSON-encoded by the client, decoded on the server
// (numbers kept exact); it is also a deep copy.
func jsonObject(data map[string]any) (map[string]any, error) {
	if data == nil {
		return map[string]any{}, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("vault: encoding the request: %w", err)
	}
	var out map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// jsonCopy deep-copies stored (already JSON-shaped) data for a caller.
func jsonCopy(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out, _ := jsonObject(m)
	return out
}

// durationSeconds parses a duration the way Vault's TypeDurationSecond does: a number of
// seconds, or a Go duration string ("15m").
func durationSeconds(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		f, err := x.Float64()
		return int64(f), err
	case string:
		if x == "" {
			return 0, nil
		}
		if i, err := strconv.ParseInt(x, 10, 64); err == nil {
			return i, nil
		}
		d, err := time.ParseDuration(x)
		return int64(d / time.Second), err
	case nil:
		return 0, nil
	}
	return 0, fmt.Errorf("cannot parse %v as a duration", v)
}

func jsonBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		return strconv.ParseBool(x)
	}
	return false, fmt.Errorf("not a boolean: %v", v)
}

// commaList is a list field as Vault's TypeCommaStringSlice reads it: a JSON list, or a
// comma-separated string.
func commaList(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case string:
		out := []any{}
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	case nil:
		return []any{}
	}
	return []any{fmt.Sprint(v)}
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newToken returns a token shaped like Vault's service tokens.
func newToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	for i := range b {
		b[i] = base62[int(b[i])%len(base62)]
	}
	return "hvs." + string(b)
}

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

var (
	_ Client        = (*fakeClient)(nil)
	_ Client        = (*httpClient)(nil)
	_ KVSoftDeleter = (*fakeClient)(nil)
	_ KVSoftDeleter = (*httpClient)(nil)
)
