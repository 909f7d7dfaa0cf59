//go:build linux

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/testtools"
	"github.com/org/rustpatcher-go/region"
)

// binfmtDir is where the kernel's binfmt_misc file system is mounted.
const binfmtDir = "/proc/sys/fs/binfmt_misc"

// checkBinfmt checks that the kernel runs programs of the binfmt_misc entry
// name (such as qemu-aarch64) through their interpreter, so that a foreign
// program execs itself and its self-test as a native one would. The test
// registers nothing: scripts/test-deps.sh mounts binfmt_misc and enables
// the entry; without it the test skips (or fails under RP_REQUIRE_TOOLS=1).
func checkBinfmt(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(binfmtDir, "status")); err != nil {
		testtools.Missing(t, "binfmt_misc is not mounted at "+binfmtDir)
	}
	if b, err := os.ReadFile(filepath.Join(binfmtDir, name)); err != nil || !bytes.HasPrefix(b, []byte("enabled\n")) {
		testtools.Missing(t, "the binfmt_misc entry "+name+" is not enabled")
	}
}

// cmdline returns the NUL-separated command line of process pid.
func cmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestArm64UpdateQemu runs hello built for linux/arm64 under qemu-user,
// through binfmt_misc as an arm64 machine would run it natively: 1.0.0
// finds 2.0.0 in its --source directory, self-tests it, swaps it in and
// execs it in mode now, keeping its pid and arguments; the executable is
// then byte for byte the released 2.0.0.
func TestArm64UpdateQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("runs hello under qemu-user; skipped with -short")
	}
	if runtime.GOARCH == "arm64" {
		t.Skip("this machine is arm64: the other update tests run the arm64 build natively")
	}
	testtools.Commands(t, testtools.Package{Name: "qemu-user-static", Command: "qemu-aarch64-static"})
	checkBinfmt(t, "qemu-aarch64")
	const target = "linux/arm64"
	key := OwnerKey(t)
	bin := crossHello(t, target, key)
	dir := t.TempDir()
	exe := filepath.Join(dir, "app", "hello")
	rels := filepath.Join(dir, "releases")
	next := filepath.Join(rels, "hello-2.0.0")
	signedCopyAs(t, bin, exe, key, "1.0.0", target, region.V1)
	signedCopyAs(t, bin, next, key, "2.0.0", target, region.V1)

	if out, err := exec.Command(exe, "--version").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "1.0.0" {
		t.Fatalf("hello 1.0.0 for %s does not run through binfmt_misc and qemu: %v: %s", target, err, out)
	}

	start := time.Now()
	p := Start(t, exe, "--mode", "now", "--source", rels, "--interval", "1s", "a", "b")
	p.WaitLine(0, time.Minute, `^hello 1\.0\.0 args=a b$`)
	before := cmdline(t, p.Pid())
	_, i := p.WaitLine(0, 2*time.Minute, `^hello 2\.0\.0 args=a b$`)
	t.Logf("1.0.0 started, updated and restarted as 2.0.0 in %v under qemu-user", time.Since(start).Round(100*time.Millisecond))
	if p.Exited() {
		t.Fatal("the process exited instead of restarting in place")
	}
	if after := cmdline(t, p.Pid()); after != before {
		t.Errorf("pid %d's command line changed across the restart: %q, then %q", p.Pid(), before, after)
	}
	if !strings.Contains(before, "\x00--mode\x00now\x00--source\x00"+rels+"\x00--interval\x001s\x00a\x00b\x00") {
		t.Errorf("pid %d's command line %q lacks hello's arguments", p.Pid(), before)
	}
	if _, _, err := p.FindLine(0, 0, `msg="restarting into the update"`); err != nil {
		t.Errorf("no restart logged before line %d: %v", i, err)
	}
	if !sameBytes(t, exe, next) {
		t.Error("the executable differs from the released 2.0.0")
	}
	if v, err := FileVersion(exe+".old", key.Public); err != nil || v != "1.0.0" {
		t.Errorf("the backup is %q, %v; want the 1.0.0", v, err)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("stopping 2.0.0: %v", err)
	}
}
