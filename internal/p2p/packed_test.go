package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/pack"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// writeVersions writes two releases of one program into dir, size bytes
// of content that compresses to about half: 1.0.0, and 2.0.0, which
// differs by a byte changed every 4 KiB and 64 KiB inserted at 1 MiB.
func writeVersions(t *testing.T, dir string, key regiontest.Key, size int) (oldPath string, oldIn region.Info, newPath string, newIn region.Info) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	content := make([]byte, size)
	for i := range content {
		if i%2048 < 1024 {
			content[i] = byte(rng.Uint32())
		} else {
			content[i] = "a release of the program, "[i%26]
		}
	}
	next := bytes.Clone(content)
	for i := 100; i < len(next); i += 4096 {
		next[i]++
	}
	ins := make([]byte, 64<<10)
	for i := range ins {
		ins[i] = byte(rng.Uint32())
	}
	next = append(next[:1<<20:1<<20], append(ins, next[1<<20:]...)...)
	empty, err := region.Info{}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte, version string) (string, region.Info) {
		path := filepath.Join(dir, name)
		half := len(b) / 2
		if err := os.WriteFile(path, bytes.Join([][]byte{b[:half], empty[:], b[half:]}, nil), 0o755); err != nil {
			t.Fatal(err)
		}
		in, err := region.SignFile(context.Background(), path, key.Private, version, testTarget)
		if err != nil {
			t.Fatal(err)
		}
		return path, in
	}
	oldPath, oldIn = write("app-1.0.0", content, "1.0.0")
	newPath, newIn = write("app-2.0.0", next, "2.0.0")
	return
}

// packedSwarm is a seed that serves 2.0.0 with its frames made in a
// PackDir, deltas from 1.0.0 included, and a client node.
type packedSwarm struct {
	key              regiontest.Key
	seed, client     *Node
	oldPath, newPath string
	oldIn, newIn     region.Info
	want             []byte // 2.0.0
	packDir          string
}

// startPackedSwarm starts the seed and waits for its frames; the client
// serves 1.0.0 (so it holds the base of the delta) when withBase is set.
func startPackedSwarm(t *testing.T, ctx context.Context, withBase bool) *packedSwarm {
	t.Helper()
	sw := &packedSwarm{key: regiontest.NewKey(t), packDir: filepath.Join(t.TempDir(), ".packs")}
	sw.oldPath, sw.oldIn, sw.newPath, sw.newIn = writeVersions(t, t.TempDir(), sw.key, 4<<20)
	sw.want, _ = os.ReadFile(sw.newPath)
	sw.seed = newTestNode(t, Config{PackDir: sw.packDir})
	if err := sw.seed.Serve(ctx, sw.key.Public, testTarget, sw.newPath, sw.newIn); err != nil {
		t.Fatal(err)
	}
	sw.seed.MakeDeltas(sw.key.Public, testTarget, sw.newIn, []string{sw.oldPath})
	sv := sw.seed.server.newestOf(sw.key.Public, testTarget)
	// Making them takes a second, many more under the race detector.
	for deadline := time.Now().Add(2 * time.Minute); len(sv.deltaBases()) != 1 || !sv.hasPack([wire.IDLen]byte{}); {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatal("the seed made no frames within 2 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sw.client = newTestNode(t, Config{}, sw.seed)
	if withBase {
		if err := sw.client.Serve(ctx, sw.key.Public, testTarget, sw.oldPath, sw.oldIn); err != nil {
			t.Fatal(err)
		}
	}
	return sw
}

// tamper flips a byte in the middle of every frame's data in the cache
// file of the seed's 2.0.0 from base (zero: compressed alone).
func (sw *packedSwarm) tamper(t *testing.T, base [wire.IDLen]byte) {
	t.Helper()
	sv := sw.seed.server.newestOf(sw.key.Public, testTarget)
	c := sv.packFor(base)
	path := filepath.Join(sw.packDir, pack.CacheName(sv.id, base))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range sv.layout.NumPieces() {
		fr, err := c.Frame(i, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Find the frame in the file: frames follow each other after
		// the header and index.
		raw, _ := os.ReadFile(path)
		at := bytes.Index(raw, fr)
		if at < 0 {
			t.Fatalf("frame %d not in %s", i, path)
		}
		b := fr[len(fr)-len(fr)/3]
		if _, err := f.WriteAt([]byte{b ^ 0x5a}, int64(at+len(fr)-len(fr)/3)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPackedTransfer moves 2.0.0 from a seed that made its frames to a
// node that holds 1.0.0 (as deltas), to one that holds nothing
// (compressed), and from a seed that made none (compressed on the fly):
// the bytes are the release's, and the seed sends a fraction of them.
func TestPackedTransfer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sw := startPackedSwarm(t, ctx, true)
	r := onlyRelease(t, ctx, sw.client.Source(sw.key.Public, testTarget))
	oldID := sw.client.server.newestOf(sw.key.Public, testTarget).id
	if ext := r.exts[r.peers[0].ID]; !ext.Packed || !ext.HasBase(oldID) {
		t.Fatalf("the seed's info said %+v, want packed and a delta from the node's file", ext)
	}
	got, err := fetchFile(ctx, r, sw.key.Public)
	if err != nil || !bytes.Equal(got, sw.want) {
		t.Fatalf("delta download: %v, equal %v", err, bytes.Equal(got, sw.want))
	}
	up := sw.seed.Stats().BytesUploaded
	t.Logf("delta: the seed sent %d bytes for %d", up, len(sw.want))
	if up > uint64(len(sw.want))/20 {
		t.Errorf("delta: the seed sent %d bytes for a file of %d", up, len(sw.want))
	}
	if s := sw.client.Stats().Strikes; s != 0 {
		t.Errorf("%d strikes", s)
	}

	// A node that holds no older release gets the pieces compressed.
	// It may find the first node's 1.0.0 too.
	other := newTestNode(t, Config{}, sw.seed)
	r = releaseOf(t, ctx, other.Source(sw.key.Public, testTarget), "2.0.0")
	if got, err := fetchFile(ctx, r, sw.key.Public); err != nil || !bytes.Equal(got, sw.want) {
		t.Fatalf("compressed download: %v", err)
	}
	zipped := sw.seed.Stats().BytesUploaded - up
	t.Logf("compressed: the seed sent %d bytes for %d", zipped, len(sw.want))
	if zipped > uint64(len(sw.want))*6/10 {
		t.Errorf("compressed: the seed sent %d bytes for a file of %d", zipped, len(sw.want))
	}

	// A seed without frames made compresses on the fly; one with
	// compression off says so, and is asked for raw pieces.
	for _, tt := range []struct {
		name   string
		cfg    Config
		max    float64
		packed bool
	}{
		{"on the fly", Config{}, 0.6, true},
		{"compression off", Config{NoCompression: true}, 1.0, false},
	} {
		seed := newTestNode(t, tt.cfg)
		if err := seed.Serve(ctx, sw.key.Public, testTarget, sw.newPath, sw.newIn); err != nil {
			t.Fatal(err)
		}
		n := newTestNode(t, Config{}, seed)
		r := onlyRelease(t, ctx, n.Source(sw.key.Public, testTarget))
		if got, err := fetchFile(ctx, r, sw.key.Public); err != nil || !bytes.Equal(got, sw.want) {
			t.Fatalf("%s: %v", tt.name, err)
		}
		sent := seed.Stats().BytesUploaded
		t.Logf("%s: the seed sent %d bytes for %d", tt.name, sent, len(sw.want))
		if float64(sent) > tt.max*float64(len(sw.want)) {
			t.Errorf("%s: the seed sent %d bytes for a file of %d", tt.name, sent, len(sw.want))
		}
		if packed := seed.Stats().PackedRequests > 0; packed != tt.packed {
			t.Errorf("%s: packed requests %v, want %v", tt.name, packed, tt.packed)
		}
		if sv := seed.server.newestOf(sw.key.Public, testTarget); tt.packed && rawKnown(sv) == sv.layout.NumPieces() {
			t.Errorf("%s: every piece of a release that compresses is marked raw", tt.name)
		}
	}
}

// rawKnown counts the pieces of sv that an upload found not worth
// compressing.
func rawKnown(sv *served) int64 {
	var n int64
	for i := range sv.layout.NumPieces() {
		if sv.rawKnown(i) {
			n++
		}
	}
	return n
}

// TestIncompressibleRemembered downloads a release of random bytes twice
// from a seed that compresses on the fly: the first upload finds that no
// piece is worth compressing and the seed remembers it, so the second
// sends every piece as it is without trying; both get the release's bytes.
func TestIncompressibleRemembered(t *testing.T) {
	t.Parallel()
	key, path, in := writeRelease(t, 6<<20)
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	seed := newTestSeed(t, ctx, Config{}, key.Public, path, in)
	sv := seed.server.newestOf(key.Public, testTarget)
	pieces := sv.layout.NumPieces()
	for round := range 2 {
		n := newTestNode(t, Config{}, seed)
		r := onlyRelease(t, ctx, n.Source(key.Public, testTarget))
		if got, err := fetchFile(ctx, r, key.Public); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("download %d: %v, equal %v", round, err, bytes.Equal(got, want))
		}
		if known := rawKnown(sv); known != pieces {
			t.Fatalf("after download %d, %d of %d pieces known not to compress", round, known, pieces)
		}
	}
	// Raw frames: one byte of method before each piece.
	if got, want := seed.Stats().BytesUploaded, 2*(uint64(len(want))+uint64(pieces)); got != want {
		t.Errorf("the seed uploaded %d bytes, want %d", got, want)
	}
	if seed.Stats().PackedRequests == 0 {
		t.Error("no packed request: the test did not try compression")
	}
}

// TestIncompressibleHandedOn: a node that serves pieces early remembers
// the pieces a peer sent it as they are (found not worth compressing), in
// the file it serves in part and then in the whole file it serves, so its
// own uploads do not try to compress them.
func TestIncompressibleHandedOn(t *testing.T) {
	t.Parallel()
	key, path, in := writeRelease(t, 6<<20)
	ctx := testContext(t)
	seed := newTestSeed(t, ctx, Config{}, key.Public, path, in)
	a := newTestNode(t, Config{PiecesEarly: true}, seed)
	r := onlyRelease(t, ctx, a.Source(key.Public, testTarget))
	rc, err := r.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	a.server.mu.Lock()
	part := a.server.partials[r.FileID()]
	a.server.mu.Unlock()
	if part == nil {
		t.Fatal("the node serves no file in part")
	}
	_, held, _, _ := part.haveState()
	if known := rawKnown(part); known != int64(held) || held == 0 {
		t.Fatalf("%d of the %d pieces held known not to compress, want all", known, held)
	}
	if err := a.Serve(ctx, key.Public, testTarget, path, in); err != nil {
		t.Fatal(err)
	}
	if known := rawKnown(a.server.newestOf(key.Public, testTarget)); known < int64(held) {
		t.Fatalf("served whole: %d pieces known not to compress, want at least %d", known, held)
	}
}

// TestPackedTampered serves deltas and compressed pieces whose frames were
// damaged on the seed's disk after they were checked: the node refuses
// each piece that fails, strikes the seed, asks it for the next mode down
// (compressed pieces, then raw ones) and ends with the release's bytes.
func TestPackedTampered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		withBase bool
		delta    bool // tamper with the deltas
		zst      bool // tamper with the compressed pieces
	}{
		{"delta", true, true, false},
		{"delta and compressed", true, true, true},
		{"compressed", false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			sw := startPackedSwarm(t, ctx, tt.withBase)
			oldID := [wire.IDLen]byte{}
			if tt.delta {
				old, err := os.ReadFile(sw.oldPath)
				if err != nil {
					t.Fatal(err)
				}
				sc, err := region.Scan(ctx, bytes.NewReader(old))
				if err != nil {
					t.Fatal(err)
				}
				oldID = sc.FileID
				sw.tamper(t, oldID)
			}
			if tt.zst {
				sw.tamper(t, [wire.IDLen]byte{})
			}
			r := onlyRelease(t, ctx, sw.client.Source(sw.key.Public, testTarget))
			got, err := fetchFile(ctx, r, sw.key.Public)
			if err != nil || !bytes.Equal(got, sw.want) {
				t.Fatalf("download: %v, equal %v", err, bytes.Equal(got, sw.want))
			}
			seed := sw.seed.ID()
			if sw.client.strikes.of(seed) == 0 {
				t.Error("the seed that sent damaged frames got no strike")
			}
			r.mu.Lock()
			noDelta, noPack := r.noDelta[seed], r.noPack[seed]
			r.mu.Unlock()
			if noDelta != tt.delta || noPack != tt.zst {
				t.Errorf("fallbacks: no deltas %v, no packed pieces %v; want %v, %v", noDelta, noPack, tt.delta, tt.zst)
			}
		})
	}
}

// TestPackedOlderPeer fetches from a peer of an older release, which
// refuses packed requests as malformed although (here) its info answer
// claims it takes them: the node asks it for raw pieces instead, gives
// it no strike, and gets the release.
func TestPackedOlderPeer(t *testing.T) {
	t.Parallel()
	key := regiontest.NewKey(t)
	path := filepath.Join(t.TempDir(), "release")
	regiontest.WriteBinary(t, path, 5<<20, 3, key, "2.0.0")
	f := loadTestFile(t, path)
	ctx := testContext(t)
	for _, tt := range []struct {
		name    string
		ext     *wire.InfoExt
		refused bool
	}{
		{"no extension", nil, false},
		{"claims packed", &wire.InfoExt{Packed: true}, true},
	} {
		p := startTestPeer(t, key.Public, f, nil)
		p.ext = tt.ext
		client := newTestNode(t, Config{}, p.Node)
		r := onlyRelease(t, ctx, client.Source(key.Public, testTarget))
		got, err := fetchFile(ctx, r, key.Public)
		if err != nil || !bytes.Equal(got, f.bytes) {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if refused := p.refused.Load() > 0; refused != tt.refused {
			t.Errorf("%s: packed requests refused: %v, want %v", tt.name, refused, tt.refused)
		}
		if s := client.Stats().Strikes; s != 0 {
			t.Errorf("%s: %d strikes", tt.name, s)
		}
	}
}

// TestPackDir checks the frames kept in a PackDir: a node started again
// on the same directory uses them as they are, asking twice makes nothing
// twice, and the frames of a release no longer served are removed.
func TestPackDir(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sw := startPackedSwarm(t, ctx, false)
	files := func() map[string]time.Time {
		es, err := os.ReadDir(sw.packDir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]time.Time{}
		for _, e := range es {
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing: the node drops old frames as we look
			}
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = fi.ModTime()
		}
		return out
	}
	made := files()
	if len(made) != 2 {
		t.Fatalf("%d files in the pack directory, want the compressed pieces and one delta", len(made))
	}
	sw.seed.Close()

	again := newTestNode(t, Config{PackDir: sw.packDir})
	if err := again.Serve(ctx, sw.key.Public, testTarget, sw.newPath, sw.newIn); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		again.MakeDeltas(sw.key.Public, testTarget, sw.newIn, []string{sw.oldPath})
	}
	sv := again.server.newestOf(sw.key.Public, testTarget)
	waitFor(t, "the frames made before", func() bool { return len(sv.deltaBases()) == 1 && sv.hasPack([wire.IDLen]byte{}) })
	for name, mod := range files() {
		if !made[name].Equal(mod) {
			t.Errorf("%s was made again", name)
		}
	}
	again.packer.mu.Lock()
	queued := len(again.packer.queue)
	again.packer.mu.Unlock()
	if queued != 0 {
		t.Errorf("%d jobs still queued", queued)
	}

	// 3.0.0 replaces 2.0.0: the frames of 2.0.0 go.
	next := filepath.Join(t.TempDir(), "app-3.0.0")
	b, _ := os.ReadFile(sw.newPath)
	os.WriteFile(next, b, 0o755)
	in, err := region.SignFile(ctx, next, sw.key.Private, "3.0.0", testTarget)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Serve(ctx, sw.key.Public, testTarget, next, in); err != nil {
		t.Fatal(err)
	}
	again.MakeDeltas(sw.key.Public, testTarget, in, nil)
	waitFor(t, "only the frames of 3.0.0", func() bool {
		fs := files()
		for name := range made {
			if _, ok := fs[name]; ok {
				return false
			}
		}
		return len(fs) == 1
	})
}
