package regiontest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/org/rustpatcher-go/region"
)

// A Key is an owner key pair made for a test.
type Key struct {
	// Private signs releases.
	Private ed25519.PrivateKey
	// Public verifies them.
	Public ed25519.PublicKey
	// PublicText is the z-base-32 public key, as apps embed it.
	PublicText string
	// SecretText is the z-base-32 seed, as key files hold it.
	SecretText string
}

// NewKey generates a fresh owner key.
func NewKey(t testing.TB) Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keyOf(priv)
}

// VectorSeed is the seed of the test vectors in docs/FORMAT.md.
const VectorSeed = "5wrjzq7h54t61sr8izgqdkrjx9tcqey5n6apff5ju5yadoobuj3o"

// VectorKey returns the key of the test vectors in docs/FORMAT.md, whose
// public key is axegnqus3miex47g1kxf1j7j8spczbc57go7jgpeixq8nxjfz7gy.
func VectorKey(t testing.TB) Key {
	t.Helper()
	priv, err := region.ParseSecretKey(VectorSeed)
	if err != nil {
		t.Fatal(err)
	}
	return keyOf(priv)
}

func keyOf(priv ed25519.PrivateKey) Key {
	pub := priv.Public().(ed25519.PublicKey)
	return Key{Private: priv, Public: pub, PublicText: region.EncodePublicKey(pub), SecretText: region.EncodeSecretKey(priv)}
}

// WriteBinary writes a stand-in release binary to path (mode 0755,
// creating its directory): size pseudo-random bytes from seed with an
// unsigned region inserted in the middle. Unless version is empty, it signs
// the file with key as version, in format V1 for the running program's
// target (a client accepts it), and returns the region; it streams, so size
// may be large.
func WriteBinary(t testing.TB, path string, size int64, seed uint64, key Key, version string) region.Info {
	t.Helper()
	return WriteBinaryFor(t, path, size, seed, key, version, Target)
}

// WriteBinaryFor is WriteBinary signing for target, a GOOS/GOARCH.
func WriteBinaryFor(t testing.TB, path string, size int64, seed uint64, key Key, version, target string) region.Info {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 1})
	empty, err := region.Info{}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	half := size / 2
	if _, err := io.CopyN(f, rng, half); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(empty[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rng, size-half); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if version == "" {
		return region.Info{}
	}
	in, err := region.SignFile(context.Background(), path, key.Private, version, target)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// Target is the running program's GOOS/GOARCH, which WriteBinary signs.
const Target = runtime.GOOS + "/" + runtime.GOARCH

// FlipByte inverts the byte at off in the file at path; a negative off
// counts from the end.
func FlipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if off < 0 {
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		off += st.Size()
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatalf("flipping byte %d of %s: %v", off, path, err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// GoTool returns the path of the go command that runs the tests: go test
// puts its toolchain's bin directory first on PATH. It returns "go" when
// there is none on PATH, so that running it fails with a clear error.
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
