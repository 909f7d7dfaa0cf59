//go:build unix

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// hugeFile makes a sparse file of size bytes at path, such as 1 TiB,
// longer than any release can be (region.MaxFileLen): reading it would
// keep a core busy for many minutes. It skips the test where the file
// system has no sparse files.
func hugeFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Skipf("no sparse file of %d bytes here: %v", size, err)
	}
}

// TestHugeFileInSource: a 1 TiB sparse file in the app's --source
// directory, next to the genuine 2.0.0, is skipped at once with a log line
// naming it, once, and the app runs 2.0.0 within seconds, as without it;
// so it does beside a 32 GiB sparse file, which could be a release by its
// length, whose holes the scan skips.
func TestHugeFileInSource(t *testing.T) {
	s := newUpdateSetup(t)
	s.release(t, s.key, "2.0.0")
	huge := filepath.Join(s.rels, "huge.bin")
	hugeFile(t, huge, 1<<40)
	// Below the limit, but all holes: on Linux the scan skips them.
	if runtime.GOOS == "linux" {
		hugeFile(t, filepath.Join(s.rels, "holes.bin"), 32<<30)
	}
	p := s.start(t, "now")
	skipped := `msg="file skipped: longer than any release can be; it is not read".* file=` + regexp.QuoteMeta(huge) + ` size=1099511627776`
	p.WaitLine(0, 10*time.Second, skipped)
	_, i := p.WaitLine(0, 20*time.Second, `^hello 2\.0\.0 args=a b$`)
	s.waitFileVersion(t, "2.0.0", 5*time.Second)
	n := 0
	for _, l := range p.Lines()[:i] {
		if regexp.MustCompile(skipped).MatchString(l.Text) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("1.0.0 logged the huge file %d times, want once", n)
	}
}

// TestHugeFileInRpseedDir: rpseed started with a 1 TiB sparse file in
// --dir next to a release prints its listen addresses and answers
// /healthz before its first scan of the directory ends, names the file at
// WARN without reading it, and serves the release within seconds.
func TestHugeFileInRpseedDir(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rpseed")
	}
	rpseed := GoBuild(t, rpseedPkg, "")
	dir := t.TempDir()
	seedDir := filepath.Join(dir, "rel")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	key := regiontest.NewKey(t)
	regiontest.WriteBinary(t, filepath.Join(seedDir, "app-2.0.0"), 1<<20, 3, key, "2.0.0")
	huge := filepath.Join(seedDir, "huge.bin")
	hugeFile(t, huge, 1<<40)
	_, metricsPort, _ := freePorts(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", metricsPort)
	seed := Start(t, rpseed, "--private", "--dir", seedDir, "--identity", filepath.Join(dir, "seed.key"),
		"--pub", regiontest.Target+"="+region.EncodePublicKey(key.Public), "--metrics-addr", metrics, "--listen", "/ip4/127.0.0.1/tcp/0")
	_, listened := seed.WaitLine(0, 30*time.Second, `^listening: /`)
	_, found := seed.WaitLine(0, 20*time.Second, `msg="release found" file=app-2\.0\.0`)
	if listened > found {
		t.Errorf("rpseed listened (line %d) only after its first scan ended (line %d)", listened, found)
	}
	seed.WaitLine(0, 0, `level=WARN msg="not serving file" file=huge\.bin reason=".*`+regexp.QuoteMeta(huge)+`: longer than any release can be: 1099511627776 bytes`)
	if h := getRpseedHealth(t, metrics); h.Releases != 1 || len(h.Reasons) != 1 || h.code != http.StatusServiceUnavailable {
		t.Errorf("/healthz %d: %s; want the one release served, unhealthy only for want of a peer", h.code, h.raw)
	}
}
