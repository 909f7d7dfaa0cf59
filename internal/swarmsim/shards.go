package swarmsim

import "math/rand/v2"

// ShardConfig is a fleet announcing one release in the DHT under sharded
// keys (issue 20, item 4), a model of the scheme, not of Kademlia's
// traffic. internal/p2p (shards.go, announce.go) implements the same rules
// for each channel key and each release key:
//
//   - the channel's own key (level 0) takes announcements while a lookup
//     of it returns fewer than Full providers besides the announcing node;
//   - once it returns Full, a node announces under one of Shards shard
//     keys instead (p2p.ShardCID: SHA-256 of the channel key's digest and
//     the shard's number), picked at random, and keeps that place on every
//     later announcement;
//   - a poll looks the channel's key up; when that returns Full providers
//     (the key is full), it also looks up shard keys in random order, at
//     most MaxShardLookups, until the shards gave Want providers or one
//     gave none (the shards are still sparse), so that the downloads
//     spread over the whole fleet rather than the first Full nodes. The
//     shard lookups run one after another once the channel's returned
//     Full providers; a poll asks the providers found so far meanwhile, so
//     they add lookups, not time.
//
// At small N every provider is under the channel's key and a poll takes
// one lookup, as today; at large N the channel's key holds about Full
// records, each shard about N/Shards, and a poll takes two lookups.
//
// Nodes that place their keys at the same time all see the channel's key
// as it was before any of them announced: Batch models that, and bounds
// the records under the channel's key by Full-1+Batch.
type ShardConfig struct {
	Nodes  int // nodes that announce the release
	Shards int // shard keys besides the channel's
	Full   int // providers a lookup returns at most (32 in internal/p2p)
	Want   int // providers a poll wants
	// Batch is the number of nodes that place their keys at once, each
	// seeing the records of the batches before; 0 or 1: one after another.
	Batch int
	Polls int // polls to sample, by nodes that do not hold the release
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
	batch := max(cfg.Batch, 1)
	for start := 0; start < cfg.Nodes; start += batch {
		// A lookup of the channel's key returns min(records, Full).
		seen := min(channel, cfg.Full)
		for range min(batch, cfg.Nodes-start) {
			if seen < cfg.Full || cfg.Shards == 0 {
				channel++
				continue
			}
			shards[rng.IntN(cfg.Shards)]++
		}
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
