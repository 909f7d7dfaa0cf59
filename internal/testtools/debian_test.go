package testtools

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebianPresent checks that commands already there are found, by name
// in PATH and by absolute path, without running apt-get.
func TestDebianPresent(t *testing.T) {
	sh, err := lookCommand("sh")
	if err != nil {
		t.Skipf("no sh in PATH: %v", err)
	}
	t.Setenv("PATH", filepath.Dir(sh)) // no apt-get unless it sits beside sh
	paths, err := debian(context.Background(), []Package{{Name: "dash", Command: "sh"}, {Name: "dash", Command: sh}})
	if err != nil || len(paths) != 2 || paths[0] != sh || paths[1] != sh {
		t.Fatalf("debian = %v, %v; want %s twice", paths, err, sh)
	}
}

// TestLookCommandAbsolute checks that an absolute path must be an
// executable regular file.
func TestLookCommandAbsolute(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{plain, dir, filepath.Join(dir, "missing")} {
		if _, err := lookCommand(p); err == nil {
			t.Errorf("lookCommand(%s) found a command", p)
		}
	}
	if _, err := lookCommand(plain); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Errorf("lookCommand(%s) = %v, want not an executable", plain, err)
	}
}
