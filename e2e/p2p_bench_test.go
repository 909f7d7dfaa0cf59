//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkEmbeddingCost compares hello with the update client (network on,
// private mode, idle with no peers) against the same program without it:
// stripped binary size and resident memory after 5 s idle. Run once:
//
//	go test -run '^$' -bench EmbeddingCost -benchtime 1x ./e2e/
func BenchmarkEmbeddingCost(b *testing.B) {
	key := NewKey(b)
	const strip = "-s -w"
	with := GoBuild(b, helloPkg, strip+" -X github.com/org/rustpatcher-go/client.linkedPublicKey="+key.Public)
	bare := GoBuild(b, "github.com/org/rustpatcher-go/e2e/internal/hellobare", strip)
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		for _, tt := range []struct {
			name string
			bin  string
			args []string
		}{
			{"bare", bare, nil},
			{"client", with, []string{"--private", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--listen", "/ip4/127.0.0.1/tcp/0"}},
		} {
			exe := filepath.Join(dir, tt.name)
			SignedCopy(b, tt.bin, exe, key, "1.0.0")
			st, err := os.Stat(exe)
			if err != nil {
				b.Fatal(err)
			}
			p := Start(b, exe, tt.args...)
			p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0`)
			time.Sleep(5 * time.Second)
			rss, ok := rssKiB(p.Pid())
			if !ok {
				b.Fatal("no VmRSS in /proc")
			}
			p.Kill()
			b.ReportMetric(float64(st.Size())/(1<<20), tt.name+"-MiB")
			b.ReportMetric(rss/1024, tt.name+"-RSS-MiB")
		}
	}
}
