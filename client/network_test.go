//go:build !rustpatcher_nop2p

package client

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
	"github.com/org/rustpatcher-go/internal/quicopt"
	"github.com/org/rustpatcher-go/internal/regiontest"
)

func TestStartNetworkDisabled(t *testing.T) {
	t.Parallel()
	src, closer, err := startNetwork(context.Background(), NetworkConfig{Disabled: true}, make([]byte, 32), nil)
	if src != nil || closer != nil || err != nil {
		t.Fatalf("disabled network: %v, %v, %v", src, closer, err)
	}
	if _, _, err := startNetwork(context.Background(), NetworkConfig{Private: true}, make([]byte, 5), nil); err == nil {
		t.Fatal("a 5-byte public key was accepted")
	}
}

// TestNetworkSourceAndSeeder runs two network sources on loopback: one
// seeds a release, the other finds it, and reads it whole.
func TestNetworkSourceAndSeeder(t *testing.T) {
	t.Parallel()
	k := regiontest.NewKey(t)
	pub := k.Public
	path := filepath.Join(t.TempDir(), "app")
	in := regiontest.WriteBinary(t, path, 64<<10, 1, k, "2.0.0")
	want, _ := os.ReadFile(path)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The seed with QUIC and TCP, as rpseed's; the app on TCP alone, as
	// apps are unless they ask for QUIC.
	both := []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	loop := both[1:]

	var seedAddrs []string
	seed, closer, err := startNetwork(ctx, NetworkConfig{Private: true, DHTServer: true, ListenAddrs: both, QUIC: quicopt.New(hostquic.New),
		OnListen: func(a string) { seedAddrs = append(seedAddrs, a) }}, pub, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if len(seedAddrs) != 2 || !strings.Contains(seedAddrs[0], "/p2p/") {
		t.Fatalf("OnListen got %q, want two addresses with /p2p/", seedAddrs)
	}
	seeder, ok := seed.(Seeder)
	if !ok {
		t.Fatal("the network source is not a Seeder")
	}
	if err := seeder.Seed(ctx, path, in); err != nil {
		t.Fatal(err)
	}

	client, closer2, err := startNetwork(ctx, NetworkConfig{Private: true, DHTServer: true, ListenAddrs: loop, Bootstrap: seedAddrs}, pub, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closer2.Close()
	rels, err := client.Releases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 1 || rels[0].Info() != in {
		t.Fatalf("Releases = %v, want the seeded 2.0.0", rels)
	}
	if !strings.Contains(client.String(), runtime.GOOS+"/"+runtime.GOARCH) {
		t.Errorf("source name %q does not name the target", client.String())
	}
	rc, err := rels[0].Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != string(want) {
		t.Fatalf("read %d bytes (%v), want the %d seeded", len(got), err, len(want))
	}
}

// TestNetworkIdentityFile checks that a node started twice with the same
// IdentityFile has the same peer ID, and that without one it does not.
func TestNetworkIdentityFile(t *testing.T) {
	t.Parallel()
	pub := regiontest.NewKey(t).Public
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	idFile := filepath.Join(t.TempDir(), "node.key")
	peerID := func(nc NetworkConfig) string {
		t.Helper()
		var addr string
		nc.Private, nc.ListenAddrs = true, []string{"/ip4/127.0.0.1/tcp/0"}
		nc.OnListen = func(a string) { addr = a }
		_, closer, err := startNetwork(context.Background(), nc, pub, log)
		if err != nil {
			t.Fatal(err)
		}
		closer.Close()
		_, id, ok := strings.Cut(addr, "/p2p/")
		if !ok {
			t.Fatalf("listen address %q has no /p2p/ part", addr)
		}
		return id
	}
	first := peerID(NetworkConfig{IdentityFile: idFile})
	if st, err := os.Stat(idFile); err != nil || (runtime.GOOS != "windows" && st.Mode().Perm() != 0o600) {
		t.Fatalf("identity file: %v, %v; want mode 0600", st, err)
	}
	if again := peerID(NetworkConfig{IdentityFile: idFile}); again != first {
		t.Errorf("peer ID changed across restarts with the same identity file: %s then %s", first, again)
	}
	if fresh := peerID(NetworkConfig{}); fresh == first {
		t.Errorf("a node without an identity file reused peer ID %s", first)
	}
	if err := os.WriteFile(idFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := startNetwork(context.Background(), NetworkConfig{Private: true, IdentityFile: idFile}, pub, log); err == nil || !strings.Contains(err.Error(), idFile) {
		t.Errorf("a damaged identity file gave %v, want an error naming it", err)
	}
}

// netWant is the error a network setting that cannot work gets: want, in
// a build with the network.
func netWant(want string) string { return want }

// TestNoP2PBuildLinksNoLibp2p: the package built with -tags
// rustpatcher_nop2p depends on no libp2p package (nor on multiaddr, quic-go
// or go-github), so that it links none.
func TestNoP2PBuildLinksNoLibp2p(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(regiontest.GoTool(), "list", "-deps", "-tags", "rustpatcher_nop2p", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, bad := range []string{"libp2p", "multiformats", "quic-go", "go-github", "internal/p2p"} {
			if strings.Contains(pkg, bad) {
				t.Errorf("the nop2p build depends on %s", pkg)
			}
		}
	}
	if !strings.Contains(string(out), "internal/mirror") {
		t.Error("the nop2p build has no HTTPS source (internal/mirror)")
	}
}

// TestQUICOnlyWhenAsked: the client package depends on quic-go only
// through package client/quic, which an app imports to ask for QUIC, so
// that an app on TCP alone links none of it (docs/BENCHMARKS.md, Cost of
// embedding).
func TestQUICOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		pkg  string
		quic bool
	}{{".", false}, {"./quic", true}} {
		out, err := exec.Command(regiontest.GoTool(), "list", "-deps", tt.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", tt.pkg, err, out)
		}
		if got := slices.Contains(strings.Fields(string(out)), "github.com/quic-go/quic-go"); got != tt.quic {
			t.Errorf("package %s depends on quic-go: %v, want %v", tt.pkg, got, tt.quic)
		}
	}
}

// TestMirrorNoPeersAtAll: with the network on and an hour's PeerWait, a
// node that has no peer at all (its one bootstrap peer does not exist)
// takes the release from the mirror as soon as its network is up; one
// connected to a peer (which has no release) waits for a peer to offer it.
func TestMirrorNoPeersAtAll(t *testing.T) {
	t.Parallel()
	tcp := []string{"/ip4/127.0.0.1/tcp/0"}
	setup := func(t *testing.T, bootstrap string) (*mirrorRig, options, *logLines) {
		m := newMirrorRig(t)
		m.publish("2.0.0", 300_000, 2)
		cfg := m.config()
		cfg.Network = NetworkConfig{Private: true, ListenAddrs: tcp, Bootstrap: []string{bootstrap}}
		cfg.PeerWait = time.Hour
		logs := newLogLines(t)
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		return m, cfg, logs
	}
	t.Run("alone", func(t *testing.T) {
		t.Parallel()
		m, cfg, logs := setup(t, deadPeer(t))
		m.spawn(cfg)
		logs.wait(0, "no peer to ask")
		e, _ := m.waitEvent(0, EventApplied, nil)
		if !strings.HasPrefix(e.Source, "https://") {
			t.Errorf("applied from %s, want the mirror", e.Source)
		}
	})
	t.Run("peer connected", func(t *testing.T) {
		t.Parallel()
		var addr string
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		_, closer, err := startNetwork(context.Background(), NetworkConfig{Private: true, DHTServer: true, ListenAddrs: tcp,
			OnListen: func(a string) { addr = a }}, regiontest.NewKey(t).Public, log)
		if err != nil {
			t.Fatal(err)
		}
		defer closer.Close()
		m, cfg, logs := setup(t, addr)
		m.spawn(cfg)
		// A poll after the network joined (and dialled its peer) left
		// the release to peers.
		logs.wait(logs.wait(0, "network joined"), "waiting for a peer to offer the update")
		if n := m.countEvents(EventFound); n != 0 || m.binaryGets() != 0 {
			t.Fatalf("taken from the mirror with a peer connected: %v", m.eventList())
		}
	})
}

// deadPeer returns the bootstrap address of a peer that does not exist: a
// fresh peer ID at a loopback TCP port that was free a moment ago.
func deadPeer(t *testing.T) string {
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return "/ip4/127.0.0.1/tcp/" + strconv.Itoa(port) + "/p2p/" + id.String()
}
