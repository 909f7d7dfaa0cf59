package client

import (
	"context"
	"io"

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
	// Open returns the release's whole file (region included, so
	// Info().ContentLen() bytes in all) starting at offset. The engine
	// calls Open again with the offset reached when a read fails, so a
	// source that has several peers may resume from another one.
	Open(ctx context.Context, offset int64) (io.ReadCloser, error)
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
