package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"

	"github.com/org/rustpatcher-go/region"
)

// verifySelf checks that the executable file at exe verifies with pub and
// holds exactly the region the program runs with, which current returns
// (region.Current, but for tests). It returns that region, also on most
// errors, for messages, and the file's ID.
//
// It is the one check of a program's own file: the pipeline's first step
// (updates are off when it fails) and the whole of a self-test run.
func verifySelf(ctx context.Context, exe string, pub ed25519.PublicKey, current func() (region.Info, error)) (region.Info, [sha256.Size]byte, error) {
	var id [sha256.Size]byte
	cur, err := current()
	if err != nil {
		return cur, id, fmt.Errorf("reading the program's own region: %w", err)
	}
	if !cur.Signed() {
		return cur, id, fmt.Errorf("%w: this build was never signed (sign it with rpsign sign)", region.ErrUnsigned)
	}
	if err := cur.VerifySignature(pub); err != nil {
		return cur, id, fmt.Errorf("the program's own region: %w", err)
	}
	s, err := region.ScanFile(ctx, exe)
	var onDisk region.Info
	if err == nil {
		onDisk, err = s.Verify(pub)
		if err != nil {
			err = fmt.Errorf("%s: %w", exe, err)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return cur, id, ctx.Err()
		}
		return cur, id, fmt.Errorf("%w: %w", ErrFileMismatch, err)
	}
	if onDisk != cur {
		return cur, id, fmt.Errorf("%w: %s holds version %s, the program runs %s", ErrFileMismatch, exe, onDisk.Version, cur.Version)
	}
	return cur, s.FileID, nil
}

// executable returns the running program's file, symbolic links resolved,
// so that the real file is the one verified and replaced.
func executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("client: locating the executable: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return exe, nil
}
