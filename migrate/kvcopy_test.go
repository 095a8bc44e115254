package migrate

import (
	"bytes"
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/internal/vault"
)

func kvFake(t *testing.T) vault.Client {
	t.Helper()
	s := vault.NewFakeServer()
	c := s.RootClient()
	if err := c.EnableMount(context.Background(), "secret", vault.MountInfo{Type: "kv-v2"}); err != nil {
		t.Fatal(err)
	}
	return c
}

func testSecret(data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "db", UID: "uid-1"}, Data: data}
}

func TestCopySecretIsByteExactAndIdempotent(t *testing.T) {
	ctx := context.Background()
	kv := kvFake(t)
	data := map[string][]byte{
		"password":  []byte(`p'a"s$ s` + "\n"),
		"cert.der":  {0x30, 0x82, 0xff, 0xfe, 0x00, '\n'},
		"empty":     {},
		"multiline": []byte("a\nb\n"),
	}
	res, err := CopySecret(ctx, kv, "secret", "team-a/db", testSecret(data), false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != CopyCreated || res.Version != 1 {
		t.Fatalf("first copy = %+v, want created at version 1", res)
	}
	got, _ := kv.KVRead(ctx, "secret", "team-a/db")
	meta, _ := kv.KVReadMetadata(ctx, "secret", "team-a/db")
	if meta.CustomMetadata[MetaSource] != "team-a/db" || meta.CustomMetadata[MetaManagedBy] == "" {
		t.Errorf("custom metadata = %v, want the source and vaultctl's mark", meta.CustomMetadata)
	}
	if k := Base64KeysOf(meta.CustomMetadata); len(k) != 1 || k[0] != "cert.der" {
		t.Errorf("base64 keys = %v, want only the non-UTF-8 cert.der", k)
	}
	decoded, err := DecodeKV(got.Data, Base64KeysOf(meta.CustomMetadata))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range data {
		if !bytes.Equal(decoded[k], want) {
			t.Errorf("%s: stored %q, want %q", k, decoded[k], want)
		}
	}

	res, err = CopySecret(ctx, kv, "secret", "team-a/db", testSecret(data), false)
	if err != nil || res.Outcome != CopyUnchanged || res.Version != 1 {
		t.Fatalf("second copy = %+v, %v; want unchanged at version 1", res, err)
	}
}

func TestCopySecretRefusesAConflictUnlessOverwrite(t *testing.T) {
	ctx := context.Background()
	kv := kvFake(t)
	if _, err := kv.KVWrite(ctx, "secret", "team-a/db", map[string]any{"password": "someone-elses", "extra": "x"}, 0); err != nil {
		t.Fatal(err)
	}
	s := testSecret(map[string][]byte{"password": []byte("hunter2")})
	_, err := CopySecret(ctx, kv, "secret", "team-a/db", s, false)
	if !IsConflict(err) {
		t.Fatalf("copy over a different entry: %v, want a conflict", err)
	}
	for _, leaked := range []string{"hunter2", "someone-elses"} {
		if strings.Contains(err.Error(), leaked) {
			t.Fatalf("conflict error carries a value: %v", err)
		}
	}
	if !strings.Contains(err.Error(), "extra, password") || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("conflict error %q should name the differing keys and --overwrite", err)
	}
	if cur, _ := kv.KVRead(ctx, "secret", "team-a/db"); cur.Version != 1 {
		t.Fatalf("a refused copy wrote version %d", cur.Version)
	}

	res, err := CopySecret(ctx, kv, "secret", "team-a/db", s, true)
	if err != nil || res.Outcome != CopyOverwritten || res.Version != 2 {
		t.Fatalf("overwrite = %+v, %v; want overwritten at version 2", res, err)
	}
	if err := VerifyCopy(ctx, kv, "secret", "team-a/db", s.Data); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCopyNamesTheKeyThatDiffers(t *testing.T) {
	ctx := context.Background()
	kv := kvFake(t)
	s := testSecret(map[string][]byte{"a": []byte("1"), "b": []byte("2")})
	if _, err := CopySecret(ctx, kv, "secret", "team-a/db", s, false); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.KVWrite(ctx, "secret", "team-a/db", map[string]any{"a": "1", "b": "tampered"}, -1); err != nil {
		t.Fatal(err)
	}
	err := VerifyCopy(ctx, kv, "secret", "team-a/db", s.Data)
	if err == nil || !strings.Contains(err.Error(), ": b differ") || strings.Contains(err.Error(), "tampered") {
		t.Fatalf("VerifyCopy after tampering = %v, want it to name key b and no value", err)
	}
	if err := VerifyCopy(ctx, kv, "secret", "team-a/missing", s.Data); err == nil {
		t.Fatal("VerifyCopy of a missing entry passed")
	}
}

func TestBase64KeysMetaStaysUnderTheValueLimit(t *testing.T) {
	var keys []string
	for i := range 200 {
		keys = append(keys, strings.Repeat("k", 20)+string(rune('a'+i%26))+strings.Repeat("x", i%7))
	}
	meta := base64KeysMeta(keys)
	if len(meta) < 2 {
		t.Fatalf("200 long keys fit in %d metadata values", len(meta))
	}
	for k, v := range meta {
		if len(v) > metaValueMax {
			t.Errorf("%s is %d bytes, over Vault's %d", k, len(v), metaValueMax)
		}
	}
	back := Base64KeysOf(meta)
	if len(back) != len(keys) {
		t.Fatalf("read back %d keys, want %d", len(back), len(keys))
	}
}

// A fresh copy (the journal has no record) writes before it reads; where an entry exists it must
// end exactly as the observing copy does: unchanged, refused, or overwritten, and always read back.
func TestCopySecretFreshSameOutcomes(t *testing.T) {
	ctx := context.Background()
	data := map[string][]byte{"password": []byte("s3cret"), "bin": {0xff, 0x00}}
	for _, fresh := range []bool{false, true} {
		kv := kvFake(t)
		res, err := copySecret(ctx, kv, "secret", "team-a/db", testSecret(data), false, fresh)
		if err != nil || res.Outcome != CopyCreated || res.Version != 1 {
			t.Fatalf("fresh=%t first copy = %+v, %v", fresh, res, err)
		}
		if err := VerifyCopy(ctx, kv, "secret", "team-a/db", data); err != nil {
			t.Fatalf("fresh=%t: %v", fresh, err)
		}
		// A run killed before its journal record: the next one is fresh again, finds the copy.
		res, err = copySecret(ctx, kv, "secret", "team-a/db", testSecret(data), false, fresh)
		if err != nil || res.Outcome != CopyUnchanged || res.Version != 1 {
			t.Fatalf("fresh=%t second copy = %+v, %v", fresh, res, err)
		}
		changed := map[string][]byte{"password": []byte("other"), "bin": {0xff, 0x00}}
		if _, err := copySecret(ctx, kv, "secret", "team-a/db", testSecret(changed), false, fresh); !IsConflict(err) {
			t.Fatalf("fresh=%t changed Secret without --overwrite: %v, want a conflict", fresh, err)
		}
		res, err = copySecret(ctx, kv, "secret", "team-a/db", testSecret(changed), true, fresh)
		if err != nil || res.Outcome != CopyOverwritten || res.Version != 2 {
			t.Fatalf("fresh=%t overwrite = %+v, %v", fresh, res, err)
		}
		if err := VerifyCopy(ctx, kv, "secret", "team-a/db", changed); err != nil {
			t.Fatalf("fresh=%t: %v", fresh, err)
		}
	}
}

func TestBackupSecretFreshSameOutcomes(t *testing.T) {
	ctx := context.Background()
	for _, fresh := range []bool{false, true} {
		kv := kvFake(t)
		s := testSecret(map[string][]byte{"k": []byte("v1")})
		if out, v, err := backupSecret(ctx, kv, "secret", s, fresh); err != nil || out != BackupWritten || v != 1 {
			t.Fatalf("fresh=%t first backup = %s v%d, %v", fresh, out, v, err)
		}
		if out, v, err := backupSecret(ctx, kv, "secret", s, fresh); err != nil || out != BackupUnchanged || v != 1 {
			t.Fatalf("fresh=%t same backup = %s v%d, %v", fresh, out, v, err)
		}
		s.Data["k"] = []byte("v2")
		if out, v, err := backupSecret(ctx, kv, "secret", s, fresh); err != nil || out != BackupWritten || v != 2 {
			t.Fatalf("fresh=%t changed Secret's backup = %s v%d, %v", fresh, out, v, err)
		}
		b, err := ReadSecretBackup(ctx, kv, "secret", "team-a", "db")
		if err != nil || b == nil || string(b.Data["k"]) != "v2" {
			t.Fatalf("fresh=%t backup read back = %+v, %v", fresh, b, err)
		}
	}
}

// A run killed after the data write and before its marks leaves the encoded values without the
// base64 marker (found by the fault suite, kill -9 at a random time): the next run must see its
// own copy, not a conflict, and mark it.
func TestCopySecretFinishesACopyKilledBeforeItsMarks(t *testing.T) {
	ctx := context.Background()
	kv := kvFake(t)
	data := map[string][]byte{"bin": {0xff, 0xfe, 0x00}, "text": []byte("plain")}
	want, _ := EncodeKV(data)
	if _, err := kv.KVWrite(ctx, "secret", "team-a/db", want, 0); err != nil {
		t.Fatal(err)
	}
	for _, fresh := range []bool{false, true} {
		res, err := copySecret(ctx, kv, "secret", "team-a/db", testSecret(data), false, fresh)
		if err != nil || res.Outcome != CopyUnchanged {
			t.Fatalf("fresh=%v: %+v, %v; want unchanged", fresh, res, err)
		}
	}
	meta, _ := kv.KVReadMetadata(ctx, "secret", "team-a/db")
	if k := Base64KeysOf(meta.CustomMetadata); len(k) != 1 || k[0] != "bin" || meta.CustomMetadata[MetaManagedBy] == "" {
		t.Errorf("marks after the resumed copy: %v", meta.CustomMetadata)
	}
	// Someone else's unmarked entry with other values is still a conflict.
	if _, err := kv.KVWrite(ctx, "secret", "team-a/other", map[string]any{"bin": "AQ==", "text": "plain"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := CopySecret(ctx, kv, "secret", "team-a/other", testSecret(map[string][]byte{"bin": {0x02}, "text": []byte("plain")}), false); !IsConflict(err) {
		t.Errorf("an unmarked entry with other values: %v, want a conflict", err)
	}
}
