package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// TestVerifySelf checks the one check of a program's own file, which both
// the pipeline's start and a self-test run make, and its wording.
func TestVerifySelf(t *testing.T) {
	t.Parallel()
	k, other := regiontest.NewKey(t), regiontest.NewKey(t)
	dir := t.TempDir()
	exe := filepath.Join(dir, "prog")
	running := regiontest.WriteBinary(t, exe, 20_000, 1, k, "1.0.0")
	flipped := filepath.Join(dir, "flipped")
	regiontest.WriteBinary(t, flipped, 20_000, 1, k, "1.0.0")
	regiontest.FlipByte(t, flipped, 100)
	newer := filepath.Join(dir, "newer")
	regiontest.WriteBinary(t, newer, 20_000, 2, k, "1.0.1")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		exe     string
		current region.Info
		pub     regiontest.Key
		wantErr error  // nil: verifies
		text    string // the error says this
	}{
		{"verifies", context.Background(), exe, running, k, nil, ""},
		{"unsigned build", context.Background(), exe, region.Info{}, k, region.ErrUnsigned, "this build was never signed (sign it with rpsign sign)"},
		{"own region signed by another key", context.Background(), exe, running, other, region.ErrBadSignature, "the program's own region"},
		{"file changed on disk", context.Background(), flipped, running, k, ErrFileMismatch, region.ErrHashMismatch.Error()},
		{"file is another version", context.Background(), newer, running, k, ErrFileMismatch, "holds version 1.0.1, the program runs 1.0.0"},
		{"file gone", context.Background(), filepath.Join(dir, "missing"), running, k, os.ErrNotExist, "missing"},
		{"context done", canceled, exe, running, k, context.Canceled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			current := func() (region.Info, error) { return tt.current, nil }
			got, _, err := verifySelf(tt.ctx, tt.exe, tt.pub.Public, current)
			if got != tt.current {
				t.Errorf("verifySelf returned version %q, want the running region %q", got.Version, tt.current.Version)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("verifySelf = %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("verifySelf error = %v, want %v saying %q", err, tt.wantErr, tt.text)
			}
		})
	}
	t.Run("own region unreadable", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("boom")
		_, _, err := verifySelf(context.Background(), exe, k.Public, func() (region.Info, error) { return region.Info{}, boom })
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "reading the program's own region") {
			t.Errorf("verifySelf error = %v", err)
		}
	})
}
