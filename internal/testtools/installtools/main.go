// Command installtools installs the pinned Go tools that the end-to-end
// tests drive (goreleaser, actionlint, act; internal/testtools names their
// versions) with go install from the Go module proxy, into the directories
// where the tests look for them (testtools.Path). A tool already there is
// kept. scripts/test-deps.sh runs it; the tests never install anything.
//
//	go run ./internal/testtools/installtools [name ...]
//
// With names, it installs only those tools.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"time"

	"github.com/org/rustpatcher-go/internal/testtools"
)

// installTimeout bounds one go install, with room for the slowest:
// goreleaser's with a cold build cache on a small machine (about 12
// minutes on 2 cores).
const installTimeout = 45 * time.Minute

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	names := os.Args[1:]
	failed := false
	for _, tool := range testtools.All() {
		if len(names) > 0 && !slices.Contains(names, tool.Name) {
			continue
		}
		start := time.Now()
		path, fresh, err := install(ctx, tool)
		if err != nil {
			fmt.Fprintf(os.Stderr, "installtools: %s %s: %v\n", tool.Name, tool.Version, err)
			failed = true
			continue
		}
		if fresh {
			fmt.Printf("installed %s %s in %v: %s\n", tool.Name, tool.Version, time.Since(start).Round(time.Second), path)
		} else {
			fmt.Printf("have %s %s: %s\n", tool.Name, tool.Version, path)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// install installs tool unless it is already at testtools.Path, and returns
// its path and whether it was installed now. Concurrent installs of the
// same tool each build into their own directory and the first rename wins.
func install(ctx context.Context, tool testtools.Tool) (path string, fresh bool, err error) {
	path, err = testtools.Path(tool)
	if err != nil {
		return "", false, err
	}
	if testtools.Executable(path) {
		return path, false, nil
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", false, errors.New("no go command on PATH")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", false, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".install-"+tool.Name+"-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
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
		return "", false, fmt.Errorf("go install %s@%s: %w\n%s", tool.Pkg, tool.Version, err, tail(out.Bytes(), 2000))
	}
	if _, err := os.Stat(filepath.Join(tmp, filepath.Base(path))); err != nil {
		return "", false, fmt.Errorf("go install %s@%s succeeded but wrote no %s: %w", tool.Pkg, tool.Version, filepath.Base(path), err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process installed it meanwhile.
		if !testtools.Executable(path) {
			return "", false, err
		}
	}
	return path, true, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
