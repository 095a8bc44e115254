package e2e

// Issue 14 item 2: `vaultctl snapshot save|restore` on the in-cluster estate of the upgrade
// test (one Vault cluster per test function).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/lifecycle"
	"github.com/vaultctl/vaultctl/phases"
)

func checkSnapshotSaveRestore(t *testing.T, cfgPath, ns string, ca []byte) {
	ctx := context.Background()
	vc := portForwardVault(t, ns, "vault-1", ca) // a standby may answer: it forwards to the leader
	// A token of its own, made before the save: the restored data still holds it.
	login, err := vc.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{
		"role": phases.AdminRole, "jwt": saToken(t, kube(t), ns, phases.AdminServiceAccount),
	})
	if err != nil {
		t.Fatalf("%s login: %v", phases.AdminRole, err)
	}
	token := login.Auth.ClientToken
	vc.SetToken(token)
	kv := vc.KVv2("secret")
	if _, err := kv.Put(ctx, "snap/kept", map[string]any{"value": "written-before-save"}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "vault.snap")
	r := vaultctl(t, "snapshot", "save", file, "-c", cfgPath, "-o", "json")
	if r.Code != 0 {
		t.Fatalf("snapshot save failed:\n%s", r)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the snapshot file must exist with mode 0600: %v %v", fi, err)
	}
	rec, err := lifecycle.ReadRecord(file)
	if err != nil || rec == nil || rec.ClusterID == "" || rec.SealType != "awskms" {
		t.Fatalf("record next to the snapshot: %+v %v", rec, err)
	}
	if again := vaultctl(t, "snapshot", "save", file, "-c", cfgPath); again.Code == 0 || !strings.Contains(again.Stderr, "already exists") {
		t.Errorf("snapshot save over an existing file must refuse:\n%s", again)
	}

	if _, err := kv.Put(ctx, "snap/after", map[string]any{"value": "written-after-save"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "snap/kept", map[string]any{"value": "changed-after-save"}); err != nil {
		t.Fatal(err)
	}
	stillAfter := func(when string) {
		t.Helper()
		s, err := kv.Get(ctx, "snap/after")
		if err != nil || s == nil || s.Data["value"] != "written-after-save" {
			t.Fatalf("%s: the value written after the save must still be there (nothing was restored): %+v %v", when, s, err)
		}
	}

	// CI without --yes: refused before anything is contacted.
	if r := vaultctl(t, "snapshot", "restore", file, "-c", cfgPath); r.Code != 2 || !strings.Contains(r.Stderr, "--yes") {
		t.Errorf("restore without a terminal and without --yes must refuse with exit 2:\n%s", r)
	}
	// A snapshot whose record names another cluster is refused before it is sent.
	foreign := filepath.Join(t.TempDir(), "foreign.snap")
	copyFile(t, file, foreign)
	other := *rec
	other.ClusterID = "00000000-1111-2222-3333-444444444444"
	b, _ := json.Marshal(other)
	if err := os.WriteFile(lifecycle.RecordPath(foreign), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := vaultctl(t, "snapshot", "restore", "--yes", foreign, "-c", cfgPath); r.Code != 1 || !strings.Contains(r.Stderr, "another Vault cluster") || !strings.Contains(r.Stderr, "--force") {
		t.Errorf("a snapshot of another cluster must be refused, naming --force:\n%s", r)
	}
	// A damaged file is refused too.
	damaged := filepath.Join(t.TempDir(), "damaged.snap")
	whole, _ := os.ReadFile(file)
	if err := os.WriteFile(damaged, whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if r := vaultctl(t, "snapshot", "restore", "--yes", damaged, "-c", cfgPath); r.Code != 1 || !strings.Contains(r.Stderr, "not a complete Vault Raft snapshot") {
		t.Errorf("a truncated snapshot must be refused:\n%s", r)
	}
	stillAfter("after the refusals")

	r = vaultctl(t, "snapshot", "restore", "--yes", file, "-c", cfgPath, "-o", "json")
	if r.Code != 0 {
		t.Fatalf("snapshot restore failed:\n%s", r)
	}
	eventually(t, 90*time.Second, "the snapshot's data served", func() error {
		c := portForwardVault(t, ns, "vault-0", ca)
		c.SetToken(token) // created before the save, so the snapshot holds it
		kv := c.KVv2("secret")
		kept, err := kv.Get(ctx, "snap/kept")
		if err != nil {
			return err
		}
		if kept.Data["value"] != "written-before-save" {
			return fmt.Errorf("snap/kept = %v, want the value from before the save", kept.Data["value"])
		}
		if s, err := kv.Get(ctx, "snap/after"); err == nil {
			return fmt.Errorf("snap/after, written after the save, is still there: %v", s.Data)
		} else if !strings.Contains(err.Error(), "secret not found") {
			return err
		}
		return nil
	})
	h, sr := statusJSON(t, cfgPath)
	if !h.Healthy || h.Voters != 3 {
		t.Errorf("after the restore want 3 healthy voters:\n%s", sr)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
