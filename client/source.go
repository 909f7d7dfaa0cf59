package client

import (
	"context"
	"crypto/sha256"
	"io"

	"github.com/org/rustpatcher-go/internal/checked"
	"github.com/org/rustpatcher-go/region"
)

// A Source offers signed releases to the update engine. The engine trusts
// nothing a Source says: it checks every Info's signature with the owner key
// and every byte against the signed hash and size before using a release.
// Implementations must be safe for concurrent use.
type Source interface {
	// Releases returns the releases the source offers now. It may return
	// releases for other targets, older versions or with bad signatures;
	// the engine filters them.
	Releases(ctx context.Context) ([]Release, error)
	// String names the source in logs and events.
	String() string
}

// A Release is one signed binary offered by a Source.
type Release interface {
	// Info is the release's signed region as the source claims it.
	Info() region.Info
	// FileID names the exact file offered (see region.Scanned.FileID),
	// or is zero when the source cannot tell before the download. The
	// engine checks the bytes it receives against it, and remembers a file
	// that failed here by it.
	FileID() [sha256.Size]byte
	// Size is the length of the file offered: Info().ContentLen(), and
	// the OS code signature that may follow (see docs/FORMAT.md). The
	// engine reads no more than that, and at most region.MaxTail after
	// the content.
	Size() int64
	// Open returns the release's whole file, region included, starting
	// at offset. The engine calls Open again with the offset reached when
	// a read fails, so a source that has several peers may resume from
	// another one.
	Open(ctx context.Context, offset int64) (io.ReadCloser, error)
}

// A Rejecter is a Release that wants to know when the engine refused the
// bytes it delivered: they did not verify, were another file than the one
// offered, or the new binary failed its self-test. A source with several
// suppliers blames the ones that sent them. Failures on this machine's side
// (disk full, permissions) are never reported.
type Rejecter interface {
	Reject(reason error)
}

// piecesChecker is a Release that checks every byte its readers return
// (but an OS code signature after the content) against the signed root of
// a v1 release, piece by piece as it arrives, as the network does: the
// engine then does not hash the bytes again, and checks only what
// surrounds the content (region.Scanned.MatchesLayout). Only the module's
// own sources (the network, HTTPS) can have the method: its argument's
// type is internal.
type piecesChecker interface {
	PiecesChecked(checked.PieceCheck) bool
}

// piecesChecked reports whether r is a piecesChecker that checks pieces.
func piecesChecked(r Release) bool {
	pc, ok := r.(piecesChecker)
	return ok && pc.PiecesChecked(checked.PieceCheck{})
}

// A Seeder is a Source that also serves releases to others, such as the
// peer-to-peer network. The engine calls Seed with the running binary once it
// has verified it, and again with each newly verified release as soon as it is
// on disk, before any restart.
type Seeder interface {
	// Seed starts serving the verified binary at path, whose region is in.
	// It opens the file at once: the path may be replaced afterwards.
	Seed(ctx context.Context, path string, in region.Info) error
}
