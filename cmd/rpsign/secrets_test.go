package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/region"
)

// secretForms returns the spellings of an owner key that must never be
// printed: its z-base-32 text (as key files hold it, in both cases) and its
// seed in hex and base64.
func secretForms(t *testing.T, secret string) []string {
	t.Helper()
	k, err := region.ParseSecretKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	seed := k.Seed()
	return []string{secret, strings.ToUpper(secret), hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed), base64.RawURLEncoding.EncodeToString(seed)}
}

// TestSecretsNeverPrinted runs every rpsign command, in its successful and
// failing ways, with an owner key made by rpsign gen and a GitHub token, and
// greps everything each one writes (stdout, stderr, the Action's outputs and
// step summary) for the key and the token. The one exception is the
// ::add-mask:: line that rpsign action prints for each inside GitHub
// Actions, which is what keeps them out of the rest of the log.
func TestSecretsNeverPrinted(t *testing.T) {
	dir := t.TempDir()
	srv := ghreleasetest.NewServer(t)
	const token = "ghp_secrettokenvalue0123456789"
	keyFile := filepath.Join(dir, "owner.key")

	var stdout, stderr bytes.Buffer
	if code := run([]string{"gen", keyFile}, &stdout, &stderr, os.Getenv); code != 0 {
		t.Fatalf("rpsign gen: %d %s", code, &stderr)
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	secret := string(b)
	forms := append(secretForms(t, secret), token)
	check := func(what, out string, allowMask bool) {
		t.Helper()
		for _, line := range strings.Split(out, "\n") {
			if allowMask && (line == "::add-mask::"+secret || line == "::add-mask::"+token) {
				continue
			}
			for _, f := range forms {
				if strings.Contains(line, f) {
					t.Errorf("%s printed a secret (%.6s…) in %q", what, f, line)
				}
			}
		}
	}
	check("rpsign gen", stdout.String()+stderr.String(), false)
	pub := strings.TrimSpace(runOut(t, []string{"pub", "--key-file", keyFile}, nil))

	vars := map[string]string{"RP_KEY_LINUX_AMD64": secret, "RP_KEY_WINDOWS_ARM64": secret, "MY_KEY": secret, "GITHUB_TOKEN": token, "GITHUB_API_URL": srv.URL}
	signed := copyHello(t, dir, "signed")
	hello := copyHello(t, dir, "hello")
	cmds := [][]string{
		{"pub", "--key-file", keyFile},
		{"pub", "--key-env", "MY_KEY"},
		{"pub", "--key-file", hello}, // not a key file
		{"sign", signed, "--key-file", keyFile, "--version", "2.0.0", "--runtime-key"},
		{"sign", signed, "--key-env", "MY_KEY", "--version", "1.0.0", "--runtime-key"}, // lower: refused
		{"sign", hello, "--key-env", "MY_KEY", "--version", "1.0.0"},                   // key not embedded
		{"sign", hello, "--key-env", "RP_KEY_WINDOWS_ARM64", "--version", "1.0.0"},     // another target's variable
		{"sign", hello, "--key-file", keyFile, "--version", "not-a-version"},
		{"sign", hello, "--key-file", keyFile, "--key-env", "MY_KEY"},
		{"verify", signed, "--pub", pub},
		{"verify", signed, "--pub", secret}, // the secret given as --pub: refused without echoing it
		{"verify", hello, "--pub", pub},
		{"inspect", signed},
		{"inspect", signed, "--json"},
		{"publish", signed, "--repo", "org/app", "--tag", "v2.0.0", "--pub", pub},
		{"publish", signed, "--repo", "org/app", "--tag", "v2.0.0", "--pub", secret},
		{"publish", hello, "--repo", "org/app", "--tag", "v2.0.0", "--pub", pub},
		{"sign", "--help"},
		{"rotate", filepath.Join(dir, "r1.rotation"), "--key-file", keyFile, "--to", "axegnqus3miex47g1kxf1j7j8spczbc57go7jgpeixq8nxjfz7gy", "--target", "linux/amd64"},
		{"rotate", "-", "--key-env", "MY_KEY", "--to", "axegnqus3miex47g1kxf1j7j8spczbc57go7jgpeixq8nxjfz7gy", "--target", "linux/amd64"},
		{"rotate", "-", "--key-env", "MY_KEY", "--to", secret, "--target", "linux/amd64"}, // a secret as --to
		{"inspect", filepath.Join(dir, "r1.rotation")},
		{"rollout", "--key-file", keyFile, "--target", "linux/amd64", "--version", "2.0.0", "--percent", "10", "--out", dir},
		{"rollout", "--key-env", "MY_KEY", "--target", "linux/amd64", "--halt", "--out", dir},
		{"rollout", "--key-env", "RP_KEY_WINDOWS_ARM64", "--target", "linux/amd64", "--refresh", "--out", dir}, // another target's variable
		{"rollout", "--key-file", hello, "--target", "linux/amd64", "--refresh", "--out", dir},                 // not a key file
		{"rollout", "--show", filepath.Join(dir, "linux-amd64.rollout"), "--json"},
	}
	for _, args := range cmds {
		var stdout, stderr bytes.Buffer
		run(args, &stdout, &stderr, func(k string) string { return vars[k] })
		check("rpsign "+strings.Join(args, " "), stdout.String()+stderr.String(), false)
	}

	// The Action, inside GitHub Actions (succeeding, publishing, failing)
	// and outside.
	actionHello := copyHello(t, dir, "action/hello")
	for _, tc := range []struct {
		name   string
		inputs map[string]string
		inside bool
	}{
		{"signs and publishes", map[string]string{"INPUT_FILES": actionHello, "INPUT_VERSION": "1.0.0", "INPUT_RUNTIME-KEY": "true",
			"INPUT_TOKEN": token, "INPUT_API-URL": srv.URL, "INPUT_TAG": "v1.0.0", "GITHUB_REPOSITORY": "org/app"}, true},
		{"signs, publishes and rolls out", map[string]string{"INPUT_FILES": actionHello, "INPUT_VERSION": "1.0.1", "INPUT_RUNTIME-KEY": "true",
			"INPUT_TOKEN": token, "INPUT_API-URL": srv.URL, "INPUT_TAG": "v1.0.1", "GITHUB_REPOSITORY": "org/app", "INPUT_ROLLOUT": "publish", "INPUT_ROLLOUT-PERCENT": "10"}, true},
		{"halts", map[string]string{"INPUT_TARGET": runtime.GOOS + "/" + runtime.GOARCH, "INPUT_TOKEN": token, "INPUT_API-URL": srv.URL,
			"GITHUB_REPOSITORY": "org/app", "INPUT_ROLLOUT": "halt"}, true},
		{"fails on a binary without the key", map[string]string{"INPUT_FILES": actionHello, "INPUT_VERSION": "1.1.0"}, true},
		{"fails on a bad version", map[string]string{"INPUT_FILES": actionHello, "INPUT_VERSION": "one"}, true},
		{"outside Actions", map[string]string{"INPUT_FILES": actionHello, "INPUT_VERSION": "1.2.0", "INPUT_TOKEN": token}, false},
	} {
		r := newActionRun(t, tc.inputs)
		r.vars["INPUT_KEY"] = secret
		if !tc.inside {
			delete(r.vars, "GITHUB_ACTIONS")
		}
		r.run()
		out := r.stdout.String()
		check("rpsign action ("+tc.name+")", out, tc.inside)
		if n := strings.Count(out, "::add-mask::"+secret); tc.inside != (n == 1) {
			t.Errorf("rpsign action (%s): %d ::add-mask:: lines for the key, want %v", tc.name, n, tc.inside)
		}
		for _, f := range []string{r.output, r.summary} {
			b, _ := os.ReadFile(f)
			check("rpsign action ("+tc.name+") in "+filepath.Base(f), string(b), false)
		}
	}
}

// runOut runs rpsign and returns its stdout, failing the test on an error.
func runOut(t *testing.T, args []string, vars map[string]string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr, func(k string) string { return vars[k] }); code != 0 {
		t.Fatalf("rpsign %v: exit %d\n%s", args, code, &stderr)
	}
	return stdout.String()
}
