package ghrelease

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http"
	"time"

	"github.com/org/rustpatcher-go/internal/target"
)

// SeedConfig configures a Poller for a seed node (rpseed --github).
type SeedConfig struct {
	// Repo is "OWNER/REPO".
	Repo string
	// APIURL is the GitHub REST API's base URL; empty means GitHub's.
	APIURL string
	// Token, if not empty, authenticates the requests (a higher rate
	// limit, private repositories). It is never logged.
	Token string
	// Keys are the owner public keys by target, as "os/arch".
	Keys map[string]ed25519.PublicKey
	// Dir is the seed's release directory.
	Dir string
	// Interval is the time between polls; zero means 5 minutes.
	Interval time.Duration
	// Log receives progress; nil means slog.Default().
	Log *slog.Logger
}

// NewSeedPoller returns a Poller that keeps the newest verified release of
// each configured target of c.Repo in c.Dir.
func NewSeedPoller(c SeedConfig) (*Poller, error) {
	repo, err := ParseRepo(c.Repo)
	if err != nil {
		return nil, err
	}
	keys := make(map[target.Target]ed25519.PublicKey, len(c.Keys))
	for s, k := range c.Keys {
		t, err := target.Parse(s)
		if err != nil {
			return nil, err
		}
		keys[t] = k
	}
	gc, err := NewClient(ClientConfig{
		HTTPClient: &http.Client{Timeout: time.Hour}, // bounds a stalled download too
		Token:      c.Token,
		APIURL:     c.APIURL,
	})
	if err != nil {
		return nil, err
	}
	return &Poller{Client: gc, Repo: repo, Keys: keys, Dir: c.Dir, Interval: c.Interval, Log: c.Log}, nil
}

// Start runs p in a new goroutine until ctx is done. The returned function
// waits for it to stop.
func (p *Poller) Start(ctx context.Context) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.log().Info("following GitHub releases", "repo", p.Repo.String(), "targets", len(p.Keys), "dir", p.Dir)
		p.Run(ctx)
	}()
	return func() { <-done }
}
