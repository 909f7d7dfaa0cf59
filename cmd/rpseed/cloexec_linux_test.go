package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// openFDs returns the process's open file descriptors and what each refers
// to (a socket's inode, a file's path).
func openFDs(t *testing.T) map[int]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	fds := map[int]string{}
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			fds[n], _ = os.Readlink("/proc/self/fd/" + e.Name())
		}
	}
	return fds
}

// TestRunDescriptorsCloseOnExec checks that every descriptor a running
// rpseed holds (listening sockets, the metrics listener, served files) is
// closed by exec, so that a restart into an update (an exec with the same
// arguments) can listen on the same ports again.
func TestRunDescriptorsCloseOnExec(t *testing.T) {
	key := regiontest.NewKey(t)
	pub, ownPub := key.Public, regiontest.NewKey(t).Public
	dir := t.TempDir()
	dropRelease(t, dir, "app-2.0.0", nil, key, "2.0.0")
	before := openFDs(t)
	_, log, stop := startRun(t, []string{"--dir", dir, "--private", "--pub", runtime.GOOS + "/" + runtime.GOARCH + "=" + region.EncodePublicKey(pub),
		"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--metrics-addr", "127.0.0.1:0",
		"--self-update", "onrestart", "--log-level", "info"}, region.EncodePublicKey(ownPub))
	// rpseed listens before its first scan of --dir ends: wait for the
	// release to be served, so that its file is open.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(log.String(), `msg="release found"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rpseed served no release within 20s:\n%s", log)
		}
	}
	checked := 0
	for fd, what := range openFDs(t) {
		if before[fd] == what {
			continue
		}
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		if errno != 0 {
			continue // closed meanwhile (the directory listing itself)
		}
		checked++
		t.Logf("descriptor %d: %s, flags %#x", fd, what, flags)
		if flags&syscall.FD_CLOEXEC == 0 {
			t.Errorf("descriptor %d (%s) survives exec", fd, what)
		}
	}
	if checked < 4 { // at least two listeners, the metrics listener and a served file
		t.Errorf("only %d new descriptors checked; is rpseed running?", checked)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
