package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/region"
)

func TestRequestRoundTrip(t *testing.T) {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	tests := []Request{
		{Kind: KindInfo, Auth: Auth(pub, time.Unix(600, 0)), Target: "linux/amd64"},
		{Kind: KindHashes, Auth: Auth(pub, time.Unix(600, 0)), Target: "windows/arm64", ID: [IDLen]byte{1, 2, 3}},
		{Kind: KindPieces, Target: "darwin/arm64", ID: [IDLen]byte{9}, First: 1 << 30, Count: MaxPiecesPerRequest},
		{Kind: KindPieces, Target: "aaaaaaa/" + strings.Repeat("b", MaxTargetLen-8), First: 0, Count: 1},
		{Kind: KindRotations, Auth: Auth(pub, time.Unix(600, 0)), Target: "linux/arm64"},
		{Kind: KindPacked, Target: "b/" + strings.Repeat("b", MaxTargetLen-2), ID: [IDLen]byte{4}, First: 3, Count: MaxPiecesPerRequest, Base: [IDLen]byte{5, 6}},
		{Kind: KindPacked, Target: "linux/amd64", ID: [IDLen]byte{4}, First: 0, Count: 1},
	}
	for _, want := range tests {
		b, err := want.Marshal()
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		if len(b) > MaxRequestLen {
			t.Errorf("%v request is %d bytes, limit %d", want.Kind, len(b), MaxRequestLen)
		}
		got, err := ReadRequest(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		if *got != want {
			t.Errorf("round trip: got %+v, want %+v", *got, want)
		}
	}
}

func TestReadRequestRejects(t *testing.T) {
	good, _ := (&Request{Kind: KindPieces, Target: "linux/amd64", Count: 2}).Marshal()
	withCount := func(n uint32) []byte {
		b := append([]byte{}, good...)
		binary.LittleEndian.PutUint32(b[len(b)-4:], n)
		return b
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("XX"), good[2:]...)},
		{"unknown kind", append([]byte("RP\x09"), good[3:]...)},
		{"v0 fetch kind is hashes without its ID", good[:3+AuthLen+1+11]},
		{"zero target", append(append([]byte{}, good[:3+AuthLen]...), 0)},
		{"long target", append(append([]byte{}, good[:3+AuthLen]...), MaxTargetLen+1)},
		{"bad target bytes", append(append(append([]byte{}, good[:3+AuthLen]...), 2), "A\n"...)},
		{"target without a slash", append(append(append([]byte{}, good[:3+AuthLen]...), 5), "linux"...)},
		{"truncated range", good[:len(good)-1]},
		{"no pieces", withCount(0)},
		{"too many pieces", withCount(MaxPiecesPerRequest + 1)},
	}
	for _, tt := range tests {
		if _, err := ReadRequest(bytes.NewReader(tt.b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", tt.name, err)
		}
	}
}

func TestMarshalRejects(t *testing.T) {
	for _, r := range []Request{
		{Kind: KindInfo, Target: ""},
		{Kind: KindInfo, Target: "Linux/amd64"},
		{Kind: KindInfo, Target: "linux/" + strings.Repeat("a", MaxTargetLen-5)},
		{Kind: KindInfo, Target: "linuxamd64"},
		{Kind: KindInfo, Target: "linux/amd64/v2"},
		{Kind: 7, Target: "linux/amd64"},
		{Kind: KindPieces, Target: "linux/amd64", Count: 0},
		{Kind: KindPieces, Target: "linux/amd64", Count: 9},
	} {
		if _, err := r.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v: got %v, want ErrMalformed", r, err)
		}
	}
}

func TestAuthWindow(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name string
		a    [AuthLen]byte
		ok   bool
	}{
		{"same minute", Auth(pub, now), true},
		{"minute before", Auth(pub, now.Add(-time.Minute)), true},
		{"minute after", Auth(pub, now.Add(time.Minute)), true},
		{"two minutes before", Auth(pub, now.Add(-2*time.Minute)), false},
		{"other key", Auth(other, now), false},
	}
	for _, tt := range tests {
		if got := CheckAuth(pub, tt.a, now); got != tt.ok {
			t.Errorf("%s: CheckAuth = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

func TestProtocolIDIsV1(t *testing.T) {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	if id := ProtocolID(pub); !strings.HasPrefix(id, "/rustpatcher/") || !strings.HasSuffix(id, "/v1") {
		t.Errorf("ProtocolID = %q", id)
	}
}

// testRegion returns a signed v1 region of content bytes.
func testRegion(t testing.TB, content int64) region.Info {
	_, priv, _ := ed25519.GenerateKey(nil)
	in := region.Info{Format: region.V1, Version: "2.0.0", Size: uint64(content), Offset: 10, Target: "linux/amd64"}
	in.Sign(priv)
	return in
}

func TestInfoAnswer(t *testing.T) {
	in := testRegion(t, 3<<20+5)
	reg, _ := in.Marshal()
	id := [IDLen]byte{7, 7}
	var buf bytes.Buffer
	for _, size := range []int64{in.ContentLen(), in.ContentLen() + region.MaxTail(in.ContentLen())} {
		buf.Reset()
		WriteInfo(&buf, reg, size, id)
		if buf.Len() != InfoAnswerLen {
			t.Fatalf("info answer is %d bytes, want %d", buf.Len(), InfoAnswerLen)
		}
		o, err := ReadInfo(&buf)
		if err != nil || o.Region != reg || o.Info != in || o.FileID != id || o.Layout.Size != size {
			t.Fatalf("ReadInfo = %+v, %v", o, err)
		}
	}
	for _, size := range []int64{in.ContentLen() - 1, in.ContentLen() + region.MaxTail(in.ContentLen()) + 1, -1} {
		buf.Reset()
		WriteInfo(&buf, reg, size, id)
		if _, err := ReadInfo(&buf); !errors.Is(err, ErrMalformed) {
			t.Errorf("file length %d: got %v, want ErrMalformed", size, err)
		}
	}
	buf.Reset()
	WriteInfo(&buf, [region.Size]byte{}, 10, id)
	if _, err := ReadInfo(&buf); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero region: got %v, want ErrMalformed", err)
	}
	unsigned, _ := region.Info{}.Marshal()
	buf.Reset()
	WriteInfo(&buf, unsigned, 1000, id)
	if _, err := ReadInfo(&buf); !errors.Is(err, ErrMalformed) {
		t.Errorf("unsigned region: got %v, want ErrMalformed", err)
	}
	buf.Reset()
	WriteInfo(&buf, reg, in.ContentLen(), id)
	if _, err := ReadInfo(bytes.NewReader(buf.Bytes()[:100])); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated: got %v, want ErrMalformed", err)
	}
}

func TestStatuses(t *testing.T) {
	tests := []struct {
		s    Status
		want error
	}{
		{StatusBusy, ErrBusy},
		{StatusNotFound, ErrNotFound},
		{StatusBadRequest, ErrRefused},
	}
	var buf bytes.Buffer
	for _, tt := range tests {
		buf.Reset()
		WriteError(&buf, tt.s, strings.Repeat("x\x00", 200))
		if err := ReadPiecesHeader(&buf); !errors.Is(err, tt.want) {
			t.Errorf("%v: got %v, want %v", tt.s, err, tt.want)
		} else if strings.ContainsRune(err.Error(), 0) {
			t.Errorf("%v: message not sanitised: %q", tt.s, err)
		}
	}
	if err := ReadPiecesHeader(bytes.NewReader([]byte{9})); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown status: got %v, want ErrMalformed", err)
	}
	if err := ReadPiecesHeader(bytes.NewReader(nil)); !errors.Is(err, ErrMalformed) {
		t.Errorf("no status: got %v, want ErrMalformed (the frame ends early)", err)
	}
	// An error of the stream is not a malformed frame.
	reset := errors.New("stream reset")
	if err := ReadPiecesHeader(&failReader{err: reset}); !errors.Is(err, reset) || errors.Is(err, ErrMalformed) {
		t.Errorf("reset stream: got %v, want the stream's error and not ErrMalformed", err)
	}
}

type failReader struct{ err error }

func (f *failReader) Read([]byte) (int, error) { return 0, f.err }

func TestHashes(t *testing.T) {
	l, err := NewLayout(3<<20+1, 3<<20+1)
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([][sha256.Size]byte, 4)
	for i := range leaves {
		leaves[i][0] = byte(i + 1)
	}
	var buf bytes.Buffer
	WriteHashes(&buf, leaves)
	got, err := ReadHashes(&buf, l)
	if err != nil || len(got) != 4 || got[3] != leaves[3] {
		t.Fatalf("ReadHashes = %v, %v", got, err)
	}
	buf.Reset()
	WriteHashes(&buf, leaves[:3])
	if _, err := ReadHashes(&buf, l); !errors.Is(err, ErrMalformed) {
		t.Errorf("short list: got %v, want ErrMalformed", err)
	}
}

func TestLayout(t *testing.T) {
	if _, err := NewLayout(MaxContentLen+1, MaxContentLen+1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge content: %v", err)
	}
	l, err := NewLayout(2<<20+10, 2<<20+10+500)
	if err != nil {
		t.Fatal(err)
	}
	if l.ContentPieces() != 3 || l.NumPieces() != 4 || !l.IsTail(3) || l.IsTail(2) {
		t.Fatalf("pieces: %d content, %d in all", l.ContentPieces(), l.NumPieces())
	}
	for _, tt := range []struct{ i, off, n int64 }{{0, 0, 1 << 20}, {2, 2 << 20, 10}, {3, 2<<20 + 10, 500}} {
		if off, n := l.Piece(tt.i); off != tt.off || n != tt.n {
			t.Errorf("piece %d = %d+%d, want %d+%d", tt.i, off, n, tt.off, tt.n)
		}
	}
	if l.PieceAt(2<<20+9) != 2 || l.PieceAt(2<<20+10) != 3 || l.PieceAt(5) != 0 {
		t.Error("PieceAt")
	}
	if l.MaxPieceLen() != 1<<20 {
		t.Errorf("MaxPieceLen = %d", l.MaxPieceLen())
	}
	for _, r := range [][2]uint32{{0, 0}, {0, 9}, {3, 2}, {1 << 31, 1}} {
		if err := l.CheckRange(r[0], r[1]); !errors.Is(err, ErrMalformed) {
			t.Errorf("range %v: %v", r, err)
		}
	}
	if err := l.CheckRange(0, 4); err != nil {
		t.Errorf("all pieces: %v", err)
	}
	var buf bytes.Buffer
	WritePiecesHeader(&buf)
	buf.Write(bytes.Repeat([]byte{1}, 10))
	buf.Write(bytes.Repeat([]byte{2}, 499))
	if err := ReadPiecesHeader(&buf); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, l.MaxPieceLen())
	if p, err := l.ReadPiece(&buf, 2, b); err != nil || len(p) != 10 {
		t.Fatalf("piece 2: %d bytes, %v", len(p), err)
	}
	if _, err := l.ReadPiece(&buf, 3, b); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated tail: got %v, want ErrMalformed", err)
	}
}

// countingReader counts the bytes a decoder reads.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func FuzzReadRequest(f *testing.F) {
	for _, r := range []Request{
		{Kind: KindInfo, Target: "darwin/arm64"},
		{Kind: KindHashes, Target: "linux/amd64", ID: [IDLen]byte{1}},
		{Kind: KindPieces, Target: "linux/amd64", First: 7, Count: 3},
		{Kind: KindRotations, Target: "windows/amd64"},
		{Kind: KindPacked, Target: "linux/amd64", First: 2, Count: 8, Base: [IDLen]byte{3}},
		{Kind: KindRollout, Target: "linux/amd64", Report: Report{Running: "2.0.0", RolledBackFrom: "2.1.0-rc.1"}},
		{Kind: KindHave, Target: "linux/amd64", ID: [IDLen]byte{4}, Known: 9},
	} {
		b, _ := r.Marshal()
		f.Add(b)
	}
	f.Add([]byte("RP"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		req, err := ReadRequest(cr)
		if cr.n > MaxRequestLen {
			t.Fatalf("read %d bytes, limit %d", cr.n, MaxRequestLen)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		out, err := req.Marshal()
		if err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
		if !bytes.Equal(out, b[:len(out)]) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzReadInfo(f *testing.F) {
	in := testRegion(f, 5<<20)
	reg, _ := in.Marshal()
	var buf bytes.Buffer
	WriteInfo(&buf, reg, in.ContentLen()+100, [IDLen]byte{1})
	f.Add(buf.Bytes())
	buf.Reset()
	WriteInfoExt(&buf, reg, in.ContentLen(), [IDLen]byte{1}, InfoExt{Packed: true, Bases: [][IDLen]byte{{2}, {3}}})
	f.Add(buf.Bytes())
	buf.Reset()
	WriteError(&buf, StatusBusy, "busy")
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		o, err := ReadInfo(cr)
		if cr.n > max(InfoAnswerLen+MaxInfoExtLen, MaxErrorLen) {
			t.Fatalf("read %d bytes", cr.n)
		}
		if err != nil {
			return
		}
		l := o.Layout
		if l.Content != o.Info.ContentLen() || l.Size < l.Content || l.Size-l.Content > region.MaxTail(l.Content) || l.Content > MaxContentLen {
			t.Fatalf("accepted layout %+v for content %d", l, o.Info.ContentLen())
		}
		if len(o.Ext.Bases) > MaxDeltaBases {
			t.Fatalf("%d delta bases", len(o.Ext.Bases))
		}
	})
}

func FuzzReadHashes(f *testing.F) {
	var buf bytes.Buffer
	WriteHashes(&buf, make([][sha256.Size]byte, 3))
	f.Add(buf.Bytes(), int64(3<<20))
	buf.Reset()
	WriteError(&buf, StatusNotFound, "v0 file")
	f.Add(buf.Bytes(), int64(1))
	f.Fuzz(func(t *testing.T, b []byte, content int64) {
		l, err := NewLayout(content, content)
		if err != nil {
			return
		}
		cr := &countingReader{r: bytes.NewReader(b)}
		leaves, err := ReadHashes(cr, l)
		if cr.n > max(MaxErrorLen, 1+int(l.ContentPieces())*sha256.Size) {
			t.Fatalf("read %d bytes", cr.n)
		}
		if err == nil && int64(len(leaves)) != l.ContentPieces() {
			t.Fatalf("%d hashes for %d pieces", len(leaves), l.ContentPieces())
		}
	})
}

func FuzzReadPieces(f *testing.F) {
	var buf bytes.Buffer
	WritePiecesHeader(&buf)
	buf.Write(make([]byte, 3000))
	f.Add(buf.Bytes(), int64(1<<20+1000), int64(2000), uint32(1), uint32(2))
	f.Add([]byte{1, 3, 'a', 'b', 'c'}, int64(10), int64(10), uint32(0), uint32(1))
	piece := make([]byte, region.PieceSize)
	f.Fuzz(func(t *testing.T, b []byte, content, tail int64, first, count uint32) {
		// Small files keep the fuzzer fast; the layout's rules are the
		// same for every length.
		if tail < 0 || tail > 64<<10 || content <= 0 || content > 3<<20 {
			return
		}
		l, err := NewLayout(content, content+tail)
		if err != nil || l.CheckRange(first, count) != nil {
			return
		}
		cr := &countingReader{r: bytes.NewReader(b)}
		if err := ReadPiecesHeader(cr); err != nil {
			if cr.n > MaxErrorLen {
				t.Fatalf("read %d bytes of an error", cr.n)
			}
			return
		}
		want := 1
		for i := int64(first); i < int64(first)+int64(count); i++ {
			_, n := l.Piece(i)
			want += int(n)
			p, err := l.ReadPiece(cr, i, piece)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("piece %d: %v", i, err)
				}
				break
			}
			if int64(len(p)) != n {
				t.Fatalf("piece %d: %d bytes, want %d", i, len(p), n)
			}
		}
		if cr.n > want {
			t.Fatalf("read %d bytes for pieces of %d", cr.n, want)
		}
	})
}

// rotationChain returns n statements for target, each signed by the key
// the one before moved to.
func rotationChain(t testing.TB, target string, n int) []rotation.Statement {
	t.Helper()
	var out []rotation.Statement
	_, old, _ := ed25519.GenerateKey(nil)
	for i := range n {
		next, nextPriv, _ := ed25519.GenerateKey(nil)
		st, err := rotation.New(old, next, target, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
		old = nextPriv
	}
	return out
}

func TestRotations(t *testing.T) {
	for _, n := range []int{0, 1, 3, MaxRotations} {
		want := rotationChain(t, "linux/amd64", n)
		var buf bytes.Buffer
		if err := WriteRotations(&buf, want); err != nil {
			t.Fatal(err)
		}
		got, err := ReadRotations(&buf)
		if err != nil {
			t.Fatalf("%d statements: %v", n, err)
		}
		if len(got) != n {
			t.Fatalf("got %d statements, want %d", len(got), n)
		}
		for i := range got {
			if !got[i].From.Equal(want[i].From) || !got[i].To.Equal(want[i].To) || got[i].Signature != want[i].Signature || got[i].Sequence != want[i].Sequence {
				t.Errorf("statement %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
		if buf.Len() != 0 {
			t.Errorf("%d bytes left unread", buf.Len())
		}
	}

	// A writer never sends more than MaxRotations.
	var buf bytes.Buffer
	WriteRotations(&buf, rotationChain(t, "linux/amd64", MaxRotations+2))
	if got, err := ReadRotations(&buf); err != nil || len(got) != MaxRotations {
		t.Errorf("too many statements: read %d, %v; want %d", len(got), err, MaxRotations)
	}

	one := rotationChain(t, "linux/amd64", 1)
	text, _ := one[0].MarshalText()
	checkStatementsMalformed(t, text, MaxRotations, MaxRotationLen, func(r io.Reader) error { _, err := ReadRotations(r); return err })
	// A refusal is the peer's status, not a malformed answer.
	buf.Reset()
	WriteError(&buf, StatusNotFound, "none")
	if _, err := ReadRotations(&buf); !errors.Is(err, ErrNotFound) {
		t.Errorf("not found: err = %v", err)
	}
}

// checkStatementsMalformed checks that read, the reader of an answer of at
// most max statements of at most maxLen bytes, refuses malformed answers;
// text is a good statement.
func checkStatementsMalformed(t *testing.T, text []byte, max, maxLen int, read func(io.Reader) error, more ...[]byte) {
	t.Helper()
	frame := func(count byte, l uint16, body []byte) []byte {
		b := []byte{byte(StatusOK), count}
		b = binary.LittleEndian.AppendUint16(b, l)
		return append(b, body...)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"too many", frame(byte(max+1), uint16(len(text)), text)},
		{"empty statement", frame(1, 0, nil)},
		{"too long", frame(1, uint16(maxLen+1), bytes.Repeat([]byte("a"), maxLen+1))},
		{"not a statement", frame(1, 5, []byte("hello"))},
		{"cut short", frame(1, uint16(len(text)), text[:10])},
		{"count missing", []byte{byte(StatusOK)}},
	} {
		if err := read(bytes.NewReader(tc.b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", tc.name, err)
		}
	}
	for _, body := range more {
		if err := read(bytes.NewReader(frame(1, uint16(len(body)), body))); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err = %v, want ErrMalformed", body, err)
		}
	}
}

func FuzzReadRotations(f *testing.F) {
	var buf bytes.Buffer
	WriteRotations(&buf, rotationChain(f, "linux/amd64", 2))
	f.Add(buf.Bytes())
	buf.Reset()
	WriteRotations(&buf, nil)
	f.Add(buf.Bytes())
	f.Add([]byte{0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		stmts, err := ReadRotations(cr)
		if cr.n > max(MaxErrorLen, 2+MaxRotations*(2+MaxRotationLen)) {
			t.Fatalf("read %d bytes", cr.n)
		}
		if err != nil {
			return
		}
		if len(stmts) > MaxRotations {
			t.Fatalf("%d statements", len(stmts))
		}
		for _, st := range stmts {
			if _, err := st.MarshalText(); err != nil {
				t.Fatalf("accepted a statement that does not encode: %v", err)
			}
		}
	})
}

// TestFuzzCorpus checks that every fuzz target has a committed seed corpus.
func TestFuzzCorpus(t *testing.T) {
	for _, name := range []string{"FuzzReadRequest", "FuzzReadInfo", "FuzzReadHashes", "FuzzReadPieces", "FuzzReadRotations", "FuzzReadPacked", "FuzzReadRollouts"} {
		if es, err := os.ReadDir("testdata/fuzz/" + name); err != nil || len(es) == 0 {
			t.Errorf("%s: no seed corpus in testdata/fuzz (%v)", name, err)
		}
	}
}
