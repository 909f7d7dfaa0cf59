package p2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/checked"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// openLookupTimeout bounds a lookup of a file's providers during a
// download.
const openLookupTimeout = time.Second

// lookupEvery is the least time between two lookups of a file's providers
// during its downloads, from the end of one to the start of the next (here
// and in the scheduler, sched.Config.LookupEvery). A download looks up again only while it knows
// fewer usable peers than it asks at once (waits doubling from
// lookupEvery, sched's sparseLookup) or when none is left to ask, so the extra
// lookups come where they help, at the start of a release, when the nodes
// that hold a piece double faster than once a second: in the swarm
// simulator, 1,000 nodes serving early are done in 7.1 s rather than
// 7.4 s with 12% more lookups (docs/BENCHMARKS.md).
const lookupEvery = 500 * time.Millisecond

// ErrOtherFile means that the update engine refused the bytes a Release
// delivered because they are another file than the one offered: their file
// ID differs. It is checked.ErrOtherFile, the error the engine wraps, so
// that a Release can tell it among the reasons it is given by Reject.
var ErrOtherFile = checked.ErrOtherFile

// ErrSize means that the update engine refused a Release before or while
// downloading it because its file length cannot be the release's: shorter
// than the signed content, longer by more than a code signature may be,
// or longer at all for a file type that has none (see
// region.Info.CheckFileSize and CheckHeader). It is checked.ErrSize, the
// error the engine wraps. The peers that offered that length get strikes, and
// the offer is never downloaded again.
var ErrSize = checked.ErrSize

// ErrWrite means that a reader of Release.OpenFile failed because it could
// not write the caller's file: the caller's side failed, not the release
// or its peers. It is checked.ErrWrite, which the engine tells apart.
var ErrWrite = checked.ErrWrite

// A Release is one file of a signed release, offered by one or more peers:
// the same region, file length and file ID. Its Info verifies with the owner
// key. It implements the update engine's Release (and Rejecter): Open
// downloads the file from several peers at once, checking each piece of a
// v1 release against the signed root as it arrives.
type Release struct {
	src   *Source
	offer wire.Offer
	peers []peer.AddrInfo // who offered it; set by Releases

	mu       sync.Mutex
	checker  *region.PieceChecker     // once the piece hashes are in (v1)
	leaves   [][sha256.Size]byte      // the piece hashes checker checks against
	bad      map[peer.ID]bool         // peers that sent provably bad data for this file
	from     map[peer.ID]bool         // peers that delivered bytes of it
	unsigned map[peer.ID]bool         // peers that delivered bytes the signature does not cover
	piece0   peer.ID                  // the peer that delivered piece 0 last
	opened   bool                     // Open was called
	exts     map[peer.ID]wire.InfoExt // what the peers that offered it said after their info answer
	noPack   map[peer.ID]bool         // peers asked for pieces only: they refused packed requests, or sent a packed piece that failed
	noDelta  map[peer.ID]bool         // peers not asked for deltas: they sent one that failed
	found    []peer.AddrInfo          // the last lookup of the file's providers
	foundAt  time.Time
}

// newRelease returns the Release of the file o describes, offered by no
// peer yet.
func newRelease(s *Source, o wire.Offer) *Release {
	return &Release{src: s, offer: o, bad: map[peer.ID]bool{}, from: map[peer.ID]bool{}, unsigned: map[peer.ID]bool{},
		exts: map[peer.ID]wire.InfoExt{}, noPack: map[peer.ID]bool{}, noDelta: map[peer.ID]bool{}}
}

// key names the offer: region, file length and file ID.
func (r *Release) key() offerKey {
	return offerKey{reg: r.offer.Region, size: r.offer.Layout.Size, id: r.offer.FileID}
}

// Info returns the release's signed region.
func (r *Release) Info() region.Info { return r.offer.Info }

// FileID returns the ID of the file the peers offered (see
// region.Scanned.FileID).
func (r *Release) FileID() [sha256.Size]byte { return r.offer.FileID }

// Size returns the length of the file the peers offered: its content and
// the OS code signature that may follow.
func (r *Release) Size() int64 { return r.offer.Layout.Size }

// PiecesChecked reports whether Open's readers return only bytes checked
// against the signed root as they arrived (a v1 release; but for the
// code-signature tail, which the root does not cover): the update engine
// then need not hash them again. Its argument's type is internal, so that no
// Source outside the module can claim to check pieces.
func (r *Release) PiecesChecked(checked.PieceCheck) bool { return r.offer.Info.Format == region.V1 }

// Peers returns the peers that offered the file.
func (r *Release) Peers() []peer.ID {
	var out []peer.ID
	for _, ai := range r.peers {
		out = append(out, ai.ID)
	}
	return out
}

// String names the release, its file and, once it was opened, the peers
// that delivered its bytes. The update engine remembers a release that
// failed by this name, so a file whose download failed (its bytes were
// refused, or no peer delivered them) is tried again at the next poll
// (Releases returns new Release values), from peers that have not been
// struck.
func (r *Release) String() string {
	r.mu.Lock()
	from := slices.Sorted(maps.Keys(r.from))
	opened := r.opened
	r.mu.Unlock()
	s := fmt.Sprintf("p2p %s release %s file %x", r.src.target, r.offer.Info.Version, r.offer.FileID[:6])
	switch {
	case len(from) == 0 && opened:
		return s + " (no peer delivered a piece)"
	case len(from) == 0:
		return s
	}
	names := make([]string, len(from))
	for i, p := range from {
		names[i] = p.String()
	}
	return s + " from " + strings.Join(names, ",")
}

// Reject is told that the update engine refused the bytes this Release
// delivered, and why. The peers that delivered bytes nobody could check on
// arrival get strikes: for a v0 release every peer that delivered bytes of
// it; for a v1 release, whose content was checked piece by piece, only
// when the file is not the one offered (ErrOtherFile), the peers that
// delivered piece 0 (whose OS code signature header fields the root does
// not cover) or the tail (the code signature). Other refusals of a v1
// release (a failed self-test) say nothing about the peers, but for
// ErrSize: the length the peers offered is impossible for the file (the
// region and piece 0, both checked against the signature, tell), so every
// peer that offered it gets a strike, and the node never downloads that
// offer again (see Source.Releases).
func (r *Release) Reject(reason error) {
	r.mu.Lock()
	var blame map[peer.ID]bool
	switch {
	case r.offer.Info.Format != region.V1:
		blame = r.from
	case errors.Is(reason, ErrOtherFile):
		blame = r.unsigned
	case errors.Is(reason, ErrSize):
		blame = map[peer.ID]bool{}
		for _, ai := range r.peers {
			blame[ai.ID] = true
		}
		r.src.n.refused.add(r.key())
	}
	struck := slices.Sorted(maps.Keys(blame))
	clear(blame)
	r.mu.Unlock()
	r.src.n.dropPartial(r.offer.FileID) // its pieces are the release's, but the engine will not serve it
	for _, p := range struck {
		r.src.n.strike(p, strikeForged, fmt.Errorf("file %x (release %s) it offered or delivered was refused: %w", r.offer.FileID[:8], r.offer.Info.Version, reason))
	}
}

// Open returns the file's bytes from offset to its end. It starts a download
// (see download.go) that asks the peers that offered the file and the DHT's
// providers of it, several at once, checks every piece of a v1 release
// against the signed root before handing it on, and strikes only peers that
// send provably bad data. The reader fails only when no peer can deliver
// the next piece for a while; the caller may then call Open again with the
// offset reached. Close the reader to stop the download.
func (r *Release) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	return r.open(ctx, nil, offset)
}

// OpenFile is Open for a caller that keeps the file in f: the download
// writes the bytes of each piece from offset on into f at their place,
// before the reader returns them, so that once the reader has returned
// the bytes up to some point, f holds them too and the caller need not
// write them; the bytes below offset are left as the caller wrote them
// (a resumed download keeps what was read before). f must be
// open for writing; the download does not move f's offset, truncate it
// or close it. A node with Config.PiecesEarly serves the pieces it
// checked from f rather than from a copy of its own, and so goes on
// holding a read handle of f's file after the reader is closed, until it
// serves the release whole (ServeDownloaded) or not at all: the caller may
// rename f's file but must not write other bytes into it. A failure to
// write f fails the reader with an error that wraps ErrWrite.
func (r *Release) OpenFile(ctx context.Context, f *os.File, offset int64) (io.ReadCloser, error) {
	if f == nil {
		return nil, errors.New("p2p: OpenFile with a nil file")
	}
	return r.open(ctx, f, offset)
}

// open is Open, writing the pieces into into when it is set (OpenFile).
func (r *Release) open(ctx context.Context, into *os.File, offset int64) (io.ReadCloser, error) {
	if err := r.src.n.checkOpen(); err != nil {
		return nil, err
	}
	size := r.offer.Layout.Size
	if offset < 0 || offset > size {
		return nil, fmt.Errorf("file %x of release %s: offset %d outside 0..%d", r.offer.FileID[:8], r.offer.Info.Version, offset, size)
	}
	if offset == size {
		return io.NopCloser(strings.NewReader("")), nil
	}
	r.mu.Lock()
	r.opened = true
	r.mu.Unlock()
	d := newDownload(ctx, r, offset)
	d.into = into
	if f := r.src.n.cfg.onDownload; f != nil {
		f(d)
	}
	d.start()
	return d, nil
}

// fetchMode is how a download asks a peer for pieces.
type fetchMode int

const (
	// modePieces asks for raw pieces (wire.KindPieces), as every node
	// answers.
	modePieces fetchMode = iota
	// modePacked asks for packed pieces without a base: compressed.
	modePacked
	// modeDelta asks for packed pieces as deltas from the download's base.
	modeDelta
)

// modeFor returns how to ask p for pieces of the file, for a download
// whose base is the file base (nil: none). A v0 release, whose pieces are
// not checked on arrival, is asked for raw pieces only; a peer whose info
// answer had no extension (an older node) too, and one that refused a
// packed request or sent a packed piece that failed. A peer found
// otherwise (a provider in the DHT) is asked for packed pieces: it
// refuses them if it is an older node.
func (r *Release) modeFor(p peer.ID, base *served) fetchMode {
	if r.offer.Info.Format != region.V1 {
		return modePieces
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ext, known := r.exts[p]
	switch {
	case r.noPack[p], known && !ext.Packed:
		return modePieces
	case base != nil && ext.HasBase(base.id) && !r.noDelta[p]:
		return modeDelta
	}
	return modePacked
}

// demote records that p is no longer to be asked in mode m: a peer that
// refused or failed packed pieces is asked for raw pieces, and one that
// failed deltas for compressed pieces.
func (r *Release) demote(p peer.ID, m fetchMode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m == modeDelta {
		r.noDelta[p] = true
	} else {
		r.noPack[p] = true
	}
}

// deltaBase returns the file this node serves that some peer offering
// the file holds deltas from, with a reference taken, or nil.
func (r *Release) deltaBase() *served {
	if r.offer.Info.Format != region.V1 {
		return nil
	}
	r.mu.Lock()
	var bases [][wire.IDLen]byte
	for _, ext := range r.exts {
		bases = append(bases, ext.Bases...)
	}
	r.mu.Unlock()
	for _, id := range bases {
		if id == r.offer.FileID {
			continue
		}
		if sv := r.src.n.server.acquireID(id); sv != nil {
			return sv
		}
	}
	return nil
}

// pieceChecker returns the checker of the file's pieces, or nil until the
// piece hashes are in.
func (r *Release) pieceChecker() *region.PieceChecker {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checker
}

// setPieceChecker keeps c, the checker of leaves, unless a checker is
// kept already.
func (r *Release) setPieceChecker(c *region.PieceChecker, leaves [][sha256.Size]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checker == nil {
		r.checker, r.leaves = c, leaves
	}
}

// offered reports whether p offered the file in its info answer: it then
// serves all of it.
func (r *Release) offered(p peer.ID) bool {
	for _, ai := range r.peers {
		if ai.ID == p {
			return true
		}
	}
	return false
}

// needsHashes reports whether a download must fetch the piece hashes
// before it can check pieces: a v1 release whose hashes are not in yet.
func (r *Release) needsHashes() bool {
	return r.offer.Info.Format == region.V1 && r.pieceChecker() == nil
}

// delivered records that p delivered piece i, which is not covered by the
// signature in full when it is piece 0 or the tail of a v1 release, or any
// piece of a v0 one.
func (r *Release) delivered(p peer.ID, i int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.from[p] = true
	if r.offer.Info.Format != region.V1 || i == 0 || r.offer.Layout.IsTail(i) {
		r.unsigned[p] = true
	}
	if i == 0 {
		r.piece0 = p
	}
}

// firstPieceFrom returns the peer that delivered piece 0, if any.
func (r *Release) firstPieceFrom() peer.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.piece0
}

// markBad records that p sent provably bad data for this file: no
// download of it asks p again.
func (r *Release) markBad(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bad[p] = true
}

// candidates returns the peers to download from, in the order to try
// them: the peers that offered the file, then its providers found so far,
// without the peers that sent bad data for it. Each download starts with
// another peer (round robin per file), peers with strikes go last, and
// peers with maxStrikes or more are left out while others remain.
func (r *Release) candidates() []peer.AddrInfo {
	n := r.src.n
	r.mu.Lock()
	all := append(slices.Clone(r.peers), r.found...)
	bad := maps.Clone(r.bad)
	r.mu.Unlock()
	seen := map[peer.ID]bool{n.h.ID(): true}
	var out []peer.AddrInfo
	for _, ai := range all {
		if !seen[ai.ID] && !bad[ai.ID] {
			seen[ai.ID] = true
			out = append(out, ai)
		}
	}
	if len(out) == 0 {
		return nil
	}
	k := n.book.nextTurn(r.offer.FileID) % len(out)
	out = append(out[k:], out[:k]...)
	strikes := map[peer.ID]int{}
	for _, ai := range out {
		strikes[ai.ID] = n.strikes.of(ai.ID)
	}
	// sort.SliceStable, not slices.SortStableFunc: a generic sort of a struct
	// links its own copy of the sort (docs/BENCHMARKS.md, Cost of embedding).
	sort.SliceStable(out, func(i, j int) bool { return strikes[out[i].ID] < strikes[out[j].ID] })
	good := out[:0:0]
	for _, ai := range out {
		if strikes[ai.ID] < maxStrikes {
			good = append(good, ai)
		}
	}
	if len(good) > 0 {
		return good
	}
	return out
}

// lookup returns the DHT's providers of the file (under its release key
// and, when that is full, shard keys: findProviders), looking them up (for at
// most openLookupTimeout) unless one runs or the last one ended less than
// lookupEvery ago.
func (r *Release) lookup(ctx context.Context) []peer.AddrInfo {
	r.mu.Lock()
	if time.Since(r.foundAt) < lookupEvery {
		found := r.found
		r.mu.Unlock()
		return found
	}
	r.foundAt = time.Now() // one lookup at a time
	r.mu.Unlock()
	n := r.src.n
	lctx, cancel := context.WithTimeout(ctx, min(n.cfg.LookupTimeout, openLookupTimeout))
	defer cancel()
	var found []peer.AddrInfo
	for ai := range n.findProviders(lctx, ReleaseCID(r.src.pub, r.src.target, r.offer.FileID)) {
		if ai.ID != n.h.ID() {
			found = append(found, ai)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.found, r.foundAt = found, time.Now()
	return found
}
