package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/org/rustpatcher-go/internal/manifest"
	"github.com/org/rustpatcher-go/internal/mirror"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// DefaultGitHubURL is the host GitHubSource reads from when given no base
// URL.
const DefaultGitHubURL = "https://github.com"

// MirrorSource returns a Source that reads the releases published at
// base, an https:// URL of the directory that holds them as rpsign publish
// --out lays them out (the manifest rustpatcher-<os>-<arch>.json of the
// running target, the binary and piece hashes it names, the key rotation
// statements it names, and the target's rollout statement
// <os>-<arch>.rollout, named or not):
// a bucket, a web server's directory, GitHub Pages. Plain http:// is
// accepted only for a loopback address.
//
// Each poll asks for the manifest with a conditional request (ETag,
// If-Modified-Since), a little later than the Interval (up to a tenth of
// it, at most 30 s, at random), so that a fleet polling often costs the
// server a 304 each. A release is downloaded with Range requests, each
// piece of a v1 release checked against the signed root as it arrives, and
// resumed where it stopped after a failure. Proxies are taken from
// HTTPS_PROXY and NO_PROXY, the roots from the system. The mirror is
// trusted as little as a peer: the engine checks every byte and every
// signature, a body must make progress, and none is read past the length
// the signed region allows.
func MirrorSource(base string) (Source, error) {
	u, err := parseBase(base)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", base, err)
	}
	return newHTTPSource(base, u.String(), false), nil
}

// GitHubSource returns a Source that reads the latest release of the
// GitHub repository repo ("OWNER/REPO") as rpsign publish or the Action
// published it, through the release's download links
// (releases/latest/download/<file>): no API token, and none of the REST
// API's rate limits. baseURL is the host's web address for GitHub
// Enterprise Server or a Gitea-style host that serves the same links, such
// as "https://git.example.com"; empty means DefaultGitHubURL. Otherwise it
// works as MirrorSource; the files of one release are all read from the
// release the manifest's link led to.
func GitHubSource(repo, baseURL string) (Source, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.ContainsAny(name, "/?#") || strings.ContainsAny(owner, "?#") {
		return nil, fmt.Errorf("source github:%s: want OWNER/REPO", repo)
	}
	if baseURL == "" {
		baseURL = DefaultGitHubURL
	}
	u, err := parseBase(baseURL)
	if err != nil {
		return nil, fmt.Errorf("source github:%s: base URL %q: %w", repo, baseURL, err)
	}
	u = u.JoinPath(owner, name, "releases", "latest", "download")
	u.Path += "/"
	return newHTTPSource("github:"+repo, u.String(), true), nil
}

// parseBase parses the URL of a directory, which must be https (or http
// to a loopback address), and ends it in a slash.
func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if err := mirror.CheckURL(u); err != nil {
		return nil, err
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("want https://HOST/PATH/, without user, query or fragment")
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// Bounds of what a manifest may name.
const (
	maxStatements  = 64 // statements named by one manifest
	maxFileNameLen = 255
)

// httpRetry is when a release refused before is fetched again: after
// httpRetryMin, twice that after each refusal in a row, at most
// httpRetryMax. A damaged file on a mirror is fetched again once it may
// have been fixed, without a fleet downloading it at every poll.
const (
	httpRetryMin = 5 * time.Second
	httpRetryMax = time.Hour
)

// httpSource reads one release location: a mirror's directory, or the
// latest release of a GitHub repository.
type httpSource struct {
	name   string // as given, for logs
	base   string // URL of the directory of the manifests, ending in /
	github bool   // base is releases/latest/download/
	target target.Target
	f      *mirror.Fetcher
	now    func() time.Time

	mu        sync.Mutex
	man       *mirror.Cached     // the manifest last fetched
	info      manifest.PatchInfo // decoded from it
	dir       string             // URL of the directory of the files it names
	fetchedAt time.Time
	polledAt  time.Time                // fetchedAt by the monotonic clock, for the jitter
	stmts     map[string]mirror.Cached // statements fetched, by URL
	retries   map[string]*httpRetryState
	checkers  map[string]*region.PieceChecker // by pieces URL and file ID
	waits     peerWaits                       // with the network on
	deltaBase *deltaBase                      // see takeBase
	badPacks  map[string]bool                 // by URL, see badPack
}

// httpRetryState counts the refusals of one file in a row.
type httpRetryState struct {
	gen   int       // bumped when the file is to be tried again
	fails int       // refusals in a row
	next  time.Time // when gen is bumped, after a refusal
}

func newHTTPSource(name, base string, github bool) *httpSource {
	return &httpSource{
		name: name, base: base, github: github, target: target.Current(),
		f:     &mirror.Fetcher{UserAgent: "rustpatcher-go"},
		now:   time.Now,
		stmts: map[string]mirror.Cached{}, retries: map[string]*httpRetryState{}, checkers: map[string]*region.PieceChecker{},
		badPacks: map[string]bool{},
	}
}

func (s *httpSource) String() string { return s.name }

// minRefresh is how long a manifest fetched is used without asking again:
// one poll reads statements and releases from one fetch.
const minRefresh = time.Second

// refresh fetches the manifest unless it was fetched within minRefresh,
// conditionally, after the jitter, and returns it with the URL of the
// directory of the files it names.
func (s *httpSource) refresh(ctx context.Context) (manifest.PatchInfo, string, error) {
	s.mu.Lock()
	prev, at := s.man, s.fetchedAt
	s.mu.Unlock()
	if prev != nil && s.now().Sub(at) < minRefresh {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.info, s.dir, nil
	}
	if !at.IsZero() {
		s.mu.Lock()
		since := time.Since(s.polledAt) // by the monotonic clock
		s.mu.Unlock()
		if err := sleep(ctx, jitter(since)); err != nil {
			return manifest.PatchInfo{}, "", err
		}
	}
	name := manifest.Name(s.target)
	c, changed, err := s.f.Small(ctx, s.base+name, manifest.MaxSize, prev)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetchedAt, s.polledAt = s.now(), time.Now()
	if err != nil {
		if errors.Is(err, mirror.ErrNotFound) {
			s.man, s.info = nil, manifest.PatchInfo{}
			return manifest.PatchInfo{}, "", fmt.Errorf("%s has no release for %s: %w", s.name, s.target, err)
		}
		return manifest.PatchInfo{}, "", err
	}
	if !changed {
		s.man = &c
		return s.info, s.dir, nil
	}
	pi, err := manifest.Read(bytes.NewReader(c.Body))
	if err != nil {
		return manifest.PatchInfo{}, "", fmt.Errorf("%s: manifest %s: %w", s.name, name, err)
	}
	if prev == nil || !bytes.Equal(prev.Body, c.Body) {
		// A new manifest: whatever was refused may be fixed. (A server
		// without validators answers 200 with the same manifest.)
		clear(s.retries)
	}
	s.man, s.info, s.dir = &c, pi, s.filesDir(c.Via, name)
	return pi, s.dir, nil
}

// filesDir returns the URL of the directory of the files a manifest names:
// the manifest's own, or for GitHub the release the latest link led to
// (.../releases/download/TAG/), so that every file comes from one release.
func (s *httpSource) filesDir(via []*url.URL, name string) string {
	if s.github {
		for _, u := range via[min(1, len(via)):] {
			if dir, ok := strings.CutSuffix(u.Path, "/"+name); ok && strings.Contains(dir, "/releases/download/") && u.RawQuery == "" {
				v := *u
				v.Path, v.RawPath = dir+"/", ""
				return v.String()
			}
		}
	}
	return s.base
}

// jitter returns a random delay of up to a tenth of since, at most 30 s.
func jitter(since time.Duration) time.Duration {
	m := min(since/10, 30*time.Second)
	if m <= 0 {
		return 0
	}
	return rand.N(m)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// fileURL returns the URL of the file name in dir, refusing anything but
// a plain file name.
func fileURL(dir, name string) (string, error) {
	if name == "" || len(name) > maxFileNameLen || name == "." || name == ".." || strings.ContainsAny(name, "/\\?#%") || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("the manifest names the file %q: want a plain file name", name)
	}
	return dir + url.PathEscape(name), nil
}

// Releases returns the release the manifest of the running target
// describes, if any.
func (s *httpSource) Releases(ctx context.Context) ([]Release, error) {
	offers, err := s.offers(ctx)
	if err != nil {
		return nil, err
	}
	var out []Release
	for _, o := range offers {
		out = append(out, o.Release)
	}
	return out, nil
}

// offers is Releases, vouching for the pieces of a release whose manifest
// names its piece hashes (see verifiesPieces).
func (s *httpSource) offers(ctx context.Context) ([]offer, error) {
	pi, dir, err := s.refresh(ctx)
	if err != nil {
		return nil, err
	}
	in, err := pi.Info()
	if err != nil {
		return nil, fmt.Errorf("%s: manifest %s: %w", s.name, manifest.Name(s.target), err)
	}
	bin, err := fileURL(dir, pi.Asset)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	r := &httpRelease{src: s, in: in, url: bin, size: pi.FileSize, packs: packsOf(pi, dir)}
	if r.size == 0 {
		r.size = in.ContentLen()
	}
	if pi.FileID != "" {
		if b, err := hex.DecodeString(pi.FileID); err == nil && len(b) == sha256.Size {
			copy(r.id[:], b)
		} else {
			return nil, fmt.Errorf("%s: manifest %s: malformed file_id %q", s.name, manifest.Name(s.target), pi.FileID)
		}
	}
	if pi.Pieces != "" && in.Format == region.V1 {
		if r.pieces, err = fileURL(dir, pi.Pieces); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	s.mu.Lock()
	r.gen = s.retryGen(bin)
	s.mu.Unlock()
	return []offer{{Release: r, piecesVerified: r.verifiesPieces()}}, nil
}

// retryGen returns the generation of the file at u, bumping it when the
// file was refused and its retry time has come. s.mu is held.
func (s *httpSource) retryGen(u string) int {
	st := s.retries[u]
	if st == nil {
		return 0
	}
	if !st.next.IsZero() && !s.now().Before(st.next) {
		st.gen++
		st.next = time.Time{}
	}
	return st.gen
}

// rejected is told that the engine refused the file at u: it is fetched
// again after a while, longer after each refusal in a row.
func (s *httpSource) rejected(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.retries[u]
	if st == nil {
		if len(s.retries) >= maxRemembered {
			clear(s.retries)
		}
		st = &httpRetryState{}
		s.retries[u] = st
	}
	st.fails++
	d := httpRetryMin << min(st.fails-1, 20)
	if d <= 0 || d > httpRetryMax {
		d = httpRetryMax
	}
	st.next = s.now().Add(d)
}

// rotations reads the key rotation statements the manifest names.
func (s *httpSource) rotations(ctx context.Context) ([]rotation.Statement, error) {
	pi, dir, err := s.refresh(ctx)
	if err != nil {
		return nil, err
	}
	var out []rotation.Statement
	var errs []error
	for i, name := range pi.Statements {
		if i == maxStatements {
			errs = append(errs, fmt.Errorf("%s: the manifest names more than %d statements; the rest are ignored", s.name, maxStatements))
			break
		}
		if !strings.HasSuffix(name, rotation.FileSuffix) {
			continue
		}
		u, err := fileURL(dir, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			continue
		}
		b, err := s.statement(ctx, u, rotation.MaxSize)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st, err := rotation.Parse(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", s.name, name, err))
			continue
		}
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}

// rollouts reads the rollout statement of the running target, the file
// <os>-<arch>.rollout (rollout.FileName, as rpsign rollout --out writes
// it and rpseed --github reads it) in the directory of the files the
// manifest names, whether or not the manifest names it: the owner halts
// or yanks by putting a new statement there (in a mirror's directory, or
// attached to the latest GitHub release), with no new manifest. The
// engine checks it (rollout.Check). A directory without one has none.
func (s *httpSource) rollouts(ctx context.Context) ([]rollout.Statement, error) {
	_, dir, err := s.refresh(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		dir = s.base // the statement may be there without a release
	}
	name := rollout.FileName(s.target.String())
	u, err := fileURL(dir, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	b, err := s.statement(ctx, u, rollout.MaxSize)
	if errors.Is(err, mirror.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", s.name, name, err)
	}
	st, err := rollout.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", s.name, name, err)
	}
	return []rollout.Statement{st}, nil
}

// statement fetches the statement at u, conditionally when it was fetched
// before.
func (s *httpSource) statement(ctx context.Context, u string, max int64) ([]byte, error) {
	s.mu.Lock()
	prev, ok := s.stmts[u]
	s.mu.Unlock()
	var pp *mirror.Cached
	if ok {
		pp = &prev
	}
	c, _, err := s.f.Small(ctx, u, max, pp)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.stmts) >= maxStatements {
		clear(s.stmts)
	}
	s.stmts[u] = c
	s.mu.Unlock()
	return c.Body, nil
}

// checker returns the checker of the pieces of r's file, fetching its
// piece hashes unless they were fetched before.
func (s *httpSource) checker(ctx context.Context, r *httpRelease) (*region.PieceChecker, error) {
	key := r.pieces + "\x00" + hex.EncodeToString(r.id[:])
	s.mu.Lock()
	c := s.checkers[key]
	s.mu.Unlock()
	if c != nil {
		return c, nil
	}
	got, _, err := s.f.Small(ctx, r.pieces, mirror.PiecesSize(r.in.ContentLen()), nil)
	if err != nil {
		return nil, err
	}
	c, err = mirror.ParsePieces(got.Body, r.in, r.size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.pieces, err)
	}
	s.mu.Lock()
	if len(s.checkers) >= 16 {
		clear(s.checkers)
	}
	s.checkers[key] = c
	s.mu.Unlock()
	return c, nil
}

// preferPeers makes the source give way to the network (see
// fallbackSource).
func (s *httpSource) preferPeers(wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits.wait = wait
}

func (s *httpSource) fallback() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waits.wait > 0
}

func (s *httpSource) due(in region.Info, peerSince time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waits.due(in, peerSince, s.now())
}

// httpRelease is the release a manifest describes, its binary at url.
type httpRelease struct {
	src    *httpSource
	in     region.Info
	url    string
	pieces string // URL of its piece hashes, or empty
	packs  []httpPack
	size   int64
	id     [sha256.Size]byte
	gen    int // see httpSource.retryGen
}

func (r *httpRelease) Info() region.Info         { return r.in }
func (r *httpRelease) FileID() [sha256.Size]byte { return r.id }
func (r *httpRelease) Size() int64               { return r.size }

// String names the file, so logs say which file was refused.
func (r *httpRelease) String() string { return r.url }

// identity changes once a file refused may be tried again.
func (r *httpRelease) identity() string { return fmt.Sprintf("%s\x00%d", r.url, r.gen) }

// verifiesPieces reports whether Open's readers check every piece of the
// content against the signed root as it arrives: a v1 release whose
// manifest names its piece hashes.
func (r *httpRelease) verifiesPieces() bool {
	return r.in.Format == region.V1 && r.pieces != ""
}

// Reject is told that the engine refused the bytes: the file is fetched
// again only after a while.
func (r *httpRelease) Reject(error) { r.src.rejected(r.url) }

// Open returns the file from offset on: a Range request from the start of
// offset's piece, each piece checked before it is handed on; from the
// start, decoded from a pack of the release when it has one to use (see
// openPacked).
func (r *httpRelease) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	if offset < 0 || offset > r.size {
		return nil, fmt.Errorf("%s: offset %d outside 0..%d", r.url, offset, r.size)
	}
	// At most one byte more than the file: the engine refuses a file that
	// goes on (errTooLong), and reads nothing further.
	if !r.verifiesPieces() {
		return r.src.f.Open(ctx, r.url, offset, r.size-offset+1, r.size)
	}
	c, err := r.src.checker(ctx, r)
	if err != nil {
		return nil, err
	}
	if offset == 0 {
		if rc := r.openPacked(ctx, c); rc != nil {
			return rc, nil
		}
	}
	start := mirror.PieceStart(offset, r.in.ContentLen())
	body, err := r.src.f.Open(ctx, r.url, start, r.size-start+1, r.size)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{mirror.NewPieceReader(body, c, r.in.ContentLen(), offset), body}, nil
}
