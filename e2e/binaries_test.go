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

	"github.com/org/rustpatcher-go/internal/exefmt"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// checkSignVerify signs copies of the binary at bin as 1.4.2 with key, in
// both formats, and checks that they verify; that the unsigned build and
// the V0 copy hold the V0 marker exactly twice, so that rustpatcher 0.2's
// rules find their region, and that rustpatcher's verification accepts the
// V0 copy (where its rules and ours agree: no OS code signature); that the
// V1 copy holds no V0 marker at all, so rustpatcher's tools cannot mistake
// it for theirs; that an ad hoc Mach-O code signature is valid after
// signing; and that one flipped byte (at the start, just after the region,
// at the end) makes verification fail. It returns the V1 copy.
func checkSignVerify(t *testing.T, bin string, key Key) string {
	t.Helper()
	ctx := context.Background()
	pub := key.Private.Public().(ed25519.PublicKey)
	unsigned, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	checkMarkers(t, bin, unsigned)
	tg, err := target.DetectFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var v1 string
	for _, f := range []region.Format{region.V1, region.V0} {
		p := filepath.Join(dir, filepath.Base(bin)+"-"+f.String())
		CopyFile(t, bin, p)
		if _, err := region.VerifyFile(ctx, p, pub); !errors.Is(err, region.ErrUnsigned) {
			t.Fatalf("fresh build: VerifyFile = %v, want ErrUnsigned", err)
		}
		opts := region.SignOptions{Version: "1.4.2", Format: f}
		if f == region.V1 {
			opts.Target = tg.String()
			v1 = p
		}
		in, err := region.Sign(ctx, p, key.Private, opts)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := region.VerifyFile(ctx, p, pub); err != nil || got != in {
			t.Fatalf("%s: VerifyFile = %+v, %v", f, got, err)
		}
		signed, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		l := layoutOf(t, signed)
		if l.Kind == exefmt.MachO && l.HasSignature() {
			checkPageHashes(t, p)
		}
		switch f {
		case region.V0:
			checkMarkers(t, p, signed)
			if l.HasSignature() {
				break // rustpatcher hashes the code signature too
			}
			if err := regiontest.RustpatcherVerify(signed, pub); err != nil {
				t.Errorf("%s: rustpatcher 0.2's verification refuses what rpsign signed: %v", p, err)
			}
		case region.V1:
			if n := bytes.Count(signed, []byte(region.Marker)); n != 0 {
				t.Errorf("%s: a v1-signed file holds the v0 marker %d times, want none", p, n)
			}
			if n0, n1 := bytes.Count(signed, []byte(region.V1Marker)), bytes.Count(signed, []byte(region.V1EndMarker)); n0 != 1 || n1 != 1 {
				t.Errorf("%s: the v1 markers occur %d and %d times, want once each", p, n0, n1)
			}
			if _, err := regiontest.RustpatcherCut(signed); err == nil {
				t.Errorf("%s: rustpatcher 0.2's rules find a region in a v1-signed file", p)
			}
		}
		sc, err := region.ScanFile(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []int{0, int(sc.Offset) + region.Size, int(sc.ContentEnd) - 1} {
			b := bytes.Clone(signed)
			b[at] ^= 1
			if _, err := region.Verify(ctx, bytes.NewReader(b), pub); err == nil {
				t.Errorf("%s: byte %d flipped and the file still verifies", f, at)
			}
		}
		if sc.ContentEnd < sc.FileSize {
			// The OS code signature is the OS's to check: a changed byte
			// there leaves the release's signature valid but names
			// another file.
			b := bytes.Clone(signed)
			b[len(b)-1] ^= 1
			s2, err := region.Scan(ctx, bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s2.Verify(pub); err != nil || s2.FileID == sc.FileID {
				t.Errorf("%s: a changed code signature byte: verify %v, same file ID %v", f, err, s2.FileID == sc.FileID)
			}
		}
	}
	return v1
}

// layoutOf parses the executable layout of a file's contents.
func layoutOf(t *testing.T, b []byte) exefmt.Layout {
	t.Helper()
	l, err := exefmt.Parse(b[:min(len(b), exefmt.MaxHeader)], int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return l
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

// checkMarkers checks that file (the contents of path) holds the V0 bounds
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
