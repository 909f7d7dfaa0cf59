package p2p

import (
	"crypto/ed25519"
	"crypto/sha256"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/org/rustpatcher-go/internal/wire"
)

// ChannelCID returns the key under which nodes holding a verified release of
// target signed by pub announce themselves: a raw CIDv1 of
// SHA-256("rustpatcher/v1/channel\x00" || pub || target). The v1 domain
// keeps it apart from the keys of protocol v0, whose nodes cannot talk to
// this one.
func ChannelCID(pub ed25519.PublicKey, target string) cid.Cid {
	return derivedCID("rustpatcher/v1/channel\x00", pub, []byte(target))
}

// ReleaseCID returns the key under which nodes serving one exact file of a
// release announce themselves: a raw CIDv1 of
// SHA-256("rustpatcher/v1/release\x00" || pub || target || "\x00" || file
// ID), where the file ID is region.Scanned.FileID of the file served.
func ReleaseCID(pub ed25519.PublicKey, target string, fileID [wire.IDLen]byte) cid.Cid {
	return derivedCID("rustpatcher/v1/release\x00", pub, []byte(target), []byte{0}, fileID[:])
}

func derivedCID(domain string, parts ...[]byte) cid.Cid {
	h := sha256.New()
	h.Write([]byte(domain))
	for _, p := range parts {
		h.Write(p)
	}
	m, err := mh.Encode(h.Sum(nil), mh.SHA2_256)
	if err != nil {
		panic(err) // cannot happen: SHA2_256 with a 32-byte digest
	}
	return cid.NewCidV1(cid.Raw, m)
}

// ownerKey is the map key of one owner key and target.
func ownerKey(pub ed25519.PublicKey, target string) string {
	return string(pub) + "\x00" + target
}
