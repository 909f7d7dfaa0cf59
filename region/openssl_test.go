package region_test

import (
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// TestOpenSSLCrossCheck computes the signature of every known-answer vector
// of testdata/golden-v0.txt with a different implementation of the format:
// a shell script using OpenSSL's SHA-512 and Ed25519
// (testdata/openssl-sign.sh). Ed25519 is deterministic, so the bytes must
// match the vectors' exactly.
func TestOpenSSLCrossCheck(t *testing.T) {
	for _, tool := range []string{"openssl", "xxd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	for _, v := range regiontest.ReadVectors(t, filepath.Join("testdata", "golden-v0.txt")) {
		t.Run(v.Name, func(t *testing.T) {
			key, err := region.ParseSecretKey(v.Seed)
			if err != nil {
				t.Fatal(err)
			}
			// The signed file: the script cuts the region out itself.
			b := regiontest.File(v.Prefix, v.Suffix)
			copy(b[v.Prefix:], v.Region)
			p := filepath.Join(t.TempDir(), "signed")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("sh", "testdata/openssl-sign.sh", p,
				strconv.Itoa(v.Prefix), hex.EncodeToString(key.Seed()), v.Version).CombinedOutput()
			if err != nil {
				t.Fatalf("openssl-sign.sh: %v\n%s", err, out)
			}
			got := strings.TrimSpace(string(out))
			if want := hex.EncodeToString(v.Region[68:132] /* the signature field */); got != want {
				t.Fatalf("OpenSSL signature differs:\nopenssl: %s\nvector:  %s", got, want)
			}
		})
	}
}
