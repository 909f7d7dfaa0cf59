package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/client"
	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	pub := regiontest.NewKey(t).Public
	k := region.EncodePublicKey(pub)
	env := func(m map[string]string) func(string) string {
		return func(s string) string {
			if v, ok := m[s]; ok {
				return v
			}
			if s == "HOME" {
				return "/home/op"
			}
			return ""
		}
	}
	oldDir := t.TempDir() // holds the identity file of an earlier rpseed
	os.WriteFile(filepath.Join(oldDir, ".rpseed.key"), nil, 0o600)
	base := []string{"--dir", "/d", "--pub", "linux/amd64=" + k}
	here := runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		linked  string // the key linked into the build
		wantErr string
		check   func(*options) bool
	}{
		{name: "flags", args: []string{"--dir", "/d", "--pub", "linux/amd64=" + k, "--private", "--upload-slots", "2"},
			check: func(o *options) bool {
				return o.dir == "/d" && o.private && o.slots == 2 && strings.HasSuffix(o.identity, filepath.Join("rpseed", "identity.key")) && o.identityNote == "" && len(o.listen) == 4
			}},
		{name: "environment", env: map[string]string{"RPSEED_DIR": "/e", "RPSEED_PUB": "linux/amd64=" + k + ",linux/arm64=" + k, "RPSEED_PRIVATE": "true", "RPSEED_METRICS_ADDR": ":9"},
			check: func(o *options) bool { return o.dir == "/e" && len(o.pubs) == 2 && o.private && o.metricsAddr == ":9" }},
		{name: "flag beats environment", args: []string{"--dir", "/f"}, env: map[string]string{"RPSEED_DIR": "/e", "RPSEED_PUB": "linux/amd64=" + k},
			check: func(o *options) bool { return o.dir == "/f" }},
		{name: "no dir", args: []string{"--pub", "linux/amd64=" + k}, wantErr: "--dir"},
		{name: "no key", args: []string{"--dir", "/d"}, wantErr: "--pub"},
		{name: "bad env value", env: map[string]string{"RPSEED_DIR": "/e", "RPSEED_PUB": "x", "RPSEED_UPLOAD_SLOTS": "many"}, wantErr: "RPSEED_UPLOAD_SLOTS"},

		// --identity
		{name: "identity in the systemd state directory", args: base, env: map[string]string{"STATE_DIRECTORY": "/var/lib/rpseed:/var/lib/other"},
			check: func(o *options) bool { return o.identity == filepath.Join("/var/lib/rpseed", "identity.key") }},
		{name: "identity given", args: append(base[:4:4], "--identity", "/etc/rpseed/id"), check: func(o *options) bool { return o.identity == "/etc/rpseed/id" && o.identityNote == "" }},
		{name: "identity inside the served directory", args: append(base[:4:4], "--identity", "/d/id"), check: func(o *options) bool {
			return o.identity == "/d/id" && strings.Contains(o.identityNote, "inside --dir")
		}},
		{name: "identity of an earlier rpseed kept", args: []string{"--dir", oldDir, "--pub", "linux/amd64=" + k}, env: map[string]string{"XDG_CONFIG_HOME": "/cfg"}, check: func(o *options) bool {
			return o.identity == filepath.Join(oldDir, ".rpseed.key") && strings.Contains(o.identityNote, "mv "+filepath.Join(oldDir, ".rpseed.key")+" "+filepath.Join("/cfg", "rpseed", "identity.key"))
		}},
		{name: "no place for the identity", args: base, env: map[string]string{"HOME": ""}, wantErr: "no --identity given, and neither $STATE_DIRECTORY (systemd) nor $XDG_CONFIG_HOME nor $HOME is set: pass --identity FILE"},

		// --pub targets, --log-format, --version
		{name: "unknown target", args: []string{"--dir", "/d", "--pub", "linux/amd65=" + k}, wantErr: "--pub linux/amd65: Go builds no such target; for linux it knows linux/386, linux/amd64, linux/arm"},
		{name: "target spelled in upper case", args: []string{"--dir", "/d", "--pub", "LINUX_ARM64=" + k}, check: func(o *options) bool { return len(o.pubs) == 1 }},
		{name: "json logs", args: append(base[:4:4], "--log-format", "json"), check: func(o *options) bool { return o.logFormat == "json" }},
		{name: "bad log format", args: append(base[:4:4], "--log-format", "xml"), wantErr: `--log-format "xml": want text or json`},
		{name: "version needs nothing else", args: []string{"--version"}, check: func(o *options) bool { return o.showVersion }},
		{name: "unhealthy after", env: map[string]string{"RPSEED_DIR": "/e", "RPSEED_PUB": "linux/amd64=" + k, "RPSEED_UNHEALTHY_AFTER": "3m"},
			check: func(o *options) bool { return o.unhealthyAfter == 3*time.Minute }},

		// --self-update
		{name: "self-update off by default", args: base, check: func(o *options) bool {
			return o.selfUpdate == "off" && !o.self.on && o.selfUpdateEvery == time.Minute
		}},
		{name: "self-update now", args: append(base[:4:4], "--self-update", "now"), linked: k, check: func(o *options) bool {
			return o.self.on && o.self.mode.String() == "now" && o.self.own.pub.Equal(pub) && o.self.own.target == here && o.self.key == k
		}},
		{name: "self-update onrestart", args: append(base[:4:4], "--self-update", "onrestart", "--self-update-interval", "5m"), linked: k, check: func(o *options) bool {
			return o.self.on && o.self.mode.String() == "onrestart" && o.selfUpdateEvery == 5*time.Minute
		}},
		{name: "self-update at", args: append(base[:4:4], "--self-update=at=03:30"), linked: k, check: func(o *options) bool {
			return o.self.on && o.self.mode.String() == "at=03:30"
		}},
		{name: "self-update off needs no key", args: append(base[:4:4], "--self-update", "OFF"), check: func(o *options) bool { return !o.self.on }},
		{name: "self-update from the environment", args: base, env: map[string]string{"RPSEED_SELF_UPDATE": "at=23:59", "RPSEED_SELF_UPDATE_INTERVAL": "10s"}, linked: k,
			check: func(o *options) bool {
				return o.self.on && o.self.mode.String() == "at=23:59" && o.selfUpdateEvery == 10*time.Second
			}},
		{name: "self-update flag beats environment", args: append(base[:4:4], "--self-update", "off"), env: map[string]string{"RPSEED_SELF_UPDATE": "now"},
			check: func(o *options) bool { return !o.self.on }},
		{name: "self-update without a linked key", args: append(base[:4:4], "--self-update", "now"), wantErr: "built without an owner key"},
		{name: "self-update from the environment without a linked key", args: base, env: map[string]string{"RPSEED_SELF_UPDATE": "onrestart"}, wantErr: "--self-update off"},
		{name: "self-update bad mode", args: append(base[:4:4], "--self-update", "sometimes"), linked: k, wantErr: "RPSEED_SELF_UPDATE"},
		{name: "self-update bad time", args: append(base[:4:4], "--self-update", "at=24:00"), linked: k, wantErr: "hour must be 0 to 23"},
		{name: "self-update bad linked key", args: append(base[:4:4], "--self-update", "now"), linked: "abc", wantErr: "linked into this rpseed"},
		{name: "self-update with the published test-vector key", args: append(base[:4:4], "--self-update", "now"), linked: client.TestVectorPublicKey, wantErr: "test-vector key"},
		{name: "self-update bad interval", args: base, env: map[string]string{"RPSEED_SELF_UPDATE_INTERVAL": "soon"}, wantErr: "RPSEED_SELF_UPDATE_INTERVAL"},
	}
	for _, tt := range tests {
		o, err := parseFlags(tt.args, env(tt.env), tt.linked, io.Discard)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want one mentioning %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !tt.check(o) {
			t.Errorf("%s: unexpected options %+v", tt.name, o)
		}
	}
}

// TestSelfUpdateNoLinkedKey checks that the error tells how to build rpseed
// for --self-update, and how to run without it.
func TestSelfUpdateNoLinkedKey(t *testing.T) {
	t.Parallel()
	pub := regiontest.NewKey(t).Public
	args := []string{"--dir", t.TempDir(), "--pub", "linux/amd64=" + region.EncodePublicKey(pub), "--self-update", "now",
		"--listen", "/ip4/127.0.0.1/tcp/0"}
	var stdout strings.Builder
	err := run(context.Background(), args, func(string) string { return "" }, "", &stdout, io.Discard, nil)
	if err == nil {
		t.Fatal("rpseed started with --self-update now and no linked key")
	}
	for _, want := range []string{"--self-update now", "built without an owner key", `-ldflags "-X github.com/org/rustpatcher-go/client.linkedPublicKey=<key>"`, "rpsign sign", "--self-update off"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if stdout.Len() > 0 {
		t.Errorf("rpseed printed %q before failing; it must fail before listening", stdout.String())
	}
}

func TestParseOwners(t *testing.T) {
	t.Parallel()
	pub, pub2 := regiontest.NewKey(t).Public, regiontest.NewKey(t).Public
	k, k2 := region.EncodePublicKey(pub), region.EncodePublicKey(pub2)
	tests := []struct {
		pubs []string
		ok   bool
	}{
		{[]string{"linux/amd64=" + k, "darwin/arm64=" + k}, true},
		{[]string{"linux/amd64=" + k, "linux/amd64=" + k2}, true}, // two apps on one target
		{[]string{"linux=" + k}, false},
		{[]string{"linux/amd64"}, false},
		{[]string{"linux/amd64=abc"}, false},
		{[]string{"linux/amd64=" + k, "linux/amd64=" + k}, false},
		{[]string{"linux/amd64=" + k, "linux/arm64=" + k2, "linux/amd64=" + k}, false},
	}
	for _, tt := range tests {
		owners, err := parseOwners(tt.pubs)
		if (err == nil) != tt.ok {
			t.Errorf("parseOwners(%q): err = %v, want ok=%v", tt.pubs, err, tt.ok)
		}
		if err == nil && len(owners) != len(tt.pubs) {
			t.Errorf("parseOwners(%q) = %v", tt.pubs, owners)
		}
	}
	two, _ := parseOwners([]string{"linux/amd64=" + k, "linux/amd64=" + k2})
	if _, err := githubKeys(two); err == nil || !strings.Contains(err.Error(), "--github") {
		t.Errorf("githubKeys with two keys for linux/amd64: err = %v, want one about --github", err)
	}
	one, _ := parseOwners([]string{"linux/amd64=" + k, "linux/arm64=" + k2})
	if keys, err := githubKeys(one); err != nil || len(keys) != 2 || !keys["linux/arm64"].Equal(pub2) {
		t.Errorf("githubKeys(%v) = %v, %v", one, keys, err)
	}
}

func TestRunServesDirectory(t *testing.T) {
	t.Parallel()
	key, otherKey := regiontest.NewKey(t), regiontest.NewKey(t)
	pub, otherPub := key.Public, otherKey.Public
	dir := t.TempDir()
	dropRelease(t, dir, "app-1.0.0", nil, key, "1.0.0")
	dropRelease(t, dir, "app-2.0.0", nil, key, "2.0.0")
	dropRelease(t, dir, "stranger", nil, otherKey, "9.0.0") // signed by a key rpseed was not given
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a binary"), 0o644)
	identity := filepath.Join(t.TempDir(), "identity.key")

	start := func() (peerID string, addrs []string, metrics string, stop func() error) {
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"--dir", dir, "--private", "--pub", "linux/amd64=" + region.EncodePublicKey(pub), "--identity", identity,
				"--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--listen", "/ip4/127.0.0.1/tcp/0",
				"--metrics-addr", "127.0.0.1:0", "--scan-interval", "100ms", "--log-level", "warn", "--relay"},
				func(string) string { return "" }, "", pw, io.Discard, nil)
			pw.Close()
		}()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "listening: "); ok {
				addrs = append(addrs, a)
				if len(addrs) == 2 {
					break
				}
			}
			if m, ok := strings.CutPrefix(line, "metrics: "); ok {
				metrics = strings.TrimSuffix(m, "/metrics")
			}
		}
		go io.Copy(io.Discard, pr)
		if len(addrs) != 2 {
			cancel()
			t.Fatalf("rpseed printed %d listen addresses: %v", len(addrs), <-done)
		}
		peerID = addrs[0][strings.LastIndex(addrs[0], "/")+1:]
		return peerID, addrs, metrics, func() error {
			cancel()
			select {
			case err := <-done:
				return err
			case <-time.After(20 * time.Second):
				return errors.New("rpseed did not stop within 20s")
			}
		}
	}
	id1, addrs, metrics, stop := start()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := p2p.New(ctx, p2p.Config{Private: true, DHTServer: true, Bootstrap: addrs,
		ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, QUIC: hostquic.New})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	versions := func(pub ed25519.PublicKey) []string {
		rels, err := client.Source(pub, "linux/amd64").Releases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var v []string
		for _, r := range rels {
			v = append(v, r.Info().Version)
		}
		return v
	}
	// rpseed prints its addresses as its node starts; the directory's
	// first scan may end a moment later.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		v := versions(pub)
		if len(v) == 1 && v[0] == "2.0.0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seed offers %v, want [2.0.0]", v)
		}
	}
	if v := versions(otherPub); len(v) != 0 {
		t.Fatalf("seed offers %v for a key it was not given", v)
	}

	// A new file is picked up while running.
	dropRelease(t, dir, "app-3.0.0", nil, key, "3.0.0")
	deadline := time.Now().Add(15 * time.Second)
	for v := versions(pub); len(v) != 1 || v[0] != "3.0.0"; v = versions(pub) {
		if time.Now().After(deadline) {
			t.Fatalf("seed offers %v 15s after 3.0.0 was added", v)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A rollout statement yanking 3.0.0 to 2.0.0 is served, and 3.0.0 no
	// more; the client's report shows in the fleet view.
	if err := client.SetReport(wire.Report{Running: "2.0.0", RolledBackFrom: "3.0.0"}); err != nil {
		t.Fatal(err)
	}
	dropRollout(t, dir, "linux-amd64.rollout", key, "linux/amd64", 1, time.Now(), rollout.Yank{Version: "3.0.0", To: "2.0.0"})
	for sts, _ := client.Source(pub, "linux/amd64").Rollouts(ctx); len(sts) != 1 || sts[0].Sequence != 1; sts, _ = client.Source(pub, "linux/amd64").Rollouts(ctx) {
		if time.Now().After(deadline.Add(15 * time.Second)) {
			t.Fatalf("seed serves statements %v 15s after one was added", sts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for v := versions(pub); len(v) != 1 || v[0] != "2.0.0"; v = versions(pub) {
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("seed offers %v after 3.0.0 was yanked to 2.0.0", v)
		}
		time.Sleep(100 * time.Millisecond)
	}

	resp, err := http.Get(metrics + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var health struct {
		Status   string `json:"status"`
		PeerID   string `json:"peer_id"`
		Releases int    `json:"releases"`
		Rollouts []struct {
			Target   string `json:"target"`
			Sequence uint64 `json:"sequence"`
		} `json:"rollouts"`
		Fleet struct {
			Targets map[string]struct {
				Peers     map[string]int `json:"peers"`
				Rollbacks map[string]int `json:"rollbacks"`
			} `json:"targets"`
		} `json:"fleet"`
	}
	json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if health.Status != "ok" || health.PeerID != id1 || health.Releases != 1 {
		t.Errorf("healthz = %+v", health)
	}
	if len(health.Rollouts) != 1 || health.Rollouts[0].Sequence != 1 || health.Rollouts[0].Target != "linux/amd64" {
		t.Errorf("healthz rollouts = %+v, want the statement of linux/amd64, sequence 1", health.Rollouts)
	}
	if f := health.Fleet.Targets["linux/amd64"]; f.Peers["2.0.0"] != 1 || f.Rollbacks["3.0.0"] != 1 {
		t.Errorf("healthz fleet = %+v, want one peer on 2.0.0 that rolled back from 3.0.0", health.Fleet)
	}
	resp, err = http.Get(metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"rpseed_info_requests_total", "rpseed_have_requests_total 0", "rpseed_watch_requests_total 0", "rpseed_releases_served 1", "rpseed_peers", "libp2p_",
		`rpseed_fleet_peers{target="linux/amd64",version="2.0.0"} 1`, `rpseed_fleet_rollbacks{target="linux/amd64",version="3.0.0"} 1`,
		`rpseed_rollout_sequence{owner="` + region.EncodePublicKey(pub) + `",target="linux/amd64"} 1`, "rpseed_rollout_expiry_timestamp_seconds{"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	if m := regexp.MustCompile(`="[^"]*\.go(-L\d+|:\d+)?"`).Find(body); m != nil {
		t.Errorf("/metrics has a source file path in a label: %s", m)
	}
	if err := stop(); err != nil {
		t.Fatalf("rpseed stopped with %v", err)
	}

	// The identity survives a restart.
	id2, _, _, stop := start()
	if id2 != id1 {
		t.Errorf("peer ID changed across restarts: %s then %s", id1, id2)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
