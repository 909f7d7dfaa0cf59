//go:build unix

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/testtools"
)

// TestCIWorkflowAct runs the ci job of .github/workflows/ci.yml with
// nektos/act in host mode, as GitHub would run it on ubuntu, limited to the
// quick steps of .ci/run (RP_CI_STEPS="deps lint": the setup script and
// gofmt, go mod tidy, staticcheck; the whole of .ci/run is the test suite
// itself). The job must succeed, run .ci/run's steps (not skip them), and
// fail on a file that is not gofmt-ed. What act cannot do (setup-go, the
// macOS and Windows jobs) is named in the workflow.
func TestCIWorkflowAct(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the act run in -short mode")
	}
	act := testtools.Find(t, testtools.Act())
	// The setup script must find the installed tools, not install them
	// again: the act run's cache directory links to their directory.
	tools, err := testtools.Dir(testtools.Act())
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir() // act's host-mode work trees go here
	if err := os.MkdirAll(filepath.Join(cache, "rustpatcher-go"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(tools), filepath.Join(cache, "rustpatcher-go", "tools")); err != nil {
		t.Fatal(err)
	}
	// staticcheck keeps its analyses in the user's cache directory, as the
	// go command keeps builds in GOCACHE: with a cache of its own, the act
	// run would analyse go-libp2p and every other dependency again, not
	// only this module's packages (whose keys hold their new directory).
	if user, err := os.UserCacheDir(); err == nil {
		shared := filepath.Join(user, "staticcheck")
		if err := os.MkdirAll(shared, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(shared, filepath.Join(cache, "staticcheck")); err != nil {
			t.Fatal(err)
		}
	}
	env := toolEnv(append(goEnv(t), "XDG_CACHE_HOME="+cache)...)
	runCI := func(dir, steps string) (string, error) {
		return runTool(t, 15*time.Minute, dir, env, act, actArgs(t, t.TempDir(), "push", "ci.yml",
			"-j", "ci", "--env", "RP_CI_STEPS="+steps)...)
	}

	dir := repoCopy(t)
	out, err := runCI(dir, "deps lint")
	t.Logf("act output:\n%s", out)
	if err != nil {
		t.Fatalf("act: %v", err)
	}
	for _, want := range []string{
		"== deps: scripts/test-deps.sh",
		"== lint: gofmt, go mod tidy -diff, staticcheck",
		"Success - Main .ci/run",
		"Job succeeded",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("act's output lacks %q", want)
		}
	}
	if strings.Contains(out, "== test:") || strings.Contains(out, "== vet:") {
		t.Error("RP_CI_STEPS=\"deps lint\" ran other steps of .ci/run")
	}

	// The same job fails on a file that is not gofmt-ed, naming it.
	bad := filepath.Join(dir, "region", "zz_unformatted.go")
	if err := os.WriteFile(bad, []byte("package region\nvar   x = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runCI(dir, "lint")
	if err == nil {
		t.Fatalf("act succeeded with a file that is not gofmt-ed:\n%s", out)
	}
	if !strings.Contains(out, "not gofmt-ed: region/zz_unformatted.go") {
		t.Errorf("the failed run does not name the file:\n%s", out)
	}
}
