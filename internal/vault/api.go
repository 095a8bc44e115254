// Package vault is vaultctl's one way to reach Vault: small interfaces, one per concern, over
// hashicorp/vault/api, and one in-memory Fake that every unit test shares. Phases and the
// packages after them (migrate, doctor, leases) depend on these interfaces, never on
// *vaultapi.Client, so their decisions are testable without a server.
package vault

import (
	"context"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// MountInfo describes a secrets engine or an auth method as Vault lists it.
type MountInfo struct {
	Type        string
	Description string
	Options     map[string]string
}

// ACL reads and writes ACL policies (sys/policies/acl).
type ACL interface {
	// ReadPolicy returns the policy's HCL, or found=false when there is no such policy.
	ReadPolicy(ctx context.Context, name string) (hcl string, found bool, err error)
	WritePolicy(ctx context.Context, name, hcl string) error
	DeletePolicy(ctx context.Context, name string) error
	ListPolicies(ctx context.Context) ([]string, error)
}

// AuthMethods enables auth methods and logs in at them.
type AuthMethods interface {
	// ListAuthMethods is keyed like Vault: "kubernetes/".
	ListAuthMethods(ctx context.Context) (map[string]MountInfo, error)
	EnableAuthMethod(ctx context.Context, path string, m MountInfo) error
	// Login writes body to auth/<mount>/login and returns the client token (an error when
	// Vault returns none). It is sent without the client's token, which it leaves unchanged.
	Login(ctx context.Context, mount string, body map[string]any) (string, error)
	// ReadAuthTune reads the tuning vaultctl manages of the auth method at path
	// (sys/auth/<path>/tune); an error when there is no such method.
	ReadAuthTune(ctx context.Context, path string) (AuthTune, error)
	// TuneAuthMethod writes t (sys/auth/<path>/tune); settings it does not name are kept.
	TuneAuthMethod(ctx context.Context, path string, t AuthTune) error
}

// AuthTune is the part of an auth method's tuning vaultctl manages.
type AuthTune struct {
	// AuditNonHMACRequestKeys are the request data keys audit devices log in clear, e.g.
	// "role", so that a failed login names the role it asked for.
	AuditNonHMACRequestKeys []string
}

// AuthRoles reads and writes an auth method's roles and its config (auth/<mount>/role/*,
// auth/<mount>/config). Data is what Vault returns, JSON-decoded the way vaultapi does it:
// numbers are json.Number (token_ttl comes back as json.Number("900"), in seconds, whether
// 900 or "15m" was written), lists []any, objects map[string]any. The Fake returns the same
// types, so comparisons behave alike.
type AuthRoles interface {
	// ReadRole returns nil, nil when the role does not exist.
	ReadRole(ctx context.Context, mount, name string) (map[string]any, error)
	WriteRole(ctx context.Context, mount, name string, data map[string]any) error
	DeleteRole(ctx context.Context, mount, name string) error
	ListRoles(ctx context.Context, mount string) ([]string, error)
	// ReadAuthConfig returns nil, nil when the method has no config yet.
	ReadAuthConfig(ctx context.Context, mount string) (map[string]any, error)
	WriteAuthConfig(ctx context.Context, mount string, data map[string]any) error
}

// Mounts lists and enables secrets engines (sys/mounts).
type Mounts interface {
	// ListMounts is keyed like Vault: "secret/".
	ListMounts(ctx context.Context) (map[string]MountInfo, error)
	EnableMount(ctx context.Context, path string, m MountInfo) error
}

// KVSecret is one version of a KV v2 secret.
type KVSecret struct {
	Data    map[string]any
	Version int
}

// KVMetadata is a KV v2 secret's metadata.
type KVMetadata struct {
	CurrentVersion int
	CustomMetadata map[string]string
	UpdatedTime    time.Time
}

// KV is the KV v2 engine: mount is the engine path ("secret"), path the logical path inside it
// ("production/db"); the data/ and metadata/ segments are added here, never by callers.
type KV interface {
	// KVRead returns the current version, or nil, nil when the secret does not exist or its
	// current version is deleted.
	KVRead(ctx context.Context, mount, path string) (*KVSecret, error)
	// KVWrite writes a new version. cas < 0 writes unconditionally; cas = 0 only when the
	// secret does not exist; cas = n only when the current version is n (check-and-set).
	KVWrite(ctx context.Context, mount, path string, data map[string]any, cas int) (version int, err error)
	// KVReadMetadata returns nil, nil when the secret does not exist.
	KVReadMetadata(ctx context.Context, mount, path string) (*KVMetadata, error)
	KVWriteMetadata(ctx context.Context, mount, path string, custom map[string]string) error
	// KVList lists the keys under a logical folder ("production/"); folders end in "/".
	KVList(ctx context.Context, mount, path string) ([]string, error)
	// KVDeleteAll removes every version and the metadata.
	KVDeleteAll(ctx context.Context, mount, path string) error
}

// KVSoftDeleter soft-deletes a KV v2 secret's current version (DELETE <mount>/data/<path>):
// KVRead then returns nil while the metadata and version history stay. Both the real client
// and the Fake implement it; it is kept out of KV so that callers' own test doubles of KV
// need not.
type KVSoftDeleter interface {
	KVDelete(ctx context.Context, mount, path string) error
}

// AuditDevice is an audit device as enabled or listed.
type AuditDevice struct {
	Type        string
	Description string
	Options     map[string]string
}

// Audit enables and disables audit devices (sys/audit).
type Audit interface {
	// ListAuditDevices is keyed like Vault: "file/".
	ListAuditDevices(ctx context.Context) (map[string]AuditDevice, error)
	EnableAuditDevice(ctx context.Context, path string, d AuditDevice) error
	DisableAuditDevice(ctx context.Context, path string) error
}

// Raft reads integrated storage's health and tunes autopilot. The reads return nil, nil
// when the server answers 404.
type Raft interface {
	AutopilotState(ctx context.Context) (*vaultapi.AutopilotState, error)
	AutopilotConfig(ctx context.Context) (*vaultapi.AutopilotConfig, error)
	// WriteAutopilotConfig sends only the keys given: the API's full struct carries
	// Enterprise-only fields that Community Edition rejects.
	WriteAutopilotConfig(ctx context.Context, body map[string]any) error
}

// System is sys/init, sys/seal-status and sys/health: what works without a token.
type System interface {
	SealStatus(ctx context.Context) (*vaultapi.SealStatusResponse, error)
	Health(ctx context.Context) (*vaultapi.HealthResponse, error)
	Init(ctx context.Context, req *vaultapi.InitRequest) (*vaultapi.InitResponse, error)
}

// Tokens is the client's own token.
type Tokens interface {
	Token() string
	SetToken(token string)
	// LookupSelf proves the token is alive; a revoked one gives a 403.
	LookupSelf(ctx context.Context) error
	RevokeSelf(ctx context.Context) error
	// CapabilitiesSelf returns the client token's capabilities on each API path
	// (sys/capabilities-self): ["deny"] where it has none, ["root"] for a root token. Proofs
	// ask Vault itself rather than trusting vaultctl's own reading of a policy.
	CapabilitiesSelf(ctx context.Context, paths ...string) (map[string][]string, error)
}

// Lease is one lease as sys/leases/lookup describes it.
type Lease struct {
	ID         string
	IssueTime  time.Time
	ExpireTime time.Time
	Renewable  bool
}

// Leases lists and revokes leases (sys/leases).
type Leases interface {
	// ListLeases lists lease IDs relative to prefix (and sub-prefixes, ending in "/"), e.g.
	// "auth/kubernetes/login/"; an empty list when there are none.
	ListLeases(ctx context.Context, prefix string) ([]string, error)
	LookupLease(ctx context.Context, id string) (*Lease, error)
	RevokeLease(ctx context.Context, id string) error
	// RevokePrefix revokes every lease under prefix (or the one lease it names), and with
	// a token's lease the token.
	RevokePrefix(ctx context.Context, prefix string) error
}

// Credentials are dynamic credentials with their lease.
type Credentials struct {
	Data     map[string]any
	LeaseID  string
	Duration time.Duration
}

// Database is the database secrets engine at a mount: connections, roles, credentials.
type Database interface {
	// ReadDBConnection returns nil, nil when the connection does not exist.
	ReadDBConnection(ctx context.Context, mount, name string) (map[string]any, error)
	WriteDBConnection(ctx context.Context, mount, name string, data map[string]any) error
	DeleteDBConnection(ctx context.Context, mount, name string) error
	// RotateDBRoot has Vault set a new password for the connection's own user (known only
	// to Vault from then on), so the password it was written with stops working.
	RotateDBRoot(ctx context.Context, mount, name string) error
	// ReadDBRole returns nil, nil when the role does not exist.
	ReadDBRole(ctx context.Context, mount, name string) (map[string]any, error)
	WriteDBRole(ctx context.Context, mount, name string, data map[string]any) error
	DeleteDBRole(ctx context.Context, mount, name string) error
	GenerateDBCredentials(ctx context.Context, mount, role string) (*Credentials, error)
}

// Client is every concern at once: what a Dialer returns. Code should accept the narrowest
// interface it uses.
type Client interface {
	ACL
	AuthMethods
	AuthRoles
	Mounts
	KV
	Audit
	Raft
	System
	Tokens
	Leases
	Database
}

// Endpoint is where a Vault answers and the CA (PEM) to trust for it; an empty CA means the
// system roots.
type Endpoint struct {
	Address string
	CAPEM   []byte
}

// Dialer makes unauthenticated clients for an endpoint. The real one (HTTPDialer) speaks
// HTTP and takes nothing from VAULT_* variables (see ResolveEndpoint for those); the Fake's
// (FakeServer.Dialer) returns clients of the same in-memory server.
type Dialer interface {
	Dial(ep Endpoint) (Client, error)
}
