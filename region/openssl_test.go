package region_test

import (
	"encoding/hex"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/region"
)

// TestOpenSSLCrossCheck signs a real binary with the SPEC's example key and
// version 0.2.0, then computes the signature again with a different
// implementation of the SPEC's formula: a shell script using OpenSSL's
// SHA-512 and Ed25519 (testdata/openssl-sign.sh). Ed25519 is deterministic,
// so the bytes must match exactly.
func TestOpenSSLCrossCheck(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	if _, err := exec.LookPath("xxd"); err != nil {
		t.Skip("xxd is not installed")
	}
	bin := goBuild(t, t.TempDir(), "hello", "../examples/hello", []string{"CGO_ENABLED=0"})
	key, err := region.ParseSecretKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	in, err := region.SignFile(bin, key, "0.2.0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := region.ScanFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "testdata/openssl-sign.sh", bin,
		strconv.FormatInt(s.Offset, 10), hex.EncodeToString(key.Seed()), "0.2.0").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl-sign.sh: %v\n%s", err, out)
	}
	got := strings.TrimSpace(string(out))
	if want := hex.EncodeToString(in.Signature[:]); got != want {
		t.Fatalf("OpenSSL signature differs:\nopenssl: %s\nregion:  %s", got, want)
	}
}
