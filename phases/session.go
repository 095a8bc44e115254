package phases

import (
	"context"
	"errors"
	"fmt"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/internal/vault"
)

// The identity later runs use: a Kubernetes-auth role bound to a ServiceAccount in the Vault
// namespace. Whoever may create tokens for that ServiceAccount (cluster RBAC) is a Vault admin
// for what vaultctl manages; no long-lived Vault admin token exists.
const (
	AdminServiceAccount = "vaultctl"
	AdminRole           = "vaultctl-admin"
	AdminPolicy         = "vaultctl-admin"
)

// VaultAdmin is what most phases need of the session: a client with the admin identity.
type VaultAdmin interface {
	Admin(ctx context.Context) (vault.Client, error)
}

// Session is what one run knows about Vault: where it is, the root token while it lives (only
// here, and KMS-encrypted in custody until bootstrap finishes), and the admin login.
type Session struct {
	Dialer vault.Dialer
	// Locate finds Vault: the config's address for an external Vault, a port-forward to a pod
	// in-cluster. It returns an ErrNotYet error while there is nothing to reach.
	Locate func(ctx context.Context) (vault.Endpoint, error)
	// Kube makes the TokenRequest of the admin login.
	Kube      kubernetes.Interface
	Namespace string // of the vaultctl ServiceAccount
	AuthPath  string // Kubernetes auth mount of the admin role
	Custody   *custody
	// FallbackToken (VAULT_TOKEN) is used when the admin login does not work, e.g. to repair a
	// broken auth config.
	FallbackToken string

	mu        sync.Mutex
	ep        *vault.Endpoint
	rootToken string
	admin     vault.Client
	ownsToken bool // admin's token came from our own login: ours to revoke at the end
}

func newSession(env *Env) *Session {
	cfg := env.Config
	return &Session{
		Kube: env.Kube, Namespace: cfg.Vault.Namespace, AuthPath: cfg.KubernetesAuth.Path,
		Custody: newCustody(env.Kube, cfg.Vault.Namespace, env.kms()),
	}
}

// Endpoint returns where Vault answers, locating it once per run.
func (s *Session) Endpoint(ctx context.Context) (vault.Endpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoint(ctx)
}

func (s *Session) endpoint(ctx context.Context) (vault.Endpoint, error) {
	if s.ep != nil {
		return *s.ep, nil
	}
	if s.Locate == nil {
		return vault.Endpoint{}, Fail("this build cannot reach Vault", "no way to locate Vault")
	}
	ep, err := s.Locate(ctx)
	if err != nil {
		return vault.Endpoint{}, err
	}
	s.ep = &ep
	return ep, nil
}

// Anonymous returns a client without a token (sys/init, seal status, health).
func (s *Session) Anonymous(ctx context.Context) (vault.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.anonymous(ctx)
}

func (s *Session) anonymous(ctx context.Context) (vault.Client, error) {
	ep, err := s.endpoint(ctx)
	if err != nil {
		return nil, err
	}
	if s.Dialer == nil {
		return nil, Fail("this build cannot reach Vault", "no Vault dialer")
	}
	c, err := s.Dialer.Dial(ep)
	if err != nil {
		return nil, Fail("check vault.address and vault.tls.caCert", "Vault client for %s: %v", ep.Address, err)
	}
	return c, nil
}

// SetRootToken keeps the root token from operator init for this run.
func (s *Session) SetRootToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rootToken, s.admin, s.ownsToken = tok, nil, false
}

// HasRootToken reports whether this run holds the initial root token.
func (s *Session) HasRootToken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rootToken != ""
}

// Admin returns a client with the strongest identity available, in this order: the root token
// from this run's init; the root token kept in custody by an init whose run died before
// bootstrap; the vaultctl-admin Kubernetes-auth login; the fallback token (VAULT_TOKEN).
func (s *Session) Admin(ctx context.Context) (vault.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin != nil {
		return s.admin, nil
	}
	c, err := s.anonymous(ctx)
	if err != nil {
		return nil, err
	}
	if s.rootToken == "" && s.Custody != nil {
		if err := s.adoptPendingRootToken(ctx); err != nil {
			return nil, err
		}
	}
	if s.rootToken != "" {
		c.SetToken(s.rootToken)
		s.admin = c
		return c, nil
	}
	loginErr := s.login(ctx, c)
	if loginErr == nil {
		s.admin, s.ownsToken = c, true
		return c, nil
	}
	if s.FallbackToken != "" {
		c.SetToken(s.FallbackToken)
		s.admin = c
		return c, nil
	}
	if st, err := c.SealStatus(ctx); err == nil && !st.Initialized {
		return nil, notYet(Fail("run vaultctl apply: the initialize phase comes first", "Vault is not initialized yet"))
	}
	return nil, Fail(fmt.Sprintf("check that ServiceAccount %s/%s and role %s exist (vaultctl apply recreates them when given VAULT_TOKEN with enough rights), or generate a root token with `vault operator generate-root` and the recovery keys",
		s.Namespace, AdminServiceAccount, AdminRole), "cannot authenticate to Vault as %s: %v", AdminRole, loginErr)
}

// adoptPendingRootToken takes over the root token an earlier run left in custody (it died
// between init and bootstrap). A run that died between revoking and forgetting the token leaves
// a dead one: it is dropped rather than failing every later run with 403.
func (s *Session) adoptPendingRootToken(ctx context.Context) error {
	tok, err := s.Custody.pendingRootToken(ctx)
	if err != nil || tok == "" {
		// An unreadable custody Secret is initialize's to explain; the login may still work.
		return nil
	}
	probe, err := s.anonymous(ctx)
	if err != nil {
		return err
	}
	probe.SetToken(tok)
	switch err := probe.LookupSelf(ctx); {
	case err == nil:
		s.rootToken = tok
	case vault.IsForbidden(err):
		if err := s.Custody.dropRootToken(ctx); err != nil {
			return Fail("check that your kube credentials may update Secrets in namespace "+s.Namespace,
				"dropping the revoked root token from custody: %v", err)
		}
	default:
		return redact(fmt.Errorf("checking the root token kept in custody: %w", err), tok)
	}
	return nil
}

// ProveAdminLogin proves the vaultctl-admin login works, on a client of its own, and revokes that token.
func (s *Session) ProveAdminLogin(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	probe, err := s.anonymous(ctx)
	if err != nil {
		return err
	}
	if err := s.login(ctx, probe); err != nil {
		return err
	}
	if err := probe.RevokeSelf(ctx); err != nil {
		return fmt.Errorf("revoking the probe login token: %w", err)
	}
	return nil
}

// RevokeRoot revokes the root token and forgets it, so the next Admin logs in as
// vaultctl-admin. Revoke, then forget: root tokens never expire, so a live one must not
// outlive its record.
func (s *Session) RevokeRoot(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rootToken == "" {
		return nil
	}
	root := s.rootToken
	c, err := s.anonymous(ctx)
	if err != nil {
		return err
	}
	c.SetToken(root)
	if err := c.RevokeSelf(ctx); err != nil {
		return redact(fmt.Errorf("revoking root token: %w", err), root)
	}
	s.rootToken, s.admin, s.ownsToken = "", nil, false
	return nil
}

// login logs in with a short-lived TokenRequest token for the vaultctl ServiceAccount, made
// with the operator's own kube credentials: cluster RBAC is the gate.
func (s *Session) login(ctx context.Context, c vault.Client) error {
	if s.Kube == nil {
		return errors.New("no Kubernetes connection for the admin login")
	}
	exp := int64(600)
	tr, err := s.Kube.CoreV1().ServiceAccounts(s.Namespace).CreateToken(ctx, AdminServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("TokenRequest for %s/%s: %w", s.Namespace, AdminServiceAccount, err)
	}
	tok, err := c.Login(ctx, s.AuthPath, map[string]any{"role": AdminRole, "jwt": tr.Status.Token})
	if err != nil {
		return redact(err, tr.Status.Token)
	}
	c.SetToken(tok)
	return nil
}

// Close revokes the admin login token of this run. The root token is revoked by the bootstrap
// phase as soon as the admin identity exists; a VAULT_TOKEN is the operator's and stays.
func (s *Session) Close(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin != nil && s.ownsToken {
		_ = s.admin.RevokeSelf(ctx)
	}
	s.admin, s.ownsToken = nil, false
}

func isNotFound(err error) bool { return vault.IsNotFound(err) }

func isForbidden(err error) bool { return vault.IsForbidden(err) }

// vaultErr words a Vault error for the user; a 403 gets the fix.
func vaultErr(what string, err error) error {
	if vault.IsForbidden(err) {
		return Fail("the token in use lacks the right; vaultctl-admin's policy covers what vaultctl manages (or set VAULT_TOKEN)", "%s: permission denied", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}
