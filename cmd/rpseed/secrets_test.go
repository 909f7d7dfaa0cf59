package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// TestSecretsNeverLogged runs rpseed at DEBUG with --github and a token,
// then greps all it printed for its secrets: the node's identity key (as
// the file holds it, and the raw key, in hex and base64) and the token.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	srv := ghreleasetest.NewServer(t)
	const token = "ghp_rpseedsecrettoken0123456789"
	key := regiontest.NewKey(t)
	dir, state := t.TempDir(), t.TempDir()
	dropRelease(t, dir, "app-1.0.0", nil, key, "1.0.0")
	env := func(k string) string {
		switch k {
		case "STATE_DIRECTORY":
			return state
		case "GITHUB_TOKEN":
			return token
		}
		return ""
	}
	var stdout, stderr regiontest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dir", dir, "--private", "--pub", regiontest.Target + "=" + region.EncodePublicKey(key.Public),
			"--listen", "/ip4/127.0.0.1/tcp/0", "--metrics-addr", "127.0.0.1:0", "--log-level", "debug",
			"--github", "org/app", "--github-api-url", srv.URL, "--github-interval", "100ms"}, env, "", &stdout, &stderr, nil)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "rpseed running") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("rpseed did not start within 20s: %v\n%s", <-done, &stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a few polls of the releases
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("rpseed did not stop within 20s")
	}

	id, err := p2p.LoadIdentity(filepath.Join(state, "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	file, err := crypto.MarshalPrivateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := id.Raw()
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{token}
	for _, b := range [][]byte{file, raw, raw[:32]} {
		secrets = append(secrets, hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
			base64.RawURLEncoding.EncodeToString(b), string(b))
	}
	out := stdout.String() + stderr.String()
	if !strings.Contains(out, "listening: ") || !strings.Contains(out, "level=DEBUG") {
		t.Fatalf("rpseed printed less than expected:\n%s", out)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("rpseed printed a secret (%.6q…):\n%s", s, out)
		}
	}
}
