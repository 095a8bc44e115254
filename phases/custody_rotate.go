package phases

import (
	"context"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A recovery-key rotation stages the new shares here, KMS-encrypted, before Vault makes them
// the valid ones: a run that dies between Vault's switch and the promotion leaves them in
// custody, never only in a dead process's memory.
const custodyPendingRecoveryKey = "recovery-keys.pending.enc"

// RecoveryKeysRotatedAnnotation on the custody Secret records when vaultctl last rotated the
// recovery keys (RFC 3339, UTC).
const RecoveryKeysRotatedAnnotation = "vaultctl.io/recovery-keys-rotated"

// StagePendingRecoveryKeys seals keys with KMS (a fresh data key) and stores them in custody
// next to the current ones; the current ones stay until PromotePendingRecoveryKeys.
func (e *Env) StagePendingRecoveryKeys(ctx context.Context, keys *RecoveryKeys) error {
	m := recoveryMaterial{Keys: keys.Keys, Shares: keys.Shares, Threshold: keys.Threshold, PGP: keys.PGP}
	pt, err := json.Marshal(m)
	if err != nil {
		return err
	}
	defer clear(pt)
	env, err := sealEnvelope(ctx, e.KMS, e.Config.Vault.Seal.AWSKMS.KMSKeyID, "recovery-keys", pt)
	if err != nil {
		return kmsError(err, e.KMSEndpoint)
	}
	c := newCustody(e.Kube, e.Config.Vault.Namespace, e.kms())
	// The shares exist only in this process until this write lands: it ignores cancellation.
	if err := c.write(context.WithoutCancel(ctx), map[string][]byte{custodyPendingRecoveryKey: env}); err != nil {
		return Fail("check that your kube credentials may update Secrets in namespace "+e.Config.Vault.Namespace+"; nothing in Vault changed yet",
			"staging the new recovery keys in Secret %s/%s: %v", e.Config.Vault.Namespace, CustodySecret, err)
	}
	return nil
}

// ReadPendingRecoveryKeys opens staged keys left by a rotation that did not finish; nil when
// there are none.
func (e *Env) ReadPendingRecoveryKeys(ctx context.Context) (*RecoveryKeys, error) {
	s, err := newCustody(e.Kube, e.Config.Vault.Namespace, e.kms()).get(ctx)
	if err != nil || s == nil || len(s.Data[custodyPendingRecoveryKey]) == 0 {
		return nil, err
	}
	pt, err := openEnvelope(ctx, e.KMS, s.Data[custodyPendingRecoveryKey])
	if err != nil {
		return nil, kmsError(err, e.KMSEndpoint)
	}
	defer clear(pt)
	var m recoveryMaterial
	if err := json.Unmarshal(pt, &m); err != nil {
		return nil, err
	}
	return &RecoveryKeys{Keys: m.Keys, Shares: m.Shares, Threshold: m.Threshold, PGP: m.PGP}, nil
}

// PromotePendingRecoveryKeys makes the staged keys the custody's recovery keys in one update
// (and rewrites vault.init.recoveryKeysFile when set), recording when.
func (e *Env) PromotePendingRecoveryKeys(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	ns := e.Config.Vault.Namespace
	secrets := e.Kube.CoreV1().Secrets(ns)
	s, err := secrets.Get(ctx, CustodySecret, metav1.GetOptions{})
	if err != nil {
		return Fail("re-run the same command: the new keys are staged in custody", "reading Secret %s/%s: %v", ns, CustodySecret, err)
	}
	pending := s.Data[custodyPendingRecoveryKey]
	if len(pending) == 0 {
		return nil
	}
	s.Data[custodyRecoveryKey] = pending
	delete(s.Data, custodyPendingRecoveryKey)
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[RecoveryKeysRotatedAnnotation] = e.clock()().UTC().Format(time.RFC3339)
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return Fail("re-run the same command: the new keys are staged in custody and Vault already uses them", "promoting the new recovery keys in Secret %s/%s: %v", ns, CustodySecret, err)
	}
	if f := e.Config.Vault.Init.RecoveryKeysFile; f != "" {
		if err := writePrivateFile(f, pending); err != nil {
			return Fail("fix vault.init.recoveryKeysFile; the new keys are in Secret "+ns+"/"+CustodySecret, "writing %s: %v", f, err)
		}
	}
	return nil
}

// DropPendingRecoveryKeys forgets staged keys that Vault never accepted.
func (e *Env) DropPendingRecoveryKeys(ctx context.Context) error {
	s, err := newCustody(e.Kube, e.Config.Vault.Namespace, e.kms()).get(ctx)
	if err != nil || s == nil {
		return err
	}
	if _, ok := s.Data[custodyPendingRecoveryKey]; !ok {
		return nil
	}
	delete(s.Data, custodyPendingRecoveryKey)
	_, err = e.Kube.CoreV1().Secrets(e.Config.Vault.Namespace).Update(context.WithoutCancel(ctx), s, metav1.UpdateOptions{})
	return err
}

// RecoveryKeysSealedAt says when the recovery keys in custody were sealed (at init or at the
// last rotation) without opening them: the envelope's time is not secret. ok is false when
// custody holds no recovery keys.
func (e *Env) RecoveryKeysSealedAt(ctx context.Context) (t time.Time, ok bool, err error) {
	s, err := newCustody(e.Kube, e.Config.Vault.Namespace, e.kms()).get(ctx)
	if err != nil || s == nil || len(s.Data[custodyRecoveryKey]) == 0 {
		return time.Time{}, false, err
	}
	var env envelope
	if err := json.Unmarshal(s.Data[custodyRecoveryKey], &env); err != nil {
		return time.Time{}, false, err
	}
	return env.Created, true, nil
}
