package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/region"
)

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

// TestFuzzCorpus checks that every fuzz target has a committed seed corpus.
func TestFuzzCorpus(t *testing.T) {
	for _, name := range []string{"FuzzReadRequest", "FuzzReadInfo", "FuzzReadHashes", "FuzzReadPieces", "FuzzReadRotations", "FuzzReadPacked", "FuzzReadRollouts", "FuzzReadHave", "FuzzReadWatch"} {
		if es, err := os.ReadDir("testdata/fuzz/" + name); err != nil || len(es) == 0 {
			t.Errorf("%s: no seed corpus in testdata/fuzz (%v)", name, err)
		}
	}
}
