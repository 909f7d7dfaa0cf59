package ghrelease

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

func TestManifestName(t *testing.T) {
	t.Parallel()
	for _, tg := range []target.Target{{OS: "linux", Arch: "amd64"}, {OS: "darwin", Arch: "arm64"}, {OS: "windows", Arch: "386"}} {
		name := ManifestName(tg)
		if want := "rustpatcher-" + tg.OS + "-" + tg.Arch + ".json"; name != want {
			t.Errorf("ManifestName(%v) = %q, want %q", tg, name, want)
		}
		if back, ok := TargetFromManifestName(name); !ok || back != tg {
			t.Errorf("TargetFromManifestName(%q) = %v, %v; want %v", name, back, ok, tg)
		}
	}
	for _, name := range []string{"rustpatcher-linux.json", "hello-linux-amd64.json", "rustpatcher-linux-amd64.txt", "rustpatcher-LINUX-amd64.json", "rustpatcher-linux_amd64.json"} {
		if tg, ok := TargetFromManifestName(name); ok {
			t.Errorf("TargetFromManifestName(%q) = %v, want not a manifest", name, tg)
		}
	}
}

func newClient(t *testing.T, srv *ghreleasetest.Server) *github.Client {
	t.Helper()
	c, err := NewClient(ClientConfig{APIURL: srv.URL, Token: "test-token"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(c.BaseURL.String(), "/") || !strings.HasSuffix(c.UploadURL.String(), "/") {
		t.Fatalf("base URLs %s and %s lack the trailing slash", c.BaseURL, c.UploadURL)
	}
	return c
}

// testLogger logs to t's output, debug messages included.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var (
	linuxAMD64 = target.Target{OS: "linux", Arch: "amd64"}
	linuxARM64 = target.Target{OS: "linux", Arch: "arm64"}
)

const repo = "org/app"

// publish publishes signed binaries of version for the given targets to the
// release v<version> and returns their paths by target.
func publish(t *testing.T, srv *ghreleasetest.Server, keys map[target.Target]regiontest.Key, version string) map[target.Target]string {
	t.Helper()
	dir := t.TempDir()
	var files []Signed
	paths := make(map[target.Target]string)
	for tg, key := range keys {
		// Fresh bytes each time, as from a new build.
		path := filepath.Join(dir, "app_"+tg.OS+"_"+tg.Arch)
		in := regiontest.WriteBinaryFor(t, path, 4000, rand.Uint64(), key, version, tg.String())
		files = append(files, Signed{Path: path, Target: tg, Info: in, PublicKey: key.Public})
		paths[tg] = path
	}
	p := &Publisher{Client: newClient(t, srv), Repo: Repo{"org", "app"}, Log: testLogger(t)}
	if _, err := p.Publish(context.Background(), "v"+version, files); err != nil {
		t.Fatal(err)
	}
	return paths
}

// TestPublish runs Publisher against ghreleasetest, a local server speaking the
// GitHub REST shapes used (release by tag, create, list, upload and delete
// assets), as GitHub itself cannot be reached from tests.
func TestPublish(t *testing.T) {
	t.Parallel()
	srv := ghreleasetest.NewServer(t)
	keyA, keyB := regiontest.NewKey(t), regiontest.NewKey(t)
	keys := map[target.Target]regiontest.Key{linuxAMD64: keyA, linuxARM64: keyB}
	pubs := map[target.Target]ed25519.PublicKey{linuxAMD64: keyA.Public, linuxARM64: keyB.Public}

	// First run creates the release; a stale asset of the same name as a
	// binary is already there, as after a failed earlier run.
	srv.AddRelease(repo, "v1.2.0")
	srv.AddAsset(repo, "v1.2.0", "app_linux_amd64", []byte("stale"))
	paths := publish(t, srv, keys, "1.2.0")

	check := func() {
		t.Helper()
		assets := srv.Assets(repo, "v1.2.0")
		var names []string
		for n := range assets {
			names = append(names, n)
		}
		slices.Sort(names)
		want := []string{"app_linux_amd64", "app_linux_amd64.pieces", "app_linux_arm64", "app_linux_arm64.pieces", "rustpatcher-linux-amd64.json", "rustpatcher-linux-arm64.json"}
		if !slices.Equal(names, want) {
			t.Fatalf("release assets = %v, want %v", names, want)
		}
		for tg, path := range paths {
			local, _ := os.ReadFile(path)
			if !bytes.Equal(assets["app_"+tg.OS+"_"+tg.Arch], local) {
				t.Errorf("asset of %v differs from the local binary", tg)
			}
			pi, err := ReadPatchInfo(bytes.NewReader(assets[ManifestName(tg)]))
			if err != nil {
				t.Fatal(err)
			}
			in, err := pi.Verify(pubs[tg])
			if err != nil {
				t.Errorf("manifest of %v: %v", tg, err)
			}
			if pi.Target != tg.String() || pi.Asset != "app_"+tg.OS+"_"+tg.Arch || in.Version != "1.2.0" || pi.PublicKey != region.EncodePublicKey(pubs[tg]) {
				t.Errorf("manifest of %v = %+v", tg, pi)
			}
			if _, err := pi.Verify(pubs[linuxAMD64]); tg != linuxAMD64 && err == nil {
				t.Errorf("manifest of %v verifies with another target's key", tg)
			}
		}
	}
	check()

	// Re-running (a re-run CI job, new build bytes) replaces every asset.
	paths = publish(t, srv, keys, "1.2.0")
	check()
	deletes := 0
	for _, r := range srv.Requests() {
		if strings.HasPrefix(r, "DELETE ") {
			deletes++
		}
	}
	if deletes != 7 { // the stale one, then all six
		t.Errorf("%d assets deleted, want 7", deletes)
	}

	// A release that does not exist yet is created.
	publish(t, srv, map[target.Target]regiontest.Key{linuxAMD64: keyA}, "1.3.0")
	if n := len(srv.Assets(repo, "v1.3.0")); n != 3 {
		t.Errorf("new release has %d assets, want 3 (binary, piece hashes, manifest)", n)
	}
}

func TestPublishErrors(t *testing.T) {
	t.Parallel()
	srv := ghreleasetest.NewServer(t)
	key := regiontest.NewKey(t)
	pub := key.Public
	dir := t.TempDir()
	path := filepath.Join(dir, "app")
	in := regiontest.WriteBinary(t, path, 4000, 1, key, "1.0.0")
	p := &Publisher{Client: newClient(t, srv), Repo: Repo{"org", "app"}, Log: testLogger(t)}
	ctx := context.Background()
	tests := []struct {
		name  string
		tag   string
		files []Signed
		want  string
	}{
		{"no tag", "", []Signed{{Path: path, Target: linuxAMD64, Info: in, PublicKey: pub}}, "no release tag"},
		{"same asset twice", "v1.0.0", []Signed{
			{Path: path, Target: linuxAMD64, Info: in, PublicKey: pub},
			{Path: path, Target: linuxARM64, Info: in, PublicKey: pub},
		}, `both would be the release asset "app"`},
		{"missing file", "v1.0.0", []Signed{{Path: filepath.Join(dir, "gone"), Target: linuxAMD64, Info: in, PublicKey: pub}}, "gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Publish(ctx, tt.tag, tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Publish = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestPoller follows releases on ghreleasetest, a local server speaking the
// GitHub REST shapes used (release list with ETag and 304 on If-None-Match,
// asset download, rate-limit headers), as GitHub cannot be reached from tests.
func TestPoller(t *testing.T) {
	t.Parallel()
	srv := ghreleasetest.NewServer(t)
	keyA, keyB, otherKey := regiontest.NewKey(t), regiontest.NewKey(t), regiontest.NewKey(t)
	pubA, pubB := keyA.Public, keyB.Public

	publish(t, srv, map[target.Target]regiontest.Key{linuxAMD64: keyA, linuxARM64: keyB}, "1.0.0")
	dir := t.TempDir()
	var got []Verified
	p := &Poller{
		Client:   newClient(t, srv),
		Repo:     Repo{"org", "app"},
		Keys:     map[target.Target]ed25519.PublicKey{linuxAMD64: pubA, linuxARM64: pubB},
		Dir:      dir,
		Interval: time.Minute,
		Log:      testLogger(t),
		OnVerified: func(ctx context.Context, v Verified) error {
			got = append(got, v)
			return nil
		},
	}
	ctx := context.Background()
	poll := func() time.Duration {
		t.Helper()
		wait, err := p.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		return wait
	}
	if wait := poll(); wait != time.Minute {
		t.Errorf("Poll waits %v, want the interval", wait)
	}
	wantFiles := func(names ...string) {
		t.Helper()
		ents, _ := os.ReadDir(dir)
		var have []string
		for _, e := range ents {
			have = append(have, e.Name())
		}
		slices.Sort(names)
		if !slices.Equal(have, names) {
			t.Fatalf("seed dir holds %v, want %v", have, names)
		}
	}
	wantFiles("linux-amd64-1.0.0", "linux-arm64-1.0.0")
	if _, err := region.VerifyFile(context.Background(), filepath.Join(dir, "linux-arm64-1.0.0"), pubB); err != nil {
		t.Error(err)
	}
	if len(got) != 2 {
		t.Fatalf("OnVerified called %d times, want 2", len(got))
	}

	// Nothing changed: a conditional request, answered 304, costs no rate limit.
	before := srv.RateRemaining()
	nreq := len(srv.Requests())
	poll()
	if after := srv.RateRemaining(); after != before {
		t.Errorf("unchanged poll cost %d of the rate limit", before-after)
	}
	if n := len(srv.Requests()) - nreq; n != 1 {
		t.Errorf("unchanged poll made %d requests, want 1", n)
	}

	// 2.0.0 for amd64 is signed with the wrong key, and 1.5.0's binary was
	// tampered with after signing: neither is ever served; 1.1.0 is.
	publish(t, srv, map[target.Target]regiontest.Key{linuxAMD64: keyA}, "1.1.0")
	paths := publish(t, srv, map[target.Target]regiontest.Key{linuxAMD64: keyA}, "1.5.0")
	regiontest.FlipByte(t, paths[linuxAMD64], -1)
	b, err := os.ReadFile(paths[linuxAMD64])
	if err != nil {
		t.Fatal(err)
	}
	srv.AddAsset(repo, "v1.5.0", "app_linux_amd64", b)
	publish(t, srv, map[target.Target]regiontest.Key{linuxAMD64: otherKey}, "2.0.0")
	got = nil
	poll()
	wantFiles("linux-amd64-1.0.0", "linux-amd64-1.1.0", "linux-arm64-1.0.0")
	if len(got) != 1 || got[0].Info.Version != "1.1.0" || got[0].Tag != "v1.1.0" {
		t.Errorf("OnVerified got %+v, want 1.1.0 only", got)
	}
	// Rejected assets are not downloaded again.
	srv.AddRelease(repo, "unrelated")
	nreq = len(srv.Requests())
	poll()
	for _, r := range srv.Requests()[nreq:] {
		if strings.Contains(r, "/releases/assets/") {
			t.Errorf("poll after a rejection downloaded again: %s", r)
		}
	}

	// A good 2.1.0 arrives.
	publish(t, srv, map[target.Target]regiontest.Key{linuxAMD64: keyA}, "2.1.0")
	poll()
	if _, err := region.VerifyFile(context.Background(), filepath.Join(dir, "linux-amd64-2.1.0"), pubA); err != nil {
		t.Error(err)
	}
	if n := srv.AuthOnDownload(); n != 0 {
		t.Errorf("the token was sent to the object store on %d downloads", n)
	}
}

func TestPollerRateLimits(t *testing.T) {
	t.Parallel()
	srv := ghreleasetest.NewServer(t)
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name  string
		limit ghreleasetest.Limit
		want  time.Duration
	}{
		{"primary 403 until reset", ghreleasetest.Limit{Status: 403, Reset: now.Add(10 * time.Minute)}, 10*time.Minute + time.Second},
		{"429 with Retry-After", ghreleasetest.Limit{Status: 429, RetryAfter: 90}, 90 * time.Second},
		{"secondary 403 without headers", ghreleasetest.Limit{Status: 403}, time.Minute},
		{"reset too far is capped", ghreleasetest.Limit{Status: 429, Reset: now.Add(5 * time.Hour)}, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh client each time: go-github remembers rate limits.
			p := &Poller{Client: newClient(t, srv), Repo: Repo{"org", "app"}, Dir: t.TempDir(), Interval: 10 * time.Second,
				Log: testLogger(t), now: func() time.Time { return now }}
			srv.LimitNext(tt.limit)
			wait, err := p.Poll(context.Background())
			if err == nil {
				t.Fatal("Poll succeeded on a rate-limited answer")
			}
			if wait != tt.want {
				t.Errorf("Poll waits %v, want %v", wait, tt.want)
			}
		})
	}
	// Consecutive failures back off exponentially, bounded.
	p := &Poller{Client: newClient(t, srv), Repo: Repo{"org", "app"}, Dir: t.TempDir(), Interval: 10 * time.Second, Log: testLogger(t)}
	var waits []time.Duration
	for range 8 {
		srv.LimitNext(ghreleasetest.Limit{Status: 403})
		w, _ := p.Poll(context.Background())
		waits = append(waits, w)
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	if !slices.Equal(waits, want) {
		t.Errorf("backoff = %v, want %v", waits, want)
	}
	// A success resets it.
	if w, err := p.Poll(context.Background()); err != nil || w != 10*time.Second {
		t.Errorf("Poll after recovery = %v, %v; want the interval", w, err)
	}
}

func TestPatchInfoJSON(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	pub := key.Public
	in := regiontest.WriteBinaryFor(t, filepath.Join(t.TempDir(), "app"), 4000, 1, key, "3.1.4-rc.1", linuxAMD64.String())
	pi := NewPatchInfo(linuxAMD64, in, pub)
	pi.Asset = "app"
	b, err := json.Marshal(pi)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"target":"linux/amd64"`, `"asset":"app"`, `"version":"3.1.4-rc.1"`, `"public_key":"` + region.EncodePublicKey(pub)} {
		if !strings.Contains(string(b), field) {
			t.Errorf("JSON %s lacks %s", b, field)
		}
	}
	back, err := ReadPatchInfo(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	got, err := back.Verify(pub)
	if err != nil || got != in {
		t.Errorf("round trip = %+v, %v; want %+v", got, err, in)
	}
	bad := back
	bad.Size++
	if _, err := bad.Verify(pub); err == nil {
		t.Error("a PatchInfo with a changed size verifies")
	}
	if _, err := ReadPatchInfo(io.LimitReader(strings.NewReader(`{"target":`), 100)); err == nil {
		t.Error("truncated JSON decodes")
	}
}

// TestSeedPoller runs a Poller made by NewSeedPoller until a release
// appears on ghreleasetest, a local server speaking the GitHub REST shapes
// used, as GitHub cannot be reached from tests.
func TestSeedPoller(t *testing.T) {
	t.Parallel()
	srv := ghreleasetest.NewServer(t)
	key := regiontest.NewKey(t)
	pub := key.Public
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  SeedConfig
		want string
	}{
		{"bad repo", SeedConfig{Repo: "nope", Dir: dir}, `repository "nope"`},
		{"bad target", SeedConfig{Repo: "org/app", Keys: map[string]ed25519.PublicKey{"linux": pub}, Dir: dir}, `target "linux"`},
		{"bad URL", SeedConfig{Repo: "org/app", APIURL: "ftp://x", Dir: dir}, "not an http(s) URL"},
	}
	for _, tt := range tests {
		if _, err := NewSeedPoller(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewSeedPoller = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	p, err := NewSeedPoller(SeedConfig{Repo: "org/app", APIURL: srv.URL, Keys: map[string]ed25519.PublicKey{"linux/amd64": pub},
		Dir: dir, Interval: 20 * time.Millisecond, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := p.Start(ctx)
	defer func() { cancel(); wait() }()
	publish(t, srv, map[target.Target]regiontest.Key{linuxAMD64: key}, "2.0.0")
	want := filepath.Join(dir, "linux-amd64-2.0.0")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := region.VerifyFile(context.Background(), want, pub); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within 10s", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wait()
}
