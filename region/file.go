package region

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
)

// ScanFile opens the file at path and scans it; see Scan.
func ScanFile(ctx context.Context, path string) (*Scanned, error) {
	f, err := openRegular(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := Scan(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// SignFile signs the binary at path in place with key and version; see
// Sign.
func SignFile(ctx context.Context, path string, key ed25519.PrivateKey, version string) (Info, error) {
	return Sign(ctx, path, key, SignOptions{Version: version})
}

// SignOptions are the details of a signature made by Sign.
type SignOptions struct {
	// Version is the release version, canonicalised by ParseVersion.
	Version string
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
// computes the hash and size, then only the region's 176 bytes are written
// and synced. Signing an already signed binary replaces its signature. On
// error (ctx done included) the file is unchanged.
func Sign(ctx context.Context, path string, key ed25519.PrivateKey, opts SignOptions) (Info, error) {
	v, err := ParseVersion(opts.Version)
	if err != nil {
		return Info{}, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return Info{}, fmt.Errorf("signing key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	f, err := openRegular(path, os.O_RDWR)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	s, err := scanFind(ctx, f, opts.Find)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	if opts.Check != nil {
		if err := opts.Check(s); err != nil {
			return Info{}, err
		}
	}
	in := Info{Version: v, Hash: s.Hash, Size: s.Size}
	in.Sign(key)
	b, err := in.Marshal()
	if err != nil {
		return Info{}, err
	}
	if _, err := f.WriteAt(b[:], s.Offset); err != nil {
		return Info{}, fmt.Errorf("%s: writing the region: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}

// VerifyFile checks that the binary at path holds exactly one region, signed
// by pub, whose hash and size match the rest of the file; see Verify.
func VerifyFile(ctx context.Context, path string, pub ed25519.PublicKey) (Info, error) {
	f, err := openRegular(path, os.O_RDONLY)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	in, err := Verify(ctx, f, pub)
	if err != nil {
		return in, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}

// Verify reads r to its end, or until ctx is done, and checks that it is a
// release signed by pub: exactly one region, whose signature verifies and
// whose hash and size match the rest. It returns the region's Info (also
// on most errors, for messages); the error wraps ErrUnsigned,
// ErrSizeMismatch, ErrHashMismatch, ErrBadSignature, ErrMalformed,
// ErrNoRegion, ErrMultipleRegions or ctx's error. Memory use does not depend
// on the length of r.
func Verify(ctx context.Context, r io.Reader, pub ed25519.PublicKey) (Info, error) {
	s, err := Scan(ctx, r)
	if err != nil {
		return Info{}, err
	}
	return s.Verify(pub)
}

// Verify checks the scanned region's signature with pub and that the signed
// hash and size match the scanned file.
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
	if in.Size != s.Size {
		return in, fmt.Errorf("%w: file has %d bytes without the region, signed for %d", ErrSizeMismatch, s.Size, in.Size)
	}
	if in.Hash != s.Hash {
		return in, ErrHashMismatch
	}
	return in, nil
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
