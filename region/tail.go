package region

import (
	"fmt"
	"strings"

	"github.com/org/rustpatcher-go/internal/exefmt"
)

// MaxContentLen is the longest content a release may have: 64 GiB, whose
// piece hashes (32 bytes a MiB) take 2 MiB. Nodes fetch no longer release.
const MaxContentLen = 1 << 36

// MaxFileLen is the longest file a release may be: MaxContentLen bytes of
// content and the longest tail that may follow them (MaxTail). A longer
// file is not a release, whatever it holds: directory listings skip it
// without reading it.
const MaxFileLen = MaxContentLen + 1<<20 + MaxContentLen/64

// signedTail reports whether the executables of target (GOOS/GOARCH) may
// carry an OS code signature after their content: Mach-O (darwin, ios)
// and PE (windows) do; Go builds every other target as ELF or another
// format without one (XCOFF, Plan 9 a.out, WebAssembly).
func signedTail(target string) bool {
	goos, _, _ := strings.Cut(target, "/")
	return goos == "darwin" || goos == "ios" || goos == "windows"
}

// CheckFileSize reports whether a file of size bytes can be the release
// in, from the signed region alone, as before a download: the file holds
// the whole content, at most MaxTail(content) bytes follow it, and none
// at all in a v1 release for a target whose executables have no code
// signature (neither Mach-O nor PE: see docs/FORMAT.md). The error wraps
// ErrSizeMismatch.
func (in Info) CheckFileSize(size int64) error {
	end := in.ContentLen()
	switch tail := size - end; {
	case tail < 0:
		return fmt.Errorf("%w: a file of %d bytes for %d bytes of signed content", ErrSizeMismatch, size, end)
	case tail > MaxTail(end):
		return fmt.Errorf("%w: %d bytes of code signature after %d bytes of content, more than %d", ErrSizeMismatch, tail, end, MaxTail(end))
	case tail > 0 && in.Format == V1 && !signedTail(in.Target):
		return fmt.Errorf("%w: %d bytes follow the signed content of a release for %s, whose executables carry no code signature", ErrSizeMismatch, tail, in.Target)
	}
	return nil
}

// CheckHeader reports whether a file of size bytes whose first bytes are
// header can be the release in, as soon as those bytes are in: header
// holds the file's first exefmt.MaxHeader bytes, or all of it when it is
// shorter, such as piece 0 of a download. Besides CheckFileSize, it
// checks what the file's type allows to follow the content, as far as
// the content alone decides it (see docs/FORMAT.md): nothing after an ELF
// file, a Mach-O without a code signature load command, or any other file
// that is neither Mach-O nor PE. Where the code signature of a Mach-O
// with one, or the certificate table of a PE, lies is in header fields
// the content leaves out, which only the whole file, its ID, can vouch
// for: that is checked with the whole file (Scanned.MatchesLayout). The
// error wraps ErrSizeMismatch.
func (in Info) CheckHeader(header []byte, size int64) error {
	if err := in.CheckFileSize(size); err != nil {
		return err
	}
	if size == in.ContentLen() {
		return nil
	}
	l, err := exefmt.Parse(header[:min(len(header), exefmt.MaxHeader)], size)
	if err != nil {
		return nil // malformed headers fail the piece check or the scan
	}
	return in.checkLayout(l, size)
}

// checkLayout is CheckHeader with the headers parsed into l.
func (in Info) checkLayout(l exefmt.Layout, size int64) error {
	if err := in.CheckFileSize(size); err != nil {
		return err
	}
	tail := size - in.ContentLen()
	if tail == 0 || l.Kind == exefmt.PE || (l.Kind == exefmt.MachO && l.HasSignature()) {
		return nil
	}
	return fmt.Errorf("%w: %d bytes follow the signed content of a %v file that has no code signature", ErrSizeMismatch, tail, l.Kind)
}
