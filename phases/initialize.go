package phases

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
)

// Initialize runs operator init once, with recovery keys (the awskms seal unseals by itself),
// and puts the keys in custody before doing anything else. It refuses to touch a cluster whose
// seal differs from the config: that is a seal migration, not an init.
type Initialize struct {
	In      InitializeInputs
	Vault   *Session
	Custody *custody
}

// InitializeInputs is what the initialize phase reads of the config.
type InitializeInputs struct {
	Init      config.Init
	Namespace string
	SealType  string
	KMSKeyID  string
}

func initializeInputs(cfg *config.Config) InitializeInputs {
	return InitializeInputs{Init: cfg.Vault.Init, Namespace: cfg.Vault.Namespace, SealType: cfg.Vault.Seal.Type, KMSKeyID: cfg.Vault.Seal.AWSKMS.KMSKeyID}
}

func (p *Initialize) Name() string { return "initialize" }
func (p *Initialize) Description() string {
	return "operator init with recovery keys in KMS-encrypted custody; seal type verified"
}
func (p *Initialize) Inputs() any { return p.In }

func (p *Initialize) Check(ctx context.Context) (Diff, error) {
	c, err := p.Vault.Anonymous(ctx)
	if err != nil {
		return Diff{}, err
	}
	st, err := c.SealStatus(ctx)
	if err != nil {
		return Diff{}, Fail("check that Vault is running and reachable (vaultctl plan --only preflight)", "reading seal status: %v", err)
	}
	in := p.In.Init
	ns := p.In.Namespace
	if !st.Initialized {
		if s, err := p.Custody.get(ctx); err != nil {
			return Diff{}, Fail("check that your kube credentials may read Secrets in the Vault namespace", "reading custody Secret: %v", err)
		} else if s != nil && s.Labels[ManagedByLabel] != "vaultctl" {
			return Diff{}, Fail("rename or remove that Secret; vaultctl stores the recovery keys there",
				"Secret %s/%s exists and was not created by vaultctl", ns, CustodySecret)
		}
		custodyNote := "recovery keys KMS-encrypted into Secret " + ns + "/" + CustodySecret
		if len(in.PGPKeys) > 0 {
			custodyNote = fmt.Sprintf("recovery keys PGP-encrypted to %d keys, stored in Secret %s/%s", len(in.PGPKeys), ns, CustodySecret)
		}
		return Diff{Changes: []Change{{Action: Create, Object: "Vault initialization",
			Detail: fmt.Sprintf("%d recovery shares, threshold %d; %s", in.RecoveryShares, in.RecoveryThreshold, custodyNote)}}}, nil
	}
	if err := checkSealType(st, p.In.SealType); err != nil {
		return Diff{}, err
	}
	if st.Sealed {
		return Diff{}, Fail("Vault could not auto-unseal: check that its ServiceAccount (IRSA role) may kms:Decrypt with "+p.In.KMSKeyID+", and the server logs",
			"Vault is initialized but sealed")
	}
	d := Diff{Facts: []string{fmt.Sprintf("initialized, %s seal, unsealed, Vault %s", st.Type, st.Version)}}
	s, err := p.Custody.get(ctx)
	if err != nil {
		return Diff{}, Fail("check that your kube credentials may read Secrets in the Vault namespace", "reading custody Secret: %v", err)
	}
	if s == nil || len(s.Data[custodyRecoveryKey]) == 0 {
		d.Facts = append(d.Facts, "recovery keys are not in vaultctl custody (Vault was initialized outside vaultctl)")
	} else {
		d.Facts = append(d.Facts, "recovery keys in custody")
	}
	return d, nil
}

// checkSealType refuses a running cluster whose seal is not the configured one: adding awskms to
// a Shamir cluster needs a seal migration that vaultctl will not do silently.
func checkSealType(st *vaultapi.SealStatusResponse, want string) error {
	if st.Type == want {
		return nil
	}
	if st.Type == "shamir" && want == "awskms" {
		return Fail(`migrate the seal by hand: add the seal "awskms" stanza to every node's config, restart the nodes one by one, then run `+
			"`vault operator unseal -migrate` with the Shamir unseal keys on each (https://developer.hashicorp.com/vault/docs/concepts/seal#seal-migration); run vaultctl apply again afterwards",
			"Vault is initialized with a Shamir seal but the config asks for awskms; changing the seal of an initialized cluster is a seal migration")
	}
	return Fail("make vault.seal match the running cluster, or migrate the seal as Vault documents",
		"Vault runs a %s seal but the config asks for %s", st.Type, want)
}

func (p *Initialize) Apply(ctx context.Context, _ Diff) error {
	in := p.In.Init
	c, err := p.Vault.Anonymous(ctx)
	if err != nil {
		return err
	}
	req := &vaultapi.InitRequest{RecoveryShares: in.RecoveryShares, RecoveryThreshold: in.RecoveryThreshold}
	for _, f := range in.PGPKeys {
		key, err := readPGPKey(f)
		if err != nil {
			return err
		}
		req.RecoveryPGPKeys = append(req.RecoveryPGPKeys, key)
	}
	// Everything that needs KMS happens before init, so nothing after it can fail on KMS.
	keys, err := p.Custody.prepare(ctx, p.In.KMSKeyID)
	if err != nil {
		return err
	}
	defer keys.forget()
	resp, err := c.Init(ctx, req)
	if err != nil {
		return Fail("check the Vault server logs; nothing was stored", "operator init: %v", err)
	}
	// From here until custody.store returns, the keys exist only in this process.
	m := recoveryMaterial{Keys: resp.RecoveryKeysB64, Shares: in.RecoveryShares, Threshold: in.RecoveryThreshold, PGP: len(in.PGPKeys) > 0}
	if err := p.Custody.store(ctx, keys, m, resp.RootToken, in.RecoveryKeysFile); err != nil {
		return err
	}
	p.Vault.SetRootToken(resp.RootToken)
	clear(resp.RecoveryKeysB64)
	return p.waitUnsealed(ctx, c)
}

// waitUnsealed waits for the awskms seal to unseal the node and for a leader to be active.
func (p *Initialize) waitUnsealed(ctx context.Context, c vault.System) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		h, err := c.Health(ctx)
		if err == nil && h.Initialized && !h.Sealed && !h.Standby {
			return nil
		}
		if time.Now().After(deadline) {
			return Fail("check Vault's server logs for KMS errors", "Vault did not unseal and become active within 2 minutes after init")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// readPGPKey accepts a file with a base64 public key (what Vault wants) or a binary one.
func readPGPKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", Fail("vault.init.pgpKeys must name readable public key files", "reading PGP key %s: %v", path, err)
	}
	s := strings.TrimSpace(string(b))
	if _, err := base64.StdEncoding.DecodeString(s); err == nil {
		return s, nil
	}
	if strings.Contains(s, "BEGIN PGP") {
		return "", Fail("export it with `gpg --export KEYID | base64 -w0 > key.b64`", "%s is ASCII-armored; Vault wants the base64 of the binary public key", path)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// redact removes a secret from an error message before it can reach a user or a log.
func redact(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), secret, "[redacted]"))
}
