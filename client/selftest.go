package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// SelfTestEnv is the environment variable that runs a program in self-test
// mode: when it is set, Spawn verifies the program's own file, writes one
// line to stderr and exits (status 0 if the file verifies, 1 if not). The
// engine sets it when it runs a new binary once before installing it.
const SelfTestEnv = "RUSTPATCHER_SELFTEST"

// selfTestPrefix starts the line a self-test run writes to stderr.
const selfTestPrefix = "rustpatcher-selftest: "

// selfTestMain is the whole of a self-test run: it verifies the running
// binary's file against the region in memory (verifySelf), reports on w and
// returns the exit status.
func selfTestMain(key ed25519.PublicKey, keyErr error, w io.Writer) int {
	in, err := selfTestCheck(key, keyErr)
	if err != nil {
		fmt.Fprintf(w, "%sfailed: %v\n", selfTestPrefix, err)
		return 1
	}
	fmt.Fprintf(w, "%sok %s %s\n", selfTestPrefix, in.Version, hex.EncodeToString(in.Hash[:]))
	return 0
}

func selfTestCheck(key ed25519.PublicKey, keyErr error) (region.Info, error) {
	if keyErr != nil {
		return region.Info{}, keyErr
	}
	exe, err := executable()
	if err != nil {
		return region.Info{}, err
	}
	in, _, err := verifySelf(context.Background(), exe, key, region.Current)
	return in, err
}

// maxBusyRetries bounds the retries of a self-test run that fails to start
// because the file is still open for writing in a process forked meanwhile
// (ETXTBSY on Linux).
const maxBusyRetries = 10

// runSelfTest runs the new binary at path once in self-test mode, with the
// running program's arguments, and checks that it verified itself as want
// within timeout.
func runSelfTest(ctx context.Context, path string, want region.Info, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		var stderr tailBuffer
		cmd := exec.CommandContext(ctx, path, os.Args[1:]...)
		cmd.Env = append(os.Environ(), SelfTestEnv+"=1")
		cmd.Stderr = &stderr
		cmd.WaitDelay = time.Second
		ownGroup(cmd)
		start := time.Now()
		err := cmd.Run()
		if err != nil && isBusy(err) && attempt < maxBusyRetries && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		out := strings.TrimSpace(stderr.String())
		switch {
		case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
			return fmt.Errorf("%w: %s did not exit within %v (does its main call client.Spawn first?): %s", ErrSelfTest, path, timeout, lastLine(out))
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && errors.Is(err, fs.ErrPermission):
			// The file could not be started at all (a noexec mount, a mode
			// without execute permission for this user): a problem of this
			// machine, not of the release.
			return &localError{fmt.Errorf("starting the self-test of %s: %w (is the directory on a noexec mount?)", path, err)}
		case err != nil:
			return fmt.Errorf("%w: running %s: %v: %s", ErrSelfTest, path, err, lastLine(out))
		}
		wantLine := fmt.Sprintf("%sok %s %s", selfTestPrefix, want.Version, hex.EncodeToString(want.Hash[:]))
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if sc.Text() == wantLine {
				log.Debug("self-test passed", "version", want.Version, "took", time.Since(start))
				return nil
			}
		}
		return fmt.Errorf("%w: %s exited 0 without verifying itself as %s: %s", ErrSelfTest, path, want.Version, lastLine(out))
	}
}

func lastLine(s string) string {
	if s == "" {
		return "no output"
	}
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

const tailSize = 4096

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailSize {
		t.b = bytes.Clone(t.b[len(t.b)-tailSize:])
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
