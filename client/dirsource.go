package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/org/rustpatcher-go/internal/releasedir"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/region"
)

// DirSource returns a Source that offers the signed binaries in a local
// directory, for air-gapped fleets and as a fallback to the network: a
// directory on a USB stick, a network share, a folder a configuration tool
// fills. If path names a regular file instead, that one file is offered.
//
// Each poll lists the directory (not its subdirectories) and scans every
// regular file, streaming, for a signed region; files without one are
// ignored, and so are names that start with a dot or end in .tmp or .part
// (files being copied in). A file's scan is cached until its
// size or modification time changes, so polling a directory of large
// binaries costs one stat per file. A file longer than any release can be
// is logged, once, and never read. The engine checks every release it
// takes, so the directory need not be trusted.
func DirSource(path string) Source {
	return &dirSource{dir: releasedir.New(path)}
}

// SourceFromURL returns the Source for a URL:
//
//   - "https://HOST/PATH/": a static mirror of the releases as rpsign
//     publish --out lays them out (see MirrorSource); plain http:// only
//     to a loopback address;
//   - "github:OWNER/REPO": the latest release of a GitHub repository (see
//     GitHubSource); "github:OWNER/REPO?base=https://git.example.com" for
//     GitHub Enterprise Server or a Gitea-style host;
//   - file: URLs ("file:///srv/releases", "file:relative/dir") and plain
//     paths: a DirSource.
func SourceFromURL(raw string) (Source, error) {
	if !strings.Contains(raw, ":") || (runtime.GOOS == "windows" && filepath.VolumeName(raw) != "") {
		return DirSource(raw), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", raw, err)
	}
	switch u.Scheme {
	case "https", "http":
		return MirrorSource(raw)
	case "github":
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil || len(q) > 1 || (len(q) == 1 && !q.Has("base")) || u.Opaque == "" {
			return nil, fmt.Errorf("source %q: want github:OWNER/REPO, or github:OWNER/REPO?base=URL", raw)
		}
		return GitHubSource(u.Opaque, q.Get("base"))
	case "file":
	default:
		return nil, fmt.Errorf("source %q: unsupported scheme %q (want https:, github:, a file: URL or a path)", raw, u.Scheme)
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

// dirSource offers the signed files that releasedir lists.
type dirSource struct {
	dir *releasedir.Dir
	log *slog.Logger // set by the engine (see loggedSource); nil: none
}

// loggedSource is a Source that logs through the engine's logger, which
// the engine sets before it polls.
type loggedSource interface{ setLogger(*slog.Logger) }

func (d *dirSource) setLogger(l *slog.Logger) { d.log = l }

func (d *dirSource) String() string { return "dir:" + d.dir.Path() }

// Releases lists the signed binaries in the directory.
func (d *dirSource) Releases(ctx context.Context) ([]Release, error) {
	ents, err := d.dir.List(ctx)
	if err != nil {
		return nil, err
	}
	var rels []Release
	for _, e := range ents {
		if e.Changed && errors.Is(e.Err, releasedir.ErrTooLarge) && d.log != nil {
			d.log.Warn("file skipped: longer than any release can be; it is not read", "file", e.Path, "size", e.Size, "max", int64(region.MaxFileLen))
		}
		// A file whose length its region rules out (one still being
		// copied in) is offered all the same, so that the engine says
		// which release it refuses and why (checked.ErrSize), reading none of it.
		if e.Info.Signed() && (e.Err == nil || errors.Is(e.Err, region.ErrSizeMismatch)) {
			rels = append(rels, &dirRelease{path: e.Path, in: e.Info, size: e.Size, mtime: e.ModTime, id: e.FileID})
		}
	}
	return rels, nil
}

// dirRelease is one signed file in a directory.
type dirRelease struct {
	path  string
	in    region.Info
	size  int64
	mtime time.Time
	id    [sha256.Size]byte
}

// identity changes when the file does, so that a file refused while it was
// still being copied is tried again once complete.
func (r *dirRelease) identity() string {
	return fmt.Sprintf("%s\x00%d\x00%d", r.path, r.size, r.mtime.UnixNano())
}

func (r *dirRelease) Info() region.Info { return r.in }

// FileID names the file as it was scanned.
func (r *dirRelease) FileID() [sha256.Size]byte { return r.id }

// Size is the file's length when it was listed.
func (r *dirRelease) Size() int64 { return r.size }

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

// rotationSuffix ends the names of the key rotation statements a directory
// source offers: files such as linux-amd64-1.rotation, written by rpsign
// rotate, next to the releases.
const rotationSuffix = rotation.FileSuffix

// rotations reads the key rotation statements in the directory; the
// engine checks each (see rotation.Follow). A file that does not hold a
// statement is reported and skipped.
func (d *dirSource) rotations(ctx context.Context) ([]rotation.Statement, error) {
	return d.dir.Rotations(ctx)
}

// rollouts reads the rollout statements in the directory (files named
// *.rollout, as rpsign rollout writes them); the engine checks each (see
// rollout.Check). A file that does not hold a statement is reported and
// skipped.
func (d *dirSource) rollouts(ctx context.Context) ([]rollout.Statement, error) {
	return d.dir.Rollouts(ctx)
}
