package wire

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/region"
)

func TestRequestRoundTrip(t *testing.T) {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	tests := []Request{
		{Kind: KindInfo, Auth: Auth(pub, time.Unix(600, 0)), Target: "linux/amd64"},
		{Kind: KindFetch, Auth: Auth(pub, time.Unix(600, 0)), Target: "windows/arm64", ID: [IDLen]byte{1, 2, 3}, Offset: 1 << 40},
		{Kind: KindFetch, Target: strings.Repeat("a", MaxTargetLen)},
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
	good, _ := (&Request{Kind: KindFetch, Target: "linux/amd64"}).Marshal()
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("XX"), good[2:]...)},
		{"unknown kind", append([]byte("RP\x09"), good[3:]...)},
		{"zero target", append(append([]byte{}, good[:3+AuthLen]...), 0)},
		{"long target", append(append([]byte{}, good[:3+AuthLen]...), MaxTargetLen+1)},
		{"bad target bytes", append(append(append([]byte{}, good[:3+AuthLen]...), 2), "A\n"...)},
		{"truncated fetch", good[:len(good)-1]},
	}
	for _, tt := range tests {
		if _, err := ReadRequest(bytes.NewReader(tt.b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", tt.name, err)
		}
	}
}

func TestMarshalRejectsBadTarget(t *testing.T) {
	for _, target := range []string{"", "Linux/amd64", strings.Repeat("a", MaxTargetLen+1)} {
		if _, err := (&Request{Kind: KindInfo, Target: target}).Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("target %q: got %v, want ErrMalformed", target, err)
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

func TestResponses(t *testing.T) {
	var reg [region.Size]byte
	in := region.Info{Version: "2.0.0", Size: 42}
	reg, _ = in.Marshal()

	var buf bytes.Buffer
	WriteInfo(&buf, reg)
	gotReg, got, err := ReadInfo(&buf)
	if err != nil || gotReg != reg || got.Version != "2.0.0" || got.Size != 42 {
		t.Fatalf("ReadInfo = %v, %+v, %v", gotReg == reg, got, err)
	}

	statusTests := []struct {
		s    Status
		want error
	}{
		{StatusBusy, ErrBusy},
		{StatusNotFound, ErrNotFound},
		{StatusBadRequest, ErrRefused},
	}
	for _, tt := range statusTests {
		buf.Reset()
		WriteError(&buf, tt.s, strings.Repeat("x\x00", 200))
		if err := ReadFetchHeader(&buf, 10); !errors.Is(err, tt.want) {
			t.Errorf("%v: got %v, want %v", tt.s, err, tt.want)
		} else if strings.ContainsRune(err.Error(), 0) {
			t.Errorf("%v: message not sanitised: %q", tt.s, err)
		}
	}

	buf.Reset()
	WriteFetchHeader(&buf, 11)
	if err := ReadFetchHeader(&buf, 10); !errors.Is(err, ErrLength) {
		t.Errorf("longer than signed: got %v, want ErrLength", err)
	}
	buf.Reset()
	WriteFetchHeader(&buf, 10)
	if err := ReadFetchHeader(&buf, 10); err != nil {
		t.Errorf("exact length: %v", err)
	}
	if err := ReadFetchHeader(bytes.NewReader([]byte{9}), 10); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown status: got %v, want ErrMalformed", err)
	}
	if _, _, err := ReadInfo(bytes.NewReader(append([]byte{0}, make([]byte, region.Size)...))); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage region: got %v, want ErrMalformed", err)
	}
}

// limitedReader fails the test if a decoder reads more than n bytes.
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
	b, _ := (&Request{Kind: KindFetch, Target: "linux/amd64", Offset: 7}).Marshal()
	f.Add(b)
	b, _ = (&Request{Kind: KindInfo, Target: "darwin/arm64"}).Marshal()
	f.Add(b)
	f.Add([]byte("RP"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		req, err := ReadRequest(cr)
		if cr.n > MaxRequestLen {
			t.Fatalf("read %d bytes, limit %d", cr.n, MaxRequestLen)
		}
		if err != nil {
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
	in := region.Info{Version: "1.2.3", Size: 9}
	reg, _ := in.Marshal()
	var buf bytes.Buffer
	WriteInfo(&buf, reg)
	f.Add(buf.Bytes())
	buf.Reset()
	WriteError(&buf, StatusBusy, "busy")
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		ReadInfo(cr)
		if cr.n > 2+MaxMessageLen && cr.n > 1+region.Size {
			t.Fatalf("read %d bytes", cr.n)
		}
	})
}

func FuzzReadFetchHeader(f *testing.F) {
	var buf bytes.Buffer
	WriteFetchHeader(&buf, 100)
	f.Add(buf.Bytes(), uint64(100))
	buf.Reset()
	WriteError(&buf, StatusNotFound, "no")
	f.Add(buf.Bytes(), uint64(1))
	f.Fuzz(func(t *testing.T, b []byte, want uint64) {
		cr := &countingReader{r: bytes.NewReader(b)}
		err := ReadFetchHeader(cr, want)
		if cr.n > 2+MaxMessageLen {
			t.Fatalf("read %d bytes", cr.n)
		}
		if err == nil && (len(b) < 9 || b[0] != 0) {
			t.Fatalf("accepted %x", b)
		}
	})
}
