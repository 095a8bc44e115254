package phases

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// CustodySecret holds, KMS-envelope-encrypted, the recovery keys from operator init and, only
// until the admin identity exists, the initial root token. Keeping it in the cluster (not only
// in a file) matters: a file on a throwaway CI runner vanishes with the job.
const CustodySecret = "vault-recovery-keys"

const (
	custodyRecoveryKey = "recovery-keys.enc"
	custodyRootKey     = "pending-root-token.enc"
)

// envelope is data encrypted under a fresh AES-256 data key, itself encrypted by KMS. Only
// someone allowed kms:Decrypt on the seal key can open it.
type envelope struct {
	KMSKeyID         string    `json:"kmsKeyId"`
	EncryptedDataKey []byte    `json:"encryptedDataKey"`
	Nonce            []byte    `json:"nonce"`
	Ciphertext       []byte    `json:"ciphertext"`
	Purpose          string    `json:"purpose"` // bound as AES-GCM additional data
	Created          time.Time `json:"created"`
}

// dataKey is a fresh AES-256 key from kms:GenerateDataKey, in plaintext (memory only) and
// encrypted (stored). Keys are made before operator init, so that after init nothing but local
// AES-GCM stands between Vault's answer and the keys being stored.
type dataKey struct {
	keyID     string
	purpose   string
	plaintext []byte
	encrypted []byte
}

func newDataKey(ctx context.Context, c KMSAPI, keyID, purpose string) (*dataKey, error) {
	dk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: kmstypes.DataKeySpecAes256,
		EncryptionContext: map[string]string{"vaultctl:purpose": purpose}})
	if err != nil {
		return nil, fmt.Errorf("kms:GenerateDataKey: %w", err)
	}
	return &dataKey{keyID: aws.ToString(dk.KeyId), purpose: purpose, plaintext: dk.Plaintext, encrypted: dk.CiphertextBlob}, nil
}

// seal encrypts plaintext into an envelope; it needs no network.
func (k *dataKey) seal(plaintext []byte) ([]byte, error) {
	gcm, err := newGCM(k.plaintext)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return json.Marshal(envelope{KMSKeyID: k.keyID, EncryptedDataKey: k.encrypted, Nonce: nonce,
		Ciphertext: gcm.Seal(nil, nonce, plaintext, []byte(k.purpose)), Purpose: k.purpose, Created: time.Now().UTC()})
}

func (k *dataKey) forget() { clear(k.plaintext) }

func sealEnvelope(ctx context.Context, c KMSAPI, keyID, purpose string, plaintext []byte) ([]byte, error) {
	k, err := newDataKey(ctx, c, keyID, purpose)
	if err != nil {
		return nil, err
	}
	defer k.forget()
	return k.seal(plaintext)
}

func openEnvelope(ctx context.Context, c KMSAPI, data []byte) ([]byte, error) {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("custody data is not an envelope: %w", err)
	}
	dk, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: e.EncryptedDataKey, KeyId: aws.String(e.KMSKeyID),
		EncryptionContext: map[string]string{"vaultctl:purpose": e.Purpose}})
	if err != nil {
		return nil, fmt.Errorf("kms:Decrypt of the data key: %w", err)
	}
	defer clear(dk.Plaintext)
	gcm, err := newGCM(dk.Plaintext)
	if err != nil {
		return nil, err
	}
	return gcm.Open(nil, e.Nonce, e.Ciphertext, []byte(e.Purpose))
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// recoveryMaterial is what operator init returns that must survive: never printed.
type recoveryMaterial struct {
	Keys      []string `json:"keysBase64"`
	Shares    int      `json:"shares"`
	Threshold int      `json:"threshold"`
	PGP       bool     `json:"pgpEncrypted"` // each key is already encrypted to a PGP key
}

// custody keeps the init result in the custody Secret, KMS-envelope-encrypted.
type custody struct {
	kube      kubernetes.Interface
	namespace string
	kms       KMSHandle
}

func newCustody(kube kubernetes.Interface, namespace string, k KMSHandle) *custody {
	return &custody{kube: kube, namespace: namespace, kms: k}
}

func (c *custody) secrets() corev1SecretClient {
	return c.kube.CoreV1().Secrets(c.namespace)
}

type corev1SecretClient interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error)
	Create(ctx context.Context, s *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error)
	Update(ctx context.Context, s *corev1.Secret, opts metav1.UpdateOptions) (*corev1.Secret, error)
}

// get returns the custody Secret, or nil when it does not exist.
func (c *custody) get(ctx context.Context) (*corev1.Secret, error) {
	s, err := c.secrets().Get(ctx, CustodySecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return s, err
}

// custodyKeys are the data keys prepared before init.
type custodyKeys struct{ recovery, root *dataKey }

// prepare makes the data keys; it fails before init when KMS would not let us store the keys.
func (c *custody) prepare(ctx context.Context, keyID string) (*custodyKeys, error) {
	rec, err := newDataKey(ctx, c.kms.API, keyID, "recovery-keys")
	if err != nil {
		return nil, kmsError(err, c.kms.Endpoint)
	}
	root, err := newDataKey(ctx, c.kms.API, keyID, "root-token")
	if err != nil {
		rec.forget()
		return nil, kmsError(err, c.kms.Endpoint)
	}
	return &custodyKeys{recovery: rec, root: root}, nil
}

func (k *custodyKeys) forget() {
	k.recovery.forget()
	k.root.forget()
}

// store writes the init result at once: this is the dangerous window, so it ignores
// cancellation, retries, and falls back to a local 0600 file rather than lose the keys. The
// Secret comes first; the optional file after it.
func (c *custody) store(ctx context.Context, keys *custodyKeys, m recoveryMaterial, rootToken, recoveryKeysFile string) error {
	ctx = context.WithoutCancel(ctx)
	where := c.namespace + "/" + CustodySecret
	rec, err := json.Marshal(m)
	if err != nil {
		return err
	}
	recEnc, err := keys.recovery.seal(rec)
	if err != nil {
		return err
	}
	data := map[string][]byte{custodyRecoveryKey: recEnc}
	if rootToken != "" {
		if data[custodyRootKey], err = keys.root.seal([]byte(rootToken)); err != nil {
			return err
		}
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if lastErr = c.write(ctx, data); lastErr == nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
	}
	if lastErr != nil {
		fallback := filepath.Join(".", "vaultctl-recovery-keys.enc")
		b, _ := json.Marshal(data)
		if err := writePrivateFile(fallback, b); err == nil {
			return Fail("the KMS-encrypted recovery keys (and root token) were saved to "+fallback+"; move it somewhere safe, then fix cluster access and re-run",
				"storing recovery keys in Secret %s failed: %v", where, lastErr)
		}
		return Fail("Vault is initialized but its recovery keys could not be stored anywhere; keep this process's terminal and contact your Vault administrator", "storing recovery keys: %v", lastErr)
	}
	if f := recoveryKeysFile; f != "" {
		if err := writePrivateFile(f, recEnc); err != nil {
			return Fail("fix vault.init.recoveryKeysFile and re-run; the keys are stored in Secret "+where, "writing %s: %v", f, err)
		}
	}
	return nil
}

// write creates the custody Secret or adds data to the one vaultctl made.
func (c *custody) write(ctx context.Context, data map[string][]byte) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: CustodySecret, Namespace: c.namespace,
			Labels:      map[string]string{ManagedByLabel: "vaultctl"},
			Annotations: map[string]string{"vaultctl.io/contents": "KMS envelope-encrypted Vault recovery keys; open with `vaultctl recovery-keys --out FILE`"}},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
	_, err := c.secrets().Create(ctx, secret, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := c.secrets().Get(ctx, CustodySecret, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if cur.Labels[ManagedByLabel] != "vaultctl" {
		return fmt.Errorf("Secret %s/%s exists and was not created by vaultctl", c.namespace, CustodySecret)
	}
	if cur.Data == nil {
		cur.Data = map[string][]byte{}
	}
	for k, v := range data {
		cur.Data[k] = v
	}
	_, err = c.secrets().Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// pendingRootToken returns the root token kept from init when bootstrap has not finished.
func (c *custody) pendingRootToken(ctx context.Context) (string, error) {
	s, err := c.get(ctx)
	if err != nil || s == nil || len(s.Data[custodyRootKey]) == 0 {
		return "", err
	}
	b, err := openEnvelope(ctx, c.kms.API, s.Data[custodyRootKey])
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// dropRootToken removes the root token envelope once the token is revoked.
func (c *custody) dropRootToken(ctx context.Context) error {
	s, err := c.get(ctx)
	if err != nil || s == nil {
		return err
	}
	if _, ok := s.Data[custodyRootKey]; !ok {
		return nil
	}
	delete(s.Data, custodyRootKey)
	_, err = c.secrets().Update(ctx, s, metav1.UpdateOptions{})
	return err
}

// writePrivateFile writes a 0600 file atomically: the data reaches the disk (fsync) before the
// rename makes it visible, and a failed write, sync or close leaves no partial file behind.
func writePrivateFile(path string, data []byte) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// OpenCustody decrypts the custody Secret's data with KMS: the recovery keys (base64, or
// PGP-encrypted base64 when PGP keys were configured) and the pending root token, if any. It is
// the way back for an operator (and for tests); nothing here is ever printed by apply.
func OpenCustody(ctx context.Context, c KMSAPI, data map[string][]byte) (keys []string, rootToken string, err error) {
	if b := data[custodyRecoveryKey]; len(b) > 0 {
		pt, err := openEnvelope(ctx, c, b)
		if err != nil {
			return nil, "", err
		}
		var m recoveryMaterial
		if err := json.Unmarshal(pt, &m); err != nil {
			return nil, "", err
		}
		keys = m.Keys
	}
	if b := data[custodyRootKey]; len(b) > 0 {
		pt, err := openEnvelope(ctx, c, b)
		if err != nil {
			return nil, "", err
		}
		rootToken = string(pt)
	}
	return keys, rootToken, nil
}

// RecoveryKeys is the operator's way back to the recovery keys (for generate-root or a seal
// migration): it reads the custody Secret and opens it with KMS.
type RecoveryKeys struct {
	Keys      []string `json:"keysBase64"`
	Shares    int      `json:"shares"`
	Threshold int      `json:"threshold"`
	PGP       bool     `json:"pgpEncrypted"`
}

// ReadRecoveryKeys opens the recovery keys in custody; the caller decides where they go.
func (e *Env) ReadRecoveryKeys(ctx context.Context) (*RecoveryKeys, error) {
	s, err := newCustody(e.Kube, e.Config.Vault.Namespace, e.kms()).get(ctx)
	if err != nil {
		return nil, err
	}
	if s == nil || len(s.Data[custodyRecoveryKey]) == 0 {
		return nil, Fail("vaultctl holds keys only for a Vault it initialized", "no recovery keys in Secret %s/%s", e.Config.Vault.Namespace, CustodySecret)
	}
	pt, err := openEnvelope(ctx, e.KMS, s.Data[custodyRecoveryKey])
	if err != nil {
		return nil, kmsError(err, e.KMSEndpoint)
	}
	var m recoveryMaterial
	if err := json.Unmarshal(pt, &m); err != nil {
		return nil, err
	}
	return &RecoveryKeys{Keys: m.Keys, Shares: m.Shares, Threshold: m.Threshold, PGP: m.PGP}, nil
}
