package target

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestKnownMatchesGo compares the list of known targets with the one the go
// command prints, where there is a go command.
func TestKnownMatchesGo(t *testing.T) {
	if !slices.IsSorted(known) {
		t.Fatal("known is not sorted; Known searches it")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to compare with")
	}
	out, err := exec.Command(goTool, "tool", "dist", "list").Output()
	if err != nil {
		t.Skipf("go tool dist list: %v", err)
	}
	got := strings.Fields(string(out))
	if !slices.Equal(got, known) {
		t.Errorf("go tool dist list prints\n%v\nbut internal/target knows\n%v\nupdate known.go as its comment says", got, known)
	}
}

func TestKnown(t *testing.T) {
	for _, s := range []string{"linux/amd64", "windows/arm64", "darwin/arm64", "js/wasm"} {
		if tt, _ := Parse(s); !Known(tt) {
			t.Errorf("%s is not known", s)
		}
	}
	for _, s := range []string{"linux/amd65", "darwin/386", "macos/arm64"} {
		if tt, _ := Parse(s); Known(tt) {
			t.Errorf("%s is known", s)
		}
	}
	if got := KnownFor("darwin"); !slices.Equal(got, []string{"darwin/amd64", "darwin/arm64"}) {
		t.Errorf("KnownFor(darwin) = %v", got)
	}
	if got := KnownFor("macos"); len(got) != len(known) {
		t.Errorf("KnownFor(macos) = %v, want all", got)
	}
}
