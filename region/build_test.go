package region_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/region"
)

// testKey is the SPEC's test vector seed.
const testKey = "5wrjzq7h54t61sr8izgqdkrjx9tcqey5n6apff5ju5yadoobuj3o"

// goBuild builds pkg into dir/name with extra environment and flags.
func goBuild(t *testing.T, dir, name, pkg string, env []string, flags ...string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	args := append([]string{"build", "-o", out}, flags...)
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// checkSignVerify signs the binary, verifies it, and checks that one flipped
// byte outside the region (at the start, just after the region and at the
// end) makes verification fail.
func checkSignVerify(t *testing.T, bin string) {
	t.Helper()
	key, _ := region.ParseSecretKey(testKey)
	pub := key.Public().(ed25519.PublicKey)
	if _, err := region.VerifyFile(bin, pub); !errors.Is(err, region.ErrUnsigned) {
		t.Fatalf("fresh build: VerifyFile = %v, want ErrUnsigned", err)
	}
	in, err := region.SignFile(bin, key, "1.4.2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := region.VerifyFile(bin, pub)
	if err != nil || got != in {
		t.Fatalf("VerifyFile = %+v, %v", got, err)
	}
	s, err := region.ScanFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, s.Offset + region.Size, int64(len(signed) - 1)} {
		b := bytes.Clone(signed)
		b[off] ^= 1
		p := bin + ".flipped"
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := region.VerifyFile(p, pub); !errors.Is(err, region.ErrHashMismatch) {
			t.Errorf("byte %d flipped: VerifyFile = %v, want ErrHashMismatch", off, err)
		}
	}
}

// TestRealBinaries builds examples/hello the ways apps are built, signs each
// build, runs it, and checks that it reads its own signed version.
func TestRealBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds real binaries; skipped with -short")
	}
	builds := []struct {
		name  string
		pkg   string
		env   []string
		flags []string
		want  string // what the program prints once signed
	}{
		{"plain", "../examples/hello", []string{"CGO_ENABLED=0"}, nil, "1.4.2"},
		{"stripped", "../examples/hello", []string{"CGO_ENABLED=0"}, []string{"-ldflags=-s -w"}, "1.4.2"},
		{"trimpath", "../examples/hello", nil, []string{"-trimpath"}, "1.4.2"},
		{"pie", "../examples/hello", nil, []string{"-buildmode=pie"}, "1.4.2"},
		{"cgo", "./testdata/cgoapp", []string{"CGO_ENABLED=1"}, nil, "1.4.2 42"},
		{"cgo-external-stripped", "./testdata/cgoapp", []string{"CGO_ENABLED=1"}, []string{"-ldflags=-s -w -linkmode=external"}, "1.4.2 42"},
	}
	dir := t.TempDir()
	for _, b := range builds {
		t.Run(b.name, func(t *testing.T) {
			bin := goBuild(t, dir, b.name, b.pkg, b.env, b.flags...)
			checkSignVerify(t, bin)
			args := []string{}
			if strings.Contains(b.pkg, "hello") {
				args = append(args, "--version")
			}
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("running signed %s: %v\n%s", b.name, err, out)
			}
			if got := strings.TrimSpace(string(out)); got != b.want {
				t.Errorf("signed %s printed %q, want %q", b.name, got, b.want)
			}
		})
	}
}

// TestCrossCompiled signs, inspects and verifies hello built for other
// targets; they cannot run here, so only the file format is checked.
func TestCrossCompiled(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles real binaries; skipped with -short")
	}
	dir := t.TempDir()
	for _, target := range []string{"linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64"} {
		t.Run(strings.ReplaceAll(target, "/", "_"), func(t *testing.T) {
			goos, goarch, _ := strings.Cut(target, "/")
			bin := goBuild(t, dir, goos+"_"+goarch, "../examples/hello",
				[]string{"CGO_ENABLED=0", "GOOS=" + goos, "GOARCH=" + goarch}, "-ldflags=-s -w")
			checkSignVerify(t, bin)
		})
	}
}
