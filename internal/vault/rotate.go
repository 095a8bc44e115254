package vault

import (
	"context"

	vaultapi "github.com/hashicorp/vault/api"
)

// KeyRotation is the day-2 key work: the barrier encryption key (sys/rotate, sys/key-status)
// and the recovery keys of an auto-unsealed Vault (sys/rekey-recovery-key/*), plus
// sys/generate-root/attempt, the one place Vault tells whether a set of recovery shares is
// valid. It is kept out of Client (like KVSoftDeleter) so that test doubles of Client need not
// implement it; the real client does, and callers type-assert.
//
// The rekey and generate-root endpoints are unauthenticated in Vault (the shares are the
// authority); they go out without the client's token.
type KeyRotation interface {
	// KeyStatus reads the barrier key's term and install time (needs read on sys/key-status).
	KeyStatus(ctx context.Context) (*vaultapi.KeyStatus, error)
	// RotateEncryptionKey adds a new barrier key term (needs update+sudo on sys/rotate).
	RotateEncryptionKey(ctx context.Context) error

	RekeyRecoveryStatus(ctx context.Context) (*vaultapi.RekeyStatusResponse, error)
	RekeyRecoveryInit(ctx context.Context, req *vaultapi.RekeyInitRequest) (*vaultapi.RekeyStatusResponse, error)
	RekeyRecoveryUpdate(ctx context.Context, share, nonce string) (*vaultapi.RekeyUpdateResponse, error)
	RekeyRecoveryVerify(ctx context.Context, share, nonce string) (*vaultapi.RekeyVerificationUpdateResponse, error)
	RekeyRecoveryCancel(ctx context.Context) error

	GenerateRootStatus(ctx context.Context) (*vaultapi.GenerateRootStatusResponse, error)
	// GenerateRootInit starts an attempt; with an empty otp Vault makes one and returns it.
	GenerateRootInit(ctx context.Context, otp string) (*vaultapi.GenerateRootStatusResponse, error)
	GenerateRootUpdate(ctx context.Context, share, nonce string) (*vaultapi.GenerateRootStatusResponse, error)
	GenerateRootCancel(ctx context.Context) error
}

func (c *httpClient) KeyStatus(ctx context.Context) (*vaultapi.KeyStatus, error) {
	return c.api.Sys().KeyStatusWithContext(ctx)
}

func (c *httpClient) RotateEncryptionKey(ctx context.Context) error {
	return c.api.Sys().RotateWithContext(ctx)
}

func (c *httpClient) RekeyRecoveryStatus(ctx context.Context) (*vaultapi.RekeyStatusResponse, error) {
	return c.anon.Sys().RekeyRecoveryKeyStatusWithContext(ctx)
}

func (c *httpClient) RekeyRecoveryInit(ctx context.Context, req *vaultapi.RekeyInitRequest) (*vaultapi.RekeyStatusResponse, error) {
	return c.anon.Sys().RekeyRecoveryKeyInitWithContext(ctx, req)
}

func (c *httpClient) RekeyRecoveryUpdate(ctx context.Context, share, nonce string) (*vaultapi.RekeyUpdateResponse, error) {
	return c.anon.Sys().RekeyRecoveryKeyUpdateWithContext(ctx, share, nonce)
}

func (c *httpClient) RekeyRecoveryVerify(ctx context.Context, share, nonce string) (*vaultapi.RekeyVerificationUpdateResponse, error) {
	return c.anon.Sys().RekeyRecoveryKeyVerificationUpdateWithContext(ctx, share, nonce)
}

func (c *httpClient) RekeyRecoveryCancel(ctx context.Context) error {
	return c.anon.Sys().RekeyRecoveryKeyCancelWithContext(ctx)
}

func (c *httpClient) GenerateRootStatus(ctx context.Context) (*vaultapi.GenerateRootStatusResponse, error) {
	return c.anon.Sys().GenerateRootStatusWithContext(ctx)
}

func (c *httpClient) GenerateRootInit(ctx context.Context, otp string) (*vaultapi.GenerateRootStatusResponse, error) {
	return c.anon.Sys().GenerateRootInitWithContext(ctx, otp, "")
}

func (c *httpClient) GenerateRootUpdate(ctx context.Context, share, nonce string) (*vaultapi.GenerateRootStatusResponse, error) {
	return c.anon.Sys().GenerateRootUpdateWithContext(ctx, share, nonce)
}

func (c *httpClient) GenerateRootCancel(ctx context.Context) error {
	return c.anon.Sys().GenerateRootCancelWithContext(ctx)
}
