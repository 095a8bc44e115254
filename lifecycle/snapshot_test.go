package lifecycle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// archive builds a snapshot the way Vault lays it out; change lets a case damage it.
func archive(t *testing.T, change func(files map[string][]byte)) []byte {
	t.Helper()
	files := map[string][]byte{
		"meta.json": []byte(`{"Version":1,"ID":"2-42-1700000000000","Index":42,"Term":2}`),
		"state.bin": []byte("the whole store, encrypted"),
	}
	sums := ""
	for _, n := range []string{"meta.json", "state.bin"} {
		s := sha256.Sum256(files[n])
		sums += hex.EncodeToString(s[:]) + "  " + n + "\n"
	}
	files["SHA256SUMS"] = []byte(sums)
	files["SHA256SUMS.sealed"] = []byte("sealed with the barrier keyring")
	if change != nil {
		change(files)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, n := range []string{"meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"} {
		b, ok := files[n]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o600, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vault.snap")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInspectAcceptsACompleteSnapshot(t *testing.T) {
	b := archive(t, nil)
	a, err := Inspect(writeTemp(t, b))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if a.Index != 42 || a.Term != 2 || a.Size != int64(len(b)) || a.SHA256 != hex.EncodeToString(sum[:]) || !a.Sealed {
		t.Fatalf("got %+v", a)
	}
}

func TestInspectRefusesDamagedSnapshots(t *testing.T) {
	good := archive(t, nil)
	cases := map[string]struct {
		data []byte
		want string
	}{
		"not gzip":            {[]byte("hello"), "not gzip"},
		"truncated":           {good[:len(good)/2], "not a complete Vault Raft snapshot"},
		"state changed":       {archive(t, func(f map[string][]byte) { f["state.bin"] = []byte("tampered") }), "state.bin does not match its checksum"},
		"no sealed checksums": {archive(t, func(f map[string][]byte) { delete(f, "SHA256SUMS.sealed") }), "cut short"},
		"no checksums":        {archive(t, func(f map[string][]byte) { delete(f, "SHA256SUMS") }), "SHA256SUMS is missing"},
		"no meta":             {archive(t, func(f map[string][]byte) { delete(f, "meta.json") }), "meta.json is missing"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Inspect(writeTemp(t, c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

type fakeSource struct {
	data []byte
	err  error
}

func (f fakeSource) RaftSnapshot(_ context.Context, w io.Writer) error {
	if _, err := w.Write(f.data); err != nil {
		return err
	}
	return f.err
}

func TestSaveWritesAnInspectedFileAndItsRecord(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "vault.snap")
	data := archive(t, nil)
	rec, err := Save(context.Background(), fakeSource{data: data}, path, SnapshotRecord{ClusterID: "c1", SealType: "awskms", SealKey: "alias/k"})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != int64(len(data)) {
		t.Fatalf("snapshot file: %v %v", fi, err)
	}
	got, err := ReadRecord(path)
	if err != nil || got == nil || got.ClusterID != "c1" || got.Index != 42 || got.SHA256 != rec.SHA256 || got.Taken.IsZero() {
		t.Fatalf("record %+v %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Errorf("want the snapshot and its record only (no partial file), got %v", entries)
	}
	if _, err := Save(context.Background(), fakeSource{data: data}, path, SnapshotRecord{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("saving over an existing snapshot: %v", err)
	}
}

func TestSaveKeepsNothingOfAFailedSnapshot(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vault.snap")
	data := archive(t, nil)
	for name, src := range map[string]fakeSource{
		"stream error": {data: data[:10], err: errors.New("connection reset")},
		"short stream": {data: data[:len(data)/2]},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Save(context.Background(), src, path, SnapshotRecord{}); err == nil {
				t.Fatal("want an error")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("left behind: %v", entries)
			}
		})
	}
}

func saved(t *testing.T, clusterID string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault.snap")
	if _, err := Save(context.Background(), fakeSource{data: archive(t, nil)}, path, SnapshotRecord{ClusterID: clusterID, SealType: "awskms", SealKey: "alias/a"}); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckRestore(t *testing.T) {
	here := Target{ClusterID: "c1", SealType: "awskms", SealKey: "alias/a"}
	t.Run("same cluster", func(t *testing.T) {
		c, err := CheckRestore(saved(t, "c1"), here, false)
		if err != nil || c.Foreign || c.Record == nil {
			t.Fatalf("%+v %v", c, err)
		}
	})
	t.Run("another cluster is refused, naming --force", func(t *testing.T) {
		_, err := CheckRestore(saved(t, "c2"), here, false)
		if !errors.Is(err, ErrForeignSnapshot) || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "c2") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("another cluster with force says what it means", func(t *testing.T) {
		c, err := CheckRestore(saved(t, "c2"), Target{ClusterID: "c1", SealType: "awskms", SealKey: "alias/b"}, true)
		if err != nil || !c.Foreign {
			t.Fatalf("%+v %v", c, err)
		}
		notes := strings.Join(c.Notes, "\n")
		if !strings.Contains(notes, "--force") || !strings.Contains(notes, "seal") {
			t.Errorf("notes %q", notes)
		}
	})
	t.Run("a record of another file", func(t *testing.T) {
		p := saved(t, "c1")
		if err := os.WriteFile(p, archive(t, func(f map[string][]byte) { f["state.bin"] = []byte("other"); fixSums(f) }), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := CheckRestore(p, here, false)
		if err == nil || !strings.Contains(err.Error(), "does not describe") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no record: Vault decides", func(t *testing.T) {
		c, err := CheckRestore(writeTemp(t, archive(t, nil)), here, false)
		if err != nil || c.Record != nil || len(c.Notes) == 0 {
			t.Fatalf("%+v %v", c, err)
		}
	})
}

func fixSums(f map[string][]byte) {
	sums := ""
	for _, n := range []string{"meta.json", "state.bin"} {
		s := sha256.Sum256(f[n])
		sums += fmt.Sprintf("%x  %s\n", s, n)
	}
	f["SHA256SUMS"] = []byte(sums)
}

type fakeTarget struct{ err error }

func (f fakeTarget) RaftSnapshotRestore(_ context.Context, r io.Reader, _ bool) error {
	io.Copy(io.Discard, r)
	return f.err
}

func TestRestoreExplainsVaultsRefusal(t *testing.T) {
	p := writeTemp(t, archive(t, nil))
	err := Restore(context.Background(), fakeTarget{err: errors.New("Code: 400. Errors: * could not verify hash file, possibly the snapshot is using a different set of unseal keys")}, p, false)
	if !errors.Is(err, ErrForeignSnapshot) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("got %v", err)
	}
}
