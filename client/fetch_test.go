package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/region"
)

// flakyRelease serves data but fails every read after chunk bytes from
// each Open, and may append extra bytes.
type flakyRelease struct {
	data   []byte
	chunk  int
	opens  int
	failAt int // Open fails on this (1-based) call; 0 = never
}

func (f *flakyRelease) Info() region.Info         { return region.Info{} }
func (f *flakyRelease) FileID() [sha256.Size]byte { return [sha256.Size]byte{} }
func (f *flakyRelease) Size() int64               { return int64(len(f.data)) }

func (f *flakyRelease) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	f.opens++
	if f.opens == f.failAt {
		return nil, errors.New("peer went away")
	}
	return io.NopCloser(&flakyReader{b: f.data[off:], left: f.chunk}), nil
}

type flakyReader struct {
	b    []byte
	left int
}

func (r *flakyReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if r.left == 0 {
		return 0, errors.New("connection reset")
	}
	n := copy(p[:min(len(p), r.left)], r.b)
	r.b, r.left = r.b[n:], r.left-n
	return n, nil
}

func TestReleaseReader(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	tests := []struct {
		name    string
		rel     *flakyRelease
		limit   int64
		wantErr error
		errText string
	}{
		{"resumes after each failure", &flakyRelease{data: data, chunk: 7_000}, int64(len(data)), nil, ""},
		{"resumes after a failed open", &flakyRelease{data: data, chunk: 30_000, failAt: 2}, int64(len(data)), nil, ""},
		{"too long", &flakyRelease{data: data, chunk: len(data)}, int64(len(data) - 1), errTooLong, ""},
		{"truncated", &flakyRelease{data: data, chunk: len(data)}, int64(len(data) + 1), errTruncated, "ends after 100000 of 100001 bytes"},
		{"no progress at all", &flakyRelease{data: data, chunk: 0}, int64(len(data)), nil, "connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rr := &releaseReader{ctx: context.Background(), rel: tt.rel, limit: tt.limit}
			defer rr.close()
			got, err := io.ReadAll(rr)
			if tt.wantErr == nil && tt.errText == "" {
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read %d bytes, %v; want all %d", len(got), err, len(data))
				}
				return
			}
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("error = %v, want %v %q", err, tt.wantErr, tt.errText)
			}
		})
	}
}
