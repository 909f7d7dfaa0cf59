//go:build unix

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/exefmt"
	"github.com/org/rustpatcher-go/region"
)

// Mach-O and code signature constants the test re-signer uses (Apple's
// loader.h and cs_blobs.h). Code signature fields are big-endian, load
// commands little-endian.
const (
	lcSegment64        = 0x19
	lcCodeSignature    = 0x1d
	csSuperBlob        = 0xfade0cc0
	csCodeDirectory    = 0xfade0c02
	csRequirements     = 0xfade0c01
	csBlobWrapper      = 0xfade0b01
	csSlotCodeDir      = 0
	csSlotRequirements = 2
	csSlotCMS          = 0x10000
	csRuntime          = 0x10000 // hardened runtime, which notarization requires
	cdHeaderLen        = 88      // a version 0x20400 CodeDirectory header
)

// machoSigLayout is where a Mach-O file's code signature is and the load
// command fields that describe it.
type machoSigLayout struct {
	dataoff, datasize int64 // LC_CODE_SIGNATURE's blob
	datasizeAt        int64 // file offset of LC_CODE_SIGNATURE's datasize
	linkeditAt        int64 // file offset of the __LINKEDIT segment command
}

// machoSig reads the load commands of the 64-bit little-endian Mach-O in
// b. The file is the test's own build: it fails the test rather than
// handle malformed input.
func machoSig(t *testing.T, b []byte) machoSigLayout {
	t.Helper()
	le := binary.LittleEndian
	if le.Uint32(b) != 0xfeedfacf {
		t.Fatal("not a 64-bit Mach-O file")
	}
	var l machoSigLayout
	ncmds, off := le.Uint32(b[16:]), int64(32)
	for range ncmds {
		cmd, size := le.Uint32(b[off:]), int64(le.Uint32(b[off+4:]))
		switch {
		case cmd == lcCodeSignature:
			l.dataoff, l.datasize = int64(le.Uint32(b[off+8:])), int64(le.Uint32(b[off+12:]))
			l.datasizeAt = off + 12
		case cmd == lcSegment64 && string(bytes.TrimRight(b[off+8:off+24], "\x00")) == "__LINKEDIT":
			l.linkeditAt = off
		}
		off += size
	}
	if l.datasizeAt == 0 || l.linkeditAt == 0 {
		t.Fatal("no LC_CODE_SIGNATURE or no __LINKEDIT segment")
	}
	return l
}

// resignLikeCodesign stands for `codesign --force --options runtime --sign
// "Developer ID Application: ..."`, which cannot run here (it needs macOS
// and a certificate; rcodesign is not packaged): it replaces the code
// signature of the Mach-O file at path with one of a different, larger
// size, as codesign does, and returns the file's growth in bytes.
//
// The new signature is an embedded-signature superblob holding a
// CodeDirectory (not ad hoc, hardened runtime, SHA-256 hashes of every
// 4 KiB page of the file up to the signature, and of the requirements
// blob in its special slot), an empty requirement set, and cmsLen bytes
// that stand for the CMS signature a certificate makes over the
// CodeDirectory. It is written at LC_CODE_SIGNATURE's dataoff, and the
// header fields a signer rewrites are brought up to date before the pages
// are hashed: LC_CODE_SIGNATURE's datasize and the __LINKEDIT segment's
// filesize and vmsize. The identifier and the executable segment fields
// are taken from the old CodeDirectory, as codesign keeps them.
func resignLikeCodesign(t *testing.T, path string, cmsLen int) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l := machoSig(t, b)
	be, le := binary.BigEndian, binary.LittleEndian
	old := b[l.dataoff : l.dataoff+l.datasize]

	// The old CodeDirectory: its identifier and executable segment.
	var oldCD []byte
	for i := range be.Uint32(old[8:]) {
		typ, off := be.Uint32(old[12+8*i:]), be.Uint32(old[16+8*i:])
		if typ == csSlotCodeDir {
			oldCD = old[off:]
		}
	}
	if oldCD == nil || be.Uint32(oldCD) != csCodeDirectory {
		t.Fatal("the old signature has no CodeDirectory")
	}
	ident := oldCD[be.Uint32(oldCD[20:]):]
	ident = append(bytes.Clone(ident[:bytes.IndexByte(ident, 0)]), 0)

	reqs := be.AppendUint32(be.AppendUint32(be.AppendUint32(nil, csRequirements), 12), 0)
	cms := be.AppendUint32(be.AppendUint32(nil, csBlobWrapper), uint32(8+cmsLen))
	for i := range cmsLen {
		cms = append(cms, byte(i*7+3))
	}

	const pageShift, nSpecial = 12, 2
	limit := l.dataoff
	nCode := (limit + 1<<pageShift - 1) >> pageShift
	hashOff := cdHeaderLen + len(ident) + nSpecial*sha256.Size
	cdLen := hashOff + int(nCode)*sha256.Size
	cd := make([]byte, cdHeaderLen, cdLen)
	be.PutUint32(cd[0:], csCodeDirectory)
	be.PutUint32(cd[4:], uint32(cdLen))
	be.PutUint32(cd[8:], 0x20400)
	be.PutUint32(cd[12:], csRuntime)
	be.PutUint32(cd[16:], uint32(hashOff))
	be.PutUint32(cd[20:], cdHeaderLen)
	be.PutUint32(cd[24:], nSpecial)
	be.PutUint32(cd[28:], uint32(nCode))
	be.PutUint32(cd[32:], uint32(limit))
	cd[36], cd[37], cd[39] = sha256.Size, 2, pageShift // hash size, SHA-256, page size
	copy(cd[64:88], oldCD[64:88])                      // execSegBase, execSegLimit, execSegFlags
	cd = append(cd, ident...)
	reqHash := sha256.Sum256(reqs)
	cd = append(cd, reqHash[:]...)                      // slot -2: requirements
	cd = append(cd, make([]byte, sha256.Size)...)       // slot -1: Info.plist (none)
	hashes := len(cd)                                   // code slot 0
	cd = append(cd, make([]byte, nCode*sha256.Size)...) // filled in below

	const nBlobs = 3
	super := make([]byte, 12+8*nBlobs)
	be.PutUint32(super[0:], csSuperBlob)
	be.PutUint32(super[8:], nBlobs)
	cdAt := len(super)
	for i, blob := range []struct {
		slot uint32
		b    []byte
	}{{csSlotCodeDir, cd}, {csSlotRequirements, reqs}, {csSlotCMS, cms}} {
		be.PutUint32(super[12+8*i:], blob.slot)
		be.PutUint32(super[16+8*i:], uint32(len(super)))
		super = append(super, blob.b...)
	}
	be.PutUint32(super[4:], uint32(len(super)))
	datasize := int64(len(super)+15) &^ 15
	if datasize <= l.datasize {
		t.Fatalf("the new code signature (%d bytes) is not larger than the old (%d)", datasize, l.datasize)
	}

	out := append(b[:l.dataoff:l.dataoff], super...)
	out = append(out, make([]byte, datasize-int64(len(super)))...)
	le.PutUint32(out[l.datasizeAt:], uint32(datasize))
	fileoff := int64(le.Uint64(out[l.linkeditAt+40:]))
	filesize := l.dataoff + datasize - fileoff
	le.PutUint64(out[l.linkeditAt+48:], uint64(filesize))
	le.PutUint64(out[l.linkeditAt+32:], uint64((filesize+0x3fff)&^0x3fff))
	// The page hashes, of the header as rewritten above.
	slots := out[l.dataoff+int64(cdAt+hashes):]
	for p := range nCode {
		sum := sha256.Sum256(out[p<<pageShift : min((p+1)<<pageShift, limit)])
		copy(slots[p*sha256.Size:], sum[:])
	}
	if err := os.WriteFile(path, out, 0o755); err != nil {
		t.Fatal(err)
	}
	return int64(len(out)) - int64(len(b))
}

// TestMachOCodesignAfterSign signs a darwin/arm64 hello with rpsign (which
// keeps Go's ad hoc signature valid), then re-signs it the way codesign
// --sign with a Developer ID does, with a larger code signature that grows
// the file and rewrites header fields. The release's signature must hold
// (rpsign verify), every page hash must match (go-macho and exefmt), and
// rpsign inspect must show the code signature after the content.
func TestMachOCodesignAfterSign(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles real binaries; skipped with -short")
	}
	key := OwnerKey(t)
	rpsign := GoBuild(t, rpsignPkg, "")
	dir := t.TempDir()
	bin := filepath.Join(dir, "hello")
	CopyFile(t, crossHello(t, "darwin/arm64", key), bin)
	env := append(toolEnv(), "RP_KEY_DARWIN_ARM64="+key.Secret)
	run(t, time.Minute, env, rpsign, "sign", bin, "--key-env", "RP_KEY_DARWIN_ARM64", "--version", "1.2.3")
	run(t, time.Minute, nil, rpsign, "verify", bin, "--pub", key.Public)
	checkPageHashes(t, bin)
	before, err := region.ScanFile(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}

	grew := resignLikeCodesign(t, bin, 9000)
	t.Logf("the re-signed file is %d bytes larger", grew)
	out := run(t, time.Minute, nil, rpsign, "verify", bin, "--pub", key.Public)
	if !strings.Contains(out, "OK, version 1.2.3") {
		t.Errorf("rpsign verify: %s", out)
	}
	checkPageHashes(t, bin)
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	h := make([]byte, exefmt.MaxHeader)
	if _, err := f.ReadAt(h, 0); err != nil {
		t.Fatal(err)
	}
	l, err := exefmt.Parse(h, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if good, total, err := exefmt.CheckPageHashes(f, l); err != nil || good != total || total == 0 {
		t.Errorf("exefmt: %d of %d page hashes match: %v", good, total, err)
	}
	if adhoc, err := exefmt.Adhoc(f, l); err != nil || adhoc {
		t.Errorf("the re-signed file's signature is ad hoc (%v, %v), want one by a certificate", adhoc, err)
	}

	out = run(t, time.Minute, nil, rpsign, "inspect", bin)
	m := regexp.MustCompile(`(?m)^content:    (\d+) bytes, then (\d+) bytes of OS code signature$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rpsign inspect does not show the code signature tail:\n%s", out)
	}
	content, _ := strconv.ParseInt(m[1], 10, 64)
	tail, _ := strconv.ParseInt(m[2], 10, 64)
	if content != before.ContentEnd || content+tail != st.Size() || tail != l.Signature.Len {
		t.Errorf("inspect: %d bytes of content and %d of code signature; want %d and %d", content, tail, before.ContentEnd, l.Signature.Len)
	}
	if !strings.Contains(out, "matches:    yes") {
		t.Errorf("rpsign inspect:\n%s", out)
	}
	after, err := region.ScanFile(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	if after.FileID == before.FileID {
		t.Error("the re-signed file has the file ID of the one before")
	}
}

// TestUniversalRefused builds a universal (fat) Mach-O from the darwin
// amd64 and arm64 builds of hello, as lipo does, and checks that rpsign
// sign refuses it, saying why, and leaves it unchanged.
func TestUniversalRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles real binaries; skipped with -short")
	}
	key := OwnerKey(t)
	rpsign := GoBuild(t, rpsignPkg, "")
	dir := t.TempDir()
	slices := []struct {
		target           string
		cputype, subtype uint32
	}{
		{"darwin/amd64", 0x01000007, 3},
		{"darwin/arm64", 0x0100000c, 0},
	}
	const align = 14 // slices start on 16 KiB boundaries
	be := binary.BigEndian
	fat := be.AppendUint32(be.AppendUint32(nil, 0xcafebabe), uint32(len(slices)))
	var bodies [][]byte
	off := int64(1) << align
	for _, s := range slices {
		b, err := os.ReadFile(crossHello(t, s.target, key))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []uint32{s.cputype, s.subtype, uint32(off), uint32(len(b)), align} {
			fat = be.AppendUint32(fat, v)
		}
		bodies = append(bodies, b)
		off = (off + int64(len(b)) + 1<<align - 1) &^ (1<<align - 1)
	}
	for _, b := range bodies {
		fat = append(fat, make([]byte, ((len(fat)+1<<align-1)&^(1<<align-1))-len(fat))...)
		fat = append(fat, b...)
	}
	bin := filepath.Join(dir, "hello-universal")
	if err := os.WriteFile(bin, fat, 0o755); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "owner_key")
	if err := os.WriteFile(keyFile, []byte(key.Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := FileSum(t, bin)
	out, err := runErr(t, time.Minute, nil, rpsign, "sign", bin, "--key-file", keyFile, "--version", "1.0.0")
	if err == nil {
		t.Fatalf("rpsign signed a universal binary:\n%s", out)
	}
	if !strings.Contains(out, exefmt.ErrUniversal.Error()) {
		t.Errorf("rpsign's refusal does not say %q:\n%s", exefmt.ErrUniversal, out)
	}
	if FileSum(t, bin) != sum {
		t.Error("the refused universal binary changed")
	}
}
