package p2phost

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestLoadIdentity(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "identity.key")
	k1, err := LoadIdentity(p)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadIdentity(p)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Error("the identity changed when read again")
	}
	if runtime.GOOS == "windows" {
		return
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode %v, want 0600", st.Mode())
	}
	if st, _ := os.Stat(filepath.Dir(p)); st.Mode().Perm() != 0o700 {
		t.Errorf("identity directory mode %v, want 0700", st.Mode())
	}
}

// TestLoadIdentityHostileFiles checks that a link or a world-readable file
// left at FILE.tmp (the old fixed temporary name) is not followed or used,
// and that an identity file that is a link or readable by others is refused
// with a message that says what to do.
func TestLoadIdentityHostileFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix modes and links")
	}
	t.Parallel()
	dir, elsewhere := t.TempDir(), t.TempDir()
	victim := filepath.Join(elsewhere, "victim")
	p := filepath.Join(dir, "identity.key")
	if err := os.Symlink(victim, p+".tmp"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(victim); err == nil {
		t.Error("LoadIdentity wrote through the link at FILE.tmp")
	}
	if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v, %v", st.Mode(), err)
	}

	os.Chmod(p, 0o644)
	if _, err := LoadIdentity(p); err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Errorf("LoadIdentity of a 0644 file: %v, want a refusal saying chmod 600", err)
	}
	os.Chmod(p, 0o600)

	link := filepath.Join(dir, "link.key")
	os.Symlink(p, link)
	if _, err := LoadIdentity(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("LoadIdentity of a link: %v, want a refusal", err)
	}
	dangling := filepath.Join(dir, "dangling.key")
	os.Symlink(victim, dangling)
	if _, err := LoadIdentity(dangling); err == nil {
		t.Error("LoadIdentity created a key through a dangling link")
	}
	if _, err := os.Lstat(victim); err == nil {
		t.Error("LoadIdentity wrote through a dangling link")
	}

	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := LoadIdentity(bad); err == nil || !strings.Contains(err.Error(), "new peer ID") {
		t.Errorf("LoadIdentity of garbage: %v", err)
	}
}
