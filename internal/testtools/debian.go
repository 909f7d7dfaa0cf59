package testtools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A Package is a Debian package that provides a command a test runs.
type Package struct {
	// Name is the Debian package, such as qemu-user-static.
	Name string
	// Command is the file the test runs: a name looked up in PATH, or an
	// absolute path for programs installed outside it (Wine's
	// /usr/lib/wine/wine64).
	Command string
}

// aptTimeout bounds one apt-get run: Wine with its dependencies is the
// largest download the tests need.
const aptTimeout = 15 * time.Minute

// Debian returns the paths of the packages' commands, in order, installing
// the packages that lack theirs with apt-get first (non-interactive,
// without recommended packages). It skips the test, saying which package
// is missing and why it cannot be installed (not root, no apt-get, apt-get
// failed), or fails it under RP_REQUIRE_TOOLS=1.
func Debian(t testing.TB, pkgs ...Package) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), aptTimeout)
	defer cancel()
	paths, err := debian(ctx, pkgs)
	if err != nil {
		msg := err.Error()
		if os.Getenv("RP_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg + " (set RP_REQUIRE_TOOLS=1 to fail instead)")
	}
	return paths
}

func debian(ctx context.Context, pkgs []Package) ([]string, error) {
	var missing []string
	for _, p := range pkgs {
		if _, err := lookCommand(p.Command); err != nil {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) > 0 {
		if err := aptInstall(ctx, missing); err != nil {
			return nil, fmt.Errorf("cannot install the Debian packages %s: %w", strings.Join(missing, " "), err)
		}
	}
	paths := make([]string, len(pkgs))
	for i, p := range pkgs {
		path, err := lookCommand(p.Command)
		if err != nil {
			return nil, fmt.Errorf("the Debian package %s is installed but %s is not there: %w", p.Name, p.Command, err)
		}
		paths[i] = path
	}
	return paths, nil
}

// lookCommand finds cmd in PATH, or checks the absolute path cmd.
func lookCommand(cmd string) (string, error) {
	if !filepath.IsAbs(cmd) {
		return exec.LookPath(cmd)
	}
	st, err := os.Stat(cmd)
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", cmd)
	}
	return cmd, nil
}

// aptInstall installs pkgs with apt-get, updating the package lists first
// when apt-get does not know a package.
func aptInstall(ctx context.Context, pkgs []string) error {
	if os.Geteuid() != 0 {
		return errors.New("apt-get needs root")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("no apt-get: not a Debian-based machine")
	}
	// Wait for another apt-get (a parallel test binary) rather than fail.
	install := append([]string{"-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if _, err := apt(ctx, install...); err == nil {
		return nil
	}
	// The package lists may be missing or old: update them, then again.
	if out, err := apt(ctx, "-o", "DPkg::Lock::Timeout=600", "update", "-q"); err != nil {
		return fmt.Errorf("apt-get update: %w\n%s", err, tail(out, 2000))
	}
	if out, err := apt(ctx, install...); err != nil {
		return fmt.Errorf("apt-get install: %w\n%s", err, tail(out, 2000))
	}
	return nil
}

func apt(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (gave up after %v)", err, aptTimeout)
	}
	return out.Bytes(), err
}
