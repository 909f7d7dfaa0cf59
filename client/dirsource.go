package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// DirSource returns a Source that offers the signed binaries in a local
// directory, for air-gapped fleets and as a fallback to the network: a
// directory on a USB stick, a network share, a folder a configuration tool
// fills. If path names a regular file instead, that one file is offered.
//
// Each poll lists the directory (not its subdirectories) and scans every
// regular file whose name does not start with a dot, streaming, for a signed
// region; files without one are ignored. A file's scan is cached until its
// size or modification time changes, so polling a directory of large
// binaries costs one stat per file. The engine checks every release it
// takes, so the directory need not be trusted.
func DirSource(path string) Source {
	return &dirSource{path: path, cache: map[string]dirEntry{}}
}

// SourceFromURL returns the Source for a URL. It knows file: URLs
// ("file:///srv/releases", "file:relative/dir"), which give a DirSource,
// and plain paths, taken as file paths.
func SourceFromURL(raw string) (Source, error) {
	if !strings.Contains(raw, ":") || (runtime.GOOS == "windows" && filepath.VolumeName(raw) != "") {
		return DirSource(raw), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", raw, err)
	}
	if u.Scheme != "file" {
		return nil, fmt.Errorf("source %q: unsupported scheme %q (want a file: URL or a path)", raw, u.Scheme)
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("source %q: file URLs on another host (%q) are not supported", raw, u.Host)
	}
	p := u.Path
	if p == "" {
		p = u.Opaque
	}
	if p == "" {
		return nil, fmt.Errorf("source %q: no path", raw)
	}
	return DirSource(filepath.FromSlash(p)), nil
}

type dirSource struct {
	path string

	mu    sync.Mutex // serialises Releases and guards cache
	cache map[string]dirEntry
}

// dirEntry is the cached scan of one file.
type dirEntry struct {
	size  int64
	mtime time.Time
	in    region.Info
	ok    bool // the file holds a signed region
}

func (d *dirSource) String() string { return "dir:" + d.path }

// Releases lists the signed binaries in the directory.
func (d *dirSource) Releases(ctx context.Context) ([]Release, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := os.Stat(d.path)
	if err != nil {
		return nil, err
	}
	var files []string
	if st.Mode().IsRegular() {
		files = []string{d.path}
	} else if st.IsDir() {
		ents, err := os.ReadDir(d.path)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
				continue
			}
			files = append(files, filepath.Join(d.path, e.Name()))
		}
	} else {
		return nil, fmt.Errorf("%s is neither a directory nor a regular file", d.path)
	}
	var rels []Release
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seen[f] = true
		fi, err := os.Stat(f)
		if err != nil || !fi.Mode().IsRegular() {
			continue // gone or replaced meanwhile
		}
		e, hit := d.cache[f]
		if !hit || e.size != fi.Size() || !e.mtime.Equal(fi.ModTime()) {
			e = dirEntry{size: fi.Size(), mtime: fi.ModTime()}
			in, err := scanInfo(ctx, f)
			if err != nil && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			e.in, e.ok = in, err == nil && in.Signed()
			d.cache[f] = e
		}
		if e.ok {
			rels = append(rels, &dirRelease{path: f, in: e.in, size: e.size, mtime: e.mtime})
		}
	}
	for f := range d.cache {
		if !seen[f] {
			delete(d.cache, f)
		}
	}
	return rels, nil
}

// scanInfo streams the file at path through region.Scan and returns its
// region.
func scanInfo(ctx context.Context, path string) (region.Info, error) {
	s, err := scanFile(ctx, path)
	if err != nil {
		return region.Info{}, err
	}
	return s.Info()
}

// scanFile is region.ScanFile that stops reading once ctx is done.
func scanFile(ctx context.Context, path string) (*region.Scanned, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := region.Scan(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// dirRelease is one signed file in a directory.
type dirRelease struct {
	path  string
	in    region.Info
	size  int64
	mtime time.Time
}

// identity changes when the file does, so that a file refused while it was
// still being copied is tried again once complete.
func (r *dirRelease) identity() string {
	return fmt.Sprintf("%s\x00%d\x00%d", r.path, r.size, r.mtime.UnixNano())
}

func (r *dirRelease) Info() region.Info { return r.in }

// String names the file, so logs say which file was refused.
func (r *dirRelease) String() string { return r.path }

// Open opens the file at offset.
func (r *dirRelease) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("%s: negative offset %d", r.path, offset)
	}
	f, err := os.Open(r.path)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", r.path, err)
	}
	return ctxReadCloser{ctxReader{ctx, f}, f}, nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(b)
	if errors.Is(err, io.EOF) {
		return n, io.EOF // unwrapped, as io.Reader requires
	}
	return n, err
}

type ctxReadCloser struct {
	ctxReader
	io.Closer
}
