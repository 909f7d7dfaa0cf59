package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
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
		{Kind: 8, Target: "linux/amd64"},
		{Kind: KindPieces, Target: "linux/amd64", Count: 0},
		{Kind: KindPieces, Target: "linux/amd64", Count: 9},
	} {
		if _, err := r.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v: got %v, want ErrMalformed", r, err)
		}
	}
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
