// Package keyfile writes and reads the small secret files of rustpatcher-go:
// owner keys (rpsign gen) and node identities (rpseed --identity).
//
// A secret file is created whole or not at all, with mode 0600, in its
// target directory, and never through a symbolic link: the bytes go to a
// randomly named temporary file created with O_EXCL beside the target, which
// is then hard-linked to the target name (link never replaces a file and
// never follows a link at the target).
package keyfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Mode is the mode of the files Create writes.
const Mode fs.FileMode = 0o600

// Create writes data to a new file at path, mode 0600. It never replaces an
// existing file or symbolic link at path: then it returns an error that
// wraps fs.ErrExist. A file at path is either absent or complete, even if
// the process dies while writing.
func Create(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// os.CreateTemp opens with O_CREATE|O_EXCL and mode 0600.
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the link, the file lives on under path
	_, err = f.Write(data)
	if err == nil && runtime.GOOS != "windows" {
		err = f.Chmod(Mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	lerr := os.Link(tmp, path)
	switch {
	case lerr == nil:
	case errors.Is(lerr, fs.ErrExist):
		return fmt.Errorf("%s: %w", path, fs.ErrExist)
	default:
		// A file system without hard links: rename, which replaces
		// (but never follows) a link at path, so look first.
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s: %w", path, fs.ErrExist)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("creating %s: %w (and linking failed: %v)", path, err, lerr)
		}
	}
	syncDir(dir)
	return nil
}

// syncDir flushes a directory's entries to disk, where the system can.
func syncDir(dir string) {
	if runtime.GOOS == "windows" {
		return
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Exposed reports whether mode lets the file's group or others read or
// write it. It is always false on Windows, whose permissions Go does not
// show in the mode.
func Exposed(mode fs.FileMode) bool {
	return runtime.GOOS != "windows" && mode.Perm()&0o077 != 0
}

// ErrExposed means a secret file can be read by others than its owner.
var ErrExposed = errors.New("readable by others")

// ErrSymlink means a secret file is a symbolic link.
var ErrSymlink = errors.New("is a symbolic link")

// ReadPrivate reads the secret file at path, at most limit bytes. It refuses
// a symbolic link (ErrSymlink), anything but a regular file, a file its group
// or others may read (ErrExposed) and a file larger than limit, with errors
// that name the file and say how to fix it.
func ReadPrivate(path string, limit int64) ([]byte, error) {
	lst, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if lst.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s %w; secret files are read only as regular files: replace the link with the file it points to", path, ErrSymlink)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !os.SameFile(lst, st) {
		return nil, fmt.Errorf("%s changed while it was opened; try again", path)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (mode %v)", path, st.Mode())
	}
	if Exposed(st.Mode()) {
		return nil, fmt.Errorf("%s is %w (mode %04o): make it private with chmod 600 %s", path, ErrExposed, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes; it is not a key file", path, limit)
	}
	return b, nil
}
