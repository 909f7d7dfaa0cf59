package p2phost

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/org/rustpatcher-go/internal/keyfile"
)

// maxIdentityFile bounds how much of an identity file is read: an Ed25519
// key in libp2p's protobuf encoding is 68 bytes.
const maxIdentityFile = 4096

// LoadIdentity reads the node key at path, or creates one there when the
// file does not exist, so that a node keeps its peer ID across restarts. The
// file holds the libp2p protobuf encoding of an Ed25519 key.
//
// A new file is created with mode 0600 in its directory (made with mode 0700
// if missing), whole or not at all and never through a symbolic link (see
// package keyfile). An existing file is read only if it is a regular file
// that its group and others cannot read: a symbolic link or a file with a
// mode such as 0644 is refused with an error that says what to do.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	k, err := readIdentity(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k, _, err = crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	b, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	err = keyfile.Create(path, b)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it meanwhile: use that one.
		return readIdentity(path)
	}
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	return k, nil
}

// readIdentity reads the identity file at path; an error wraps
// fs.ErrNotExist when there is none.
func readIdentity(path string) (crypto.PrivKey, error) {
	b, err := keyfile.ReadPrivate(path, maxIdentityFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %w (not a libp2p key file: move it away and rpseed makes a new one, with a new peer ID)", path, err)
	}
	return k, nil
}
