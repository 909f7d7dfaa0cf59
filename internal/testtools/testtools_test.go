package testtools

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPaths(t *testing.T) {
	for _, tool := range All() {
		p, err := Path(tool)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(filepath.Dir(p), filepath.Join("rustpatcher-go", "tools", tool.Name+"-"+tool.Version)) {
			t.Errorf("Path(%s) = %s", tool.Name, p)
		}
		if !strings.HasPrefix(tool.Version, "v") || strings.Contains(tool.Version, "latest") {
			t.Errorf("%s is not pinned to an exact version: %s", tool.Name, tool.Version)
		}
	}
}

// TestFind checks that an installed tool is found where installtools puts
// it, and that a missing one skips the test naming the setup script.
func TestFind(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	t.Setenv("RP_REQUIRE_TOOLS", "")
	tool := Tool{"cached", "example.com/cached", "v1.0.0"}
	var skipped bool
	t.Run("missing", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Find(t, tool)
		t.Error("Find returned a tool that is not installed")
	})
	if !skipped {
		t.Error("Find did not skip the test of a missing tool")
	}
	p, err := Path(tool)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := Find(t, tool); got != p {
		t.Errorf("Find = %s, want %s", got, p)
	}
}

// TestCommands checks that commands already there are found, by name in
// PATH and by absolute path, and that a missing one is reported with its
// package.
func TestCommands(t *testing.T) {
	sh, err := lookCommand("sh")
	if err != nil {
		t.Skipf("no sh in PATH: %v", err)
	}
	paths, err := commands([]Package{{Name: "dash", Command: "sh"}, {Name: "dash", Command: sh}})
	if err != nil || len(paths) != 2 || paths[0] != sh || paths[1] != sh {
		t.Fatalf("commands = %v, %v; want %s twice", paths, err, sh)
	}
	_, err = commands([]Package{{Name: "dash", Command: "sh"}, {Name: "nosuch-pkg", Command: "nosuch-command-rp"}})
	if err == nil || !strings.Contains(err.Error(), "nosuch-command-rp (Debian package nosuch-pkg)") {
		t.Errorf("commands with a missing command = %v", err)
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
