package version

import (
	"runtime"
	"strings"
	"testing"
)

// TestUnsigned checks the version of a test binary: unsigned, built from a
// checkout, so Devel.
func TestUnsigned(t *testing.T) {
	if v := Current(); v != Devel {
		t.Errorf("Current() = %q, want %q", v, Devel)
	}
	want := "rpx (devel) (unsigned, " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if l := Line("rpx"); l != want {
		t.Errorf("Line = %q, want %q", l, want)
	}
	if strings.Contains(Line("rpx"), "(signed") {
		t.Error("an unsigned build says it is signed")
	}
}
