package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// failingFile is a real file whose Write, Sync or Close fails on demand, as on a full disk.
type failingFile struct {
	*os.File
	write, sync, close error
}

func (f *failingFile) Write(b []byte) (int, error) {
	if f.write != nil {
		n, _ := f.File.Write(b[:len(b)/2])
		return n, f.write
	}
	return f.File.Write(b)
}

func (f *failingFile) Sync() error {
	if f.sync != nil {
		return f.sync
	}
	return f.File.Sync()
}

func (f *failingFile) Close() error {
	err := f.File.Close()
	if f.close != nil {
		return f.close
	}
	return err
}

func TestWriteNewFileChecksEveryStepAndRemovesThePartialFile(t *testing.T) {
	full := errors.New("no space left on device")
	for name, ff := range map[string]failingFile{
		"write": {write: full},
		"sync":  {sync: full},
		"close": {close: full},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "recovery.json")
			open := func(p string) (syncFile, error) {
				f, err := openNew(p)
				if err != nil {
					return nil, err
				}
				out := ff
				out.File = f.(*os.File)
				return &out, nil
			}
			err := writeNewFile(open, path, []byte(`{"keysBase64":["secret"]}`))
			if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "partial file was removed") {
				t.Fatalf("err = %v", err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("partial file left behind: %v", err)
			}
		})
	}
}

func TestWriteNewFileWritesA0600FileAndNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "recovery.json")
	if err := writeNewFile(openNew, path, []byte("keys\n")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	err = writeNewFile(openNew, path, []byte("other\n"))
	if err == nil || !strings.Contains(err.Error(), "must not exist") {
		t.Fatalf("an existing file must be refused: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keys\n" {
		t.Fatalf("existing file changed: %q", b)
	}
}
