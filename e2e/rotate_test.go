package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

type keyAgeDoc struct {
	Key     string     `json:"key"`
	Since   *time.Time `json:"since"`
	Term    int        `json:"term"`
	Due     bool       `json:"due"`
	Unknown string     `json:"unknown"`
}

// keyAges runs status -o json and returns its key ages by key, and its warnings.
func keyAges(t *testing.T, cfg string) (map[string]keyAgeDoc, []string) {
	t.Helper()
	r := vaultctl(t, "status", "-c", cfg, "-o", "json")
	var doc struct {
		Keys     []keyAgeDoc `json:"keys"`
		Warnings []string    `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
		t.Fatalf("status output is not one JSON document: %v\n%s", err, r)
	}
	out := map[string]keyAgeDoc{}
	for _, k := range doc.Keys {
		out[k.Key] = k
	}
	return out, doc.Warnings
}

// TestRotateKeys rotates the encryption key and the recovery keys of a Vault cluster vaultctl
// installed (real Vault processes, awskms auto-unseal on the KMS emulator) and shows, with
// Vault itself, that the old recovery shares stop opening sys/generate-root and the new ones
// from custody do; status records both rotations and warns once they are older than maxAge;
// no recovery key appears anywhere.
func TestRotateKeys(t *testing.T) {
	t.Parallel()
	const vns = "rotate-vault"
	e := newMigrateEstate(t, vns)
	ctx := context.Background()
	cs := kube(t)
	custody := func() map[string][]byte {
		s, err := cs.CoreV1().Secrets(vns).Get(ctx, phases.CustodySecret, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("custody Secret: %v", err)
		}
		if _, pending := s.Data["recovery-keys.pending.enc"]; pending {
			t.Errorf("custody still holds staged keys: %v", keysOf(s.Data))
		}
		return s.Data
	}

	ages, warnings := keyAges(t, e.cfg)
	enc, rec := ages[lifecycle.KeyEncryption], ages[lifecycle.KeyRecovery]
	if enc.Since == nil || enc.Term < 1 || rec.Since == nil || enc.Due || rec.Due {
		t.Fatalf("status before any rotation: %+v %+v", enc, rec)
	}
	for _, w := range warnings {
		if strings.Contains(w, "vaultctl rotate") {
			t.Errorf("fresh keys warned: %s", w)
		}
	}

	encTermAfter := 0
	t.Run("encryption key", func(t *testing.T) {
		r := vaultctl(t, "rotate", "encryption-key", "-c", e.cfg, "-o", "json")
		var doc struct {
			OK                    bool
			TermBefore, TermAfter int
		}
		if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || !doc.OK {
			t.Fatalf("rotate encryption-key: %v\n%s", err, r)
		}
		if doc.TermBefore != enc.Term || doc.TermAfter != enc.Term+1 {
			t.Errorf("terms %d -> %d, status said %d before", doc.TermBefore, doc.TermAfter, enc.Term)
		}
		encTermAfter = doc.TermAfter
		after, _ := keyAges(t, e.cfg)
		if got := after[lifecycle.KeyEncryption]; got.Term != doc.TermAfter || !got.Since.After(*enc.Since) {
			t.Errorf("status after the rotation: %+v, before %+v", got, enc)
		}
		text := vaultctl(t, "rotate", "encryption-key", "-c", e.cfg)
		if want := fmt.Sprintf("-> term %d ", doc.TermAfter+1); text.Code != 0 || !strings.Contains(text.Stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
		encTermAfter = doc.TermAfter + 1
	})

	oldKeys := custodyKeys(t, e.cfg, custody)
	t.Run("recovery keys", func(t *testing.T) {
		before := time.Now()
		r := vaultctl(t, "rotate", "recovery-keys", "-c", e.cfg, "-o", "json")
		var doc struct {
			OK       bool
			Rotation lifecycle.RecoveryKeyRotation
		}
		if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || !doc.OK {
			t.Fatalf("rotate recovery-keys: %v\n%s", err, r)
		}
		if !doc.Rotation.NewKeysVerified || !doc.Rotation.OldKeysRefused || doc.Rotation.Shares != 3 || doc.Rotation.Threshold != 2 {
			t.Errorf("rotation = %+v", doc.Rotation)
		}
		newKeys := custodyKeys(t, e.cfg, custody)
		if len(newKeys) != 3 {
			t.Fatalf("custody holds %d keys, want 3", len(newKeys))
		}
		for _, k := range newKeys {
			if slices.Contains(oldKeys, k) {
				t.Error("a share survived the rotation")
			}
		}
		root := vaultClient(t, e.vc.Addrs[0])
		root.SetToken(generateRootRefusesOldAcceptsNew(t, vaultClient(t, e.vc.Addrs[0]), oldKeys, newKeys))
		// Vault's own answer on the encryption key, not vaultctl's report of it.
		if ks, err := root.Sys().KeyStatus(); err != nil || ks.Term != encTermAfter {
			t.Errorf("sys/key-status = %+v (%v), want term %d", ks, err, encTermAfter)
		}
		if err := root.Auth().Token().RevokeSelf(""); err != nil {
			t.Errorf("revoking the test's root token: %v", err)
		}
		ages, _ := keyAges(t, e.cfg)
		if got := ages[lifecycle.KeyRecovery]; got.Since == nil || got.Since.Before(before.Add(-time.Second)) {
			t.Errorf("status does not record the rotation: %+v (rotated after %s)", got, before)
		}
		t.Cleanup(func() {
			// Last: no old or new share anywhere vaultctl's runs or this Vault wrote.
			scanForSecrets(t, vns, append(slices.Clone(oldKeys), newKeys...), externalVault(e.vc, e.auditDir))
		})
	})

	t.Run("status warns past maxAge", func(t *testing.T) {
		b, err := os.ReadFile(e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		short := strings.Replace(string(b), "\nvault:\n", "\nvault:\n  rotation:\n    maxAge: 1ns\n", 1)
		path := e.cfg + ".short"
		if err := os.WriteFile(path, []byte(short), 0o644); err != nil {
			t.Fatal(err)
		}
		ages, warnings := keyAges(t, path)
		for _, k := range []string{lifecycle.KeyEncryption, lifecycle.KeyRecovery} {
			if !ages[k].Due {
				t.Errorf("%s not due with maxAge 1ns: %+v", k, ages[k])
			}
			if !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, "vaultctl rotate "+k) }) {
				t.Errorf("no warning names `vaultctl rotate %s`: %q", k, warnings)
			}
		}
		text := vaultctl(t, "status", "-c", path)
		if !strings.Contains(text.Stderr, "vaultctl rotate recovery-keys") || !strings.Contains(text.Stdout, "DUE") {
			t.Errorf("text status:\n%s", text)
		}
	})
}

// custodyKeys opens the recovery keys in custody as an operator would, with `vaultctl
// recovery-keys --out` (openCustody sets the AWS environment, which a parallel test cannot).
func custodyKeys(t *testing.T, cfg string, custody func() map[string][]byte) []string {
	t.Helper()
	custody() // no staged keys left behind
	out := filepath.Join(t.TempDir(), "keys.json")
	if r := vaultctl(t, "recovery-keys", "-c", cfg, "--out", out); r.Code != 0 {
		t.Fatalf("recovery-keys:\n%s", r)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var keys phases.RecoveryKeys
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	return keys.Keys
}

// generateRootRefusesOldAcceptsNew runs sys/generate-root, what an operator runs with the
// recovery keys: with threshold old shares it must fail; with the new ones it must make a live
// root token, which it returns (the caller revokes it).
func generateRootRefusesOldAcceptsNew(t *testing.T, vc *vaultapi.Client, oldKeys, newKeys []string) string {
	t.Helper()
	if err := vc.Sys().GenerateRootCancel(); err != nil {
		t.Fatal(err)
	}
	att, err := vc.Sys().GenerateRootInit("", "")
	if err != nil {
		t.Fatal(err)
	}
	var failed error
	for _, k := range oldKeys[:att.Required] {
		if _, failed = vc.Sys().GenerateRootUpdate(k, att.Nonce); failed != nil {
			break
		}
	}
	if failed == nil {
		t.Error("the old recovery keys still generate a root token")
	}
	_ = vc.Sys().GenerateRootCancel()
	att, err = vc.Sys().GenerateRootInit("", "")
	if err != nil {
		t.Fatal(err)
	}
	var encoded string
	for _, k := range newKeys[:att.Required] {
		s, err := vc.Sys().GenerateRootUpdate(k, att.Nonce)
		if err != nil {
			t.Fatalf("generate-root with the new keys: %v", err)
		}
		encoded = s.EncodedToken
	}
	tok, err := lifecycle.DecodeRootToken(encoded, att.OTP)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := vc.Clone()
	if err != nil {
		t.Fatal(err)
	}
	probe.SetToken(tok)
	self, err := probe.Auth().Token().LookupSelf()
	if err != nil || !slices.Contains(anyStrings(self.Data["policies"]), "root") {
		t.Fatalf("the token the new keys made is not a root token: %v", err)
	}
	return tok
}

// TestRotateRecoveryKeysInCluster rotates the recovery keys of a Vault vaultctl installed in the
// cluster (real Vault processes as the StatefulSet's pods, reached through port-forwards):
// the old shares stop opening generate-root, the new ones from custody do, a second rotation
// works from the new ones, and no share appears anywhere.
func TestRotateRecoveryKeysInCluster(t *testing.T) {
	t.Parallel()
	const ns = "vault-rotate-ic"
	cs := kube(t)
	ctx := context.Background()
	claimPVs(t, cs, ns, inClusterClaims())
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
	cfg := filepath.Join(t.TempDir(), "vaultctl.yaml")
	writeInClusterConfig(t, cfg, ns, false)
	if res := vaultctl(t, "apply", "-c", cfg, "-o", "json"); !parseRun(t, res).OK {
		t.Fatalf("in-cluster apply:\n%s", res)
	}
	custody := func() map[string][]byte {
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, phases.CustodySecret, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("custody Secret: %v", err)
		}
		if _, pending := s.Data["recovery-keys.pending.enc"]; pending {
			t.Errorf("custody still holds staged keys: %v", keysOf(s.Data))
		}
		return s.Data
	}
	first := custodyKeys(t, cfg, custody)
	var all []string
	all = append(all, first...)
	prev := first
	for round := 1; round <= 2; round++ {
		t0 := time.Now()
		r := vaultctl(t, "rotate", "recovery-keys", "-c", cfg, "-o", "json")
		var doc struct {
			OK       bool
			Rotation lifecycle.RecoveryKeyRotation
		}
		if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || !doc.OK || !doc.Rotation.NewKeysVerified || !doc.Rotation.OldKeysRefused {
			t.Fatalf("rotation %d: %v\n%s", round, err, r)
		}
		t.Logf("rotate recovery-keys %d (in-cluster, through a port-forward): %s", round, time.Since(t0).Round(10*time.Millisecond))
		next := custodyKeys(t, cfg, custody)
		vc := portForwardVault(t, ns, "vault-0", serverCA(t, cs, ns))
		tok := generateRootRefusesOldAcceptsNew(t, vc, prev, next)
		vc.SetToken(tok)
		if err := vc.Auth().Token().RevokeSelf(""); err != nil {
			t.Errorf("revoking the test's root token: %v", err)
		}
		all = append(all, next...)
		prev = next
	}
	if h, r := statusJSON(t, cfg); !h.Healthy || h.Voters != 3 {
		t.Errorf("Vault after two rotations: %+v\n%s", h, r)
	}
	scanForSecrets(t, ns, all)
}

func anyStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// TestRotateRecoveryKeysKilledWhenStagedLosesNothing kills `vaultctl rotate recovery-keys` with
// SIGKILL on the watch event that stages the new shares in custody: Vault then holds a rekey
// waiting for verification (or, if the run got further, already uses the staged shares). The
// re-run must finish the rotation, leaving custody holding exactly the shares Vault accepts.
func TestRotateRecoveryKeysKilledWhenStagedLosesNothing(t *testing.T) {
	t.Parallel()
	const vns = "rotate-kill-vault"
	e := newMigrateEstate(t, vns)
	cs := kube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	custody := func() map[string][]byte {
		s, err := cs.CoreV1().Secrets(vns).Get(ctx, phases.CustodySecret, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("custody Secret: %v", err)
		}
		if _, pending := s.Data["recovery-keys.pending.enc"]; pending {
			t.Errorf("custody still holds staged keys: %v", keysOf(s.Data))
		}
		return s.Data
	}
	old := custodyKeys(t, e.cfg, custody)

	secrets := cs.CoreV1().Secrets(vns)
	sel := fields.OneTermEqualSelector("metadata.name", phases.CustodySecret).String()
	list, err := secrets.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	w, err := secrets.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	cmd := exec.Command(vaultctlBinary(t), "rotate", "recovery-keys", "-c", e.cfg)
	cmd.Env = append(append(os.Environ(), sb.Env()...), "CI=true")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	staged := false
	for !staged {
		select {
		case err := <-exited:
			recordOutput(out.String())
			t.Fatalf("rotate ended (%v) before staging the new keys:\n%s", err, out.String())
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			t.Fatalf("the new keys were not staged in time:\n%s", out.String())
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch ended")
			}
			if s, isSecret := ev.Object.(*corev1.Secret); isSecret && len(s.Data["recovery-keys.pending.enc"]) > 0 {
				staged = true
			}
		}
	}
	killErr := cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	recordOutput(out.String())
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	killedEarly := killErr == nil && ws.Signaled()
	t.Logf("killed while the keys were staged: %v (otherwise the run had finished first)", killedEarly)

	r := vaultctl(t, "rotate", "recovery-keys", "-c", e.cfg, "-o", "json")
	var doc struct {
		OK       bool
		Rotation lifecycle.RecoveryKeyRotation
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || !doc.OK || !doc.Rotation.OldKeysRefused {
		t.Fatalf("the re-run: %v\n%s", err, r)
	}
	t.Logf("re-run resumed the killed rotation: %v", doc.Rotation.Resumed)
	if killedEarly && !doc.Rotation.Resumed {
		// Killed before Vault switched, the staged keys are verified by the re-run; killed
		// after, the re-run finds custody's refused and promotes the staged ones. Either way it
		// finishes the killed run's rotation before doing its own.
		t.Errorf("the re-run did not say it finished the killed run's rotation")
	}
	next := custodyKeys(t, e.cfg, custody)
	vc := vaultClient(t, e.vc.Addrs[0])
	tok := generateRootRefusesOldAcceptsNew(t, vc, old, next)
	vc.SetToken(tok)
	if err := vc.Auth().Token().RevokeSelf(""); err != nil {
		t.Errorf("revoking the test's root token: %v", err)
	}
	scanForSecrets(t, vns, append(slices.Clone(old), next...), externalVault(e.vc, e.auditDir))
}
