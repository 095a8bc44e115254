package phases

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The identity later runs use: a Kubernetes-auth role bound to a ServiceAccount in the Vault
// namespace. Whoever may create tokens for that ServiceAccount (cluster RBAC) is a Vault admin
// for what vaultctl manages; no long-lived Vault admin token exists.
const (
	AdminServiceAccount = "vaultctl"
	AdminRole           = "vaultctl-admin"
	AdminPolicy         = "vaultctl-admin"
)

// session holds what one run learns about Vault; the root token lives only here (and, until
// bootstrap finishes, KMS-encrypted in the custody Secret).
type session struct {
	addr      string
	caPEM     []byte
	rootToken string
	admin     *vaultapi.Client
	ownsToken bool // admin's token came from our own login: ours to revoke at the end
}

// vaultEndpoint returns the address of Vault and the CA to trust. External mode: from config.
// In-cluster mode: InClusterVault (a port-forward to a Vault pod) provides it.
func (e *Env) vaultEndpoint(ctx context.Context) (string, []byte, error) {
	if e.sess.addr != "" {
		return e.sess.addr, e.sess.caPEM, nil
	}
	if e.Config.External() {
		var ca []byte
		if f := e.Config.Vault.TLS.CACert; f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", nil, Fail("vault.tls.caCert must be a readable PEM file", "reading %s: %v", f, err)
			}
			ca = b
		}
		e.sess.addr, e.sess.caPEM = e.Config.Vault.Address, ca
		return e.sess.addr, ca, nil
	}
	if e.InClusterVault == nil {
		return "", nil, Fail("this build cannot reach an in-cluster Vault", "no in-cluster Vault access")
	}
	addr, ca, err := e.InClusterVault(ctx)
	if err != nil {
		// Before the server phase has run there is nothing to reach.
		return "", nil, notYet(err)
	}
	e.sess.addr, e.sess.caPEM = addr, ca
	return addr, ca, nil
}

// newVault returns an unauthenticated client.
func (e *Env) newVault(ctx context.Context) (*vaultapi.Client, error) {
	addr, ca, err := e.vaultEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	vc := vaultapi.DefaultConfig()
	vc.Address = addr
	vc.Timeout = 30 * time.Second
	vc.MaxRetries = 2
	if len(ca) > 0 {
		if err := vc.ConfigureTLS(&vaultapi.TLSConfig{CACertBytes: ca}); err != nil {
			return nil, err
		}
	}
	c, err := vaultapi.NewClient(vc)
	if err != nil {
		return nil, err
	}
	c.ClearToken()
	return c, nil
}

// adminVault returns a client with the strongest identity available, in this order: the root
// token from this run's init; the root token kept in custody by an init whose run died before
// bootstrap; the vaultctl-admin Kubernetes-auth login; VAULT_TOKEN.
func (e *Env) adminVault(ctx context.Context) (*vaultapi.Client, error) {
	if e.sess.admin != nil {
		return e.sess.admin, nil
	}
	c, err := e.newVault(ctx)
	if err != nil {
		return nil, err
	}
	if e.sess.rootToken == "" {
		if tok, err := (custody{env: e}).pendingRootToken(ctx); err == nil && tok != "" {
			// A run that died between revoking and forgetting the token leaves a dead one:
			// forget it rather than fail every later run with 403.
			probe, _ := e.newVault(ctx)
			probe.SetToken(tok)
			if _, err := probe.Auth().Token().LookupSelfWithContext(ctx); err == nil {
				e.sess.rootToken = tok
			} else if isForbidden(err) {
				_ = (custody{env: e}).dropRootToken(ctx)
			}
		}
	}
	if e.sess.rootToken != "" {
		c.SetToken(e.sess.rootToken)
		e.sess.admin = c
		return c, nil
	}
	loginErr := e.adminLogin(ctx, c)
	if loginErr == nil {
		e.sess.admin, e.sess.ownsToken = c, true
		return c, nil
	}
	if tok := os.Getenv("VAULT_TOKEN"); tok != "" {
		c.SetToken(tok)
		e.sess.admin = c
		return c, nil
	}
	if st, err := c.Sys().SealStatusWithContext(ctx); err == nil && !st.Initialized {
		return nil, notYet(Fail("run vaultctl apply: the initialize phase comes first", "Vault is not initialized yet"))
	}
	return nil, Fail(fmt.Sprintf("check that ServiceAccount %s/%s and role %s exist (vaultctl apply recreates them when given VAULT_TOKEN with enough rights), or generate a root token with `vault operator generate-root` and the recovery keys",
		e.Config.Vault.Namespace, AdminServiceAccount, AdminRole), "cannot authenticate to Vault as %s: %v", AdminRole, loginErr)
}

// adminLogin logs in with a short-lived TokenRequest token for the vaultctl ServiceAccount,
// made with the operator's own kube credentials: cluster RBAC is the gate.
func (e *Env) adminLogin(ctx context.Context, c *vaultapi.Client) error {
	exp := int64(600)
	tr, err := e.Kube.CoreV1().ServiceAccounts(e.Config.Vault.Namespace).CreateToken(ctx, AdminServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("TokenRequest for %s/%s: %w", e.Config.Vault.Namespace, AdminServiceAccount, err)
	}
	secret, err := c.Logical().WriteWithContext(ctx, "auth/"+e.Config.KubernetesAuth.Path+"/login",
		map[string]any{"role": AdminRole, "jwt": tr.Status.Token})
	if err != nil {
		return err
	}
	if secret == nil || secret.Auth == nil {
		return fmt.Errorf("login returned no token")
	}
	c.SetToken(secret.Auth.ClientToken)
	return nil
}

// Close revokes what this run holds: the admin login token. The root token is revoked by the
// bootstrap phase as soon as the admin identity exists.
func (e *Env) Close(ctx context.Context) {
	if e.sess.admin != nil && e.sess.ownsToken {
		_ = e.sess.admin.Auth().Token().RevokeSelfWithContext(ctx, "")
	}
}

func asResponseError(err error, target **vaultapi.ResponseError) bool { return errors.As(err, target) }

func isForbidden(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == 403
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
