package wire

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// KindWatch asks which pieces of a file the peer holds, by file ID, and to
// be told each time it holds more: a have request (KindHave, whose fields
// it has) that stays open. The answer is a have answer (status OK and a
// bitfield; see ReadHave) followed by more bitfields, each sent once the
// peer holds pieces the one before did not name, at most one every
// WatchEvery, and the same again after MaxHaveWait without a change, so
// that the asking node tells a live peer from a stalled one (it waits at
// most MaxHaveWait and its idle timeout for each). Each bitfield names
// every piece the one before named. The peer ends the answer (closes its
// side) after a bitfield that names every piece, when it stops serving the
// file, or after the first bitfield when it holds too many watches; the
// asking node then asks again later, as after a have answer. A node of an
// older release refuses the kind with StatusBadRequest: the asking node
// then asks it with KindHave.
const KindWatch Kind = 7

// WatchEvery is the least time between two bitfields of a watch answer.
const WatchEvery = 100 * time.Millisecond

// WriteWatchUpdate writes a bitfield of a watch answer after the first,
// which WriteHave writes: the bitfield alone.
func WriteWatchUpdate(w io.Writer, b Bitfield) error {
	_, err := w.Write(b)
	return err
}

// ReadWatchUpdate reads a bitfield of a watch answer after the first
// (which ReadHave reads) for a file of layout l: exactly l.HaveLen()
// bytes. prev is the bitfield before it, which it must name every piece
// of. It returns io.EOF when the answer ends before the bitfield's first
// byte, ErrMalformed when it ends within it.
func ReadWatchUpdate(r io.Reader, l Layout, prev Bitfield) (Bitfield, error) {
	n := l.HaveLen()
	if len(prev) != n {
		return nil, fmt.Errorf("a bitfield of %d bytes before, for %d pieces", len(prev), l.NumPieces())
	}
	b := make(Bitfield, n)
	k, err := io.ReadFull(r, b)
	switch {
	case k == 0 && errors.Is(err, io.EOF):
		return nil, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: the watch answer ends in a bitfield", ErrMalformed)
	case err != nil:
		return nil, fmt.Errorf("reading a bitfield: %w", err)
	}
	if extra := l.NumPieces() % 8; extra != 0 && b[n-1]>>extra != 0 {
		return nil, fmt.Errorf("%w: bits set past piece %d", ErrMalformed, l.NumPieces()-1)
	}
	for i, c := range prev {
		if b[i]&c != c {
			return nil, fmt.Errorf("%w: a bitfield drops pieces the one before named", ErrMalformed)
		}
	}
	return b, nil
}
