package phases

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	vaultapi "github.com/hashicorp/vault/api"
)

// fakeKMS wraps data keys by XOR with a secret pad: enough to prove the envelope never stores a
// plaintext data key and needs KMS to open.
type fakeKMS struct {
	KMSAPI
	pad      [32]byte
	decrypts int
}

func (f *fakeKMS) GenerateDataKey(_ context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	pt := make([]byte, 32)
	rand.Read(pt)
	ct := make([]byte, 32)
	for i := range pt {
		ct[i] = pt[i] ^ f.pad[i]
	}
	return &kms.GenerateDataKeyOutput{Plaintext: append([]byte{}, pt...), CiphertextBlob: ct, KeyId: in.KeyId}, nil
}

func (f *fakeKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	f.decrypts++
	if in.EncryptionContext["vaultctl:purpose"] == "" {
		return nil, errors.New("missing encryption context")
	}
	pt := make([]byte, 32)
	for i := range pt {
		pt[i] = in.CiphertextBlob[i] ^ f.pad[i]
	}
	return &kms.DecryptOutput{Plaintext: pt, KeyId: aws.String("k")}, nil
}

func TestEnvelopeRoundTripAndNoPlaintext(t *testing.T) {
	f := &fakeKMS{}
	rand.Read(f.pad[:])
	secret := []byte("recovery-key-share-AAAA")
	sealed, err := sealEnvelope(context.Background(), f, "alias/x", "recovery-keys", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("envelope contains the plaintext")
	}
	got, err := openEnvelope(context.Background(), f, sealed)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("round trip: %q %v", got, err)
	}
	if f.decrypts != 1 {
		t.Fatalf("opening must ask KMS once, asked %d", f.decrypts)
	}
	// Tampering with the ciphertext or its purpose is detected.
	bad := bytes.Replace(sealed, []byte(`"purpose":"recovery-keys"`), []byte(`"purpose":"root-token"`), 1)
	if _, err := openEnvelope(context.Background(), f, bad); err == nil {
		t.Fatal("a changed purpose must fail authentication")
	}
}

func TestSealMismatchIsRefusedWithMigrationSteps(t *testing.T) {
	err := checkSealType(&vaultapi.SealStatusResponse{Type: "shamir", Initialized: true}, "awskms")
	pe := asPhaseError("initialize", err)
	if !strings.Contains(pe.What, "seal migration") || !strings.Contains(pe.Hint, "vault operator unseal -migrate") {
		t.Fatalf("got %+v", pe)
	}
	if checkSealType(&vaultapi.SealStatusResponse{Type: "awskms"}, "awskms") != nil {
		t.Fatal("matching seal refused")
	}
}
