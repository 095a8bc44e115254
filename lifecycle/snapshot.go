package lifecycle

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A Raft snapshot, as Vault writes it, is a gzipped tar of meta.json (Raft index, term and
// configuration), state.bin (the store), SHA256SUMS (of the two) and SHA256SUMS.sealed: the
// checksums encrypted with the cluster's barrier keyring. A restore without force decrypts
// that last file with the target's keyring, so Vault refuses a snapshot of another cluster
// (another init, so other barrier keys, whatever the seal): "could not verify hash file". Only
// Vault holds the keyring, so vaultctl cannot repeat that check itself; instead save records
// who the snapshot came from next to it (FILE.json, no secret in it), and restore compares that
// record with the target before sending anything.

// SnapshotRecord describes a saved snapshot. It holds no secret: identifiers and checksums.
type SnapshotRecord struct {
	// ClusterID is Vault's cluster_id (sys/seal-status) when the snapshot was taken: it is
	// made at init with the barrier keys, so equal IDs mean the same keys.
	ClusterID   string `json:"clusterId"`
	ClusterName string `json:"clusterName,omitempty"`
	// SealType and SealKey are the seal that unseals the snapshot's data ("awskms", the key).
	SealType     string    `json:"sealType"`
	SealKey      string    `json:"sealKey,omitempty"`
	VaultVersion string    `json:"vaultVersion,omitempty"`
	Namespace    string    `json:"namespace,omitempty"` // the Vault namespace, for people
	Taken        time.Time `json:"taken"`
	Index        uint64    `json:"raftIndex"`
	Term         uint64    `json:"raftTerm"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
}

// RecordPath is where the record of the snapshot at path lives.
func RecordPath(path string) string { return path + ".json" }

// Archive is what Inspect read from a snapshot file.
type Archive struct {
	Index, Term uint64
	Size        int64
	SHA256      string
	// Sealed says the archive carries its sealed checksums (a complete Vault snapshot does).
	Sealed bool
}

// Inspect reads a snapshot file and checks it is a complete Vault Raft snapshot whose
// checksums match its contents, without sending it anywhere.
func Inspect(path string) (*Archive, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return inspect(f, path)
}

func inspect(r io.Reader, name string) (*Archive, error) {
	whole := sha256.New()
	counter := &countingWriter{}
	gz, err := gzip.NewReader(io.TeeReader(r, io.MultiWriter(whole, counter)))
	if err != nil {
		return nil, notSnapshot(name, "not gzip: %v", err)
	}
	defer gz.Close()
	a := &Archive{}
	sums := map[string]string{}
	var listed map[string]string
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, notSnapshot(name, "broken tar: %v", err)
		}
		switch h.Name {
		case "meta.json", "state.bin":
			sum := sha256.New()
			var meta *limitedBuffer
			w := io.Writer(sum)
			if h.Name == "meta.json" {
				meta = &limitedBuffer{max: 1 << 20}
				w = io.MultiWriter(sum, meta)
			}
			if _, err := io.Copy(w, tr); err != nil {
				return nil, notSnapshot(name, "reading %s: %v", h.Name, err)
			}
			if meta != nil {
				var m struct{ Index, Term uint64 }
				if err := json.Unmarshal(meta.b, &m); err != nil {
					return nil, notSnapshot(name, "meta.json: %v", err)
				}
				a.Index, a.Term = m.Index, m.Term
			}
			sums[h.Name] = hex.EncodeToString(sum.Sum(nil))
		case "SHA256SUMS":
			buf := &limitedBuffer{max: 1 << 16}
			if _, err := io.Copy(buf, tr); err != nil {
				return nil, notSnapshot(name, "reading SHA256SUMS: %v", err)
			}
			listed = parseSums(string(buf.b))
		case "SHA256SUMS.sealed":
			n, err := io.Copy(io.Discard, tr)
			if err != nil {
				return nil, notSnapshot(name, "reading SHA256SUMS.sealed: %v", err)
			}
			a.Sealed = n > 0
		}
	}
	// Drain what gzip left (its trailer), so the file's checksum covers every byte.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return nil, notSnapshot(name, "gzip: %v", err)
	}
	if _, err := io.Copy(io.Discard, io.TeeReader(r, io.MultiWriter(whole, counter))); err != nil {
		return nil, err
	}
	for _, f := range []string{"meta.json", "state.bin"} {
		if sums[f] == "" {
			return nil, notSnapshot(name, "%s is missing", f)
		}
		if listed == nil {
			return nil, notSnapshot(name, "SHA256SUMS is missing")
		}
		if listed[f] != sums[f] {
			return nil, notSnapshot(name, "%s does not match its checksum: the file is damaged", f)
		}
	}
	if !a.Sealed {
		return nil, notSnapshot(name, "SHA256SUMS.sealed is missing or empty: the snapshot was cut short")
	}
	a.Size, a.SHA256 = counter.n, hex.EncodeToString(whole.Sum(nil))
	return a, nil
}

func notSnapshot(name, format string, args ...any) error {
	return fmt.Errorf("%s is not a complete Vault Raft snapshot: %s", name, fmt.Sprintf(format, args...))
}

// parseSums reads sha256sum's format: "HEX  NAME" per line.
func parseSums(s string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 {
			out[strings.TrimPrefix(f[1], "*")] = f[0]
		}
	}
	return out
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

type limitedBuffer struct {
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b)+len(p) > l.max {
		return 0, errors.New("entry too large")
	}
	l.b = append(l.b, p...)
	return len(p), nil
}

// SnapshotSource is the Vault node a snapshot is taken from.
type SnapshotSource interface {
	RaftSnapshot(ctx context.Context, w io.Writer) error
}

// Save streams a snapshot into a new file at path (it must not exist), checks it with Inspect,
// and writes its record next to it. The file appears only complete: it is written under a
// temporary name, flushed, then renamed.
func Save(ctx context.Context, src SnapshotSource, path string, rec SnapshotRecord) (*SnapshotRecord, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%s already exists: choose another name, or remove it first", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	werr := src.RaftSnapshot(ctx, tmp)
	var serr error
	if werr == nil {
		serr = tmp.Sync()
	}
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return nil, fmt.Errorf("taking the snapshot: %w", err)
	}
	a, err := Inspect(tmp.Name())
	if err != nil {
		return nil, fmt.Errorf("Vault sent a snapshot that does not check out: %w", err)
	}
	rec.Index, rec.Term, rec.Size, rec.SHA256 = a.Index, a.Term, a.Size, a.SHA256
	if rec.Taken.IsZero() {
		rec.Taken = time.Now().UTC()
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return nil, err
	}
	// Link, not rename: it fails when path appeared meanwhile, rather than replacing it.
	if err := os.Link(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("keeping the snapshot as %s: %w", path, err)
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	if err := os.WriteFile(RecordPath(path), append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("the snapshot is at %s, but its record could not be written: %w", path, err)
	}
	return &rec, nil
}

// ReadRecord reads the record saved next to a snapshot; nil, nil when there is none (a
// snapshot taken with the vault CLI).
func ReadRecord(path string) (*SnapshotRecord, error) {
	b, err := os.ReadFile(RecordPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r SnapshotRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", RecordPath(path), err)
	}
	return &r, nil
}

// Target is the cluster a snapshot would be restored into.
type Target struct {
	ClusterID, ClusterName string
	SealType, SealKey      string
}

// RestoreCheck is the verdict on restoring one snapshot into one cluster, before anything is
// sent.
type RestoreCheck struct {
	Archive *Archive
	Record  *SnapshotRecord // nil: no record next to the file
	// Foreign says the record names another cluster: Vault would refuse the snapshot.
	Foreign bool
	// Notes are what the operator should know before confirming.
	Notes []string
}

// ErrForeignSnapshot marks a snapshot taken from another cluster (other barrier keys).
var ErrForeignSnapshot = errors.New("snapshot from another Vault cluster")

// CheckRestore inspects the snapshot at path and compares its record with the target. It
// refuses a damaged file, a record that does not describe this file, and (unless force) a
// snapshot of another cluster, saying what force would mean.
func CheckRestore(path string, t Target, force bool) (*RestoreCheck, error) {
	a, err := Inspect(path)
	if err != nil {
		return nil, err
	}
	rec, err := ReadRecord(path)
	if err != nil {
		return nil, err
	}
	c := &RestoreCheck{Archive: a, Record: rec}
	if rec == nil {
		c.Notes = append(c.Notes, fmt.Sprintf("no record %s next to the snapshot (taken with the vault CLI?): vaultctl cannot tell which cluster it came from; Vault itself refuses one sealed with other keys", RecordPath(path)))
		return c, nil
	}
	if rec.SHA256 != "" && rec.SHA256 != a.SHA256 {
		return nil, fmt.Errorf("%s does not describe %s (checksum %s, the file has %s): restore the snapshot its record was written for", RecordPath(path), path, short(rec.SHA256), short(a.SHA256))
	}
	c.Notes = append(c.Notes, fmt.Sprintf("taken %s from cluster %s (Raft index %d)", rec.Taken.UTC().Format(time.RFC3339), rec.ClusterID, rec.Index))
	if rec.ClusterID != "" && t.ClusterID != "" && rec.ClusterID != t.ClusterID {
		c.Foreign = true
		what := fmt.Sprintf("the snapshot comes from Vault cluster %s (seal %s %s), but the target is cluster %s (seal %s %s): its data is encrypted with the other cluster's barrier keys, and Vault refuses it",
			rec.ClusterID, rec.SealType, rec.SealKey, t.ClusterID, t.SealType, t.SealKey)
		if !force {
			return nil, fmt.Errorf("%w: %s; restore a snapshot of this cluster, or pass --force to replace this cluster's data and keys with the snapshot's (the target then unseals only with the snapshot's seal, and its tokens and recovery keys become the other cluster's)", ErrForeignSnapshot, what)
		}
		c.Notes = append(c.Notes, "--force: "+what+"; after the restore this cluster holds the other cluster's data, keys and tokens, and unseals only with its seal")
		if rec.SealType != t.SealType || rec.SealKey != t.SealKey {
			c.Notes = append(c.Notes, fmt.Sprintf("the snapshot's seal (%s %s) differs from the target's (%s %s): the pods must be able to use it, or they stay sealed", rec.SealType, rec.SealKey, t.SealType, t.SealKey))
		}
	}
	return c, nil
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// SnapshotTarget is the active Vault node a snapshot is restored into.
type SnapshotTarget interface {
	RaftSnapshotRestore(ctx context.Context, r io.Reader, force bool) error
}

// Restore sends the snapshot at path to dst. Call CheckRestore first.
func Restore(ctx context.Context, dst SnapshotTarget, path string, force bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := dst.RaftSnapshotRestore(ctx, f, force); err != nil {
		if strings.Contains(err.Error(), "could not verify hash file") || strings.Contains(err.Error(), "failed to open the sealed hashes") {
			return fmt.Errorf("%w: Vault could not open the snapshot's sealed checksums with this cluster's keys (%v); restore a snapshot of this cluster, or pass --force", ErrForeignSnapshot, err)
		}
		return fmt.Errorf("restoring %s: %w", path, err)
	}
	return nil
}
