// Package releasedir lists the signed binaries in a directory, as the
// client's directory source and rpseed's watcher both need: every regular
// file whose name says it may be a release is scanned once for its signed
// region, and the scan is kept until the file's size or modification time
// changes, so that listing a directory of large binaries again costs one
// stat per file. A scan reads a file to its end at most once; a file
// longer than any release can be (region.MaxFileLen) is not read at all
// (ErrTooLarge), and one whose length its region rules out is read only
// up to the region (region.ScanReleaseFile).
//
// The package only reads the files. It verifies nothing: what to make of a
// region, and with which key, is the caller's policy (see Entry.Verify).
package releasedir

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/region"
)

// Skip reports whether a file name in a directory is never a release:
// hidden files (such as rpseed's identity key and files being copied in
// under a hidden name), partial downloads ending in .tmp or .part, key
// rotation statements (see Rotations) and rollout statements (see
// Rollouts).
func Skip(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".part") ||
		strings.HasSuffix(name, rotation.FileSuffix) || strings.HasSuffix(name, rollout.FileSuffix)
}

// ErrTooLarge means a file is longer than any release can be
// (region.MaxFileLen): it is listed, with this error, without being read.
var ErrTooLarge = errors.New("longer than any release can be")

// MaxRotationFiles bounds the statements Rotations reads from one
// directory.
const MaxRotationFiles = 64

// MaxRolloutFiles bounds the statements Rollouts reads from one directory.
const MaxRolloutFiles = 64

// An Entry is one file of a listing and what its scan found.
type Entry struct {
	// Name is the file's name in the directory, and Path its path.
	Name, Path string
	// Size and ModTime are the file's as listed; the scan is redone when
	// either changes.
	Size    int64
	ModTime time.Time
	// Info is the region found in the file, not verified with any key
	// (an unsigned region has an empty Version). It is valid only when
	// Err is nil, or wraps region.ErrSizeMismatch: then it is the
	// release the file claims to be, whose length rules the file out.
	Info region.Info
	// Err says why the file has no usable region: none, several, a
	// malformed one, or the file could not be read. It names the file.
	Err error
	// FileID names the file's exact bytes as scanned (see
	// region.Scanned.FileID); valid only when Err is nil.
	FileID [sha256.Size]byte
	// Changed reports whether the file was scanned by this List: it is
	// new, or its size or modification time changed, since the previous
	// List that returned without error.
	Changed bool

	scan *region.Scanned
}

// Verify checks the entry's region with pub against the file as it was
// scanned: signature, hash and size. The error names the file.
func (e Entry) Verify(pub ed25519.PublicKey) (region.Info, error) {
	if e.Err != nil {
		return region.Info{}, e.Err
	}
	in, err := e.scan.Verify(pub)
	if err != nil {
		return in, fmt.Errorf("%s: %w", e.Path, err)
	}
	return in, nil
}

// A Dir is a directory of release binaries whose scans are cached. It is
// safe for concurrent use; List calls run one at a time.
type Dir struct {
	path string

	mu    sync.Mutex // serialises List and guards cache
	cache map[string]Entry
}

// New returns the Dir at path. Nothing is read until List.
func New(path string) *Dir {
	return &Dir{path: path, cache: map[string]Entry{}}
}

// Path returns the path the Dir was made with.
func (d *Dir) Path() string { return d.path }

// List returns the files of the directory that may be releases, in name
// order: regular files (not symbolic links, not subdirectories) whose name
// Skip does not refuse, each with its scan. Files it cannot stat (removed
// meanwhile) are left out; files without a usable region are listed with
// Err set. Files no longer there are forgotten.
//
// If the Dir's path names a regular file instead of a directory, List
// returns that one file, whatever its name.
//
// List reads each new or changed file, at most to its end and once (see
// the package comment), or until ctx is done; it then returns ctx's error
// and keeps the cache as it was.
func (d *Dir) List(ctx context.Context) ([]Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	files, err := d.files()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(files))
	next := make(map[string]Entry, len(files))
	for _, fi := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path := d.path
		if fi.name != "" {
			path = filepath.Join(d.path, fi.name)
		}
		e, hit := d.cache[path]
		e.Changed = !hit || e.Size != fi.size || !e.ModTime.Equal(fi.mtime)
		if e.Changed {
			e = scan(ctx, path, fi)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		next[path] = e
		out = append(out, e)
	}
	d.cache = next
	return out, nil
}

// file is a listed file before its scan; name is empty when the Dir's path
// is the file itself.
type file struct {
	name  string
	size  int64
	mtime time.Time
}

// Rotations reads the key rotation statements in the directory: regular
// files named *.rotation (rotation.FileSuffix), in name order, at most
// MaxRotationFiles of them. It checks no signature: what a statement
// moves, and whether to follow it, is the caller's (see rotation.Follow).
// A file that does not hold a statement is reported, by name, in the
// joined error, and the others are returned. A Dir whose path is a single
// file has none.
func (d *Dir) Rotations(ctx context.Context) ([]rotation.Statement, error) {
	return readStatements(ctx, d.path, rotation.FileSuffix, MaxRotationFiles, rotation.Read)
}

// Rollouts reads the rollout statements in the directory: regular files
// named *.rollout (rollout.FileSuffix), in name order, at most
// MaxRolloutFiles of them, each at most rollout.MaxSize bytes. It checks
// no signature and no key: which statement to take, for which target and
// with which key, is the caller's (see rollout.Check). A file that does
// not hold a statement is reported, by name, in the joined error, and the
// others are returned. A Dir whose path is a single file has none.
func (d *Dir) Rollouts(ctx context.Context) ([]rollout.Statement, error) {
	return readStatements(ctx, d.path, rollout.FileSuffix, MaxRolloutFiles, rollout.Read)
}

// readStatements reads the regular, not hidden files of dir whose names end
// in suffix, in name order, at most max of them, with read.
func readStatements[T any](ctx context.Context, dir, suffix string, max int, read func(io.Reader) (T, error)) ([]T, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if fi, serr := os.Stat(dir); serr == nil && !fi.IsDir() {
			return nil, nil
		}
		return nil, err
	}
	var out []T
	var errs []error
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), suffix) || strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		if len(out) >= max {
			errs = append(errs, fmt.Errorf("%s: more than %d statements; the rest are not read", dir, max))
			break
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		path := filepath.Join(dir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st, err := read(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}

// files lists the candidate files.
func (d *Dir) files() ([]file, error) {
	st, err := os.Stat(d.path)
	if err != nil {
		return nil, err
	}
	switch {
	case st.Mode().IsRegular():
		return []file{{size: st.Size(), mtime: st.ModTime()}}, nil
	case !st.IsDir():
		return nil, fmt.Errorf("%s is neither a directory nor a regular file", d.path)
	}
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return nil, err
	}
	var files []file
	for _, e := range ents {
		if Skip(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue // gone or replaced meanwhile
		}
		files = append(files, file{name: e.Name(), size: fi.Size(), mtime: fi.ModTime()})
	}
	return files, nil
}

// scan reads the file at path with the region scanner, unless it is too
// large to be a release.
func scan(ctx context.Context, path string, fi file) Entry {
	e := Entry{Name: filepath.Base(path), Path: path, Size: fi.size, ModTime: fi.mtime, Changed: true}
	if fi.size > region.MaxFileLen {
		e.Err = fmt.Errorf("%s: %w: %d bytes, more than %d", path, ErrTooLarge, fi.size, int64(region.MaxFileLen))
		return e
	}
	s, err := region.ScanReleaseFile(ctx, path)
	if err != nil {
		e.Err = err
		if s != nil { // a length the region found rules out
			e.Info, _ = s.Info()
		}
		return e
	}
	in, err := s.Info()
	if err != nil {
		e.Err = fmt.Errorf("%s: %w", path, err)
		return e
	}
	e.Info, e.scan, e.FileID = in, s, s.FileID
	return e
}
