package lifecycle

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/phases"
)

// EncryptionKeyRotation is what `rotate encryption-key` did: the barrier key's term before and
// after sys/rotate. Vault keeps every older term to read what they encrypted; new writes use
// the new one.
type EncryptionKeyRotation struct {
	TermBefore      int       `json:"termBefore"`
	InstalledBefore time.Time `json:"installedBefore"`
	TermAfter       int       `json:"termAfter"`
	InstalledAfter  time.Time `json:"installedAfter"`
}

// EncryptionKeyAPI is the part of Vault `rotate encryption-key` uses.
type EncryptionKeyAPI interface {
	KeyStatus(ctx context.Context) (*vaultapi.KeyStatus, error)
	RotateEncryptionKey(ctx context.Context) error
}

// RotateEncryptionKey runs sys/rotate and reads the term on both sides of it; a term that did
// not move is an error, not a success.
func RotateEncryptionKey(ctx context.Context, v EncryptionKeyAPI) (*EncryptionKeyRotation, error) {
	before, err := v.KeyStatus(ctx)
	if err != nil {
		return nil, keyErr("reading sys/key-status", err)
	}
	phases.Progressf(ctx, "encryption key term %d (installed %s); rotating", before.Term, before.InstallTime.UTC().Format(time.RFC3339))
	if err := v.RotateEncryptionKey(ctx); err != nil {
		return nil, keyErr("sys/rotate", err)
	}
	after, err := v.KeyStatus(ctx)
	if err != nil {
		return nil, phases.Fail("run `vault read sys/key-status` to see the term; sys/rotate itself answered OK", "reading sys/key-status after the rotation: %v", err)
	}
	if after.Term <= before.Term {
		return nil, phases.Fail("check the active node's logs; re-running rotates once more", "sys/rotate answered OK but the key term stayed %d", after.Term)
	}
	return &EncryptionKeyRotation{TermBefore: before.Term, InstalledBefore: before.InstallTime.UTC(), TermAfter: after.Term, InstalledAfter: after.InstallTime.UTC()}, nil
}

func keyErr(what string, err error) error {
	if vault.IsForbidden(err) {
		return phases.Fail("run `vaultctl apply --only bootstrap` so that the vaultctl-admin policy grants sys/rotate (update, sudo) and sys/key-status (read), or set VAULT_TOKEN to a token that has them",
			"%s: permission denied", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// RecoveryCustody is where the recovery keys live (phases.Env implements it over the custody
// Secret): the current shares, and new ones staged while Vault switches to them.
type RecoveryCustody interface {
	ReadRecoveryKeys(ctx context.Context) (*phases.RecoveryKeys, error)
	ReadPendingRecoveryKeys(ctx context.Context) (*phases.RecoveryKeys, error)
	StagePendingRecoveryKeys(ctx context.Context, keys *phases.RecoveryKeys) error
	PromotePendingRecoveryKeys(ctx context.Context) error
	DropPendingRecoveryKeys(ctx context.Context) error
}

// RecoveryKeysAPI is the part of Vault `rotate recovery-keys` uses.
type RecoveryKeysAPI interface {
	RekeyRecoveryStatus(ctx context.Context) (*vaultapi.RekeyStatusResponse, error)
	RekeyRecoveryInit(ctx context.Context, req *vaultapi.RekeyInitRequest) (*vaultapi.RekeyStatusResponse, error)
	RekeyRecoveryUpdate(ctx context.Context, share, nonce string) (*vaultapi.RekeyUpdateResponse, error)
	RekeyRecoveryVerify(ctx context.Context, share, nonce string) (*vaultapi.RekeyVerificationUpdateResponse, error)
	RekeyRecoveryCancel(ctx context.Context) error
	GenerateRootStatus(ctx context.Context) (*vaultapi.GenerateRootStatusResponse, error)
	GenerateRootInit(ctx context.Context, otp string) (*vaultapi.GenerateRootStatusResponse, error)
	GenerateRootUpdate(ctx context.Context, share, nonce string) (*vaultapi.GenerateRootStatusResponse, error)
	GenerateRootCancel(ctx context.Context) error
}

// RecoveryOptions shape the new shares (vault.init.recoveryShares / recoveryThreshold).
type RecoveryOptions struct {
	Shares, Threshold int
	// RevokeToken revokes a root token; it is used only if the old shares unexpectedly still
	// generate one while proving they stopped working. nil: that token is left to expire never,
	// so callers should set it.
	RevokeToken func(ctx context.Context, token string) error
}

// RecoveryKeyRotation is what `rotate recovery-keys` did. It never holds a key.
type RecoveryKeyRotation struct {
	SharesBefore    int `json:"sharesBefore"`
	ThresholdBefore int `json:"thresholdBefore"`
	Shares          int `json:"shares"`
	Threshold       int `json:"threshold"`
	// Resumed: a rotation an earlier run left half done was finished first.
	Resumed bool `json:"resumed,omitempty"`
	// NewKeysVerified: Vault accepted the new shares (rekey verification) before it switched.
	NewKeysVerified bool `json:"newKeysVerified"`
	// OldKeysRefused: sys/generate-root refused the old shares afterwards.
	OldKeysRefused bool `json:"oldKeysRefused"`
	// ProofSkipped says why the old shares were not tried (another generate-root attempt ran).
	ProofSkipped string `json:"proofSkipped,omitempty"`
}

// errInvalidShares marks Vault refusing a set of shares (as opposed to failing otherwise).
var errInvalidShares = errors.New("Vault refused the recovery keys")

// RotateRecoveryKeys rekeys the recovery shares of an auto-unsealed Vault with the shares in
// custody, safely against a run dying at any point:
//
//  1. rekey-recovery-key/init with require_verification, then /update with the current shares:
//     Vault returns new shares but keeps accepting the old ones;
//  2. the new shares are KMS-sealed and staged in custody next to the old;
//  3. /verify with the new shares: only now does Vault switch to them;
//  4. custody promotes the staged shares, and sys/generate-root is shown to refuse the old ones
//     (the attempt is cancelled whatever happens).
//
// A run that died after 3 left staged shares that Vault uses: the next run finds the current
// ones refused, the staged ones accepted, and promotes them before rotating again. Shares are
// never logged or returned; the slices holding them are cleared.
func RotateRecoveryKeys(ctx context.Context, v RecoveryKeysAPI, c RecoveryCustody, o RecoveryOptions) (*RecoveryKeyRotation, error) {
	cur, err := c.ReadRecoveryKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer forget(cur)
	if cur.PGP {
		return nil, phases.Fail("the shares are PGP-encrypted to their holders, so vaultctl cannot submit them: run `vault operator rekey -target=recovery -init` and have the holders submit theirs",
			"the recovery keys in custody are PGP-encrypted")
	}
	if len(cur.Keys) < cur.Threshold || cur.Threshold < 1 {
		return nil, phases.Fail("restore Secret "+phases.CustodySecret+" from a backup", "custody holds %d recovery keys for a threshold of %d", len(cur.Keys), cur.Threshold)
	}
	pend, err := c.ReadPendingRecoveryKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer forget(pend)
	res := &RecoveryKeyRotation{SharesBefore: cur.Shares, ThresholdBefore: cur.Threshold, Shares: o.Shares, Threshold: o.Threshold}

	st, err := v.RekeyRecoveryStatus(ctx)
	if err != nil {
		return nil, keyErr("reading sys/rekey-recovery-key/init", err)
	}
	if st.Started {
		if pend == nil || !st.VerificationRequired || st.VerificationNonce == "" {
			return nil, phases.Fail("another recovery rekey is in progress (someone else's, or an interrupted run's that had not stored its keys yet): cancel it with `vault operator rekey -target=recovery -cancel`, then re-run",
				"a recovery-key rekey is already in progress (nonce %s)", st.Nonce)
		}
		// An earlier run staged the keys and died before verifying: finish its rotation.
		phases.Progressf(ctx, "finishing the rotation an earlier run started (keys staged in custody)")
		if err := verify(ctx, v, pend, st.VerificationNonce); err != nil {
			return nil, err
		}
		if err := c.PromotePendingRecoveryKeys(ctx); err != nil {
			return nil, err
		}
		res.Resumed, res.NewKeysVerified = true, true
		res.SharesBefore, res.ThresholdBefore, res.Shares, res.Threshold = cur.Shares, cur.Threshold, pend.Shares, pend.Threshold
		res.OldKeysRefused, res.ProofSkipped, err = proveRefused(ctx, v, cur, o.RevokeToken)
		return res, err
	}

	phases.Progressf(ctx, "rekey-recovery-key: %d shares, threshold %d, verification required", o.Shares, o.Threshold)
	init, err := v.RekeyRecoveryInit(ctx, &vaultapi.RekeyInitRequest{SecretShares: o.Shares, SecretThreshold: o.Threshold, RequireVerification: true})
	if err != nil {
		return nil, keyErr("sys/rekey-recovery-key/init", err)
	}
	cancel := func() { _ = v.RekeyRecoveryCancel(context.WithoutCancel(ctx)) }
	// Vault says how many shares it needs: after a rotation an earlier run did not record,
	// that is the new threshold, not custody's.
	upd, err := submitRekey(ctx, v, cur, init.Nonce, init.Required)
	if errors.Is(err, errInvalidShares) && pend != nil {
		// Vault no longer takes the custody's shares: an earlier run's staged ones must be
		// the valid ones (it died after Vault switched). Try them on the same rekey.
		phases.Progressf(ctx, "the custody's shares are refused; trying the ones an earlier run staged")
		upd, err = submitRekey(ctx, v, pend, init.Nonce, init.Required)
		if err == nil {
			if perr := c.PromotePendingRecoveryKeys(ctx); perr != nil {
				cancel()
				return nil, perr
			}
			res.Resumed = true
			res.SharesBefore, res.ThresholdBefore = pend.Shares, pend.Threshold
			cur, pend = pend, nil
		}
	} else if err == nil && pend != nil {
		// The custody's shares still work: the staged ones were never accepted by Vault.
		if err := c.DropPendingRecoveryKeys(ctx); err != nil {
			cancel()
			return nil, fmt.Errorf("dropping recovery keys staged by an earlier run that Vault never accepted: %w", err)
		}
	}
	if err != nil {
		cancel()
		if errors.Is(err, errInvalidShares) {
			return nil, phases.Fail("the keys in Secret "+phases.CustodySecret+" are not this Vault's: restore the Secret from a backup, or rekey with the real holders' shares (`vault operator rekey -target=recovery`)",
				"%v", err)
		}
		return nil, err
	}
	next := &phases.RecoveryKeys{Keys: upd.KeysB64, Shares: o.Shares, Threshold: o.Threshold}
	defer forget(next)
	if len(next.Keys) != o.Shares || upd.VerificationNonce == "" {
		cancel()
		return nil, fmt.Errorf("sys/rekey-recovery-key/update returned %d keys (want %d) and verification nonce %t; nothing changed", len(next.Keys), o.Shares, upd.VerificationNonce != "")
	}
	if err := c.StagePendingRecoveryKeys(ctx, next); err != nil {
		cancel() // Vault still takes the old shares, which custody still holds
		return nil, err
	}
	phases.Progressf(ctx, "new keys staged in custody; verifying them with Vault")
	if err := verify(ctx, v, next, upd.VerificationNonce); err != nil {
		cancel()
		_ = c.DropPendingRecoveryKeys(context.WithoutCancel(ctx))
		return nil, err
	}
	res.NewKeysVerified = true
	if err := c.PromotePendingRecoveryKeys(ctx); err != nil {
		return nil, err
	}
	res.OldKeysRefused, res.ProofSkipped, err = proveRefused(ctx, v, cur, o.RevokeToken)
	return res, err
}

// submitRekey sends the shares Vault requires to the rekey; the last answer carries the new
// shares. Fewer shares than Vault requires cannot be its current ones.
func submitRekey(ctx context.Context, v RecoveryKeysAPI, keys *phases.RecoveryKeys, nonce string, required int) (*vaultapi.RekeyUpdateResponse, error) {
	n := required
	if n <= 0 {
		n = keys.Threshold
	}
	if len(keys.Keys) < n {
		return nil, fmt.Errorf("Vault requires %d recovery shares, custody holds %d: %w", n, len(keys.Keys), errInvalidShares)
	}
	var last *vaultapi.RekeyUpdateResponse
	for i := 0; i < n; i++ {
		r, err := v.RekeyRecoveryUpdate(ctx, keys.Keys[i], nonce)
		if err != nil {
			return nil, sharesErr("sys/rekey-recovery-key/update", err)
		}
		last = r
	}
	if last == nil || !last.Complete {
		return nil, fmt.Errorf("sys/rekey-recovery-key/update is not complete after %d shares", n)
	}
	return last, nil
}

func verify(ctx context.Context, v RecoveryKeysAPI, keys *phases.RecoveryKeys, nonce string) error {
	for i := 0; i < keys.Threshold; i++ {
		r, err := v.RekeyRecoveryVerify(ctx, keys.Keys[i], nonce)
		if err != nil && alreadyProvided(err) {
			// A run killed mid-verification submitted this share already; Vault kept it.
			continue
		}
		if err != nil {
			return sharesErr("sys/rekey-recovery-key/verify (the old keys stay valid)", err)
		}
		if r != nil && r.Complete {
			return nil
		}
	}
	return fmt.Errorf("sys/rekey-recovery-key/verify is not complete after %d new shares; the old keys stay valid", keys.Threshold)
}

// alreadyProvided: Vault holds this share from an earlier submission of the same operation.
func alreadyProvided(err error) bool {
	return vault.StatusCode(err) == 400 && strings.Contains(err.Error(), "has already been provided")
}

// sharesErr words a failed share submission without the share; Vault's own message names no
// key either.
func sharesErr(what string, err error) error {
	if vault.StatusCode(err) == 400 && strings.Contains(err.Error(), "verification failed") {
		return fmt.Errorf("%s: %w", what, errInvalidShares)
	}
	return keyErr(what, err)
}

// proveRefused shows that sys/generate-root no longer accepts the old shares, and cancels the
// attempt whatever happens. Another attempt in progress is someone's work: it is left alone.
func proveRefused(ctx context.Context, v RecoveryKeysAPI, old *phases.RecoveryKeys, revoke func(context.Context, string) error) (refused bool, skipped string, err error) {
	st, err := v.GenerateRootStatus(ctx)
	if err != nil {
		return false, "", keyErr("reading sys/generate-root/attempt", err)
	}
	if st.Started {
		return false, "another sys/generate-root attempt is in progress; try the old keys with `vault operator generate-root` later", nil
	}
	att, err := v.GenerateRootInit(ctx, "")
	if err != nil {
		return false, "", keyErr("sys/generate-root/attempt", err)
	}
	defer func() { _ = v.GenerateRootCancel(context.WithoutCancel(ctx)) }()
	n := att.Required
	if n <= 0 {
		n = old.Threshold
	}
	if len(old.Keys) < n {
		// Fewer old shares than the new threshold can never open it.
		return true, "", nil
	}
	for i := 0; i < n; i++ {
		r, err := v.GenerateRootUpdate(ctx, old.Keys[i], att.Nonce)
		if err != nil {
			if vault.StatusCode(err) == 400 || strings.Contains(err.Error(), "root generation aborted") {
				return true, "", nil
			}
			return false, "", keyErr("sys/generate-root/update", err)
		}
		if r.Complete {
			// Must not happen after a verified rekey; a root token now exists: revoke it.
			msg := "the old recovery keys still generate a root token after the rekey"
			if revoke != nil && r.EncodedToken != "" {
				if tok, derr := DecodeRootToken(r.EncodedToken, att.OTP); derr == nil {
					if rerr := revoke(ctx, tok); rerr != nil {
						msg += " (revoking that token failed: " + strings.ReplaceAll(rerr.Error(), tok, "[redacted]") + "; revoke it with `vault token revoke -self` after generating it again)"
					} else {
						msg += " (that token was revoked)"
					}
				}
			}
			return false, "", phases.Fail("check `vault operator rekey -target=recovery -status` and the active node's logs", "%s", msg)
		}
	}
	return false, "", fmt.Errorf("sys/generate-root/update is not complete after %d old shares", n)
}

// DecodeRootToken decodes the encoded_token of a finished sys/generate-root attempt with the
// OTP Vault returned when it started (the token XORed with the OTP, unpadded base64).
func DecodeRootToken(encoded, otp string) (string, error) {
	b, err := base64.RawStdEncoding.DecodeString(encoded)
	if err != nil {
		return "", fmt.Errorf("decoding the encoded root token: %w", err)
	}
	if len(b) != len(otp) {
		return "", fmt.Errorf("encoded root token is %d bytes, the OTP %d", len(b), len(otp))
	}
	for i := range b {
		b[i] ^= otp[i]
	}
	return string(b), nil
}

func forget(k *phases.RecoveryKeys) {
	if k != nil {
		clear(k.Keys)
	}
}
