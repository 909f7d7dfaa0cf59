package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) || isTerminal(&bytes.Buffer{}) {
		t.Error("a file or a buffer taken for a terminal")
	}
	if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		defer null.Close()
		if st, _ := null.Stat(); st.Mode()&os.ModeCharDevice != 0 && !isTerminal(null) {
			t.Error("a character device not taken for a terminal")
		}
	}
}

// TestPublishNoProgressInLogs runs rpsign publish with stderr a file, as in
// a CI log: it logs the uploads but draws no progress line (TestPublish
// checks the same with a buffer).
func TestPublishNoProgressInLogs(t *testing.T) {
	t.Parallel()
	srv := ghreleasetest.NewServer(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "app_linux_arm64")
	key := regiontest.VectorKey(t)
	regiontest.WriteBinaryFor(t, bin, 300<<10, 1, key, "1.0.0", "linux/arm64")
	f, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]string{"GITHUB_TOKEN": "tok", "GITHUB_API_URL": srv.URL}
	args := []string{"publish", bin, "--repo", "org/app", "--tag", "v1.0.0", "--target", "linux/arm64", "--pub", region.EncodePublicKey(key.Public)}
	if code := run(args, &bytes.Buffer{}, f, func(k string) string { return vars[k] }); code != 0 {
		b, _ := os.ReadFile(f.Name())
		t.Fatalf("publish exited %d:\n%s", code, b)
	}
	b, _ := os.ReadFile(f.Name())
	if !strings.Contains(string(b), "uploaded release asset") {
		t.Errorf("stderr lacks the upload log:\n%s", b)
	}
	if bytes.ContainsAny(b, "\r\x1b") || bytes.Contains(b, []byte("uploading ")) {
		t.Errorf("progress drawn in a log file:\n%q", b)
	}
}

func TestProgressLine(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	now := time.Unix(0, 0)
	p := newProgressLine(&out)
	p.now = func() time.Time { return now }
	const size = 10 << 20
	p.update("app_linux_amd64", 0, size)
	p.update("app_linux_amd64", 1<<20, size) // within 100 ms: not drawn
	now = now.Add(150 * time.Millisecond)
	p.update("app_linux_amd64", 5<<20, size)
	p.update("app_linux_amd64", size, size) // done: drawn and ended
	p.update("rustpatcher-linux-amd64.json", 300, 300)
	want := "\r\x1b[Kuploading app_linux_amd64  0.0 MiB / 10.0 MiB    0%" +
		"\r\x1b[Kuploading app_linux_amd64  5.0 MiB / 10.0 MiB   50%" +
		"\r\x1b[Kuploading app_linux_amd64  10.0 MiB / 10.0 MiB  100%\n" +
		"\r\x1b[Kuploading rustpatcher-linux-amd64.json  0.0 MiB / 0.0 MiB  100%\n"
	if out.String() != want {
		t.Errorf("progress:\n%q\nwant\n%q", out.String(), want)
	}
}
