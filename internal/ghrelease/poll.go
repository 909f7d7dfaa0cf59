package ghrelease

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/org/rustpatcher-go/internal/backoff"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// A Verified is a release binary that a Poller downloaded and verified.
type Verified struct {
	// Target is the binary's GOOS/GOARCH.
	Target target.Target
	// Path is where the verified binary now is, in the Poller's Dir.
	Path string
	// Info is the binary's signed region, verified with the target's key.
	Info region.Info
	// Tag is the release tag it came from.
	Tag string
}

// A Poller follows the releases of a GitHub repository and keeps the newest
// verified binary of each configured target in a directory, for a seed node
// to serve.
//
// Each poll lists the newest releases with a conditional request
// (If-None-Match with the last ETag), so an unchanged poll is answered 304
// and does not count against the rate limit. It backs off on rate limits
// (X-RateLimit-Remaining and X-RateLimit-Reset, 403 and 429, Retry-After).
// For each target with a key, it also puts the newest fresh rollout
// statement signed by the key among the releases' assets named
// <os>-<arch>.rollout into Dir (see RolloutName), for the seed to serve.
// For each target with a key, it reads the target's manifest
// (rustpatcher-<os>-<arch>.json, see PatchInfo) from each release, checks
// its signature, and downloads the binary of the newest version above the
// one it has, streaming to a temporary file in Dir. Only a binary that
// region.VerifyFile accepts with the target's key, and that carries the
// manifest's version, is renamed into place as Dir/<os>-<arch>-<version>;
// anything else is logged and deleted, and never served.
//
// A Poller is used by one goroutine: Run, or Poll in a loop.
type Poller struct {
	// Client talks to the GitHub API.
	Client *github.Client
	// Repo is the repository whose releases are followed.
	Repo Repo
	// Keys holds the owner public key of each target to follow. Targets
	// without a key are ignored.
	Keys map[target.Target]ed25519.PublicKey
	// Dir is where verified binaries are placed; it must exist.
	Dir string
	// Interval is the time between polls; zero means 5 minutes.
	Interval time.Duration
	// Prereleases makes the poller consider GitHub pre-releases too.
	Prereleases bool
	// MaxSize bounds a binary's size; zero means 1 GiB.
	MaxSize int64
	// Log receives progress and rejections; nil means slog.Default().
	Log *slog.Logger
	// OnVerified, if set, is called with each binary after it is in place
	// (and with a binary already in Dir on the first poll that finds it).
	OnVerified func(ctx context.Context, v Verified) error

	etag       string
	have       map[target.Target]string    // newest version in place, per target
	rejected   map[int64]bool              // asset IDs whose binary or manifest failed
	read       map[int64]PatchInfo         // manifests read, by asset ID
	statements map[int64]rollout.Statement // rollout statements read, by asset ID
	failures   int                         // consecutive failed polls, for backoff
	now        func() time.Time
}

// Releases listed per poll: a new release is always among the newest.
const releasesPerPoll = 10

// Run polls until ctx is done and returns ctx's error. Errors of single
// polls are logged and retried with backoff.
func (p *Poller) Run(ctx context.Context) error {
	for {
		wait, err := p.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p.log().Warn("polling GitHub releases failed", "repo", p.Repo.String(), "err", err, "retry_in", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Poll polls once and returns how long to wait before the next poll: the
// Interval, or longer when rate limited or after failures.
func (p *Poller) Poll(ctx context.Context) (time.Duration, error) {
	if p.have == nil {
		p.have = make(map[target.Target]string)
		p.rejected = make(map[int64]bool)
		p.read = make(map[int64]PatchInfo)
		p.statements = make(map[int64]rollout.Statement)
	}
	rels, resp, err := p.list(ctx)
	if err != nil {
		p.failures++
		return p.backoff(resp), err
	}
	p.failures = 0
	wait := p.interval()
	if d, ok := p.rateWait(resp); ok {
		wait = max(wait, d)
	}
	if rels == nil { // 304 Not Modified
		p.log().Debug("releases unchanged", "repo", p.Repo.String())
		return wait, nil
	}
	var errs []error
	for t, pub := range p.Keys {
		if err := p.update(ctx, rels, t, pub); err != nil {
			errs = append(errs, err)
		}
		if err := p.updateRollout(ctx, rels, t, pub); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Poll everything again next time, even if nothing changed.
		p.etag = ""
	}
	return wait, errors.Join(errs...)
}

// rejectedError marks a release binary that failed verification: it is never
// downloaded again.
type rejectedError struct{ err error }

func (e *rejectedError) Error() string { return e.err.Error() }
func (e *rejectedError) Unwrap() error { return e.err }

// list fetches the newest releases. It returns nil releases and no error
// when the server answers 304 Not Modified.
func (p *Poller) list(ctx context.Context) ([]*github.RepositoryRelease, *github.Response, error) {
	u := fmt.Sprintf("repos/%s/%s/releases?per_page=%d", p.Repo.Owner, p.Repo.Name, releasesPerPoll)
	req, err := p.Client.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	if p.etag != "" {
		req.Header.Set("If-None-Match", p.etag)
	}
	var rels []*github.RepositoryRelease
	resp, err := p.Client.Do(ctx, req, &rels)
	if resp != nil && resp.StatusCode == http.StatusNotModified {
		return nil, resp, nil
	}
	if err != nil {
		return nil, resp, fmt.Errorf("listing releases of %s: %w", p.Repo, err)
	}
	if rels == nil {
		rels = []*github.RepositoryRelease{}
	}
	p.etag = resp.Header.Get("ETag")
	return rels, resp, nil
}

func (p *Poller) interval() time.Duration {
	if p.Interval > 0 {
		return p.Interval
	}
	return 5 * time.Minute
}

func (p *Poller) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// Backoff bounds.
const (
	minBackoff = time.Minute
	maxBackoff = time.Hour
)

// rateWait returns how long the rate limit headers of resp ask to wait, if
// they do: Retry-After, or until X-RateLimit-Reset when
// X-RateLimit-Remaining is 0.
func (p *Poller) rateWait(resp *github.Response) (time.Duration, bool) {
	if resp == nil || resp.Response == nil {
		return 0, false
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			return min(time.Duration(n)*time.Second, maxBackoff), true
		}
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		if n, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			d := time.Unix(n, 0).Sub(p.clock()) + time.Second
			return min(max(d, time.Second), maxBackoff), true
		}
	}
	return 0, false
}

// backoff returns the wait after a failed poll whose response was resp.
func (p *Poller) backoff(resp *github.Response) time.Duration {
	if d, ok := p.rateWait(resp); ok {
		return d
	}
	d := p.interval()
	if resp != nil && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusTooManyRequests) {
		// A secondary rate limit without Retry-After: GitHub asks for at
		// least a minute, growing exponentially.
		d = max(d, minBackoff)
	}
	return backoff.Policy{Base: d, Max: maxBackoff}.Delay(max(p.failures, 1), nil)
}

func (p *Poller) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

// candidate is a manifest whose signature verified.
type candidate struct {
	tag   string
	info  region.Info
	asset *github.ReleaseAsset // the binary
}

// update brings target t up to the newest verified release in rels.
func (p *Poller) update(ctx context.Context, rels []*github.RepositoryRelease, t target.Target, pub ed25519.PublicKey) error {
	var cands []candidate
	for _, rel := range rels {
		if rel.GetDraft() || rel.GetPrerelease() && !p.Prereleases {
			continue
		}
		c, ok := p.candidate(ctx, rel, t, pub)
		if ok && region.CompareVersions(c.info.Version, p.have[t]) > 0 {
			cands = append(cands, c)
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		return -region.CompareVersions(a.info.Version, b.info.Version)
	})
	for _, c := range cands {
		v, err := p.fetch(ctx, t, pub, c)
		if err == nil {
			return p.placed(ctx, v)
		}
		var rej *rejectedError
		if !errors.As(err, &rej) {
			return fmt.Errorf("%s %s for %s: %w", p.Repo, c.tag, t, err)
		}
		p.log().Error("release binary rejected, not serving it", "repo", p.Repo.String(), "tag", c.tag,
			"asset", c.asset.GetName(), "target", t.String(), "err", err)
	}
	return nil
}

// candidate reads and checks release rel's manifest for t.
func (p *Poller) candidate(ctx context.Context, rel *github.RepositoryRelease, t target.Target, pub ed25519.PublicKey) (candidate, bool) {
	var man, bin *github.ReleaseAsset
	for _, a := range rel.Assets {
		if a.GetName() == ManifestName(t) {
			man = a
		}
	}
	if man == nil || p.rejected[man.GetID()] {
		return candidate{}, false
	}
	pi, err := p.readManifest(ctx, man)
	var dl *downloadError
	if errors.As(err, &dl) {
		// Transient: try again on the next poll.
		p.etag = ""
		p.log().Warn("reading release manifest failed", "repo", p.Repo.String(), "tag", rel.GetTagName(),
			"asset", man.GetName(), "err", err)
		return candidate{}, false
	}
	if err == nil {
		for _, a := range rel.Assets {
			if a.GetName() == pi.Asset {
				bin = a
			}
		}
		switch {
		case pi.Target != t.String():
			err = fmt.Errorf("manifest is for target %q", pi.Target)
		case bin == nil:
			err = fmt.Errorf("manifest names asset %q, which the release does not have", pi.Asset)
		}
	}
	var in region.Info
	if err == nil {
		in, err = pi.Verify(pub)
	}
	if err != nil {
		p.rejected[man.GetID()] = true
		p.log().Error("release manifest rejected", "repo", p.Repo.String(), "tag", rel.GetTagName(),
			"asset", man.GetName(), "err", err)
		return candidate{}, false
	}
	if bin == nil || p.rejected[bin.GetID()] {
		return candidate{}, false
	}
	return candidate{tag: rel.GetTagName(), info: in, asset: bin}, true
}

func (p *Poller) readManifest(ctx context.Context, a *github.ReleaseAsset) (PatchInfo, error) {
	if pi, ok := p.read[a.GetID()]; ok {
		return pi, nil
	}
	if a.GetSize() > maxManifestSize {
		return PatchInfo{}, fmt.Errorf("manifest is %d bytes, more than %d", a.GetSize(), maxManifestSize)
	}
	rc, err := p.download(ctx, a)
	if err != nil {
		return PatchInfo{}, err
	}
	defer rc.Close()
	pi, err := ReadPatchInfo(rc)
	if err == nil {
		// An asset's ID changes when it is replaced, so its content does not.
		p.read[a.GetID()] = pi
	}
	return pi, err
}

func (p *Poller) download(ctx context.Context, a *github.ReleaseAsset) (io.ReadCloser, error) {
	// GitHub answers with a redirect to a signed URL on another host: follow
	// it with a plain client, so the token is not sent there.
	plain := &http.Client{Timeout: time.Hour}
	rc, _, err := p.Client.Repositories.DownloadReleaseAsset(ctx, p.Repo.Owner, p.Repo.Name, a.GetID(), plain)
	if err != nil {
		return nil, &downloadError{fmt.Errorf("downloading release asset %s: %w", a.GetName(), err)}
	}
	return rc, nil
}

// downloadError is a failure to download, as opposed to bad content.
type downloadError struct{ err error }

func (e *downloadError) Error() string { return e.err.Error() }
func (e *downloadError) Unwrap() error { return e.err }

// fetch downloads c's binary, verifies it and moves it into place.
func (p *Poller) fetch(ctx context.Context, t target.Target, pub ed25519.PublicKey, c candidate) (v Verified, err error) {
	name := fmt.Sprintf("%s-%s-%s", t.OS, t.Arch, c.info.Version)
	dst := filepath.Join(p.Dir, name)
	if in, err := region.VerifyFile(ctx, dst, pub); err == nil && in == c.info {
		return Verified{Target: t, Path: dst, Info: in, Tag: c.tag}, nil
	}
	reject := func(err error) (Verified, error) {
		p.rejected[c.asset.GetID()] = true
		return v, &rejectedError{err}
	}
	want := c.info.ContentLen()
	limit := cmp.Or(p.MaxSize, 1<<30)
	if want > limit {
		return reject(fmt.Errorf("signed size %d bytes is over the limit of %d", want, limit))
	}
	if a := c.asset.GetSize(); a != 0 && int64(a) != want {
		return reject(fmt.Errorf("asset is %d bytes, the signed size says %d", a, want))
	}
	tmp, err := os.CreateTemp(p.Dir, ".download-"+name+"-*")
	if err != nil {
		return v, err
	}
	defer func() {
		tmp.Close()
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	rc, err := p.download(ctx, c.asset)
	if err != nil {
		return v, err
	}
	n, err := io.Copy(tmp, io.LimitReader(rc, want+1))
	rc.Close()
	if err != nil {
		return v, fmt.Errorf("downloading release asset %s: %w", c.asset.GetName(), err)
	}
	if n != want {
		return reject(fmt.Errorf("release asset %s: got %d bytes, the signed size says %d", c.asset.GetName(), n, want))
	}
	if err := tmp.Sync(); err != nil {
		return v, err
	}
	if err := tmp.Close(); err != nil {
		return v, err
	}
	in, err := region.VerifyFile(ctx, tmp.Name(), pub)
	if err != nil {
		return reject(fmt.Errorf("release asset %s: %w", c.asset.GetName(), err))
	}
	if in != c.info {
		return reject(fmt.Errorf("release asset %s: its region (version %s) differs from its manifest (version %s)", c.asset.GetName(), in.Version, c.info.Version))
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return v, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return v, err
	}
	if d, err := os.Open(p.Dir); err == nil {
		d.Sync()
		d.Close()
	}
	p.log().Info("verified release binary", "repo", p.Repo.String(), "tag", c.tag, "target", t.String(),
		"version", in.Version, "path", dst)
	return Verified{Target: t, Path: dst, Info: in, Tag: c.tag}, nil
}

func (p *Poller) placed(ctx context.Context, v Verified) error {
	p.have[v.Target] = v.Info.Version
	if p.OnVerified != nil {
		if err := p.OnVerified(ctx, v); err != nil {
			return fmt.Errorf("seeding %s: %w", v.Path, err)
		}
	}
	return nil
}
