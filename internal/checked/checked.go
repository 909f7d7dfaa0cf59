// Package checked is what the update engine (package client) and the
// sources of the module share about the bytes a source delivers, without
// the network: the network's releases say whether their readers check
// every piece against the signed root as it arrives with a method that
// takes a PieceCheck (the engine's network source asks it, and vouches for
// the release accordingly); and the engine refuses another file than the
// one offered with ErrOtherFile, and a file length that cannot be the
// release's with ErrSize, which a source can tell among the reasons it is
// given.
package checked

import "errors"

// ErrOtherFile means that the update engine refused the bytes a Release
// delivered because they are another file than the one offered: their file
// ID differs.
var ErrOtherFile = errors.New("downloaded file differs from the one offered")

// PieceCheck is the argument of the network Release's PiecesChecked
// method, which reports whether its readers return only bytes checked
// against the signed root as they arrived (see region.PieceChecker). The
// engine does not look for the method on releases: only its own sources
// vouch for pieces (client's offer.piecesVerified).
type PieceCheck struct{}

// ErrSize means that the update engine refused a Release before or while
// downloading it because its file length cannot be the release's: shorter
// than the signed content, longer by more than a code signature may be,
// or longer at all for a file type that has none.
var ErrSize = errors.New("file length does not fit the signed content")

// ErrWrite means that a download failed because it could not write the
// file for its caller (p2p's Release.OpenFile): the caller's side failed
// (a full disk), not the release or its peers.
var ErrWrite = errors.New("cannot write the downloaded file")
