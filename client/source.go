package client

import (
	"context"
	"crypto/sha256"
	"io"
	"os"

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

// An offer is a release as the engine takes it from a source, with what
// the source vouches for.
type offer struct {
	Release
	// piecesVerified means that the source vouches that Open's readers
	// return only bytes checked against the signed root of a v1 release,
	// piece by piece as they arrive (all but an OS code signature after
	// the content, which the root does not cover). The engine then does
	// not hash the content again: it checks only what surrounds it
	// (region.Scanned.MatchesLayout). Only the module's own sources that
	// check pieces set it (the network; HTTPS with piece hashes); the
	// releases of every other source are hashed whole.
	piecesVerified bool
}

// A vouchingSource is one of the module's own sources, which says for
// each release what it vouches for. Its method is unexported, so that no
// Source outside the package can be one.
type vouchingSource interface {
	offers(ctx context.Context) ([]offer, error)
}

// offersOf returns the releases src offers: as it vouches for them when
// it is one of the module's own sources, else vouched for by nobody.
func offersOf(ctx context.Context, src Source) ([]offer, error) {
	if v, ok := src.(vouchingSource); ok {
		return v.offers(ctx)
	}
	rels, err := src.Releases(ctx)
	out := make([]offer, len(rels))
	for i, r := range rels {
		out[i] = offer{Release: r}
	}
	return out, err
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

// A fileOpener is a Release whose download writes the file itself into
// the engine's temporary file, each piece at its offset, before its reader
// returns the bytes (p2p's Release.OpenFile): the engine then reads the
// bytes through, to check them, without writing them again, and the
// network serves the pieces from that file while it downloads. A failure
// to write the file fails the reader with checked.ErrWrite.
type fileOpener interface {
	OpenFile(ctx context.Context, f *os.File, offset int64) (io.ReadCloser, error)
}

// A downloadSeeder is a Seeder that serves a binary the engine wrote from
// a download and verified as it wrote it, whose file ID is id, without
// reading it again when it downloaded that file itself (the network).
type downloadSeeder interface {
	seedDownloaded(ctx context.Context, path string, in region.Info, id [sha256.Size]byte) error
}
