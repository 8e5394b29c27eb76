// Package atomicfile replaces files so that a crash or a power cut leaves either
// the old content or the new one, never a mix or an empty file: every state file
// medialb keeps (administrative states, the VIP record, keepalived's configuration
// and health file, the pushed virtual_services, the API's certificate) is written
// through Write.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces the file at path with data and mode perm: it writes a temporary
// file in the same directory, flushes it to disk (fsync), renames it over path and
// flushes the directory, so the rename itself survives a power cut. The directory
// is created (0750) when missing. On error path is left as it was and the
// temporary file is removed; the error names the file and the step that failed.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w (is %s writable, with space left?)", path, err, dir)
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: flush directory: %w", path, err)
	}
	return nil
}

// syncDir flushes a directory's entries (a rename in it) to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
