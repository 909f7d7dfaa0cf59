package client

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"

	"github.com/org/rustpatcher-go/region"
)

// verifySelf checks that the executable file at exe verifies with pub and
// holds exactly the region the program runs with, which current returns
// (region.Current, but for tests). It returns that region, also on most
// errors, for messages.
//
// It is the one check of a program's own file: the pipeline's first step
// (updates are off when it fails) and the whole of a self-test run.
func verifySelf(ctx context.Context, exe string, pub ed25519.PublicKey, current func() (region.Info, error)) (region.Info, error) {
	cur, err := current()
	if err != nil {
		return cur, fmt.Errorf("reading the program's own region: %w", err)
	}
	if !cur.Signed() {
		return cur, fmt.Errorf("%w: this build was never signed (sign it with rpsign sign)", region.ErrUnsigned)
	}
	if err := cur.VerifySignature(pub); err != nil {
		return cur, fmt.Errorf("the program's own region: %w", err)
	}
	onDisk, err := region.VerifyFile(ctx, exe, pub)
	if err != nil {
		if ctx.Err() != nil {
			return cur, ctx.Err()
		}
		return cur, fmt.Errorf("%w: %w", ErrFileMismatch, err)
	}
	if onDisk != cur {
		return cur, fmt.Errorf("%w: %s holds version %s, the program runs %s", ErrFileMismatch, exe, onDisk.Version, cur.Version)
	}
	return cur, nil
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
