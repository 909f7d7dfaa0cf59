//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// seedHealth is what an rpseed's /healthz answers.
type seedHealth struct {
	code int
	healthStatus
	raw string
}

// healthStatus is the JSON body of /healthz (the fields the tests read).
type healthStatus struct {
	Status       string   `json:"status"`
	Reasons      []string `json:"reasons"`
	Peers        int      `json:"peers"`
	Releases     int      `json:"releases"`
	LastAnnounce string   `json:"last_announce"`
}

// getRpseedHealth asks the rpseed whose metrics listen on addr for /healthz.
func getRpseedHealth(t *testing.T, addr string) seedHealth {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	h := seedHealth{code: resp.StatusCode, raw: string(b)}
	if err := json.Unmarshal(b, &h.healthStatus); err != nil {
		t.Fatalf("/healthz: %v\n%s", err, b)
	}
	return h
}

// rpseedListenAddrs waits for n "listening: " lines of p and returns the addresses.
func rpseedListenAddrs(t *testing.T, p *Proc, n int) []string {
	t.Helper()
	var addrs []string
	from := 0
	for len(addrs) < n {
		l, i := p.WaitLine(from, 30*time.Second, `^listening: /`)
		addrs = append(addrs, strings.TrimPrefix(l.Text, "listening: "))
		from = i + 1
	}
	return addrs
}

// TestRpseedHealth runs rpseed as a process on a private loopback network:
// alone and with an empty directory it is unhealthy, and /healthz says why
// (no release, no peer) with status 503. Once it serves a release, its
// failing announcements are logged at WARN with their cause and a hint;
// once a second seed joins through it, it becomes healthy (200), says at
// INFO that announcing works again, and /healthz shows the announcement.
func TestRpseedHealth(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	t.Parallel() // two seeds, waiting on the announcements' backoff
	rpseed := GoBuild(t, rpseedPkg, "")
	dir := t.TempDir()
	seedDir, otherDir := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{seedDir, otherDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	key := regiontest.NewKey(t)
	pub := regiontest.Target + "=" + region.EncodePublicKey(key.Public)
	_, metricsPort, _ := freePorts(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", metricsPort)
	listen := []string{"--listen", "/ip4/127.0.0.1/tcp/0"}

	seed := Start(t, rpseed, append([]string{"--private", "--dir", seedDir, "--pub", pub, "--identity", filepath.Join(dir, "a.key"),
		"--metrics-addr", metrics, "--scan-interval", "200ms"}, listen...)...)
	addrs := rpseedListenAddrs(t, seed, 1)
	seed.WaitLine(0, 30*time.Second, `level=WARN msg="serving no release yet"`)

	h := getRpseedHealth(t, metrics)
	if h.code != http.StatusServiceUnavailable || h.healthStatus.Status != "unhealthy" || len(h.Reasons) != 2 ||
		!strings.Contains(h.Reasons[0], "serves no release") || !strings.Contains(h.Reasons[1], "no connected peer") {
		t.Fatalf("a lone seed with no release: /healthz %d\n%s\nwant 503, unhealthy for no release and no peer", h.code, h.raw)
	}

	// A release arrives as an operator should put it: written elsewhere,
	// renamed in.
	staged := filepath.Join(dir, "app-1.0.0")
	regiontest.WriteBinary(t, staged, 64<<10, 7, key, "1.0.0")
	if err := os.Rename(staged, filepath.Join(seedDir, "app-1.0.0")); err != nil {
		t.Fatal(err)
	}
	seed.WaitLine(0, 30*time.Second, `msg="release found" file=app-1\.0\.0`)
	seed.WaitLine(0, 30*time.Second, `level=WARN msg="announcing releases in the DHT failed; retrying" failures=\d+ err=.+ peers=0 .*hint=".*--bootstrap`)
	h = getRpseedHealth(t, metrics)
	if h.code != http.StatusServiceUnavailable || len(h.Reasons) != 1 || !strings.Contains(h.Reasons[0], "no connected peer") || h.Releases != 1 {
		t.Fatalf("a lone seed with a release: /healthz %d\n%s\nwant 503 for no peer alone", h.code, h.raw)
	}

	other := Start(t, rpseed, append(append([]string{"--private", "--dir", otherDir, "--pub", pub, "--identity", filepath.Join(dir, "b.key")}, listen...),
		"--bootstrap", addrs[0])...)
	rpseedListenAddrs(t, other, 1)
	Eventually(t, 30*time.Second, "the seed becomes healthy once a peer joins", func() bool {
		h = getRpseedHealth(t, metrics)
		return h.code == http.StatusOK
	})
	if h.healthStatus.Status != "ok" || len(h.Reasons) != 0 || h.Peers < 1 || h.Releases != 1 {
		t.Errorf("healthy seed: /healthz %d\n%s", h.code, h.raw)
	}
	// Announcements are retried with backoff (at most 32 s apart).
	seed.WaitLine(0, 90*time.Second, `level=INFO msg="announcing releases in the DHT works again"`)
	if h = getRpseedHealth(t, metrics); h.code != http.StatusOK || h.LastAnnounce == "" {
		t.Errorf("after an announcement succeeded: /healthz %d\n%s", h.code, h.raw)
	}

	for _, p := range []*Proc{seed, other} {
		if err := p.Stop(30 * time.Second); err != nil {
			t.Errorf("rpseed exited with %v after SIGINT", err)
		}
		for _, l := range p.Lines() {
			if strings.Contains(l.Text, "level=ERROR") || strings.HasPrefix(l.Text, "ts=") {
				t.Errorf("rpseed logged %s", l.Text)
			}
		}
	}
}
