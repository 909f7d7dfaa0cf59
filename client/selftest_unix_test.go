//go:build unix

package client

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// TestRunSelfTest runs real processes (shell scripts standing in for new
// binaries) through the parent side of the self-test.
func TestRunSelfTest(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	want := region.Info{Version: "2.0.0", Hash: [region.HashLen]byte{1, 2, 3}}
	okLine := selfTestPrefix + "ok 2.0.0 " + hex.EncodeToString(want.Hash[:])
	tests := []struct {
		name    string
		script  string
		wantErr string // "" means the self-test passes
	}{
		{"verifies itself", `echo "` + okLine + `" >&2`, ""},
		{"sees the environment", `[ "$` + SelfTestEnv + `" = 1 ] || exit 9; echo "` + okLine + `" >&2`, ""},
		{"crashes", `echo "segmentation fault" >&2; exit 3`, "exit status 3: segmentation fault"},
		{"fails its check", `echo "` + selfTestPrefix + `failed: binary is not signed" >&2; exit 1`, "binary is not signed"},
		{"exits 0 without checking", `exit 0`, "exited 0 without verifying itself as 2.0.0"},
		{"claims another version", `echo "` + strings.Replace(okLine, "2.0.0", "3.0.0", 1) + `" >&2`, "without verifying itself"},
		{"hangs", `sleep 30`, "did not exit within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "new")
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"+tt.script+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err := runSelfTest(context.Background(), p, want, 500*time.Millisecond, slog.New(slog.DiscardHandler))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("self-test failed: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrSelfTest) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("self-test error = %v, want ErrSelfTest with %q", err, tt.wantErr)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("self-test took %v despite a 500ms timeout", d)
			}
		})
	}
}

// TestSelfTestCannotStart checks that a new file this machine cannot start
// at all (here: a mode without execute permission) is a problem of this
// machine, not of the release: a localError, not ErrSelfTest.
func TestSelfTestCannotStart(t *testing.T) {
	p := filepath.Join(t.TempDir(), "new")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := runSelfTest(context.Background(), p, region.Info{Version: "2.0.0"}, 5*time.Second, slog.New(slog.DiscardHandler))
	var le *localError
	if !errors.As(err, &le) || errors.Is(err, ErrSelfTest) {
		t.Fatalf("self-test of a file that cannot start: %v, want a local error", err)
	}
}
