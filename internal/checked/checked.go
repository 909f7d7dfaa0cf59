// Package checked is what the update engine (package client) and the
// sources of the module share about the bytes a source delivers, without
// the network: a Release whose reader checks every piece against the
// signed root as it arrives says so with a method that takes a PieceCheck,
// a type no package outside the module can name; and the engine refuses
// another file than the one offered with ErrOtherFile, and a file length
// that cannot be the release's with ErrSize, which a source can tell among
// the reasons it is given.
package checked

import "errors"

// ErrOtherFile means that the update engine refused the bytes a Release
// delivered because they are another file than the one offered: their file
// ID differs. client.ErrOtherFile is this error.
var ErrOtherFile = errors.New("downloaded file differs from the one offered")

// PieceCheck is the argument of a Release's PiecesChecked method, which
// reports whether its readers return only bytes checked against the signed
// root as they arrived (see region.PieceChecker). Only the module's own
// sources can have the method.
type PieceCheck struct{}

// ErrSize means that the update engine refused a Release before or while
// downloading it because its file length cannot be the release's: shorter
// than the signed content, longer by more than a code signature may be,
// or longer at all for a file type that has none. client.ErrSize is this
// error.
var ErrSize = errors.New("file length does not fit the signed content")
