package region

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/org/rustpatcher-go/internal/exefmt"
)

// ScanFile opens the file at path and scans it; see ScanOpen.
func ScanFile(ctx context.Context, path string) (*Scanned, error) {
	f, err := openRegular(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := ScanOpen(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ScanOpen scans the open file f from its start, as Scan, in two passes:
// the first only locates the region, reading the file up to it, so that
// the second, the only one that reads the file to its end, computes only
// the digest of the region's format. It leaves f's offset at its end.
func ScanOpen(ctx context.Context, f *os.File) (*Scanned, error) {
	return scanOpen(ctx, f, false)
}

// ScanReleaseFile is ScanFile for a file offered as a release, such as one
// in a release directory: a file longer than MaxFileLen is refused without
// being read, and one whose length the region it holds rules out (see
// Info.CheckFileSize) or the file type its headers show (see
// Info.CheckHeader) is read only up to the region. Those errors wrap
// ErrSizeMismatch; with the latter, it also returns what the scan found
// (Offset, Region and FileSize), so that the caller can say which release
// the file claims to be.
func ScanReleaseFile(ctx context.Context, path string) (*Scanned, error) {
	f, err := openRegular(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := scanOpen(ctx, f, true)
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// scanOpen is ScanOpen; with release, it is ScanReleaseFile's scan.
func scanOpen(ctx context.Context, f *os.File, release bool) (*Scanned, error) {
	if release {
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if st.Size() > MaxFileLen {
			return nil, fmt.Errorf("%w: %d bytes, longer than any release can be (%d)", ErrSizeMismatch, st.Size(), int64(MaxFileLen))
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	buf := make([]byte, chunkSize+Size) // both passes read through it
	loc, err := scanFile(ctx, f, scanOptions{locate: true}, buf)
	if err != nil {
		return nil, err
	}
	opt := scanOptions{v0: true, v1: true}
	if in, err := loc.Info(); err == nil && in.Format != 0 {
		opt = scanOptions{v0: in.Format == V0, v1: in.Format == V1}
		if release && in.Signed() {
			if err := in.checkLayout(loc.layout, loc.FileSize); err != nil {
				return loc, err
			}
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	s, err := scanFile(ctx, f, opt, buf)
	if err != nil {
		return nil, err
	}
	if s.Offset != loc.Offset {
		return nil, errors.New("the file changed while it was read")
	}
	return s, nil
}

// scanFile scans an open file, whose size it takes from the file, reading
// through buf (chunkSize+Size bytes, or nil for a new one).
func scanFile(ctx context.Context, f *os.File, opt scanOptions, buf []byte) (*Scanned, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	opt.size = st.Size()
	if buf == nil {
		buf = make([]byte, chunkSize+Size)
	}
	var r io.Reader = f
	if h := holes(f); opt.locate && h != nil {
		r = holeFile{f, h}
	}
	s, err := scan(ctx, r, opt, buf)
	if err != nil {
		return nil, err
	}
	if s.FileSize != opt.size {
		return nil, fmt.Errorf("the file changed size while it was read (%d bytes, then %d)", opt.size, s.FileSize)
	}
	return s, nil
}

// holeFile is a file read by a scan that skips its holes.
type holeFile struct {
	io.Reader
	dataSeeker
}

// SignFile signs the binary at path in place with key and version, in
// format V1 for target; see Sign.
func SignFile(ctx context.Context, path string, key ed25519.PrivateKey, version, target string) (Info, error) {
	return Sign(ctx, path, key, SignOptions{Version: version, Target: target})
}

// SignOptions are the details of a signature made by Sign.
type SignOptions struct {
	// Version is the release version, canonicalised by ParseVersion.
	Version string
	// Format is the region format to write; zero means V1. V0 is for
	// rustpatcher 0.2's tools.
	Format Format
	// Target is the GOOS/GOARCH the binary is for, such as linux/amd64;
	// V1 signs it, and requires it.
	Target string
	// Find lists texts to look for in the file in the same pass that
	// hashes it, such as the public key that the app should embed; the
	// result is in Scanned.Found, for Check.
	Find []string
	// Check, if set, is called with the scan of the file before anything
	// is written; an error it returns leaves the file unchanged and is
	// returned by Sign.
	Check func(*Scanned) error
}

// Sign signs the binary at path in place with key: one pass over the file
// computes the digest of its content, then only the region's 176 bytes are
// written, and, in a Mach-O binary with a code signature, the hashes of the
// code pages that hold them, so that an ad hoc signature (which Go's linker
// gives every darwin/arm64 binary) stays valid. Signing an already signed
// binary replaces its signature. On error (ctx done included) the file is
// unchanged.
func Sign(ctx context.Context, path string, key ed25519.PrivateKey, opts SignOptions) (Info, error) {
	v, err := ParseVersion(opts.Version)
	if err != nil {
		return Info{}, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return Info{}, fmt.Errorf("signing key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	format := opts.Format
	switch format {
	case 0:
		format = V1
	case V0:
		if opts.Target != "" {
			return Info{}, errors.New("a v0 region has no target field; sign v1, or leave the target out")
		}
	case V1:
	default:
		return Info{}, fmt.Errorf("unknown region format %d", format)
	}
	if format == V1 && !ValidTarget(opts.Target) {
		return Info{}, fmt.Errorf("target %q: want GOOS/GOARCH such as linux/amd64, at most %d bytes", opts.Target, TargetLen)
	}
	f, err := openRegular(path, os.O_RDWR)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	s, err := scanFile(ctx, f, scanOptions{v0: format == V0, v1: format == V1, sign: true, find: opts.Find}, nil)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	if opts.Check != nil {
		if err := opts.Check(s); err != nil {
			return Info{}, err
		}
	}
	in := Info{Format: format, Version: v}
	if format == V0 {
		in.Hash, in.Size = s.V0Hash, s.V0Size
	} else {
		in.Hash, in.Size, in.Offset, in.Target = s.Root, uint64(s.ContentEnd), uint64(s.Offset), opts.Target
	}
	in.Sign(key)
	b, err := in.Marshal()
	if err != nil {
		return Info{}, err
	}
	if _, err := f.WriteAt(b[:], s.Offset); err != nil {
		return Info{}, fmt.Errorf("%s: writing the region: %w", path, err)
	}
	if l := s.layout; l.Kind == exefmt.MachO && l.HasSignature() {
		if _, err := exefmt.RepairCodeSignature(f, l, exefmt.Range{Off: s.Offset, Len: Size}); err != nil {
			return Info{}, fmt.Errorf("%s: region written, but the Mach-O code signature could not be brought up to date: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}

// VerifyFile checks that the binary at path is a release signed by pub;
// see Verify.
func VerifyFile(ctx context.Context, path string, pub ed25519.PublicKey) (Info, error) {
	s, err := ScanFile(ctx, path)
	if err != nil {
		return Info{}, err
	}
	in, err := s.Verify(pub)
	if err != nil {
		return in, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}

// Verify reads r to its end, or until ctx is done, and checks that it is a
// release signed by pub; see Scanned.Verify. Memory use does not depend on
// the length of r.
func Verify(ctx context.Context, r io.Reader, pub ed25519.PublicKey) (Info, error) {
	s, err := Scan(ctx, r)
	if err != nil {
		return Info{}, err
	}
	return s.Verify(pub)
}

// Verify checks the scanned file: exactly one region, whose signature
// verifies with pub, whose content (see docs/FORMAT.md) has the signed
// length and digest, and, in V1, which sits where it was signed; after the
// content only an OS code signature may follow, within MaxTail. It returns
// the region's Info (also on most errors, for messages); the error wraps
// ErrUnsigned, ErrBadSignature, ErrMalformed, ErrMoved, ErrSizeMismatch or
// ErrHashMismatch.
func (s *Scanned) Verify(pub ed25519.PublicKey) (Info, error) {
	in, err := s.Info()
	if err != nil {
		return in, err
	}
	if !in.Signed() {
		return in, ErrUnsigned
	}
	if err := in.VerifySignature(pub); err != nil {
		return in, err
	}
	return in, s.Matches(in)
}

// Matches checks that the scanned file is the content in (whose signature
// the caller checked): the region's position (V1), the content's length
// and digest, and what follows the content.
func (s *Scanned) Matches(in Info) error {
	if err := s.MatchesLayout(in); err != nil {
		return err
	}
	switch in.Format {
	case V0:
		if !s.v0 {
			return errors.New("the scan did not compute the v0 digest")
		}
		if s.V0Size != in.Size {
			return fmt.Errorf("%w: content has %d bytes without the region, signed for %d", ErrSizeMismatch, s.V0Size, in.Size)
		}
		if s.V0Hash != in.Hash {
			return ErrHashMismatch
		}
	case V1:
		if !s.v1 {
			return errors.New("the scan did not compute the v1 digest")
		}
		if s.Root != in.Hash {
			return ErrHashMismatch
		}
	}
	return nil
}

// MatchesLayout is Matches but for the digest: the scanned region is in
// (its bytes), at its signed position, the file has the signed content
// length and only what the layout allows follows it. It is the whole check
// of a stream whose content was checked piece by piece against in's root
// as it arrived (see PieceChecker and ScanLayout).
func (s *Scanned) MatchesLayout(in Info) error {
	if got, err := s.Info(); err != nil || got != in {
		return fmt.Errorf("%w: the file holds another region than the one checked", ErrMalformed)
	}
	end := in.ContentLen()
	if in.Format == V1 && int64(in.Offset) != s.Offset {
		return fmt.Errorf("%w: signed for offset %d, found at %d", ErrMoved, in.Offset, s.Offset)
	}
	if s.FileSize < end {
		return fmt.Errorf("%w: file has %d bytes, the signed content %d", ErrSizeMismatch, s.FileSize, end)
	}
	tail := s.FileSize - end
	l := s.layout
	switch {
	case l.Kind == exefmt.MachO && l.HasSignature():
		if l.Signature.Off != end {
			return fmt.Errorf("%w: the code signature starts at %d, the signed content ends at %d", ErrSizeMismatch, l.Signature.Off, end)
		}
		if l.Signature.End() != s.FileSize {
			return fmt.Errorf("%w: %d bytes follow the code signature", ErrSizeMismatch, s.FileSize-l.Signature.End())
		}
	case l.Kind == exefmt.PE:
		// Only the certificate table the Security directory names may
		// follow, aligned to 8 bytes after the content.
		switch {
		case tail == 0:
		case !l.HasSignature():
			return fmt.Errorf("%w: %d bytes follow the signed content of a PE file that names no certificate table", ErrSizeMismatch, tail)
		case l.Signature.Off < end || l.Signature.Off-end >= 8:
			return fmt.Errorf("%w: the certificate table starts at %d, the signed content ends at %d", ErrSizeMismatch, l.Signature.Off, end)
		case l.Signature.End() != s.FileSize:
			return fmt.Errorf("%w: the certificate table ends at %d, the file at %d", ErrSizeMismatch, l.Signature.End(), s.FileSize)
		}
	default:
		if tail > 0 {
			return fmt.Errorf("%w: %d bytes follow the signed content of a %v file that has no code signature", ErrSizeMismatch, tail, l.Kind)
		}
	}
	if tail > MaxTail(end) {
		return fmt.Errorf("%w: %d bytes of code signature after %d bytes of content, more than %d", ErrSizeMismatch, tail, end, MaxTail(end))
	}
	return nil
}

// openRegular opens path and checks that it is a regular file; with O_RDWR it
// also refuses files without an owner write bit, even for root, so a file
// made read-only on purpose is never changed.
func openRegular(path string, flag int) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a directory, not a binary", path)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: is not a regular file", path)
	}
	if flag&os.O_RDWR != 0 && st.Mode().Perm()&0o200 == 0 {
		return nil, fmt.Errorf("%s: is read-only (mode %04o); make it writable (chmod u+w) to sign it", path, st.Mode().Perm())
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: %w", path, pe.Err)
		}
		return nil, err
	}
	return f, nil
}
