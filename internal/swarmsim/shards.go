package swarmsim

import "math/rand/v2"

// ShardConfig is a fleet announcing one release in the DHT under sharded
// keys (issue 20, item 4), a model of the scheme, not of Kademlia's
// traffic:
//
//   - the channel's own key (level 0) takes announcements while a lookup
//     of it returns fewer than Full providers;
//   - once it returns Full, a node announces under one of Shards shard
//     keys instead (SHA-256 of the channel key and the shard's number),
//     picked at random;
//   - a poll looks the channel's key up; when that returns Full providers
//     (the key is full), it also looks up shard keys in random order, at
//     most MaxShardLookups, until the shards gave Want providers or one
//     gave none (the shards are still sparse), so that the downloads
//     spread over the whole fleet rather than the first Full nodes. The
//     shard lookups may run beside the channel's, so a poll takes no
//     longer than one lookup.
//
// At small N every provider is under the channel's key and a poll takes
// one lookup, as today; at large N the channel's key holds about Full
// records, each shard about N/Shards, and a poll takes two lookups.
type ShardConfig struct {
	Nodes  int // nodes that announce the release, one after another
	Shards int // shard keys besides the channel's
	Full   int // providers a lookup returns at most (32 in internal/p2p)
	Want   int // providers a poll wants
	Polls  int // polls to sample, by nodes that do not hold the release
	// MaxShardLookups bounds the shard keys one poll looks up.
	MaxShardLookups int
	Seed            uint64
}

// ShardResult is the load the scheme puts on the DHT.
type ShardResult struct {
	// ChannelRecords and MaxShardRecords are the provider records
	// under the channel's key and under the fullest shard key.
	ChannelRecords, MaxShardRecords int
	// LookupsPerPoll is the mean number of keys a poll looks up;
	// MaxLookups the most one took.
	LookupsPerPoll float64
	MaxLookups     int
}

// ShardLoad announces cfg.Nodes providers one after another and then runs
// cfg.Polls polls, and returns the records per key and the lookups per
// poll.
func ShardLoad(cfg ShardConfig) ShardResult {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5a4d))
	channel := 0
	shards := make([]int, cfg.Shards)
	for range cfg.Nodes {
		// A lookup of the channel's key returns min(records, Full).
		if min(channel, cfg.Full) < cfg.Full || cfg.Shards == 0 {
			channel++
			continue
		}
		shards[rng.IntN(cfg.Shards)]++
	}
	var r ShardResult
	r.ChannelRecords = channel
	for _, n := range shards {
		r.MaxShardRecords = max(r.MaxShardRecords, n)
	}
	total := 0
	for range cfg.Polls {
		lookups := 1
		if channel >= cfg.Full {
			got := 0
			for _, s := range rng.Perm(cfg.Shards) {
				if got >= cfg.Want || lookups > cfg.MaxShardLookups {
					break
				}
				got += min(shards[s], cfg.Full)
				lookups++
				if shards[s] == 0 {
					break
				}
			}
		}
		total += lookups
		r.MaxLookups = max(r.MaxLookups, lookups)
	}
	if cfg.Polls > 0 {
		r.LookupsPerPoll = float64(total) / float64(cfg.Polls)
	}
	return r
}
