//go:build unix

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHelloVersion checks the helpers and hello's --version: an unsigned
// build says "unsigned" and a signed copy prints its signed version.
func TestHelloVersion(t *testing.T) {
	key := NewKey(t)
	bin := BuildHello(t, key.Public)
	dir := t.TempDir()
	unsigned := filepath.Join(dir, "unsigned")
	CopyFile(t, bin, unsigned)
	signed := filepath.Join(dir, "hello")
	SignedCopy(t, bin, signed, key, "v1.2.3")
	tests := []struct {
		path string
		want string
	}{
		{unsigned, "unsigned"},
		{signed, "1.2.3"},
	}
	for _, tt := range tests {
		p := Start(t, tt.path, "--version")
		l, _ := p.WaitLine(0, 30*time.Second, `.`)
		if got := strings.TrimSpace(l.Text); got != tt.want {
			t.Errorf("%s --version = %q, want %q", tt.path, got, tt.want)
		}
		if err := p.Wait(30 * time.Second); err != nil {
			t.Errorf("%s --version: %v", tt.path, err)
		}
	}
	if v, err := FileVersion(signed, key.Public); err != nil || v != "1.2.3" {
		t.Errorf("FileVersion(%s) = %q, %v; want 1.2.3", signed, v, err)
	}
}
