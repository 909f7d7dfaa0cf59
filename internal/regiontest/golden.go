// Package regiontest holds what tests of several packages share about
// signed binaries: the known-answer vectors of docs/FORMAT.md and the files
// they describe.
package regiontest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/region"
)

// A Vector is one known-answer vector of a golden file,
// region/testdata/golden-v0.txt or golden-v1.txt (see docs/FORMAT.md): the
// unsigned file v.File() signed with Seed as Version (and, in V1, for
// Target) holds exactly Region at offset v.Offset().
type Vector struct {
	Name, Seed, Version string
	// Format is the format signed; Target its target (V1).
	Format region.Format
	Target string
	// Header is the executable header the file starts with (V1 vectors;
	// empty for a plain file).
	Header         []byte
	Prefix, Suffix int
	Region         []byte
}

// File returns the unsigned file of a vector: Header, then Prefix bytes
// i mod 251, an unsigned region (the markers around 120 zero bytes), then
// Suffix bytes 250 - (i mod 251).
func (v Vector) File() []byte {
	return append(append([]byte(nil), v.Header...), File(v.Prefix, v.Suffix)...)
}

// Offset returns where the vector's region is.
func (v Vector) Offset() int { return len(v.Header) + v.Prefix }

// File returns a plain unsigned file: prefix bytes i mod 251, an unsigned
// region (the markers around 120 zero bytes), then suffix bytes
// 250 - (i mod 251).
func File(prefix, suffix int) []byte {
	b := make([]byte, 0, prefix+region.Size+suffix)
	for i := range prefix {
		b = append(b, byte(i%251))
	}
	reg, _ := region.Info{}.Marshal()
	b = append(b, reg[:]...)
	for i := range suffix {
		b = append(b, byte(250-i%251))
	}
	return b
}

// ReadVectors reads the vectors of a golden file, one a line; # starts a
// comment. A V0 line is name:seed:version:prefix:suffix:region, a V1 line
// name:seed:version:target:header:prefix:suffix:region, with the header and
// the region in hex.
func ReadVectors(t testing.TB, path string) []Vector {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Vector
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		p := strings.Split(l, ":")
		v := Vector{Name: p[0]}
		var nums []string
		var regHex string
		switch len(p) {
		case 6:
			v.Seed, v.Version, v.Format = p[1], p[2], region.V0
			nums, regHex = p[3:5], p[5]
		case 8:
			v.Seed, v.Version, v.Target, v.Format = p[1], p[2], p[3], region.V1
			h, err := hex.DecodeString(p[4])
			if err != nil {
				t.Fatalf("%s:%d: header: %v", path, line, err)
			}
			v.Header = h
			nums, regHex = p[5:7], p[7]
		default:
			t.Fatalf("%s:%d: %d fields, want 6 (v0) or 8 (v1)", path, line, len(p))
		}
		pre, err1 := strconv.Atoi(nums[0])
		suf, err2 := strconv.Atoi(nums[1])
		reg, err3 := hex.DecodeString(regHex)
		if err1 != nil || err2 != nil || err3 != nil || len(reg) != region.Size {
			t.Fatalf("%s:%d: bad vector", path, line)
		}
		v.Prefix, v.Suffix, v.Region = pre, suf, reg
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no vectors", path)
	}
	return out
}

// AllVectors reads the vectors of both formats from dir, the folder of
// golden-v0.txt and golden-v1.txt (region/testdata).
func AllVectors(t testing.TB, dir string) []Vector {
	t.Helper()
	return append(ReadVectors(t, filepath.Join(dir, "golden-v0.txt")), ReadVectors(t, filepath.Join(dir, "golden-v1.txt"))...)
}

// TestName names the vector in a subtest: its format and name.
func (v Vector) TestName() string { return v.Format.String() + "/" + v.Name }

// Key returns the vector's secret key, parsed from Seed.
func (v Vector) Key(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	key, err := region.ParseSecretKey(v.Seed)
	if err != nil {
		t.Fatalf("vector %s: %v", v.Name, err)
	}
	return key
}

// rustpatcherMarker is rustpatcher 0.2's EMBED_BOUNDS.
const rustpatcherMarker = "\x17\x42RUSTPATCHER\x42EMBED\x42BOUNDS\x42\x17"

// RustpatcherCut applies rustpatcher 0.2.1's rule for finding the region in
// a file (embed.rs, cut_embed_section): from the first bounds marker to the
// end of the last one, which must be exactly 176 bytes. It returns the
// region's offset, or the error rustpatcher's tools would report.
func RustpatcherCut(file []byte) (int, error) {
	start := bytes.Index(file, []byte(rustpatcherMarker))
	if start < 0 {
		return 0, errors.New("failed to find embed bounds start")
	}
	end := bytes.LastIndex(file, []byte(rustpatcherMarker)) + len(rustpatcherMarker)
	if end-start != region.Size {
		return 0, fmt.Errorf("invalid embed section size (%d bytes from the first marker to the last)", end-start)
	}
	return start, nil
}

// RustpatcherVerify checks a signed file as rustpatcher 0.2.1's
// Patch::verify does (patch.rs): cut the region by RustpatcherCut, take the
// first 32 bytes of SHA-512 of the rest, and check the Ed25519 signature of
// SHA-512(version || hash || size) with the owner key, then hash and size.
// Its version is what rustpatcher's Version type reads: x.y.z only.
func RustpatcherVerify(file []byte, pub ed25519.PublicKey) error {
	start, err := RustpatcherCut(file)
	if err != nil {
		return err
	}
	reg := file[start : start+region.Size]
	rest := append(bytes.Clone(file[:start]), file[start+region.Size:]...)
	v := strings.TrimRight(string(reg[132:148]), "\x00")
	var major, minor, patch int32
	if n, err := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); n != 3 || err != nil || fmt.Sprintf("%d.%d.%d", major, minor, patch) != v {
		return fmt.Errorf("version %q: wrong version format", v)
	}
	sum := sha512.Sum512(rest)
	h := sha512.New()
	h.Write([]byte(v))
	h.Write(sum[:32])
	h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(rest))))
	if !ed25519.Verify(pub, h.Sum(nil), reg[68:132]) {
		return errors.New("signature does not verify")
	}
	if !bytes.Equal(sum[:32], reg[28:60]) {
		return errors.New("data hash mismatch")
	}
	if binary.LittleEndian.Uint64(reg[60:68]) != uint64(len(rest)) {
		return errors.New("data size mismatch")
	}
	return nil
}
