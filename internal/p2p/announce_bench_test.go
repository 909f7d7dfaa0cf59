package p2p

import (
	"context"
	"testing"
	"time"
)

// BenchmarkFirstAnnounce measures, on a DHT of 20 loopback nodes, the time
// from Serve of a new release until another node's lookup of the channel
// key finds the node that serves it: the announcement's part in how soon
// a small network discovers a release (with sharded keys, the lookup that
// places the key comes first).
func BenchmarkFirstAnnounce(b *testing.B) {
	const size = 20
	boot := newTestNode(b, Config{})
	nodes := []*Node{boot}
	for range size - 1 {
		nodes = append(nodes, newTestNode(b, Config{}, boot))
	}
	for _, n := range nodes {
		for n.dht.RoutingTable().Size() < 2 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		key, path, in := writeRelease(b, 64<<10)
		holder, client := nodes[1+i%(size-1)], nodes[1+(i+1)%(size-1)]
		ch := ChannelCID(key.Public, testTarget)
		b.StartTimer()
		start := time.Now()
		if err := holder.Serve(ctx, key.Public, testTarget, path, in); err != nil {
			b.Fatal(err)
		}
		for found := false; !found; {
			if time.Since(start) > 30*time.Second {
				b.Fatal("not found within 30 s")
			}
			lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			for ai := range client.dht.FindProvidersAsync(lctx, ch, 1) {
				found = found || ai.ID == holder.ID()
			}
			cancel()
			if !found {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
}
