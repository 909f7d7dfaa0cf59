//go:build linux

package e2e

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// BenchmarkEmbeddingCost compares hello with the update client (network on,
// private mode, idle with no peers: its one bootstrap peer is a loopback port
// nobody listens on) against the same program without it: stripped binary
// size and resident memory after 5 s idle (all of it, and the part that is
// not the binary's own pages: "anon"). "nop2p" is hello built with
// -tags rustpatcher_nop2p, measured 5 s after it asked an HTTPS mirror on
// loopback (holding the version it runs) for its manifest, trusting the
// system's roots and the mirror's test CA. Run once:
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
	nop2p := GoBuildWith(b, Build{Pkg: helloPkg, LDFlags: linked, Flags: []string{"-tags", "rustpatcher_nop2p"}})
	type prog struct {
		name string
		bin  string
		args []string
		env  []string
	}
	node := []string{"--private", "--bootstrap", unreachablePeer(b), "--listen", "/ip4/127.0.0.1/tcp/0"}
	ca, mirror, polled := idleMirror(b, key, with)
	progs := []prog{{"bare", bare, nil, nil}, {"client", with, node, nil},
		{"nop2p", nop2p, []string{"--source", mirror}, append([]string{"SSL_CERT_FILE=" + ca}, rootsEnv()...)}}
	if dir := os.Getenv("RP_EMBED_BEFORE"); dir != "" {
		before := GoBuildWith(b, Build{Dir: dir, Pkg: "./examples/hello", LDFlags: linked})
		progs = append(progs, prog{"before", before, node, nil})
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
			p := StartWith(b, StartOptions{Env: tt.env}, exe, tt.args...)
			p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0`)
			if tt.name == "nop2p" {
				// It polled the mirror: idle is after its first poll.
				select {
				case <-polled:
				case <-time.After(30 * time.Second):
					b.Fatal("nop2p did not ask the mirror for its manifest within 30 s")
				}
			} else if tt.args != nil {
				// The node is up (a client that refused its
				// configuration would print no address).
				p.WaitLine(0, 30*time.Second, `^listening: /`)
			}
			time.Sleep(5 * time.Second)
			rss, ok := rssKiB(p.Pid())
			anon, ok2 := statusKiB(p.Pid(), "RssAnon:")
			if !ok || !ok2 {
				b.Fatal("no VmRSS or RssAnon in /proc")
			}
			p.Kill()
			b.ReportMetric(float64(st.Size())/(1<<20), tt.name+"-MiB")
			b.ReportMetric(rss/1024, tt.name+"-RSS-MiB")
			b.ReportMetric(anon/1024, tt.name+"-anon-MiB")
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

// idleMirror serves over HTTPS on loopback a mirror holding hello 1.0.0
// (bin signed with key), as rpsign publish --out lays it out, and returns
// the file of the CA that the server's certificate chains to, the
// mirror's URL, and a channel closed once a manifest was served.
func idleMirror(b *testing.B, key Key, bin string) (caFile, url string, polled <-chan struct{}) {
	dir := b.TempDir()
	exe := filepath.Join(dir, "hello")
	in := SignedCopy(b, bin, exe, key, "1.0.0")
	pub, err := region.ParsePublicKey(key.Public)
	if err != nil {
		b.Fatal(err)
	}
	t := target.Current()
	assets, err := ghrelease.Layout(context.Background(), []ghrelease.Signed{{Path: exe, Target: t, Info: in, PublicKey: pub}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := ghrelease.WriteDir(dir, assets); err != nil {
		b.Fatal(err)
	}
	ca := newTestCA(b)
	files := http.FileServer(http.Dir(dir))
	served := make(chan struct{})
	var once sync.Once
	srv := ca.serveTLS(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		files.ServeHTTP(w, r)
		if strings.HasSuffix(r.URL.Path, ".json") {
			once.Do(func() { close(served) })
		}
	}))
	return ca.CAFile, srv.URL + "/", served
}

// rootsEnv is RP_EMBED_ROOTS_ENV (such as SSL_CERT_DIR=/nonexistent),
// split at spaces: the nop2p run's environment for the system's roots.
// Unset, SSL_CERT_FILE names the test CA, and crypto/x509 still reads
// every file in the system's certificate directories.
func rootsEnv() []string { return strings.Fields(os.Getenv("RP_EMBED_ROOTS_ENV")) }
