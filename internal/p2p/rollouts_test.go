package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/wire"
)

// statement returns a rollout statement of key for target with sequence
// seq, putting stable on 2.0.0 for percent of the nodes and yanking the
// versions in yanks to 1.0.0, issued now and expiring in an hour.
func statement(t testing.TB, key regiontest.Key, target string, seq uint64, percent int, yanks ...string) rollout.Statement {
	t.Helper()
	now := time.Now()
	st := rollout.Statement{Target: target, Sequence: seq, Issued: now, Expires: now.Add(time.Hour),
		Channels: []rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: percent}}}
	for _, v := range yanks {
		st.Yanks = append(st.Yanks, rollout.Yank{Version: v, To: "1.0.0"})
	}
	if err := st.Sign(key.Private); err != nil {
		t.Fatal(err)
	}
	return st
}

// sequences lists the sequences of stmts, for comparisons: "3 1".
func sequences(stmts []rollout.Statement) string {
	var s []string
	for _, st := range stmts {
		s = append(s, strconv.FormatUint(st.Sequence, 10))
	}
	return strings.Join(s, " ")
}

// reports records what OnReport is called with.
type reports struct {
	mu  sync.Mutex
	got []string // "peer target running rolledback"
}

func (r *reports) add(from peer.ID, _ ed25519.PublicKey, target string, rep wire.Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, from.String()+" "+target+" "+rep.Running+" "+rep.RolledBackFrom)
}

func (r *reports) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func TestRolloutFromBootstrapPeer(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	k, other := regiontest.NewKey(t), regiontest.NewKey(t)
	var rep reports
	seed := newTestNode(t, Config{OnReport: rep.add})
	s1, s2 := statement(t, k, testTarget, 1, 25), statement(t, k, testTarget, 2, 100)
	if err := seed.ServeRollout(ctx, s1); err != nil {
		t.Fatal(err)
	}
	if err := seed.ServeRollout(ctx, s1); err != nil {
		t.Errorf("serving the same statement again: %v", err)
	}
	if err := seed.ServeRollout(ctx, statement(t, other, "windows/amd64", 5, 10)); err != nil {
		t.Fatal(err)
	}
	client := newTestNode(t, Config{}, seed)
	if err := client.SetReport(wire.Report{Running: "1.0.0", RolledBackFrom: "2.0.0"}); err != nil {
		t.Fatal(err)
	}
	if err := client.SetReport(wire.Report{Running: "not a version"}); err == nil {
		t.Error("SetReport took a report that is no version")
	}
	src := client.Source(k.Public, testTarget)
	got, err := src.Rollouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Equal(s1) {
		t.Fatalf("got sequences %q, want the seed's statement 1", sequences(got))
	}
	if r := rep.all(); len(r) != 1 || r[0] != client.ID().String()+" "+testTarget+" 1.0.0 2.0.0" {
		t.Errorf("the seed saw reports %q, want the client's one", r)
	}

	// A higher sequence replaces the statement; older ones, conflicting
	// ones, forged ones and expired ones are refused, naming why.
	if err := seed.ServeRollout(ctx, s2); err != nil {
		t.Fatal(err)
	}
	conflict := statement(t, k, testTarget, 2, 50)
	forged := s2
	forged.Channels = []rollout.Channel{{Name: "stable", Version: "9.0.0", Percent: 100}}
	expired := rollout.Statement{Target: testTarget, Sequence: 9, Issued: time.Now().Add(-2 * time.Hour), Expires: time.Now().Add(-time.Hour)}
	if err := expired.Sign(k.Private); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		st   rollout.Statement
		want error
	}{
		{"older", s1, rollout.ErrReplay},
		{"same sequence, other content", conflict, rollout.ErrConflict},
		{"forged", forged, rollout.ErrBadSignature},
		{"expired", expired, rollout.ErrExpired},
	} {
		err := seed.ServeRollout(ctx, tt.st)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), testTarget) {
			t.Errorf("%s: err = %v, want %v naming the target", tt.name, err, tt.want)
		}
	}
	if got, err = src.Rollouts(ctx); err != nil || len(got) != 1 || !got[0].Equal(s2) {
		t.Errorf("after the new statement: got %q, %v; want statement 2", sequences(got), err)
	}
	for _, tt := range []struct {
		name   string
		key    ed25519.PublicKey
		target string
	}{
		{"another target", k.Public, "linux/arm64"},
		{"another key", other.Public, testTarget},
		{"a key with no statement", regiontest.NewKey(t).Public, testTarget},
	} {
		if got, err := client.Source(tt.key, tt.target).Rollouts(ctx); err != nil || len(got) != 0 {
			t.Errorf("%s: got %q, %v; want none", tt.name, sequences(got), err)
		}
	}
	if s := client.strikes.of(seed.ID()); s != 0 {
		t.Errorf("the honest seed has %d strikes", s)
	}
	// Four requests reached the seed: the key it serves nothing for has
	// no protocol there.
	if n := seed.Stats().RolloutRequests; n != 4 {
		t.Errorf("Stats counts %d rollout requests, want 4", n)
	}
}

// TestRolloutNotSentOnceExpired: a statement served that expires is no
// longer sent.
func TestRolloutNotSentOnceExpired(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	k := regiontest.NewKey(t)
	seed := newTestNode(t, Config{})
	st := rollout.Statement{Target: testTarget, Sequence: 1, Issued: time.Now().Add(-time.Hour), Expires: time.Now().Add(2 * time.Second)}
	if err := st.Sign(k.Private); err != nil {
		t.Fatal(err)
	}
	if err := seed.ServeRollout(ctx, st); err != nil {
		t.Fatal(err)
	}
	client := newTestNode(t, Config{}, seed)
	if got, _ := client.Source(k.Public, testTarget).Rollouts(ctx); len(got) != 1 {
		t.Fatalf("before expiry: %d statements, want 1", len(got))
	}
	time.Sleep(time.Until(st.Expires) + 100*time.Millisecond)
	if got, err := client.Source(k.Public, testTarget).Rollouts(ctx); err != nil || len(got) != 0 {
		t.Errorf("after expiry: got %q, %v; want none", sequences(got), err)
	}
}

// TestRolloutFoundThroughDHT: a node that serves only a statement, no
// release, announces the channel; Rollouts looks the channel up and asks
// it, with no Releases call before to connect to it.
func TestRolloutFoundThroughDHT(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	k := regiontest.NewKey(t)
	st := statement(t, k, testTarget, 3, 25)
	boot := newTestNode(t, Config{})
	holder := newTestNode(t, Config{}, boot)
	if err := holder.ServeRollout(ctx, st); err != nil {
		t.Fatal(err)
	}
	client := newTestNode(t, Config{}, boot)
	src := client.Source(k.Public, testTarget)
	var got []rollout.Statement
	for i := 0; i < 100 && len(got) == 0; i++ {
		var err error
		if got, err = src.Rollouts(ctx); err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(got) != 1 || !got[0].Equal(st) {
		t.Fatalf("got %q, want the holder's statement 3", sequences(got))
	}
}

func TestHostileRollouts(t *testing.T) {
	t.Parallel()
	k, evil := regiontest.NewKey(t), regiontest.NewKey(t)
	good := statement(t, k, testTarget, 4, 25)
	forged := good
	forged.Sequence = 99
	byEvil := statement(t, evil, testTarget, 99, 100)
	otherTarget := statement(t, k, "darwin/arm64", 99, 100)
	answer := func(stmts ...rollout.Statement) []byte {
		var buf bytes.Buffer
		wire.WriteRollouts(&buf, stmts)
		return buf.Bytes()
	}
	var refused bytes.Buffer
	wire.WriteError(&refused, wire.StatusBadRequest, "malformed request")
	tests := []struct {
		name   string
		answer []byte
		struck bool
	}{
		{"forged", answer(good, forged), true},
		{"signed by another key", answer(byEvil), true},
		{"another target", answer(otherTarget), true},
		{"garbage", append([]byte{0, 1, 100, 0}, junk(100)...), true},
		{"too many", []byte{0, wire.MaxRollouts + 1}, true},
		{"an older node refuses the kind", refused.Bytes(), false},
		{"none", answer(), false},
		{"the stream ends unanswered, as when a node closes", nil, false},
		{"the same statement", answer(good), false},
	}
	seed := newTestNode(t, Config{})
	if err := seed.ServeRollout(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			liar := newLiar(t, k.Public, tt.answer)
			client := newTestNode(t, Config{IdleTimeout: time.Second}, liar, seed)
			got, err := client.Source(k.Public, testTarget).Rollouts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Only the seed's statement counts, whatever the liar said.
			if len(got) != 1 || !got[0].Equal(good) {
				t.Errorf("got %q, want the seed's statement 4 alone", sequences(got))
			}
			if s := client.strikes.of(liar.ID()); (s > 0) != tt.struck {
				t.Errorf("liar has %d strikes; want strikes %v", s, tt.struck)
			}
			if s := client.strikes.of(seed.ID()); s != 0 {
				t.Errorf("the seed has %d strikes", s)
			}
		})
	}
}

// TestWithdraw: a node stops serving and announcing a withdrawn version,
// refuses to serve it again and still serves others; a statement that
// yanks a version withdraws it.
func TestWithdraw(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	key := regiontest.NewKey(t)
	dir := t.TempDir()
	v1Path, v2Path, v3Path := filepath.Join(dir, "app-1.0.0"), filepath.Join(dir, "app-2.0.0"), filepath.Join(dir, "app-3.0.0")
	v1 := regiontest.WriteBinary(t, v1Path, 100<<10, 1, key, "1.0.0")
	v2 := regiontest.WriteBinary(t, v2Path, 100<<10, 2, key, "2.0.0")
	v3 := regiontest.WriteBinary(t, v3Path, 100<<10, 3, key, "3.0.0")
	seed := newTestSeed(t, ctx, Config{}, key.Public, v2Path, v2)
	client := newTestNode(t, Config{}, seed)
	src := client.Source(key.Public, testTarget)
	offered := func() string {
		t.Helper()
		rels, err := src.Releases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var vs []string
		for _, r := range rels {
			vs = append(vs, r.Info().Version)
		}
		return strings.Join(vs, " ")
	}
	if got := offered(); got != "2.0.0" {
		t.Fatalf("before: offered %q, want 2.0.0", got)
	}
	seed.Withdraw(key.Public, testTarget, "v2.0.0")
	if got := offered(); got != "" {
		t.Errorf("after Withdraw: offered %q, want nothing", got)
	}
	if n := seed.Stats().Served; n != 0 {
		t.Errorf("%d releases served after Withdraw, want 0", n)
	}
	if err := seed.Serve(ctx, key.Public, testTarget, v2Path, v2); !errors.Is(err, ErrWithdrawn) || !strings.Contains(err.Error(), v2Path) {
		t.Errorf("serving the withdrawn version again: %v, want ErrWithdrawn naming the file", err)
	}
	// Another target and another key are not withdrawn.
	if seed.server.withdrawnVersion(key.Public, "linux/arm64", "2.0.0") || seed.server.withdrawnVersion(regiontest.NewKey(t).Public, testTarget, "2.0.0") {
		t.Error("Withdraw withdrew the version for another target or key")
	}
	// An older version is served, as a yank's target is.
	if err := seed.Serve(ctx, key.Public, testTarget, v1Path, v1); err != nil {
		t.Fatal(err)
	}
	if got := offered(); got != "1.0.0" {
		t.Errorf("after serving 1.0.0: offered %q", got)
	}

	// A statement that yanks 3.0.0 withdraws it.
	if err := seed.Serve(ctx, key.Public, testTarget, v3Path, v3); err != nil {
		t.Fatal(err)
	}
	if got := offered(); got != "3.0.0" {
		t.Fatalf("offered %q, want 3.0.0", got)
	}
	if err := seed.ServeRollout(ctx, statement(t, key, testTarget, 1, 100, "3.0.0")); err != nil {
		t.Fatal(err)
	}
	if got := offered(); got != "" {
		t.Errorf("after a statement yanking 3.0.0: offered %q, want nothing", got)
	}
	if err := seed.Serve(ctx, key.Public, testTarget, v3Path, v3); !errors.Is(err, ErrWithdrawn) {
		t.Errorf("serving the yanked version: %v, want ErrWithdrawn", err)
	}
	// The channel stays announced for the statement.
	seed.ann.mu.Lock()
	_, announced := seed.ann.keys[ChannelCID(key.Public, testTarget)]
	seed.ann.mu.Unlock()
	if !announced {
		t.Error("the channel is no longer announced, though the node serves a statement for it")
	}
}

// TestRolloutsMutePeer: a peer that takes the request and never answers
// (such as one whose process is gone without closing its connection)
// holds up Rollouts neither past the grace after another peer's answer,
// nor past the caller's context, however long the idle timeout.
func TestRolloutsMutePeer(t *testing.T) {
	t.Parallel()
	k := regiontest.NewKey(t)
	good := statement(t, k, testTarget, 4, 25)
	seed := newTestNode(t, Config{})
	if err := seed.ServeRollout(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	const idle = 30 * time.Second
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	newMute := func() *Node {
		mute := newTestNode(t, Config{})
		mute.Host().SetStreamHandler(protocol.ID(wire.ProtocolID(k.Public)), func(s network.Stream) {
			defer s.Reset()
			wire.ReadRequest(s)
			select { // no answer, and no end of one
			case <-done:
			case <-time.After(idle):
			}
		})
		return mute
	}
	// The lone one knows no other node, so no lookup finds the seed
	// through it.
	mute, lone := newMute(), newMute()
	for _, tt := range []struct {
		name  string
		boot  []*Node
		bound time.Duration // of the caller's context
		want  int           // statements
		most  time.Duration
	}{
		{"beside an answer", []*Node{mute, seed}, time.Minute, 1, statementGrace + 3*time.Second},
		{"alone", []*Node{lone}, time.Second, 0, 4 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := newTestNode(t, Config{IdleTimeout: idle}, tt.boot...)
			ctx, cancel := context.WithTimeout(testContext(t), tt.bound)
			defer cancel()
			start := time.Now()
			got, _ := client.Source(k.Public, testTarget).Rollouts(ctx)
			took := time.Since(start)
			if len(got) != tt.want {
				t.Errorf("got %q, want %d statements", sequences(got), tt.want)
			}
			if took > tt.most {
				t.Errorf("Rollouts took %v, want at most %v (the mute peer held it up)", took, tt.most)
			}
			if s := client.strikes.of(tt.boot[0].ID()); s != 0 {
				t.Errorf("the mute peer has %d strikes: silence is no lie", s)
			}
		})
	}
}
