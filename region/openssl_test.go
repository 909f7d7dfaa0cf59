package region_test

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// TestOpenSSLCrossCheck computes the region of every known-answer vector
// of testdata/golden-v0.txt and golden-v1.txt with a different
// implementation of the format: shell scripts using OpenSSL's SHA-256,
// SHA-512 and Ed25519 (testdata/openssl-sign.sh, openssl-sign-v1.sh).
// Ed25519 is deterministic, so the bytes must match the vectors' exactly.
func TestOpenSSLCrossCheck(t *testing.T) {
	for _, tool := range []string{"openssl", "xxd", "split", "dd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	for _, v := range regiontest.AllVectors(t, "testdata") {
		t.Run(v.TestName(), func(t *testing.T) {
			t.Parallel()
			key := v.Key(t)
			// The signed file: the scripts take the region out
			// themselves.
			b := v.File()
			copy(b[v.Offset():], v.Region)
			p := filepath.Join(t.TempDir(), "signed")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			seed := hex.EncodeToString(key.Seed())
			var cmd *exec.Cmd
			want := hex.EncodeToString(v.Region)
			if v.Format == region.V0 {
				cmd = exec.Command("sh", "testdata/openssl-sign.sh", p, strconv.Itoa(v.Offset()), seed, v.Version)
				want = hex.EncodeToString(v.Region[68:132]) // it prints the signature
			} else {
				end, fields := peContent(b)
				args := []string{"testdata/openssl-sign-v1.sh", p, strconv.Itoa(v.Offset()), strconv.Itoa(end), seed, v.Version, v.Target}
				cmd = exec.Command("sh", append(args, fields...)...)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
			}
			if got := strings.TrimSpace(string(out)); got != want {
				t.Fatalf("OpenSSL differs:\nopenssl: %s\nvector:  %s", got, want)
			}
		})
	}
}

// peContent reads, as docs/FORMAT.md says and without the region
// package's code, where the content of a file ends and which header fields
// a code signer rewrites (OFF:LEN), for the vectors' plain files and their
// PE32+ one.
func peContent(b []byte) (end int, fields []string) {
	if len(b) < 0x40 || string(b[:2]) != "MZ" {
		return len(b), nil
	}
	pe := int(binary.LittleEndian.Uint32(b[0x3c:]))
	opt := pe + 24 // after "PE\0\0" and the 20-byte file header
	sec := opt + 144
	va, size := int(binary.LittleEndian.Uint32(b[sec:])), int(binary.LittleEndian.Uint32(b[sec+4:]))
	end = len(b)
	if size > 0 && va+size == len(b) {
		end = va // the certificate table is not content
	}
	return end, []string{fmt.Sprintf("%d:4", opt+64), fmt.Sprintf("%d:8", sec)}
}
