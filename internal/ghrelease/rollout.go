package ghrelease

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// RolloutName returns the name of the release asset that holds the rollout
// statement of target t, such as linux-amd64.rollout (see
// rollout.FileName).
func RolloutName(t target.Target) string { return rollout.FileName(t.String()) }

// updateRollout looks for the rollout statement of target t among the
// assets named RolloutName(t) of rels, and puts the one with the highest
// sequence that is signed by pub, for t, and fresh into Dir under the same
// name, unless the one there is as new. A statement asset that is too
// large, malformed, forged, for another target or key, or expired is
// logged once and not read again; an older one than Dir's is ignored.
func (p *Poller) updateRollout(ctx context.Context, rels []*github.RepositoryRelease, t target.Target, pub ed25519.PublicKey) error {
	var best *rollout.Statement
	var bestAsset *github.ReleaseAsset
	for _, rel := range rels {
		if rel.GetDraft() {
			continue
		}
		for _, a := range rel.Assets {
			if a.GetName() != RolloutName(t) || p.rejected[a.GetID()] {
				continue
			}
			st, err := p.readRollout(ctx, a)
			var dl *downloadError
			if errors.As(err, &dl) {
				p.etag = "" // try again next poll
				p.log().Warn("reading rollout statement failed", "repo", p.Repo.String(), "tag", rel.GetTagName(), "asset", a.GetName(), "err", err)
				continue
			}
			if err == nil {
				_, err = rollout.Check(nil, st, pub, t.String(), p.clock())
			}
			if err != nil {
				p.rejected[a.GetID()] = true
				p.log().Error("rollout statement rejected, not serving it", "repo", p.Repo.String(), "tag", rel.GetTagName(), "asset", a.GetName(), "err", err)
				continue
			}
			if best == nil || st.Sequence > best.Sequence {
				best, bestAsset = &st, a
			}
		}
	}
	if best == nil {
		return nil
	}
	dst := filepath.Join(p.Dir, RolloutName(t))
	var held *rollout.Statement
	if f, err := os.Open(dst); err == nil {
		h, err := rollout.Read(f)
		f.Close()
		if err == nil && h.Verify() == nil {
			held = &h
		}
	}
	newer, err := rollout.Check(held, *best, pub, t.String(), p.clock())
	if err != nil || !newer {
		if err != nil && !p.rejected[bestAsset.GetID()] {
			p.rejected[bestAsset.GetID()] = true
			p.log().Warn("rollout statement on GitHub not newer than the one held, not serving it", "repo", p.Repo.String(), "asset", bestAsset.GetName(), "err", err)
		}
		return nil
	}
	if err := rollout.WriteFile(dst, *best); err != nil {
		return err
	}
	p.log().Info("rollout statement placed", "repo", p.Repo.String(), "target", t.String(), "sequence", best.Sequence,
		"owner", region.EncodePublicKey(pub), "path", dst)
	return nil
}

// readRollout downloads and parses a statement asset, at most
// rollout.MaxSize bytes; statements read are kept by asset ID.
func (p *Poller) readRollout(ctx context.Context, a *github.ReleaseAsset) (rollout.Statement, error) {
	if st, ok := p.statements[a.GetID()]; ok {
		return st, nil
	}
	if a.GetSize() > rollout.MaxSize {
		return rollout.Statement{}, fmt.Errorf("%d bytes, more than a statement's %d", a.GetSize(), rollout.MaxSize)
	}
	rc, err := p.download(ctx, a)
	if err != nil {
		return rollout.Statement{}, err
	}
	defer rc.Close()
	st, err := rollout.Read(rc)
	if err == nil {
		p.statements[a.GetID()] = st
	}
	return st, err
}

// PublishRollouts attaches the rollout statement files at paths to the
// release of tag, creating the release if there is none, each as the asset
// RolloutName of its target, replacing the asset there. Each file must
// hold a statement that verifies and is fresh.
func (p *Publisher) PublishRollouts(ctx context.Context, tag string, paths []string) error {
	if tag == "" {
		return fmt.Errorf("publishing to %s: no release tag", p.Repo)
	}
	type stmt struct{ path, name string }
	var stmts []stmt
	names := map[string]string{}
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		st, err := rollout.Read(f)
		f.Close()
		if err == nil {
			_, err = rollout.Check(nil, st, st.Key, st.Target, time.Now())
		}
		if err != nil {
			return fmt.Errorf("publishing %s: %w", path, err)
		}
		name := rollout.FileName(st.Target)
		if prev, ok := names[name]; ok {
			return fmt.Errorf("publishing %s and %s: both are statements of %s", prev, path, st.Target)
		}
		names[name] = path
		stmts = append(stmts, stmt{path, name})
	}
	rel, err := p.release(ctx, tag)
	if err != nil {
		return err
	}
	existing, err := p.assets(ctx, rel.GetID())
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if err := p.replace(ctx, rel, existing, s.path, s.name, "text/plain"); err != nil {
			return err
		}
	}
	return nil
}

// LatestTag returns the tag of repo's latest release, the one GitHub's
// releases/latest links (and so the github: form of HTTPS sources) read:
// "" when there is none (every release a draft or a pre-release).
func LatestTag(ctx context.Context, c *github.Client, repo Repo) (string, error) {
	rel, _, err := c.Repositories.GetLatestRelease(ctx, repo.Owner, repo.Name)
	if statusCode(err) == http.StatusNotFound {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the latest release of %s: %w", repo, err)
	}
	return rel.GetTagName(), nil
}

// releasesSearched is how many of the newest releases FindRollout looks at.
const releasesSearched = 30

// FindRollout returns the statement of target t with the highest sequence
// among the assets named RolloutName(t) of the newest releases of repo
// that verify (with the key each names: the caller checks whose key it is),
// nil when none does, and the tag of the newest release that is not a
// draft, where the next statement belongs: seeds read the statements of
// the newest releases only. Assets that are too large or do not verify are
// skipped.
func FindRollout(ctx context.Context, c *github.Client, repo Repo, t target.Target) (*rollout.Statement, string, error) {
	rels, _, err := c.Repositories.ListReleases(ctx, repo.Owner, repo.Name, &github.ListOptions{PerPage: releasesSearched})
	if err != nil {
		return nil, "", fmt.Errorf("listing releases of %s: %w", repo, err)
	}
	p := &Poller{Client: c, Repo: repo, statements: map[int64]rollout.Statement{}}
	var best *rollout.Statement
	newest := ""
	for _, rel := range rels {
		if rel.GetDraft() {
			continue
		}
		if newest == "" {
			newest = rel.GetTagName()
		}
		for _, a := range rel.Assets {
			if a.GetName() != RolloutName(t) {
				continue
			}
			st, err := p.readRollout(ctx, a)
			var dl *downloadError
			if errors.As(err, &dl) {
				return nil, "", err
			}
			if err != nil || st.Verify() != nil || st.Target != t.String() {
				continue
			}
			if best == nil || st.Sequence > best.Sequence {
				best = &st
			}
		}
	}
	return best, newest, nil
}
