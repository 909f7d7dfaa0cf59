package client

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
)

// TestDiskFullTmpfs installs the program on a real 2 MiB tmpfs and offers
// a 3 MiB release: the write fails with ENOSPC from the kernel, the failure
// is reported, and the executable and the directory are as before. It needs
// permission to mount (root); elsewhere the injected disk-full case of
// TestRefusals covers the same path.
func TestDiskFullTmpfs(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v); the injected disk-full test covers this", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	r := newRig(t)
	// Move the installed program onto the small file system.
	exe := filepath.Join(mnt, "prog")
	if err := os.WriteFile(exe, r.oldData, 0o755); err != nil {
		t.Fatal(err)
	}
	r.exe = exe
	regiontest.WriteBinary(t, filepath.Join(r.rels, "prog-2.0.0"), 3<<20, 2, r.key, "2.0.0")
	u := r.spawn(r.config())
	e, _ := r.waitEvent(0, EventFailed, nil)
	if !errors.Is(e.Err, syscall.ENOSPC) {
		t.Fatalf("failure = %v, want ENOSPC", e.Err)
	}
	u.Close()
	r.exeUnchanged()
}
