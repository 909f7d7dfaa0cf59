package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/testtools"
)

// TestInstallFailure checks that a failed install reports the package and
// the go command's output instead of leaving a broken tool behind. The
// module proxy is off: nothing is downloaded.
func TestInstallFailure(t *testing.T) {
	// The go command's telemetry may still write under the user config
	// directory after go exits: keep it out of the test's temporary ones.
	if cfg, err := os.UserConfigDir(); err == nil {
		t.Setenv("XDG_CONFIG_HOME", cfg)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "")
	tool := testtools.Tool{Name: "nosuchtool", Pkg: "example.com/nosuch/tool", Version: "v0.0.1"}
	_, _, err := install(context.Background(), tool)
	if err == nil || !strings.Contains(err.Error(), "example.com/nosuch/tool") {
		t.Fatalf("install = %v, want an error naming the module", err)
	}
	p, _ := testtools.Path(tool)
	if _, err := os.Stat(p); err == nil {
		t.Error("a failed install left a binary behind")
	}
}

// TestInstallCached checks that an installed tool is kept without running
// go install again.
func TestInstallCached(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	t.Setenv("PATH", "") // no go command: only the cache can answer
	tool := testtools.Tool{Name: "cached", Pkg: "example.com/cached", Version: "v1.0.0"}
	p, err := testtools.Path(tool)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := install(context.Background(), tool); err == nil || !strings.Contains(err.Error(), "no go command") {
		t.Fatalf("install without go and cache = %v", err)
	}
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho cached\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, fresh, err := install(context.Background(), tool)
	if err != nil || got != p || fresh {
		t.Fatalf("install = %s, %v, %v; want %s, not fresh", got, fresh, err, p)
	}
	out, err := exec.Command(got).Output()
	if err != nil || string(out) != "cached\n" {
		t.Errorf("running the cached tool: %q, %v", out, err)
	}
}
