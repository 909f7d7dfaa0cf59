//go:build unix

package e2e

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/internal/testtools"
)

// TestRolloutWorkflows runs the rollout workflows that docs/RELEASING.md
// ships (docs/workflows) with the real tools: actionlint checks them, with
// the Action of this checkout (`uses: ./`) in place of
// org/rustpatcher-go@v1 so that their inputs are checked against
// action.yml; nektos/act runs them in host mode against ghreleasetest, a
// local server speaking GitHub's REST shapes (GitHub cannot be reached from
// tests): rollout-control halts a published 25% rollout, rollout-refresh
// re-signs it, rollout-control yanks 2.0.0 to 1.0.1. An rpseed following the
// fake's releases (--github) then serves the last statement, which a node
// on its private loopback network receives.
func TestRolloutWorkflows(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the act runs in -short mode")
	}
	actionlint := testtools.Find(t, testtools.Actionlint())
	act := testtools.Find(t, testtools.Act())
	srv := ghreleasetest.NewServer(t)
	dir := repoCopy(t)
	host := target.Current()
	leg := strings.ToUpper(host.OS + "_" + host.Arch)
	key := NewKey(t)
	pub := key.Private.Public().(ed25519.PublicKey)

	for _, name := range []string{"rollout-control.yml", "rollout-refresh.yml"} {
		b, err := os.ReadFile(filepath.Join(dir, "docs", "workflows", name))
		if err != nil {
			t.Fatal(err)
		}
		wf := string(b)
		for _, r := range []struct{ old, new string }{
			{"    steps:\n", "    steps:\n      - uses: actions/checkout@v4\n"},
			{"        uses: org/rustpatcher-go@v1\n        with:\n", "        uses: ./\n        with:\n          api-url: " + srv.URL + "\n          repository: org/app\n"},
		} {
			if !strings.Contains(wf, r.old) {
				t.Fatalf("docs/workflows/%s lacks %q", name, r.old)
			}
			wf = strings.Replace(wf, r.old, r.new, 1)
		}
		if !strings.Contains(wf, leg) {
			t.Fatalf("docs/workflows/%s has no leg for this machine's target %s", name, leg)
		}
		if err := os.WriteFile(filepath.Join(dir, ".github", "workflows", name), []byte(wf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runTool(t, 2*time.Minute, dir, toolEnv(), actionlint, "-verbose"); err != nil || !strings.Contains(out, "Found total 0 errors") {
		t.Fatalf("actionlint on the rollout workflows: %v\n%s", err, out)
	}

	// Release 2.0.0, published with a 25% rollout.
	gc, err := ghrelease.NewClient(ghrelease.ClientConfig{APIURL: srv.URL, Token: "test"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	first := rollout.Statement{Target: host.String(), Sequence: 1, Issued: now, Expires: now.Add(7 * 24 * time.Hour),
		Channels: []rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 25}}}
	if err := first.Sign(key.Private); err != nil {
		t.Fatal(err)
	}
	text, _ := first.MarshalText()
	stmtFile := filepath.Join(t.TempDir(), "first.rollout")
	os.WriteFile(stmtFile, text, 0o644)
	if err := (&ghrelease.Publisher{Client: gc, Repo: ghrelease.Repo{Owner: "org", Name: "app"}}).PublishRollouts(context.Background(), "v2.0.0", []string{stmtFile}); err != nil {
		t.Fatal(err)
	}
	onRelease := func() rollout.Statement {
		t.Helper()
		st, err := rollout.Parse(srv.Assets("org/app", "v2.0.0")[rollout.FileName(host.String())])
		if err != nil || st.Verify() != nil || !st.Key.Equal(pub) {
			t.Fatalf("the statement on the release: %v", err)
		}
		return st
	}

	secrets := filepath.Join(t.TempDir(), "secrets.env")
	os.WriteFile(secrets, []byte("RP_KEY_"+leg+"="+key.Secret+"\nGITHUB_TOKEN=test-token\n"), 0o600)
	env := toolEnv(append(goEnv(t), "XDG_CACHE_HOME="+t.TempDir(), "CGO_ENABLED=0")...)
	actRun := func(event, workflow string, args ...string) {
		t.Helper()
		out, err := runTool(t, 15*time.Minute, dir, env, act, actArgs(t, t.TempDir(), event, workflow,
			append([]string{"--secret-file", secrets}, args...)...)...)
		if err != nil {
			t.Fatalf("act %s %s: %v\n%s", event, workflow, err, out)
		}
		if strings.Contains(out, key.Secret) {
			t.Errorf("act %s %s printed the signing key", event, workflow)
		}
		if !strings.Contains(out, "attached the rollout statement of "+host.String()) {
			t.Errorf("act %s %s: the Action did not attach a statement:\n%s", event, workflow, out)
		}
	}

	actRun("workflow_dispatch", "rollout-control.yml", "--input", "action=halt", "--input", "target="+leg)
	st := onRelease()
	if c, _ := st.Channel("stable"); st.Sequence != 2 || !c.Halted || c.Percent != 25 {
		t.Errorf("after the halt: %+v", st)
	}
	actRun("schedule", "rollout-refresh.yml", "--matrix", "target:"+leg)
	st = onRelease()
	if c, _ := st.Channel("stable"); st.Sequence != 3 || !c.Halted || !st.Issued.After(first.Issued.Add(-time.Second)) {
		t.Errorf("after the refresh: %+v", st)
	}
	actRun("workflow_dispatch", "rollout-control.yml", "--input", "action=yank", "--input", "target="+leg,
		"--input", "yank=2.0.0", "--input", "to=1.0.1")
	last := onRelease()
	if last.Sequence != 4 || !last.Yanked("2.0.0") {
		t.Fatalf("after the yank: %+v", last)
	}

	// rpseed --github serves it; a node receives it.
	rpseed := GoBuild(t, rpseedPkg, "")
	seedDir := t.TempDir()
	seed := Start(t, rpseed, append([]string{"--dir", seedDir, "--private", "--pub", host.String() + "=" + key.Public,
		"--identity", filepath.Join(t.TempDir(), "seed.key"),
		"--github", "org/app", "--github-api-url", srv.URL, "--github-interval", "1s",
		"--scan-interval", "1s"}, seedLoopback()...)...)
	seedAddrs := listenAddrs(t, seed, 0, 2)
	seed.WaitLine(0, p2pTimeout, `serving rollout statement.*sequence=4`)
	ctx, cancel := context.WithTimeout(context.Background(), p2pTimeout)
	defer cancel()
	node, err := p2p.New(ctx, p2p.Config{Private: true, Bootstrap: seedAddrs, ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, QUIC: hostquic.New})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	var got []rollout.Statement
	Eventually(t, p2pTimeout, "the node receives the statement from rpseed", func() bool {
		got, _ = node.Source(pub, host.String()).Rollouts(ctx)
		return len(got) == 1
	})
	if !got[0].Equal(last) {
		t.Errorf("the node received sequence %d, want the statement the workflows left (sequence 4)", got[0].Sequence)
	}
}
