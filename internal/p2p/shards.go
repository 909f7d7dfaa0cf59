package p2p

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Sharded keys (docs/PROTOCOL.md, Keys): every channel and release key has
// NumShards shard keys, so that no DHT key carries a provider record of
// every node of a large fleet. A node announces under the key itself while
// a lookup of it returns fewer than providerLookupN other providers (the
// key is not full), else under one of its shard keys picked at random; a
// lookup takes the key's providers and, when the key is full, those of up
// to maxShardLookups shard keys in random order. internal/swarmsim's
// ShardLoad models the same rules.
const (
	// NumShards is the number of shard keys of each channel and release
	// key.
	NumShards = 128
	// maxShardLookups bounds the shard keys one lookup looks up.
	maxShardLookups = 4
)

// ShardCID returns shard i, in [0, NumShards), of the channel or release
// key base: a raw CIDv1 of SHA-256("rustpatcher/v1/shard\x00" || digest ||
// uint16 big-endian i), where digest is the 32-byte SHA-256 digest of
// base.
func ShardCID(base cid.Cid, i int) cid.Cid {
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(i))
	return derivedCID("rustpatcher/v1/shard\x00", digestOf(base), n[:])
}

// digestOf returns the digest of a key made by derivedCID.
func digestOf(key cid.Cid) []byte {
	h := key.Hash()
	// A SHA2-256 multihash is the code 0x12, the length 0x20 and the
	// 32-byte digest.
	if len(h) == 34 {
		return h[2:]
	}
	return h
}

// lookupDHT is what a lookup needs of the DHT; *dht.IpfsDHT is one.
type lookupDHT interface {
	FindProvidersAsync(ctx context.Context, key cid.Cid, count int) <-chan peer.AddrInfo
}

// findProviders sends on the channel it returns the DHT's providers of the
// channel or release key base, each once: base's own first, at most want
// of them; then, if base returned want providers (it is full), those of
// shard keys in random order, at most maxShardLookups of them, until they
// gave want providers or one gave none (the shards are still sparse). It
// closes the channel when done or when ctx ends. want is providerLookupN
// but in tests. lookups, if not nil, counts the DHT lookups made; full, if
// not nil, is called when base is full.
func findProviders(ctx context.Context, d lookupDHT, base cid.Cid, want int, lookups func(), full func()) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		seen := map[peer.ID]bool{}
		// take sends the providers of key and returns how many it found.
		take := func(key cid.Cid) (found int, ok bool) {
			if lookups != nil {
				lookups()
			}
			for ai := range d.FindProvidersAsync(ctx, key, want) {
				found++
				if seen[ai.ID] {
					continue
				}
				seen[ai.ID] = true
				select {
				case out <- ai:
				case <-ctx.Done():
					return found, false
				}
			}
			return found, ctx.Err() == nil
		}
		n, ok := take(base)
		if !ok || n < want {
			return
		}
		if full != nil {
			full()
		}
		got := 0
		for _, i := range rand.Perm(NumShards)[:maxShardLookups] {
			n, ok := take(ShardCID(base, i))
			got += n
			if !ok || n == 0 || got >= want {
				return
			}
		}
	}()
	return out
}
