// Package testtools finds the tools that end-to-end tests run: the pinned
// Go tools (goreleaser, actionlint, act) in a per-user cache directory, and
// the commands of Debian packages (qemu-user-static, Wine, MinGW,
// osslsigncode, nftables) on the machine.
//
// Tests install nothing. scripts/test-deps.sh installs all of it (the Go
// tools with go run ./internal/testtools/installtools, the packages with
// apt-get) and registers the binfmt_misc handlers. A test whose tool is
// missing is skipped with a message naming that script, unless
// RP_REQUIRE_TOOLS=1 is set (as .ci/run does), which makes it fail.
package testtools

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Script is the setup script that installs what the tests need, relative to
// the repository root.
const Script = "scripts/test-deps.sh"

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

// All returns every pinned tool, the ones installtools installs.
func All() []Tool {
	return []Tool{Actionlint(), Act(), Goreleaser()}
}

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

// Executable reports whether path is an executable regular file.
func Executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && (runtime.GOOS == "windows" || st.Mode()&0o111 != 0)
}

// Find returns the path of the installed tool. It skips the test (or fails
// it under RP_REQUIRE_TOOLS=1) when the tool is not installed, naming the
// script that installs it.
func Find(t testing.TB, tool Tool) string {
	t.Helper()
	path, err := Path(tool)
	if err != nil {
		Missing(t, fmt.Sprintf("no cache directory for %s %s: %v", tool.Name, tool.Version, err))
	}
	if !Executable(path) {
		Missing(t, fmt.Sprintf("%s %s is not installed at %s", tool.Name, tool.Version, path))
	}
	return path
}

// Missing skips the test because something it needs is missing, as msg
// says, and names the script that installs it; under RP_REQUIRE_TOOLS=1
// it fails the test instead.
func Missing(t testing.TB, msg string) {
	t.Helper()
	msg += " (run " + Script + " to set up what the tests need)"
	if os.Getenv("RP_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip("skipping: " + msg + "; set RP_REQUIRE_TOOLS=1 to fail instead")
}

// A Package is a Debian package that provides a command a test runs.
type Package struct {
	// Name is the Debian package, such as qemu-user-static.
	Name string
	// Command is the file the test runs: a name looked up in PATH, or an
	// absolute path for programs installed outside it (Wine's
	// /usr/lib/wine/wine64).
	Command string
}

// Commands returns the paths of the packages' commands, in order. When one
// is missing it skips the test (or fails it under RP_REQUIRE_TOOLS=1),
// naming the packages to install and the script that installs them.
func Commands(t testing.TB, pkgs ...Package) []string {
	t.Helper()
	paths, err := commands(pkgs)
	if err != nil {
		Missing(t, err.Error())
	}
	return paths
}

func commands(pkgs []Package) ([]string, error) {
	paths := make([]string, len(pkgs))
	var missing []string
	for i, p := range pkgs {
		path, err := lookCommand(p.Command)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", p.Command, p.Name))
			continue
		}
		paths[i] = path
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing %s", strings.Join(missing, ", "))
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
