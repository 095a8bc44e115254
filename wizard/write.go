package wizard

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrAborted is returned when the user stops the wizard (Ctrl-C); nothing has been written.
var ErrAborted = errors.New("aborted; nothing was written")

// ExistsError is returned when the output file exists and overwriting was not allowed.
type ExistsError struct{ Path string }

func (e *ExistsError) Error() string {
	return fmt.Sprintf("%s already exists; pass --force to overwrite it", e.Path)
}

// CheckWritable fails early, before any question, when path exists and force is not set.
func CheckWritable(path string, force bool) error {
	if force {
		return nil
	}
	if _, err := os.Lstat(path); err == nil {
		return &ExistsError{Path: path}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// WriteFile writes data to path atomically: a temporary file in the same directory, synced, then
// renamed over path. Readers see the old file or the whole new one, never a part. Without force
// an existing path is left alone. When ctx is done before the rename (Ctrl-C), the temporary
// file is removed and ErrAborted returned.
func WriteFile(ctx context.Context, path string, data []byte, force bool) (err error) {
	if err := CheckWritable(path, force); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ErrAborted
	}
	if force {
		err = os.Rename(tmpName, path)
	} else {
		err = publishNew(tmpName, path)
	}
	if err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// publishNew moves tmp to path only if path does not exist: a hard link fails rather than
// replace a file created meanwhile. Where hard links are not supported, it checks and renames.
func publishNew(tmp, path string) error {
	err := os.Link(tmp, path)
	switch {
	case err == nil:
		return os.Remove(tmp)
	case errors.Is(err, fs.ErrExist):
		return &ExistsError{Path: path}
	}
	if err := CheckWritable(path, false); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// syncDir makes the rename durable; it is best effort (some systems cannot sync a directory).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
