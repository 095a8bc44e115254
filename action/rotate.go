package action

import (
	"context"
	"fmt"
	"time"

	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

// RotateOptions are the rotate commands' choices.
type RotateOptions struct {
	// LockTimeout is how long to wait for a running apply's lock; 0 refuses at once.
	LockTimeout time.Duration
}

// RotateEncryptionKeyResult is what `rotate encryption-key` returns.
type RotateEncryptionKeyResult struct {
	Rotation *lifecycle.EncryptionKeyRotation
	Warnings []string
}

// RotateEncryptionKey rotates Vault's barrier encryption key (sys/rotate) while holding the
// apply Lease, so that no apply changes Vault at the same moment.
func RotateEncryptionKey(ctx context.Context, c *Configuration, o RotateOptions) (*RotateEncryptionKeyResult, error) {
	out := &RotateEncryptionKeyResult{}
	ss, err := c.run(ctx, scope{name: "rotate encryption-key", lease: ApplyLease, lockWait: o.LockTimeout}, func(ctx context.Context, ss *session) error {
		kr, err := keyRotation(ctx, ss)
		if err != nil {
			return err
		}
		out.Rotation, err = lifecycle.RotateEncryptionKey(ctx, kr)
		return err
	})
	if ss != nil {
		out.Warnings = ss.warnings
	}
	return out, err
}

// RotateRecoveryKeysResult is what `rotate recovery-keys` returns; it never holds a key.
type RotateRecoveryKeysResult struct {
	Rotation *lifecycle.RecoveryKeyRotation
	Warnings []string
}

// RotateRecoveryKeys rekeys the recovery shares with the ones in custody and re-wraps the new
// ones with KMS into custody (see lifecycle.RotateRecoveryKeys), holding the apply Lease. The
// new shares follow vault.init.recoveryShares and recoveryThreshold.
func RotateRecoveryKeys(ctx context.Context, c *Configuration, o RotateOptions) (*RotateRecoveryKeysResult, error) {
	out := &RotateRecoveryKeysResult{}
	ss, err := c.run(ctx, scope{name: "rotate recovery-keys", lease: ApplyLease, lockWait: o.LockTimeout}, func(ctx context.Context, ss *session) error {
		kr, err := keyRotation(ctx, ss)
		if err != nil {
			return err
		}
		in := ss.env.Config.Vault.Init
		if len(in.PGPKeys) > 0 {
			return phases.Fail("with vault.init.pgpKeys the shares belong to their holders: run `vault operator rekey -target=recovery -init -pgp-keys=...` with them",
				"vaultctl rotates only recovery keys it holds in KMS custody")
		}
		out.Rotation, err = lifecycle.RotateRecoveryKeys(ctx, kr, ss.env, lifecycle.RecoveryOptions{
			Shares: in.RecoveryShares, Threshold: in.RecoveryThreshold,
			RevokeToken: func(ctx context.Context, token string) error {
				probe, err := ss.env.Vault.Anonymous(ctx)
				if err != nil {
					return err
				}
				probe.SetToken(token)
				return probe.RevokeSelf(ctx)
			},
		})
		return err
	})
	if ss != nil {
		out.Warnings = ss.warnings
	}
	return out, err
}

// keyRotation is the session's admin client as the key-rotation API.
func keyRotation(ctx context.Context, ss *session) (vault.KeyRotation, error) {
	v, err := ss.env.Vault.Admin(ctx)
	if err != nil {
		return nil, err
	}
	kr, ok := v.(vault.KeyRotation)
	if !ok {
		return nil, fmt.Errorf("this Vault client cannot rotate keys")
	}
	return kr, nil
}

// KeyAges is the age record status shows: when the encryption key and the recovery keys were
// last rotated, against vault.rotation.maxAge. A key whose time cannot be read is listed with
// the reason, not dropped.
func KeyAges(ctx context.Context, env *phases.Env) []lifecycle.KeyAge {
	now := time.Now()
	if env.Clock != nil {
		now = env.Clock()
	}
	maxAge := env.Config.Vault.Rotation.MaxAge.Duration
	var out []lifecycle.KeyAge
	enc := lifecycle.KeyAge{Key: lifecycle.KeyEncryption, MaxAge: maxAge}
	if v, err := env.Vault.Admin(ctx); err != nil {
		enc.Unknown = err.Error()
	} else if kr, ok := v.(vault.KeyRotation); !ok {
		enc.Unknown = "this Vault client cannot read sys/key-status"
	} else if ks, err := kr.KeyStatus(ctx); err != nil {
		enc.Unknown = fmt.Sprintf("reading sys/key-status: %v", err)
		if vault.IsForbidden(err) {
			enc.Unknown = "reading sys/key-status: permission denied (run `vaultctl apply --only bootstrap` to update the vaultctl-admin policy)"
		}
	} else {
		enc = lifecycle.NewKeyAge(lifecycle.KeyEncryption, ks.InstallTime, ks.Term, now, maxAge)
	}
	out = append(out, enc)
	rec := lifecycle.KeyAge{Key: lifecycle.KeyRecovery, MaxAge: maxAge}
	switch t, ok, err := env.RecoveryKeysSealedAt(ctx); {
	case err != nil:
		rec.Unknown = fmt.Sprintf("reading Secret %s/%s: %v", env.Config.Vault.Namespace, phases.CustodySecret, err)
	case !ok:
		rec.Unknown = "no recovery keys in vaultctl custody (Vault was initialized outside vaultctl)"
	default:
		rec = lifecycle.NewKeyAge(lifecycle.KeyRecovery, t, 0, now, maxAge)
	}
	return append(out, rec)
}
