package lifecycle

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/vaultctl/vaultctl/phases"
)

// fakeVault models what Vault does with recovery shares: a rekey collects threshold current
// shares, returns new ones, and switches to them only once threshold new ones are verified;
// generate-root completes only with threshold current shares. A "share" is valid when it is
// one of the current set (the fake's stand-in for Shamir combining).
type fakeVault struct {
	valid     []string
	threshold int
	serial    int

	rekey *fakeRekey // in progress
	root  *fakeRoot

	rootTokens []string // generated and not revoked
	// loseRekeyAfterStage makes the rekey disappear (a leader change) after the update step.
	loseRekey bool
}

type fakeRekey struct {
	nonce, verifyNonce string
	shares, threshold  int
	got                []string
	next               []string
	verified           []string
}

type fakeRoot struct {
	nonce, otp string
	got        []string
}

func badRequest(msg string) error {
	return &vaultapi.ResponseError{StatusCode: 400, Errors: []string{msg}}
}

func (f *fakeVault) newShares(n int) []string {
	out := make([]string, n)
	for i := range out {
		f.serial++
		out[i] = base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("share-%03d", f.serial)))
	}
	return out
}

func (f *fakeVault) allValid(shares []string) bool {
	for _, s := range shares {
		if !slices.Contains(f.valid, s) {
			return false
		}
	}
	return true
}

func (f *fakeVault) RekeyRecoveryStatus(context.Context) (*vaultapi.RekeyStatusResponse, error) {
	if f.rekey == nil {
		return &vaultapi.RekeyStatusResponse{}, nil
	}
	return &vaultapi.RekeyStatusResponse{Started: true, Nonce: f.rekey.nonce, VerificationRequired: true, VerificationNonce: f.rekey.verifyNonce}, nil
}

func (f *fakeVault) RekeyRecoveryInit(_ context.Context, req *vaultapi.RekeyInitRequest) (*vaultapi.RekeyStatusResponse, error) {
	if f.rekey != nil {
		return nil, badRequest("rekey already in progress")
	}
	if !req.RequireVerification {
		return nil, errors.New("test wants verification")
	}
	f.serial++
	f.rekey = &fakeRekey{nonce: fmt.Sprintf("nonce-%d", f.serial), shares: req.SecretShares, threshold: req.SecretThreshold}
	return &vaultapi.RekeyStatusResponse{Started: true, Nonce: f.rekey.nonce, Required: f.threshold}, nil
}

func (f *fakeVault) RekeyRecoveryUpdate(_ context.Context, share, nonce string) (*vaultapi.RekeyUpdateResponse, error) {
	r := f.rekey
	if r == nil {
		return nil, badRequest("no recovery rekey in progress")
	}
	if r.verifyNonce != "" {
		return nil, badRequest("rekey operation already finished; verification must be performed")
	}
	if nonce != r.nonce {
		return nil, badRequest("incorrect nonce")
	}
	r.got = append(r.got, share)
	if len(r.got) < f.threshold {
		return &vaultapi.RekeyUpdateResponse{Nonce: nonce}, nil
	}
	got := r.got
	r.got = nil
	if !f.allValid(got) {
		return nil, badRequest("recovery key verification failed: invalid key")
	}
	r.next = f.newShares(r.shares)
	f.serial++
	r.verifyNonce = fmt.Sprintf("verify-%d", f.serial)
	out := &vaultapi.RekeyUpdateResponse{Nonce: nonce, Complete: true, KeysB64: slices.Clone(r.next), VerificationRequired: true, VerificationNonce: r.verifyNonce}
	if f.loseRekey {
		f.rekey, f.loseRekey = nil, false
	}
	return out, nil
}

func (f *fakeVault) RekeyRecoveryVerify(_ context.Context, share, nonce string) (*vaultapi.RekeyVerificationUpdateResponse, error) {
	r := f.rekey
	if r == nil || r.verifyNonce == "" {
		return nil, badRequest("no rekey verification in progress")
	}
	if nonce != r.verifyNonce {
		return nil, badRequest("incorrect nonce")
	}
	if slices.Contains(r.verified, share) {
		return nil, badRequest("given key has already been provided during this verify operation")
	}
	r.verified = append(r.verified, share)
	if len(r.verified) < r.threshold {
		return &vaultapi.RekeyVerificationUpdateResponse{Nonce: nonce}, nil
	}
	for _, s := range r.verified {
		if !slices.Contains(r.next, s) {
			r.verified = nil
			return nil, badRequest("recovery key verification failed")
		}
	}
	f.valid, f.threshold, f.rekey = r.next, r.threshold, nil
	return &vaultapi.RekeyVerificationUpdateResponse{Nonce: nonce, Complete: true}, nil
}

func (f *fakeVault) RekeyRecoveryCancel(context.Context) error { f.rekey = nil; return nil }

func (f *fakeVault) GenerateRootStatus(context.Context) (*vaultapi.GenerateRootStatusResponse, error) {
	return &vaultapi.GenerateRootStatusResponse{Started: f.root != nil}, nil
}

const testRootToken = "hvs.AAAAAAAAAAAAAAAAAAAAAAAA0000"

func (f *fakeVault) GenerateRootInit(context.Context, string) (*vaultapi.GenerateRootStatusResponse, error) {
	f.root = &fakeRoot{nonce: "root-nonce", otp: strings.Repeat("k", len(testRootToken))}
	return &vaultapi.GenerateRootStatusResponse{Started: true, Nonce: f.root.nonce, OTP: f.root.otp, OTPLength: len(f.root.otp), Required: f.threshold}, nil
}

func (f *fakeVault) GenerateRootUpdate(_ context.Context, share, nonce string) (*vaultapi.GenerateRootStatusResponse, error) {
	if f.root == nil || nonce != f.root.nonce {
		return nil, badRequest("no root generation in progress")
	}
	f.root.got = append(f.root.got, share)
	if len(f.root.got) < f.threshold {
		return &vaultapi.GenerateRootStatusResponse{Started: true, Progress: len(f.root.got)}, nil
	}
	got := f.root.got
	f.root.got = nil
	if !f.allValid(got) {
		return nil, badRequest("root generation aborted: recovery key verification failed")
	}
	b := []byte(testRootToken)
	for i := range b {
		b[i] ^= f.root.otp[i]
	}
	f.rootTokens = append(f.rootTokens, testRootToken)
	return &vaultapi.GenerateRootStatusResponse{Complete: true, EncodedToken: base64.RawStdEncoding.EncodeToString(b)}, nil
}

func (f *fakeVault) GenerateRootCancel(context.Context) error { f.root = nil; return nil }

// fakeCustody holds the shares as the custody Secret would; failPromote fails the next promote.
type fakeCustody struct {
	cur, pend   *phases.RecoveryKeys
	failPromote bool
}

func cloneKeys(k *phases.RecoveryKeys) *phases.RecoveryKeys {
	if k == nil {
		return nil
	}
	c := *k
	c.Keys = slices.Clone(k.Keys)
	return &c
}

func (c *fakeCustody) ReadRecoveryKeys(context.Context) (*phases.RecoveryKeys, error) {
	return cloneKeys(c.cur), nil
}
func (c *fakeCustody) ReadPendingRecoveryKeys(context.Context) (*phases.RecoveryKeys, error) {
	return cloneKeys(c.pend), nil
}
func (c *fakeCustody) StagePendingRecoveryKeys(_ context.Context, k *phases.RecoveryKeys) error {
	c.pend = cloneKeys(k)
	return nil
}
func (c *fakeCustody) PromotePendingRecoveryKeys(context.Context) error {
	if c.failPromote {
		c.failPromote = false
		return errors.New("the API server went away")
	}
	if c.pend != nil {
		c.cur, c.pend = c.pend, nil
	}
	return nil
}
func (c *fakeCustody) DropPendingRecoveryKeys(context.Context) error { c.pend = nil; return nil }

func newEstate(t *testing.T) (*fakeVault, *fakeCustody) {
	t.Helper()
	v := &fakeVault{threshold: 2}
	v.valid = v.newShares(3)
	return v, &fakeCustody{cur: &phases.RecoveryKeys{Keys: slices.Clone(v.valid), Shares: 3, Threshold: 2}}
}

var opts = RecoveryOptions{Shares: 5, Threshold: 3}

// assertCustodyWorks: custody's shares are exactly the ones Vault accepts, nothing is staged.
func assertCustodyWorks(t *testing.T, v *fakeVault, c *fakeCustody) {
	t.Helper()
	if c.pend != nil {
		t.Errorf("keys still staged in custody after the rotation")
	}
	if !slices.Equal(c.cur.Keys, v.valid) || c.cur.Threshold != v.threshold {
		t.Errorf("custody holds keys Vault does not accept (custody threshold %d, Vault %d)", c.cur.Threshold, v.threshold)
	}
}

func TestRotateRecoveryKeysSwitchesVaultAndCustodyTogether(t *testing.T) {
	v, c := newEstate(t)
	old := slices.Clone(v.valid)
	res, err := RotateRecoveryKeys(context.Background(), v, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	assertCustodyWorks(t, v, c)
	if len(v.valid) != 5 || v.threshold != 3 {
		t.Errorf("Vault has %d shares threshold %d, want 5/3", len(v.valid), v.threshold)
	}
	for _, s := range old {
		if slices.Contains(v.valid, s) {
			t.Errorf("an old share is still valid")
		}
	}
	if !res.NewKeysVerified || !res.OldKeysRefused || res.Resumed {
		t.Errorf("result = %+v, want verified, old refused, not resumed", res)
	}
	if res.SharesBefore != 3 || res.ThresholdBefore != 2 || res.Shares != 5 || res.Threshold != 3 {
		t.Errorf("result shapes = %+v", res)
	}
	if v.root != nil || v.rekey != nil {
		t.Errorf("an attempt was left open: root %v, rekey %v", v.root != nil, v.rekey != nil)
	}
	if len(v.rootTokens) != 0 {
		t.Errorf("the proof generated a root token")
	}
}

func TestRotateRecoveryKeysRunKilledAfterVaultSwitchedIsFinishedByTheNextRun(t *testing.T) {
	v, c := newEstate(t)
	c.failPromote = true // Vault switched; custody could not be updated
	if _, err := RotateRecoveryKeys(context.Background(), v, c, opts); err == nil {
		t.Fatal("want the promote failure reported")
	}
	if c.pend == nil || !slices.Equal(c.pend.Keys, v.valid) {
		t.Fatal("the keys Vault now uses must be staged in custody")
	}
	res, err := RotateRecoveryKeys(context.Background(), v, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed {
		t.Errorf("the second run should say it finished the first one's rotation")
	}
	assertCustodyWorks(t, v, c)
}

func TestRotateRecoveryKeysStagedKeysVaultNeverTookAreDropped(t *testing.T) {
	v, c := newEstate(t)
	v.loseRekey = true // a leader change loses the rekey between update and verify
	if _, err := RotateRecoveryKeys(context.Background(), v, c, opts); err == nil {
		t.Fatal("want the lost rekey reported")
	}
	if !slices.Equal(c.cur.Keys, v.valid) {
		t.Fatal("the old keys must still be in custody and valid")
	}
	if _, err := RotateRecoveryKeys(context.Background(), v, c, opts); err != nil {
		t.Fatal(err)
	}
	assertCustodyWorks(t, v, c)
}

func TestRotateRecoveryKeysResumesAStagedVerification(t *testing.T) {
	v, c := newEstate(t)
	ctx := context.Background()
	// An earlier run staged the keys and died before verifying: the rekey waits for them.
	if _, err := v.RekeyRecoveryInit(ctx, &vaultapi.RekeyInitRequest{SecretShares: 5, SecretThreshold: 3, RequireVerification: true}); err != nil {
		t.Fatal(err)
	}
	var upd *vaultapi.RekeyUpdateResponse
	for _, s := range c.cur.Keys[:2] {
		var err error
		if upd, err = v.RekeyRecoveryUpdate(ctx, s, v.rekey.nonce); err != nil {
			t.Fatal(err)
		}
	}
	c.pend = &phases.RecoveryKeys{Keys: upd.KeysB64, Shares: 5, Threshold: 3}
	// ...after submitting one of the new shares (what the e2e kill test caught).
	if _, err := v.RekeyRecoveryVerify(ctx, c.pend.Keys[0], v.rekey.verifyNonce); err != nil {
		t.Fatal(err)
	}
	res, err := RotateRecoveryKeys(ctx, v, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || !res.OldKeysRefused {
		t.Errorf("result = %+v", res)
	}
	assertCustodyWorks(t, v, c)
}

func TestRotateRecoveryKeysRefuses(t *testing.T) {
	t.Run("someone else's rekey in progress", func(t *testing.T) {
		v, c := newEstate(t)
		v.rekey = &fakeRekey{nonce: "theirs"}
		before := slices.Clone(v.valid)
		_, err := RotateRecoveryKeys(context.Background(), v, c, opts)
		if err == nil || !strings.Contains(phases.WithHint(err).Error(), "vault operator rekey -target=recovery -cancel") {
			t.Fatalf("err = %v, want the cancel command", phases.WithHint(err))
		}
		if v.rekey == nil || v.rekey.nonce != "theirs" || !slices.Equal(v.valid, before) {
			t.Error("their rekey or the keys were touched")
		}
	})
	t.Run("PGP-encrypted shares", func(t *testing.T) {
		v, c := newEstate(t)
		c.cur.PGP = true
		if _, err := RotateRecoveryKeys(context.Background(), v, c, opts); err == nil || !strings.Contains(err.Error(), "PGP") {
			t.Fatalf("err = %v", err)
		}
		if v.rekey != nil {
			t.Error("a rekey was started")
		}
	})
	t.Run("custody keys that are not this Vault's", func(t *testing.T) {
		v, c := newEstate(t)
		c.cur.Keys = v.newShares(3)
		wrong := slices.Clone(c.cur.Keys)
		before := slices.Clone(v.valid)
		_, err := RotateRecoveryKeys(context.Background(), v, c, opts)
		if err == nil || !strings.Contains(phases.WithHint(err).Error(), "restore the Secret") {
			t.Fatalf("err = %v", phases.WithHint(err))
		}
		for _, k := range append(wrong, before...) {
			if strings.Contains(phases.WithHint(err).Error(), k) {
				t.Error("the error holds a share")
			}
		}
		if !slices.Equal(v.valid, before) || v.rekey != nil || c.pend != nil {
			t.Error("Vault or custody changed, or the rekey was left open")
		}
	})
}

func TestProveRefusedRevokesARootTokenTheOldKeysStillMade(t *testing.T) {
	v, c := newEstate(t) // no rotation: the "old" keys are still valid
	var revoked []string
	refused, _, err := proveRefused(context.Background(), v, c.cur, func(_ context.Context, tok string) error {
		revoked = append(revoked, tok)
		return nil
	})
	if err == nil || refused {
		t.Fatalf("refused=%v err=%v: old keys that still work must fail the rotation", refused, err)
	}
	if !slices.Equal(revoked, []string{testRootToken}) {
		t.Errorf("revoked %q, want the generated root token decoded and revoked", revoked)
	}
	if strings.Contains(err.Error(), testRootToken) {
		t.Error("the error holds the root token")
	}
}

type fakeKeys struct {
	term    int
	rotates bool
}

func (f *fakeKeys) KeyStatus(context.Context) (*vaultapi.KeyStatus, error) {
	return &vaultapi.KeyStatus{Term: f.term, InstallTime: time.Date(2026, 1, 1, 0, 0, f.term, 0, time.UTC)}, nil
}
func (f *fakeKeys) RotateEncryptionKey(context.Context) error {
	if f.rotates {
		f.term++
	}
	return nil
}

func TestRotateEncryptionKeyReportsBothTerms(t *testing.T) {
	r, err := RotateEncryptionKey(context.Background(), &fakeKeys{term: 4, rotates: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.TermBefore != 4 || r.TermAfter != 5 || !r.InstalledAfter.After(r.InstalledBefore) {
		t.Errorf("got %+v", r)
	}
	if _, err := RotateEncryptionKey(context.Background(), &fakeKeys{term: 4}); err == nil {
		t.Error("a term that did not move must be an error")
	}
}

func TestKeyAgeWarnsOnlyPastMaxAge(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	max := 90 * 24 * time.Hour
	fresh := NewKeyAge(KeyRecovery, now.Add(-89*24*time.Hour), 0, now, max)
	if fresh.Due || fresh.Warning() != "" {
		t.Errorf("89 days: due=%v warning=%q", fresh.Due, fresh.Warning())
	}
	old := NewKeyAge(KeyEncryption, now.Add(-91*24*time.Hour), 3, now, max)
	if !old.Due || !strings.Contains(old.Warning(), "vaultctl rotate encryption-key") || !strings.Contains(old.Warning(), "91d") {
		t.Errorf("91 days: due=%v warning=%q", old.Due, old.Warning())
	}
	if off := NewKeyAge(KeyEncryption, now.Add(-1000*24*time.Hour), 3, now, 0); off.Due {
		t.Error("maxAge 0 never warns")
	}
}
