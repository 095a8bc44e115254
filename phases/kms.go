package phases

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/vaultctl/vaultctl/config"
)

// KMSKey makes sure the auto-unseal key and its alias exist (creating them only when the config
// allows), that automatic rotation is on, and that the key encrypts and decrypts.
type KMSKey struct {
	In  KMSInputs
	KMS KMSHandle
}

// KMSInputs is what the kms phase reads of the config.
type KMSInputs struct {
	AWSKMS config.AWSKMS
}

func kmsInputs(cfg *config.Config) KMSInputs { return KMSInputs{AWSKMS: cfg.Vault.Seal.AWSKMS} }

func (p *KMSKey) Name() string { return "kms" }
func (p *KMSKey) Description() string {
	return "AWS KMS key and alias for auto-unseal exist, rotate and work"
}
func (p *KMSKey) Inputs() any { return p.In }

// Check observes the key; a missing key without createKey is a failure with the exact steps.
func (p *KMSKey) Check(ctx context.Context) (Diff, error) {
	k := p.In.AWSKMS
	out, err := describeKey(ctx, p.KMS.API, k.KMSKeyID)
	var nf *kmstypes.NotFoundException
	if errors.As(err, &nf) {
		if !k.CreateKey {
			return Diff{}, Fail(createKeySteps(k.KMSKeyID, k.Region)+"; or set vault.seal.awskms.createKey: true",
				"KMS key %s does not exist", k.KMSKeyID)
		}
		return Diff{Changes: []Change{
			{Action: Create, Object: "KMS key (SYMMETRIC_DEFAULT, rotation on)", Detail: "not found"},
			{Action: Create, Object: "KMS alias " + k.KMSKeyID},
		}}, nil
	}
	if err != nil {
		return Diff{}, kmsError(err, p.KMS.Endpoint)
	}
	if err := usableKey(out.KeyMetadata); err != nil {
		return Diff{}, err
	}
	id := aws.ToString(out.KeyMetadata.KeyId)
	var d Diff
	rot, err := p.KMS.API.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(id)})
	if err != nil {
		return Diff{}, kmsError(fmt.Errorf("kms:GetKeyRotationStatus: %w", err), p.KMS.Endpoint)
	}
	if !rot.KeyRotationEnabled {
		d.Changes = append(d.Changes, Change{Action: Update, Object: "KMS key " + id, Detail: "enable automatic rotation"})
	}
	if err := roundTrip(ctx, p.KMS.API, k.KMSKeyID); err != nil {
		return Diff{}, kmsError(err, p.KMS.Endpoint)
	}
	d.Facts = []string{fmt.Sprintf("key %s (%s), rotation on, round trip ok", id, k.KMSKeyID)}
	return d, nil
}

// Apply creates what Check found missing. A crash between CreateKey and CreateAlias leaves a key
// without an alias; it carries a tag naming the alias it was meant for, so an operator finds it.
func (p *KMSKey) Apply(ctx context.Context, d Diff) error {
	k := p.In.AWSKMS
	for _, c := range d.Changes {
		switch {
		case c.Action == Create && c.Object == "KMS alias "+k.KMSKeyID:
			// created together with the key below
		case c.Action == Create:
			key, err := p.KMS.API.CreateKey(ctx, &kms.CreateKeyInput{
				Description: aws.String("Vault auto-unseal key managed by vaultctl"),
				KeySpec:     kmstypes.KeySpecSymmetricDefault,
				KeyUsage:    kmstypes.KeyUsageTypeEncryptDecrypt,
				Tags: []kmstypes.Tag{
					{TagKey: aws.String("managed-by"), TagValue: aws.String("vaultctl")},
					{TagKey: aws.String("vaultctl-alias"), TagValue: aws.String(k.KMSKeyID)},
				},
			})
			if err != nil {
				return kmsError(fmt.Errorf("kms:CreateKey: %w", err), p.KMS.Endpoint)
			}
			id := key.KeyMetadata.KeyId
			if _, err := p.KMS.API.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(k.KMSKeyID), TargetKeyId: id}); err != nil {
				return kmsError(fmt.Errorf("kms:CreateAlias: %w", err), p.KMS.Endpoint)
			}
			if _, err := p.KMS.API.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: id}); err != nil {
				return kmsError(fmt.Errorf("kms:EnableKeyRotation: %w", err), p.KMS.Endpoint)
			}
		case c.Action == Update:
			// EnableKeyRotation takes a key ID or ARN, never an alias.
			out, err := describeKey(ctx, p.KMS.API, k.KMSKeyID)
			if err != nil {
				return kmsError(err, p.KMS.Endpoint)
			}
			if _, err := p.KMS.API.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: out.KeyMetadata.KeyId}); err != nil {
				return kmsError(fmt.Errorf("kms:EnableKeyRotation: %w", err), p.KMS.Endpoint)
			}
		}
	}
	return nil
}
