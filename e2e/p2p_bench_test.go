//go:build linux

package e2e

import (
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkEmbeddingCost compares hello with the update client (network on,
// private mode, idle with no peers: its one bootstrap peer is a loopback port
// nobody listens on) against the same program without it: stripped binary
// size and resident memory after 5 s idle. Run once:
//
//	go test -run '^$' -bench EmbeddingCost -benchtime 1x ./e2e/
//
// With RP_EMBED_BEFORE set to another checkout of the module (a git worktree
// of an earlier commit), its examples/hello is measured in the same run too,
// as "before".
func BenchmarkEmbeddingCost(b *testing.B) {
	key := NewKey(b)
	const strip = "-s -w"
	linked := strip + " -X github.com/org/rustpatcher-go/client.linkedPublicKey=" + key.Public
	with := GoBuild(b, helloPkg, linked)
	bare := GoBuild(b, "github.com/org/rustpatcher-go/e2e/internal/hellobare", strip)
	type prog struct {
		name string
		bin  string
		args []string
	}
	node := []string{"--private", "--bootstrap", unreachablePeer(b),
		"--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--listen", "/ip4/127.0.0.1/tcp/0"}
	progs := []prog{{"bare", bare, nil}, {"client", with, node}}
	if dir := os.Getenv("RP_EMBED_BEFORE"); dir != "" {
		before := GoBuildWith(b, Build{Dir: dir, Pkg: "./examples/hello", LDFlags: linked})
		progs = append(progs, prog{"before", before, node})
	}
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		for _, tt := range progs {
			exe := filepath.Join(dir, tt.name)
			SignedCopy(b, tt.bin, exe, key, "1.0.0")
			st, err := os.Stat(exe)
			if err != nil {
				b.Fatal(err)
			}
			p := Start(b, exe, tt.args...)
			p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0`)
			if tt.args != nil {
				// The node is up (a client that refused its
				// configuration would print no address).
				p.WaitLine(0, 30*time.Second, `^listening: /`)
			}
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

// unreachablePeer returns the bootstrap address of a peer that does not
// exist: a fresh peer ID at a loopback TCP port that was free a moment ago.
func unreachablePeer(b *testing.B) string {
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return "/ip4/127.0.0.1/tcp/" + strconv.Itoa(port) + "/p2p/" + id.String()
}
