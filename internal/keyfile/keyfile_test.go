package keyfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestCreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := Create(p, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	b, err := ReadPrivate(p, 100)
	if err != nil || string(b) != "secret" {
		t.Fatalf("ReadPrivate = %q, %v", b, err)
	}
	if st, _ := os.Stat(p); runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode())
	}
	// Never overwrites.
	if err := Create(p, []byte("other")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing file: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "secret" {
		t.Errorf("existing file now holds %q", b)
	}
	// No temporary file is left behind.
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("directory holds %d entries, want the key alone", len(es))
	}
}

func TestCreateNeverFollowsLinks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	t.Parallel()
	dir, elsewhere := t.TempDir(), t.TempDir()
	victim := filepath.Join(elsewhere, "victim")

	// A dangling link at the target: not followed, not replaced.
	p := filepath.Join(dir, "key")
	if err := os.Symlink(victim, p); err != nil {
		t.Fatal(err)
	}
	if err := Create(p, []byte("secret")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create through a dangling link: %v, want fs.ErrExist", err)
	}
	if _, err := os.Lstat(victim); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the link's target was created: %v", err)
	}

	// Links and world-readable files at the old fixed temporary name
	// (FILE.tmp) play no part.
	q := filepath.Join(dir, "id")
	if err := os.Symlink(victim, q+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := Create(q, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(victim); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the FILE.tmp link's target was written: %v", err)
	}
	if st, err := os.Lstat(q); err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want a regular file, mode 0600", q, st.Mode(), err)
	}
}

func TestReadPrivateRefuses(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix modes and links")
	}
	t.Parallel()
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("secret"), 0o644)
	os.Chmod(open, 0o644)
	if _, err := ReadPrivate(open, 100); !errors.Is(err, ErrExposed) || !strings.Contains(err.Error(), "chmod 600 "+open) {
		t.Errorf("ReadPrivate of a 0644 file: %v, want ErrExposed and the chmod to run", err)
	}
	priv := filepath.Join(dir, "priv")
	if err := Create(priv, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(priv, link)
	if _, err := ReadPrivate(link, 100); !errors.Is(err, ErrSymlink) {
		t.Errorf("ReadPrivate of a link: %v, want ErrSymlink", err)
	}
	if _, err := ReadPrivate(priv, 3); err == nil || !strings.Contains(err.Error(), "larger than 3 bytes") {
		t.Errorf("ReadPrivate over the limit: %v", err)
	}
	if _, err := ReadPrivate(dir, 100); err == nil {
		t.Error("ReadPrivate of a directory succeeded")
	}
	if _, err := ReadPrivate(filepath.Join(dir, "none"), 100); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadPrivate of a missing file: %v, want fs.ErrNotExist", err)
	}
	if !Exposed(0o640) || !Exposed(0o604) || Exposed(0o600) || Exposed(0o400) {
		t.Error("Exposed is wrong")
	}
}
