//go:build unix

package e2e

// Real builds: the region works in every kind of Go binary an app ships
// (plain, stripped, -trimpath, PIE, cgo, external linker; every release
// target), and every binary holds the bounds marker exactly twice, so that
// rustpatcher 0.2's own tools find its region and verify what rpsign signs.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// checkSignVerify signs a copy of the binary at bin as 1.4.2 with key and
// checks that it verifies, that rustpatcher 0.2's rules find its region
// before and after and verify the signature, and that one flipped byte
// outside the region (at the start, just after the region and at the end)
// makes verification fail. It returns the signed copy.
func checkSignVerify(t *testing.T, bin string, key Key) string {
	t.Helper()
	pub := key.Private.Public().(ed25519.PublicKey)
	unsigned, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	checkMarkers(t, bin, unsigned)
	p := filepath.Join(t.TempDir(), filepath.Base(bin))
	CopyFile(t, bin, p)
	if _, err := region.VerifyFile(context.Background(), p, pub); !errors.Is(err, region.ErrUnsigned) {
		t.Fatalf("fresh build: VerifyFile = %v, want ErrUnsigned", err)
	}
	in := SignedCopy(t, bin, p, key, "1.4.2")
	if got, err := region.VerifyFile(context.Background(), p, pub); err != nil || got != in {
		t.Fatalf("VerifyFile = %+v, %v", got, err)
	}
	signed, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	checkMarkers(t, p, signed)
	if err := regiontest.RustpatcherVerify(signed, pub); err != nil {
		t.Errorf("%s: rustpatcher 0.2's verification refuses what rpsign signed: %v", bin, err)
	}
	off, _ := regiontest.RustpatcherCut(signed)
	for _, at := range []int{0, off + region.Size, len(signed) - 1} {
		b := bytes.Clone(signed)
		b[at] ^= 1
		f := p + ".flipped"
		if err := os.WriteFile(f, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := region.VerifyFile(context.Background(), f, pub); !errors.Is(err, region.ErrHashMismatch) {
			t.Errorf("byte %d flipped: VerifyFile = %v, want ErrHashMismatch", at, err)
		}
	}
	return p
}

// checkMarkers checks that file (the contents of path) holds the bounds
// marker exactly twice, 148 bytes apart, so that rustpatcher 0.2's rule
// (first marker to last) finds exactly the 176-byte region.
func checkMarkers(t *testing.T, path string, file []byte) {
	t.Helper()
	if n := bytes.Count(file, []byte(region.Marker)); n != 2 {
		t.Errorf("%s holds the bounds marker %d times, want 2", path, n)
	}
	if _, err := regiontest.RustpatcherCut(file); err != nil {
		t.Errorf("%s: rustpatcher 0.2 would refuse it: %v", path, err)
	}
}

// TestRealBinaries builds examples/hello (and a cgo program) the ways apps
// are built, signs each build, runs it, and checks that it reads its own
// signed version.
func TestRealBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds real binaries; skipped with -short")
	}
	key := OwnerKey(t)
	linked := "-X github.com/org/rustpatcher-go/client.linkedPublicKey=" + key.Public
	tests := []struct {
		name string
		b    Build
		args []string
		want string // what the signed program prints
	}{
		{"plain", Build{Pkg: helloPkg, LDFlags: linked, Env: []string{"CGO_ENABLED=0"}}, []string{"--version"}, "1.4.2"},
		{"stripped", Build{Pkg: helloPkg, LDFlags: "-s -w " + linked, Env: []string{"CGO_ENABLED=0"}}, []string{"--version"}, "1.4.2"},
		{"trimpath", Build{Pkg: helloPkg, LDFlags: "-s -w " + linked, Flags: []string{"-trimpath"}, Env: []string{"CGO_ENABLED=0"}}, []string{"--version"}, "1.4.2"},
		{"pie", Build{Pkg: helloPkg, LDFlags: linked, Flags: []string{"-buildmode=pie"}}, []string{"--version"}, "1.4.2"},
		{"cgo", Build{Pkg: "./testdata/cgoapp", Env: []string{"CGO_ENABLED=1"}}, nil, "1.4.2 42"},
		{"cgo-external-stripped", Build{Pkg: "./testdata/cgoapp", LDFlags: "-s -w -linkmode=external", Env: []string{"CGO_ENABLED=1"}}, nil, "1.4.2 42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signed := checkSignVerify(t, GoBuildWith(t, tt.b), key)
			p := Start(t, signed, tt.args...)
			l, _ := p.WaitLine(0, 30*time.Second, `.`)
			if got := strings.TrimSpace(l.Text); got != tt.want {
				t.Errorf("signed %s printed %q, want %q", tt.name, got, tt.want)
			}
			if err := p.Wait(30 * time.Second); err != nil {
				t.Errorf("signed %s: %v", tt.name, err)
			}
		})
	}
}

// crossTargets are the release targets other than this machine's kind, as
// the release pipelines build them.
func crossTargets() []string {
	return []string{"linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64", "windows/arm64"}
}

// TestCrossCompiled signs, verifies and checks the markers of hello built
// for every release target with the release flags (the goreleaser
// configuration's, so the build cache serves both). They cannot all run
// here, so only the file format is checked.
func TestCrossCompiled(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles real binaries; skipped with -short")
	}
	key := OwnerKey(t)
	for _, target := range crossTargets() {
		t.Run(strings.ReplaceAll(target, "/", "_"), func(t *testing.T) {
			goos, goarch, _ := strings.Cut(target, "/")
			bin := GoBuildWith(t, Build{
				Pkg:     helloPkg,
				LDFlags: "-s -w -X github.com/org/rustpatcher-go/client.linkedPublicKey=" + key.Public,
				Flags:   []string{"-trimpath"},
				Env:     []string{"CGO_ENABLED=0", "GOOS=" + goos, "GOARCH=" + goarch},
			})
			checkSignVerify(t, bin, key)
		})
	}
}

// TestToolsHoldMarkerTwice checks the markers in rpsign and rpseed, which
// import the region package too (and are signed as releases of their own).
func TestToolsHoldMarkerTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("builds real binaries; skipped with -short")
	}
	for _, pkg := range []string{"github.com/org/rustpatcher-go/cmd/rpsign", "github.com/org/rustpatcher-go/cmd/rpseed"} {
		t.Run(filepath.Base(pkg), func(t *testing.T) {
			bin := GoBuild(t, pkg, "")
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			checkMarkers(t, pkg, b)
		})
	}
}
