package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// startKMS runs the loopback KMS emulator and makes sure the unseal key and its alias exist.
func (u *upper) startKMS(ctx context.Context) error {
	if err := os.MkdirAll(u.l.kmsData(), 0o700); err != nil {
		return err
	}
	st, err := u.launch([]string{compKMS}, func() (*started, error) {
		addr := fmt.Sprintf("127.0.0.1:%d", u.ports.port(compKMS))
		st, err := u.start(procSpec{
			name: compKMS, path: filepath.Join(u.o.ToolsDir, "lkms"), port: u.ports.port(compKMS),
			env:  cleanEnv(),
			args: []string{"-listen", addr, "-data", u.l.kmsData(), "-region", u.s.KMSRegion},
		})
		if err != nil {
			return st, err
		}
		// lkms prints its bound address as the first line of stdout once it listens.
		return st, u.waitReady(ctx, st, func(context.Context) error { return logHasLine(st.Log, st.logStart, addr) })
	})
	if err != nil {
		return err
	}
	client := kmsClient(u.s.KMSEndpoint, u.s.KMSRegion)
	var res kmsSetupResult
	err = waitFor(ctx, st, u.o.ReadyTimeout, func(ctx context.Context) error {
		var err error
		res, err = ensureUnsealKey(ctx, client, u.s.KMSKeyAlias)
		return err
	}, nil)
	if err != nil {
		return err
	}
	u.s.mu.Lock()
	u.s.KMSKeyARN, u.s.KMSKeyRotation = res.arn, res.rotation
	u.s.mu.Unlock()
	verb := "found"
	if res.created {
		verb = "created"
	}
	rot := "key rotation enabled"
	if !res.rotation {
		rot = "key rotation NOT enabled: " + res.rotationNote
	}
	u.logf("kms: %s %s, encrypt/decrypt round trip OK, %s", verb, u.s.KMSKeyAlias, rot)
	return u.s.save()
}

// logHasLine reports whether the log, from offset from on, has a line equal to want (the
// emulator's address line; an earlier run's line in the appended log does not count).
func logHasLine(path string, from int64, want string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if from > int64(len(b)) {
		from = int64(len(b))
	}
	for line := range strings.SplitSeq(string(b[from:]), "\n") {
		if strings.TrimSpace(line) == want {
			return nil
		}
	}
	return fmt.Errorf("not listening on %s yet", want)
}

// kmsClient talks to the emulator with dummy static credentials, never the user's AWS profile.
func kmsClient(endpoint, region string) *kms.Client {
	return kms.New(kms.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(dummyAccessKeyID, dummySecretKey, ""),
	})
}

type kmsSetupResult struct {
	arn          string
	created      bool
	rotation     bool
	rotationNote string
}

// ensureUnsealKey creates a symmetric key and alias unless the alias exists, enables rotation
// and proves the key works with an Encrypt/Decrypt round trip through the alias (which is what
// Vault's awskms seal uses).
func ensureUnsealKey(ctx context.Context, c *kms.Client, alias string) (kmsSetupResult, error) {
	var res kmsSetupResult
	var keyID string
	d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(alias)})
	var nf *types.NotFoundException
	switch {
	case err == nil:
		keyID, res.arn = aws.ToString(d.KeyMetadata.KeyId), aws.ToString(d.KeyMetadata.Arn)
	case errors.As(err, &nf):
		k, err := c.CreateKey(ctx, &kms.CreateKeyInput{
			Description: aws.String("vaultctl-sandbox: Vault auto-unseal key"),
			KeySpec:     types.KeySpecSymmetricDefault,
			KeyUsage:    types.KeyUsageTypeEncryptDecrypt,
		})
		if err != nil {
			return res, fmt.Errorf("CreateKey: %w", err)
		}
		keyID, res.arn = aws.ToString(k.KeyMetadata.KeyId), aws.ToString(k.KeyMetadata.Arn)
		if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(keyID)}); err != nil {
			return res, fmt.Errorf("CreateAlias %s: %w", alias, err)
		}
		res.created = true
	default:
		return res, fmt.Errorf("DescribeKey %s: %w", alias, err)
	}

	if _, err := c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(keyID)}); err != nil {
		res.rotationNote = err.Error()
	} else if st, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyID)}); err != nil {
		res.rotationNote = "GetKeyRotationStatus: " + err.Error()
	} else if !st.KeyRotationEnabled {
		res.rotationNote = "the emulator reports rotation disabled after EnableKeyRotation"
	} else {
		res.rotation = true
	}

	plain := []byte("vaultctl-sandbox round trip")
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(alias), Plaintext: plain})
	if err != nil {
		return res, fmt.Errorf("Encrypt with %s: %w", alias, err)
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil {
		return res, fmt.Errorf("Decrypt: %w", err)
	}
	if !bytes.Equal(dec.Plaintext, plain) {
		return res, errors.New("Encrypt/Decrypt round trip returned different bytes")
	}
	return res, nil
}

// kmsHealthy is the status probe: the alias resolves to an enabled key.
func kmsHealthy(ctx context.Context, endpoint, region, alias string) error {
	d, err := kmsClient(endpoint, region).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(alias)})
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			return oe
		}
		return err
	}
	if !d.KeyMetadata.Enabled {
		return fmt.Errorf("%s is disabled", alias)
	}
	return nil
}
