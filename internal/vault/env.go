package vault

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The VAULT_* variables the vault CLI (and hashicorp/vault/api) read. vaultctl decides about
// each one here, once: HTTPDialer ignores them all.
const (
	EnvAddr             = "VAULT_ADDR"
	EnvCACert           = "VAULT_CACERT"
	EnvCACertBytes      = "VAULT_CACERT_BYTES"
	EnvCAPath           = "VAULT_CAPATH"
	EnvToken            = "VAULT_TOKEN"
	EnvSkipVerify       = "VAULT_SKIP_VERIFY"
	EnvNamespace        = "VAULT_NAMESPACE"
	EnvProxyAddr        = "VAULT_PROXY_ADDR"
	EnvHTTPProxy        = "VAULT_HTTP_PROXY"
	EnvHeaders          = "VAULT_HEADERS"
	EnvTLSServerName    = "VAULT_TLS_SERVER_NAME"
	EnvAgentAddr        = "VAULT_AGENT_ADDR"
	EnvClientCert       = "VAULT_CLIENT_CERT"
	EnvClientKey        = "VAULT_CLIENT_KEY"
	EnvWrapTTL          = "VAULT_WRAP_TTL"
	EnvMFA              = "VAULT_MFA"
	EnvRateLimit        = "VAULT_RATE_LIMIT"
	EnvMaxRetries       = "VAULT_MAX_RETRIES"
	EnvClientTimeout    = "VAULT_CLIENT_TIMEOUT"
	EnvSRVLookup        = "VAULT_SRV_LOOKUP"
	EnvDisableRedirects = "VAULT_DISABLE_REDIRECTS"
)

// EndpointConfig is what vaultctl's config says about reaching Vault; empty fields are
// silent and may be filled from the environment.
type EndpointConfig struct {
	// Address is vault.address.
	Address string
	// CACert is vault.tls.caCert: a PEM file's path, or the PEM itself.
	CACert string
}

// ignoredVars are variables that would change how the vault CLI connects but never change
// how vaultctl does: each gets a warning naming it and what to do instead.
var ignoredVars = []struct{ name, why string }{
	{EnvCAPath, "vaultctl trusts exactly one CA bundle: concatenate the CAs into one PEM file and set vault.tls.caCert (or VAULT_CACERT); unset VAULT_CAPATH"},
	{EnvTLSServerName, "the server certificate must be valid for the host of the address vaultctl dials; unset VAULT_TLS_SERVER_NAME"},
	{EnvProxyAddr, "vaultctl connects to Vault directly, never through a proxy; unset VAULT_PROXY_ADDR"},
	{EnvHTTPProxy, "vaultctl connects to Vault directly, never through a proxy; unset VAULT_HTTP_PROXY"},
	{EnvHeaders, "vaultctl sends no extra headers to Vault; unset VAULT_HEADERS"},
	{EnvAgentAddr, "vaultctl talks to the Vault server itself, not to a Vault Agent; unset VAULT_AGENT_ADDR"},
	{EnvClientCert, "vaultctl does not present TLS client certificates; unset VAULT_CLIENT_CERT"},
	{EnvClientKey, "vaultctl does not present TLS client certificates; unset VAULT_CLIENT_KEY"},
	{EnvWrapTTL, "vaultctl never asks for response wrapping; unset VAULT_WRAP_TTL"},
	{EnvMFA, "vaultctl does not send MFA credentials; unset VAULT_MFA"},
	{EnvRateLimit, "vaultctl does not rate-limit its own requests; unset VAULT_RATE_LIMIT"},
	{EnvMaxRetries, "vaultctl sets its own retries; unset VAULT_MAX_RETRIES"},
	{EnvClientTimeout, "vaultctl sets its own request timeout; unset VAULT_CLIENT_TIMEOUT"},
	{EnvSRVLookup, "vaultctl dials the address as given, without DNS SRV lookup; unset VAULT_SRV_LOOKUP"},
	{EnvDisableRedirects, "vaultctl follows a standby's redirect to the active node; unset VAULT_DISABLE_REDIRECTS"},
}

// ResolveEndpoint applies the vault CLI's environment conventions to what the config says,
// so that a shell set up for the vault CLI works with vaultctl, and a shell set up for
// another Vault cannot silently change where or how vaultctl writes:
//
//   - VAULT_ADDR, VAULT_CACERT (a file; else VAULT_CACERT_BYTES, PEM) fill in what the
//     config leaves empty; where the config sets them and the variable differs, a warning
//     says the variable is ignored and names both values.
//   - VAULT_TOKEN is returned as the fallback token: used only when vaultctl has no token of
//     its own (it never reaches the client by itself).
//   - VAULT_NAMESPACE is refused: vaultctl manages the root namespace and every write would
//     land in another one. VAULT_SKIP_VERIFY=true is refused when a CA is pinned (it
//     contradicts it) and ignored otherwise: vaultctl always verifies TLS.
//   - Every other connection variable (VAULT_CAPATH, VAULT_TLS_SERVER_NAME, VAULT_PROXY_ADDR,
//     VAULT_HTTP_PROXY, VAULT_HEADERS, VAULT_AGENT_ADDR, client certificates, wrapping, …)
//     is ignored, with a warning.
//
// Every message names the variable and what to do.
func ResolveEndpoint(cfg EndpointConfig, getenv func(string) string) (ep Endpoint, token string, warnings []string, err error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	warn := func(format string, a ...any) { warnings = append(warnings, fmt.Sprintf(format, a...)) }

	if ns := env(EnvNamespace); ns != "" {
		return Endpoint{}, "", nil, fmt.Errorf("%s=%s is set, but vaultctl manages Vault's root namespace: every policy, role and secret would be written into namespace %q instead. Unset %s (`unset %s`)", EnvNamespace, ns, ns, EnvNamespace, EnvNamespace)
	}

	// Address.
	envAddr := env(EnvAddr)
	switch {
	case cfg.Address != "":
		ep.Address = cfg.Address
		if envAddr != "" && !sameAddress(envAddr, cfg.Address) {
			warn("%s=%s is ignored: the config's vault.address is %s. Unset %s, or change vault.address", EnvAddr, envAddr, cfg.Address, EnvAddr)
		}
	case envAddr != "":
		ep.Address = envAddr
	default:
		return Endpoint{}, "", nil, fmt.Errorf("no Vault address: set vault.address in the config, or export %s", EnvAddr)
	}
	if !strings.HasPrefix(ep.Address, "https://") && !strings.HasPrefix(ep.Address, "http://") {
		return Endpoint{}, "", nil, fmt.Errorf("Vault address %q has no http:// or https:// scheme: fix vault.address (or %s)", ep.Address, EnvAddr)
	}

	// CA.
	envCAFile, envCABytes := env(EnvCACert), getenv(EnvCACertBytes)
	switch {
	case cfg.CACert != "":
		pemBytes, err := loadCA(cfg.CACert, "the config's vault.tls.caCert")
		if err != nil {
			return Endpoint{}, "", nil, err
		}
		ep.CAPEM = pemBytes
		if envCAFile != "" {
			if b, err := os.ReadFile(envCAFile); err != nil || !bytes.Equal(bytes.TrimSpace(b), bytes.TrimSpace(pemBytes)) {
				warn("%s=%s is ignored: the config's vault.tls.caCert (%s) is the CA vaultctl trusts. Unset %s, or change vault.tls.caCert", EnvCACert, envCAFile, describeCA(cfg.CACert), EnvCACert)
			}
		}
		if strings.TrimSpace(envCABytes) != "" && !bytes.Equal(bytes.TrimSpace([]byte(envCABytes)), bytes.TrimSpace(pemBytes)) {
			warn("%s is ignored: the config's vault.tls.caCert (%s) is the CA vaultctl trusts. Unset %s, or change vault.tls.caCert", EnvCACertBytes, describeCA(cfg.CACert), EnvCACertBytes)
		}
	case envCAFile != "":
		pemBytes, err := loadCAFile(envCAFile, EnvCACert)
		if err != nil {
			return Endpoint{}, "", nil, err
		}
		ep.CAPEM = pemBytes
		if strings.TrimSpace(envCABytes) != "" {
			warn("%s is ignored: %s=%s takes precedence, as with the vault CLI. Unset one of them", EnvCACertBytes, EnvCACert, envCAFile)
		}
	case strings.TrimSpace(envCABytes) != "":
		pemBytes := []byte(envCABytes)
		if err := checkPEM(pemBytes, EnvCACertBytes); err != nil {
			return Endpoint{}, "", nil, err
		}
		ep.CAPEM = pemBytes
	}

	if v := env(EnvSkipVerify); v != "" {
		skip, perr := strconv.ParseBool(v)
		switch {
		case perr != nil:
			warn("%s=%s is ignored (and is not a boolean): vaultctl always verifies Vault's TLS certificate. Unset %s", EnvSkipVerify, v, EnvSkipVerify)
		case skip && len(ep.CAPEM) > 0:
			return Endpoint{}, "", nil, fmt.Errorf("%s=%s contradicts the pinned CA (%s): vaultctl always verifies Vault's TLS certificate. Unset %s", EnvSkipVerify, v, caSource(cfg, envCAFile), EnvSkipVerify)
		case skip:
			warn("%s=%s is ignored: vaultctl always verifies Vault's TLS certificate. To trust a private CA, set vault.tls.caCert (or %s); unset %s", EnvSkipVerify, v, EnvCACert, EnvSkipVerify)
		}
	}

	for _, iv := range ignoredVars {
		if v := env(iv.name); v != "" {
			warn("%s is ignored: %s", iv.name, iv.why)
		}
	}

	return ep, env(EnvToken), warnings, nil
}

// sameAddress compares addresses as the vault CLI would use them: a trailing slash does not
// matter.
func sameAddress(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

func isPEM(s string) bool { return strings.Contains(s, "-----BEGIN") }

func describeCA(s string) string {
	if isPEM(s) {
		return "inline PEM"
	}
	return s
}

func caSource(cfg EndpointConfig, envFile string) string {
	if cfg.CACert != "" {
		return "vault.tls.caCert " + describeCA(cfg.CACert)
	}
	if envFile != "" {
		return EnvCACert + "=" + envFile
	}
	return EnvCACertBytes
}

func loadCA(s, what string) ([]byte, error) {
	if isPEM(s) {
		b := []byte(s)
		return b, checkPEM(b, what)
	}
	return loadCAFile(s, what)
}

func loadCAFile(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the Vault CA from %s (%s): %v", what, path, err)
	}
	return b, checkPEM(b, what+" ("+path+")")
}

// checkPEM fails early, naming the source, rather than at the first TLS handshake.
func checkPEM(b []byte, what string) error {
	rest := b
	n := 0
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("the Vault CA in %s holds an unreadable certificate: %v", what, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("the Vault CA in %s holds no PEM certificate", what)
	}
	return nil
}
