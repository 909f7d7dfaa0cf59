package ghrelease

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/google/go-github/v60/github"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// A Publisher attaches signed binaries and their manifests to GitHub
// releases.
type Publisher struct {
	// Client talks to the GitHub API; it needs a token with contents:write.
	Client *github.Client
	// Repo is the repository whose releases are published to.
	Repo Repo
	// Log receives progress; nil means slog.Default().
	Log *slog.Logger
	// Progress, if set, is called while an asset uploads, as its bytes are
	// read: with the asset's name, the bytes read so far and its size.
	Progress func(asset string, sent, size int64)
	// Statements are statement files (see IsStatement), such as key
	// rotations, to attach next to the binaries and name in every
	// manifest.
	Statements []string
	// Packs, unless nil, asks for packed frames of each v1 binary (see
	// Packs; its Dir is ignored: Publish writes them to a directory of its
	// own, removed once they are uploaded).
	Packs *Packs
}

// A Signed is one signed binary to publish.
type Signed struct {
	// Path is the binary's local path.
	Path string
	// Name is the release asset's name; empty means filepath.Base(Path).
	Name string
	// Target is the binary's GOOS/GOARCH.
	Target target.Target
	// Info is the binary's signed region.
	Info region.Info
	// PublicKey is the key that Info verifies with.
	PublicKey ed25519.PublicKey
}

func (s Signed) assetName() string {
	if s.Name != "" {
		return s.Name
	}
	return filepath.Base(s.Path)
}

// maxAssetPages bounds the pagination over a release's assets.
const maxAssetPages = 50

// Publish attaches the assets that Layout lays out for the binaries and
// p.Statements (each binary, its piece hashes, the statements, and each
// target's manifest, see PatchInfo) to the release of tag, creating the
// release if there is none. An asset that already has the same name is
// deleted and uploaded again, so re-running a release job replaces its
// assets. Manifests are uploaded last, so a reader that sees a manifest
// finds what it names.
func (p *Publisher) Publish(ctx context.Context, tag string, files []Signed) (*github.RepositoryRelease, error) {
	if tag == "" {
		return nil, fmt.Errorf("publishing to %s: no release tag", p.Repo)
	}
	dir, err := os.MkdirTemp("", "rpsign-manifests-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var packs *Packs
	if p.Packs != nil {
		packs = &Packs{Dir: dir, Compress: p.Packs.Compress, Bases: p.Packs.Bases}
	}
	assets, err := Layout(ctx, files, p.Statements, packs)
	if err != nil {
		return nil, err
	}
	for i, a := range assets {
		if a.Path == "" {
			if err := WriteDir(dir, assets[i:i+1]); err != nil {
				return nil, err
			}
			assets[i].Path = filepath.Join(dir, a.Name)
		}
	}

	rel, err := p.release(ctx, tag)
	if err != nil {
		return nil, err
	}
	existing, err := p.assets(ctx, rel.GetID())
	if err != nil {
		return nil, err
	}
	for _, a := range assets {
		if err := p.replace(ctx, rel, existing, a.Path, a.Name, a.MediaType); err != nil {
			return nil, err
		}
	}
	return rel, nil
}

func (p *Publisher) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

// release returns the release of tag, creating it when it does not exist.
func (p *Publisher) release(ctx context.Context, tag string) (*github.RepositoryRelease, error) {
	rel, _, err := p.Client.Repositories.GetReleaseByTag(ctx, p.Repo.Owner, p.Repo.Name, tag)
	if err == nil {
		return rel, nil
	}
	if statusCode(err) != http.StatusNotFound {
		return nil, fmt.Errorf("getting the release of tag %s in %s: %w", tag, p.Repo, err)
	}
	rel, _, err = p.Client.Repositories.CreateRelease(ctx, p.Repo.Owner, p.Repo.Name, &github.RepositoryRelease{
		TagName: github.String(tag),
		Name:    github.String(tag),
	})
	if err == nil {
		p.log().Info("created release", "repo", p.Repo.String(), "tag", tag)
		return rel, nil
	}
	if statusCode(err) == http.StatusUnprocessableEntity {
		// Another job created it meanwhile.
		rel, _, err2 := p.Client.Repositories.GetReleaseByTag(ctx, p.Repo.Owner, p.Repo.Name, tag)
		if err2 == nil {
			return rel, nil
		}
	}
	return nil, fmt.Errorf("creating the release of tag %s in %s: %w", tag, p.Repo, err)
}

// assets lists the release's assets by name.
func (p *Publisher) assets(ctx context.Context, id int64) (map[string]*github.ReleaseAsset, error) {
	m := make(map[string]*github.ReleaseAsset)
	opt := &github.ListOptions{PerPage: 100}
	for range maxAssetPages {
		as, resp, err := p.Client.Repositories.ListReleaseAssets(ctx, p.Repo.Owner, p.Repo.Name, id, opt)
		if err != nil {
			return nil, fmt.Errorf("listing the assets of release %d in %s: %w", id, p.Repo, err)
		}
		for _, a := range as {
			m[a.GetName()] = a
		}
		if resp.NextPage == 0 {
			return m, nil
		}
		opt.Page = resp.NextPage
	}
	return nil, fmt.Errorf("listing the assets of release %d in %s: more than %d pages", id, p.Repo, maxAssetPages)
}

// replace uploads the file at path as the asset name, deleting an existing
// asset of that name first. If the upload still meets a same-name asset (a
// concurrent job), it deletes that one and tries once more.
func (p *Publisher) replace(ctx context.Context, rel *github.RepositoryRelease, existing map[string]*github.ReleaseAsset, path, name, mediaType string) error {
	for attempt := 0; ; attempt++ {
		if a, ok := existing[name]; ok {
			_, err := p.Client.Repositories.DeleteReleaseAsset(ctx, p.Repo.Owner, p.Repo.Name, a.GetID())
			if err != nil && statusCode(err) != http.StatusNotFound {
				return fmt.Errorf("replacing release asset %s of %s %s: deleting the old one: %w", name, p.Repo, rel.GetTagName(), err)
			}
			p.log().Info("deleted existing release asset", "asset", name, "tag", rel.GetTagName())
			delete(existing, name)
		}
		err := p.upload(ctx, rel.GetID(), path, name, mediaType)
		if err == nil {
			p.log().Info("uploaded release asset", "file", path, "asset", name, "tag", rel.GetTagName())
			return nil
		}
		if statusCode(err) != http.StatusUnprocessableEntity || attempt > 0 {
			return fmt.Errorf("uploading %s as release asset %s of %s %s: %w", path, name, p.Repo, rel.GetTagName(), err)
		}
		m, lerr := p.assets(ctx, rel.GetID())
		if lerr != nil {
			return lerr
		}
		if _, ok := m[name]; !ok {
			return fmt.Errorf("uploading %s as release asset %s of %s %s: %w", path, name, p.Repo, rel.GetTagName(), err)
		}
		existing[name] = m[name]
	}
}

func (p *Publisher) upload(ctx context.Context, id int64, path, name, mediaType string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var body io.Reader = f
	if p.Progress != nil {
		body = &progressReader{r: f, name: name, size: st.Size(), report: p.Progress}
		p.Progress(name, 0, st.Size())
	}
	// As Repositories.UploadReleaseAsset, which takes only an *os.File.
	u := fmt.Sprintf("repos/%s/%s/releases/%d/assets?%s", p.Repo.Owner, p.Repo.Name, id, url.Values{"name": {name}}.Encode())
	req, err := p.Client.NewUploadRequest(u, body, st.Size(), mediaType)
	if err != nil {
		return err
	}
	_, err = p.Client.Do(ctx, req, new(github.ReleaseAsset))
	return err
}

// progressReader reports the bytes read through it.
type progressReader struct {
	r      io.Reader
	name   string
	sent   int64
	size   int64
	report func(asset string, sent, size int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.sent += int64(n)
		p.report(p.name, p.sent, p.size)
	}
	return n, err
}
