package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/mirror/mirrortest"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// trust returns the TLS configuration of a client of the test server srv.
func trust(srv *httptest.Server) *tls.Config {
	return srv.Client().Transport.(*http.Transport).TLSClientConfig
}

func TestParseContentRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in          string
		start, size int64
		ok          bool
	}{
		{"bytes 0-99/100", 0, 100, true},
		{"bytes 50-99/*", 50, -1, true},
		{"bytes 50-99/99", 0, 0, false},
		{"bytes 60-50/100", 0, 0, false},
		{"bytes -1-5/100", 0, 0, false},
		{"items 0-1/2", 0, 0, false},
		{"bytes 0-1", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		start, size, err := parseContentRange(tt.in)
		if (err == nil) != tt.ok || (tt.ok && (start != tt.start || size != tt.size)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", tt.in, start, size, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{
		"https://example.com/x": true,
		"http://127.0.0.1:80/x": true,
		"http://[::1]/x":        true,
		"http://localhost/x":    true,
		"http://example.com/x":  false,
		"http://10.0.0.1/x":     false,
		"ftp://example.com/x":   false,
	} {
		u, _ := url.Parse(in)
		if err := CheckURL(u); (err == nil) != ok {
			t.Errorf("CheckURL(%s) = %v", in, err)
		}
	}
}

// release writes a signed v1 file of n bytes and returns it, its region
// and its piece checker.
func release(t *testing.T, n int64) ([]byte, region.Info, *region.PieceChecker, []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bin")
	in := regiontest.WriteBinary(t, p, n, 3, regiontest.NewKey(t), "2.0.0")
	b, _ := os.ReadFile(p)
	s, err := region.ScanFile(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	var hashes []byte
	for _, l := range s.Leaves {
		hashes = append(hashes, l[:]...)
	}
	c, err := ParsePieces(hashes, in, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return b, in, c, hashes
}

func TestParsePieces(t *testing.T) {
	t.Parallel()
	b, in, _, hashes := release(t, 2*region.PieceSize+10)
	bad := bytes.Clone(hashes)
	bad[40] ^= 1
	for name, h := range map[string][]byte{
		"short":     hashes[:len(hashes)-1],
		"long":      append(bytes.Clone(hashes), 0),
		"bad root":  bad,
		"one fewer": hashes[:len(hashes)-sha256.Size],
	} {
		if _, err := ParsePieces(h, in, int64(len(b))); !errors.Is(err, ErrBadPieces) {
			t.Errorf("%s: %v, want ErrBadPieces", name, err)
		}
	}
}

// TestFetcher serves a release with and without Range support, and checks
// that PieceReader hands on exactly the file from any offset, refuses a
// damaged piece, and that lengths are bounded.
func TestFetcher(t *testing.T) {
	t.Parallel()
	b, in, c, _ := release(t, 2*region.PieceSize+5000)
	damaged := bytes.Clone(b)
	damaged[region.PieceSize+100] ^= 1
	mux := http.NewServeMux()
	serve := func(data []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "bin", time.Unix(1e9, 0), bytes.NewReader(data))
		}
	}
	mux.Handle("/bin", serve(b))
	mux.Handle("/damaged", serve(damaged))
	mux.HandleFunc("/norange", func(w http.ResponseWriter, r *http.Request) { w.Write(b) })
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 1000)) })
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://example.com/x", http.StatusFound)
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	f := &Fetcher{TLS: trust(srv)}
	ctx := context.Background()
	for _, path := range []string{"/bin", "/norange"} {
		for _, off := range []int64{0, 1, region.PieceSize - 1, region.PieceSize, region.PieceSize + 7, in.ContentLen(), int64(len(b))} {
			start := PieceStart(off, in.ContentLen())
			rc, err := f.Open(ctx, srv.URL+path, start, int64(len(b))-start+1, int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(NewPieceReader(rc, c, in.ContentLen(), off))
			rc.Close()
			if err != nil || !bytes.Equal(got, b[off:]) {
				t.Errorf("%s from %d: %d bytes, %v", path, off, len(got), err)
			}
		}
	}
	rc, err := f.Open(ctx, srv.URL+"/damaged", 0, int64(len(b))+1, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(NewPieceReader(rc, c, in.ContentLen(), 0))
	rc.Close()
	if !errors.Is(err, region.ErrBadPiece) || len(got) != region.PieceSize {
		t.Errorf("damaged: %d bytes handed on, %v; want piece 0 and ErrBadPiece", len(got), err)
	}
	if _, err := f.Open(ctx, srv.URL+"/bin", 0, 10, 12345); err == nil || !strings.Contains(err.Error(), "the manifest says 12345") {
		t.Errorf("another length: %v", err)
	}
	if _, _, err := f.Small(ctx, srv.URL+"/small", 999, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	if _, _, err := f.Small(ctx, srv.URL+"/missing", 999, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if _, _, err := f.Small(ctx, srv.URL+"/plain", 999, nil); err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Errorf("redirect to plain http: %v", err)
	}
	// Conditional: the second fetch is answered 304.
	c1, changed, err := f.Small(ctx, srv.URL+"/bin", int64(len(b)), nil)
	if err != nil || !changed {
		t.Fatal(err)
	}
	c2, changed, err := f.Small(ctx, srv.URL+"/bin", int64(len(b)), &c1)
	if err != nil || changed || !bytes.Equal(c2.Body, b) {
		t.Errorf("conditional fetch: changed %v, %v", changed, err)
	}
}

// TestLastModifiedWeak: a file written again within the second its
// first fetch's Last-Modified names (the Date in that same second) is
// fetched whole at the next poll, not answered 304; one whose
// Last-Modified is a second or more before the Date is asked for
// conditionally.
func TestLastModifiedWeak(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		age         time.Duration // Date minus Last-Modified
		conditional bool
	}{
		{"same second", 0, false},
		{"modified after the date (clock skew)", -time.Minute, false},
		{"a second", time.Second, true},
		{"an hour", time.Hour, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			date := time.Date(2026, 12, 5, 7, 42, 40, 0, time.UTC)
			var asked []string
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked = append(asked, r.Header.Get("If-Modified-Since"))
				w.Header().Set("Date", date.Format(http.TimeFormat))
				http.ServeContent(w, r, "m.json", date.Add(-tt.age), strings.NewReader("{}"))
			}))
			defer srv.Close()
			f := &Fetcher{TLS: trust(srv)}
			c, _, err := f.Small(context.Background(), srv.URL+"/m.json", 100, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, changed, err := f.Small(context.Background(), srv.URL+"/m.json", 100, &c)
			if err != nil {
				t.Fatal(err)
			}
			if got := asked[1] != ""; got != tt.conditional || changed == tt.conditional {
				t.Errorf("second fetch: If-Modified-Since %q, changed %v; want conditional %v", asked[1], changed, tt.conditional)
			}
		})
	}
}

// TestStalled: a body that drips, or stalls, is dropped after the idle
// timeout.
func TestStalled(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mirrortest.Drip(w, r, make([]byte, 100000), 1, 10*time.Millisecond)
	}))
	defer srv.Close()
	f := &Fetcher{TLS: trust(srv), IdleTimeout: 200 * time.Millisecond}
	rc, err := f.Open(context.Background(), srv.URL+"/x", 0, 100001, 100000)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	start := time.Now()
	n, err := io.Copy(io.Discard, rc)
	if !errors.Is(err, ErrStalled) || n > 1000 {
		t.Errorf("read %d bytes in %v, %v; want ErrStalled", n, time.Since(start), err)
	}
	if _, _, err := f.Small(context.Background(), srv.URL+"/x", 200000, nil); !errors.Is(err, ErrStalled) {
		t.Errorf("Small: %v", err)
	}
}

func FuzzParsePieces(f *testing.F) {
	var in region.Info
	in.Format, in.Version, in.Target, in.Size, in.Offset = region.V1, "1.0.0", regiontest.Target, 3*region.PieceSize, 100
	f.Add(make([]byte, 3*sha256.Size))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParsePieces(b, in, int64(in.Size))
		if err == nil && c == nil {
			t.Fatal("no checker and no error")
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 5-9/*", "bytes x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, size, err := parseContentRange(s)
		if err == nil && (start < 0 || (size != -1 && size <= start)) {
			t.Fatal(fmt.Sprint("accepted ", s, start, size))
		}
	})
}
