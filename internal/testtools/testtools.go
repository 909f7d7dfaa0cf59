// Package testtools installs the pinned command-line tools that end-to-end
// tests run (goreleaser, actionlint, act) with go install from the Go
// module proxy, into a per-user cache directory reused across runs, and
// the Debian packages some tests need (qemu-user-static, Wine, MinGW) with
// apt-get when they are missing.
//
// A test calls Install and gets the tool's path. When the install itself is
// impossible (no go command, no module proxy), the test is skipped with a
// message saying so, unless RP_REQUIRE_TOOLS=1 is set (as in CI), which
// makes it fail instead.
package testtools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// A Tool is a Go command installable with go install Pkg@Version.
type Tool struct {
	// Name is the installed binary's name.
	Name string
	// Pkg is the package path of its main package.
	Pkg string
	// Version is the exact module version.
	Version string
}

// Goreleaser is the release tool, pinned like every tool here (see
// docs/RELEASING.md).
func Goreleaser() Tool {
	return Tool{"goreleaser", "github.com/goreleaser/goreleaser/v2", "v2.15.1"}
}

// Actionlint is the workflow linter.
func Actionlint() Tool {
	return Tool{"actionlint", "github.com/rhysd/actionlint/cmd/actionlint", "v1.7.12"}
}

// Act runs GitHub Actions workflows locally (nektos/act).
func Act() Tool {
	return Tool{"act", "github.com/nektos/act", "v0.2.89"}
}

// installTimeout bounds one go install, with room for the slowest:
// goreleaser's with a cold build cache on a small machine (its time is in
// README.md).
const installTimeout = 30 * time.Minute

// Dir returns the directory that holds tool once installed:
// $XDG_CACHE_HOME/rustpatcher-go/tools/<name>-<version> or the platform's
// equivalent (os.UserCacheDir).
func Dir(tool Tool) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "rustpatcher-go", "tools", tool.Name+"-"+tool.Version), nil
}

// Path returns the path of the installed tool's binary.
func Path(tool Tool) (string, error) {
	dir, err := Dir(tool)
	if err != nil {
		return "", err
	}
	name := tool.Name
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return filepath.Join(dir, name), nil
}

// Install returns the path of tool, installing it first when it is not in
// the cache. It skips the test (or fails it under RP_REQUIRE_TOOLS=1) when
// the install is impossible.
func Install(t testing.TB, tool Tool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	if dl, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := dl.Deadline(); ok {
			ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
			defer cancel()
		}
	}
	path, err := install(ctx, tool)
	if err != nil {
		msg := fmt.Sprintf("cannot install %s %s (go install %s@%s): %v", tool.Name, tool.Version, tool.Pkg, tool.Version, err)
		if os.Getenv("RP_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg + " (set RP_REQUIRE_TOOLS=1 to fail instead)")
	}
	return path
}

// install installs tool unless it is already in the cache, and returns its
// path. Concurrent installs of the same tool (parallel test binaries) each
// build into their own directory and the first rename wins.
func install(ctx context.Context, tool Tool) (string, error) {
	path, err := Path(tool)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return path, nil
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("no go command on PATH")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".install-"+tool.Name+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, gobin, "install", tool.Pkg+"@"+tool.Version)
	// Run outside any module so that the project's go.mod plays no part.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (gave up after %v)", err, installTimeout)
		}
		return "", fmt.Errorf("%w\n%s", err, tail(out.Bytes(), 2000))
	}
	if _, err := os.Stat(filepath.Join(tmp, filepath.Base(path))); err != nil {
		return "", fmt.Errorf("go install succeeded but wrote no %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process installed it meanwhile.
		if _, serr := os.Stat(path); serr != nil {
			return "", err
		}
	}
	return path, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
