//go:build unix

package e2e

// The release toolchain, end to end, with the real tools: actionlint on the
// workflows (and through `uses: ./` on action.yml), nektos/act running the
// action self-test workflow in host mode, and goreleaser checking both
// configurations and building the example with its signing hook. The tools
// are installed by scripts/test-deps.sh (go install, pinned, into the
// directories internal/testtools looks in); a test without them skips and
// names the script (or fails under RP_REQUIRE_TOOLS=1).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/internal/testtools"
	"github.com/org/rustpatcher-go/region"
)

// repoRoot returns the root of the module (the e2e tests run in e2e/).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: %v", root, err)
	}
	return root
}

// repoCopy copies the repository's files (tracked and untracked, not
// ignored) into a fresh git repository in a temporary directory and commits
// them. Tools that read git (act, goreleaser) then see a clean checkout.
func repoCopy(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, f)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		CopyFile(t, src, filepath.Join(dst, f))
		os.Chmod(filepath.Join(dst, f), st.Mode().Perm())
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Dir = dst
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, b)
		}
	}
	git("init", "-q", "-b", "main")
	git("add", "-A")
	git("commit", "-q", "-m", "e2e copy")
	return dst
}

// toolEnv returns the environment for a tool run: the test's own, without
// signing keys or GitHub variables that could leak in from the caller, with
// colours off (CI=true makes goreleaser colour its log), plus extra.
func toolEnv(extra ...string) []string {
	env := []string{"NO_COLOR=1"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RP_KEY_") || strings.HasPrefix(kv, "GITHUB_") || strings.HasPrefix(kv, "INPUT_") || strings.HasPrefix(kv, "ACTIONS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// ansiEscape matches ANSI terminal escape sequences (colours, styles).
var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]")

// runTool runs name with args in dir within timeout and returns its combined
// output and error.
func runTool(t testing.TB, timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not finish within %v:\n%s", filepath.Base(name), args, timeout, out.String())
	}
	// Terminal styling, should a tool colour its output anyway.
	return ansiEscape.ReplaceAllString(out.String(), ""), err
}

// goEnv returns the Go environment variables that must survive a change of
// HOME or XDG_CACHE_HOME, so that tools keep using the warm caches.
func goEnv(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command(regiontest.GoTool(), "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatal(err)
	}
	v := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(v) != 3 {
		t.Fatalf("go env: %q", out)
	}
	return []string{"GOCACHE=" + v[0], "GOMODCACHE=" + v[1], "GOPATH=" + v[2], "PATH=" + filepath.Dir(regiontest.GoTool()) + string(os.PathListSeparator) + os.Getenv("PATH")}
}

// TestActionlint lints every workflow with actionlint, which also checks
// action.yml through the workflows' `uses: ./` steps. A workflow passing an
// input that action.yml does not define must fail, which shows that
// action.yml is really being checked.
func TestActionlint(t *testing.T) {
	actionlint := testtools.Find(t, testtools.Actionlint())
	root := repoRoot(t)
	workflows, _ := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	var names []string
	for _, w := range workflows {
		names = append(names, filepath.Base(w))
	}
	for _, want := range []string{"action-selftest.yml", "ci.yml", "release.yml"} {
		if !slices.Contains(names, want) {
			t.Errorf(".github/workflows lacks %s (has %v)", want, names)
		}
	}
	out, err := runTool(t, 2*time.Minute, root, toolEnv(), actionlint, "-verbose")
	if err != nil {
		t.Fatalf("actionlint: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Found total 0 errors") {
		t.Errorf("actionlint output lacks its summary:\n%s", out)
	}

	dir := repoCopy(t)
	wf := filepath.Join(dir, ".github", "workflows", "action-selftest.yml")
	b, err := os.ReadFile(wf)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), "          version: 1.2.3\n", "          version: 1.2.3\n          no-such-input: x\n", 1)
	if bad == string(b) {
		t.Fatal("action-selftest.yml no longer passes version: 1.2.3 to the action")
	}
	os.WriteFile(wf, []byte(bad), 0o644)
	out, err = runTool(t, 2*time.Minute, dir, toolEnv(), actionlint)
	if err == nil || !strings.Contains(out, `input "no-such-input" is not defined in action`) {
		t.Errorf("actionlint accepted an input that action.yml does not define: %v\n%s", err, out)
	}
}

// actTargets are the legs of .github/workflows/action-selftest.yml, as
// RP_KEY_/RP_PUB_ suffixes. They all run on ubuntu-latest (the Action
// cross-signs), so act runs every one of them here, in host mode.
func actTargets() []string {
	return []string{"LINUX_AMD64", "LINUX_ARM64", "DARWIN_ARM64", "WINDOWS_AMD64"}
}

// TestActSelftest runs .github/workflows/action-selftest.yml with nektos/act
// in host mode (no Docker): every matrix leg (linux/amd64, linux/arm64,
// darwin/arm64, windows/amd64; all run on ubuntu) builds examples/hello with
// its target's public key from a variables file linked in, signs it with
// `uses: ./` and its own target's key from a secret file (the Action
// refuses a build that does not embed it), checks the action's outputs and
// runs rpsign verify. The test then verifies each leg's binary itself with
// its target's public key (and no other), and checks that no key appears
// in the run's output.
func TestActSelftest(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the act run in -short mode")
	}
	act := testtools.Find(t, testtools.Act())
	dir := repoCopy(t)
	keys := make(map[string]Key) // by target, such as linux/amd64
	var secretText, varText strings.Builder
	for _, name := range actTargets() {
		tg, err := target.Parse(name)
		if err != nil {
			t.Fatal(err)
		}
		k := NewKey(t)
		keys[tg.String()] = k
		fmt.Fprintf(&secretText, "RP_KEY_%s=%s\n", name, k.Secret)
		fmt.Fprintf(&varText, "RP_PUB_%s=%s\n", name, k.Public)
	}
	secrets := filepath.Join(t.TempDir(), "secrets.env")
	if err := os.WriteFile(secrets, []byte(secretText.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := filepath.Join(t.TempDir(), "vars.env")
	if err := os.WriteFile(vars, []byte(varText.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir() // act's host-mode work trees go here (removed after each job)
	env := toolEnv(append(goEnv(t), "XDG_CACHE_HOME="+cache, "CGO_ENABLED=0")...)
	out, err := runTool(t, 15*time.Minute, dir, env, act, actArgs(t, t.TempDir(), "push", "action-selftest.yml",
		"--secret-file", secrets, "--var-file", vars)...)
	t.Logf("act output:\n%s", out)
	if err != nil {
		t.Fatalf("act: %v", err)
	}
	for _, k := range keys {
		if strings.Contains(out, k.Secret) {
			t.Error("a signing key appears in act's output")
		}
	}
	if n, want := strings.Count(out, "Success - Main Check the outputs and verify"), len(keys); n != want {
		t.Errorf("the check step succeeded in %d legs, want %d", n, want)
	}
	// act removes its host-mode work trees after the run, so the binaries
	// are checked through what the run printed: each leg's signed output
	// (the signed region of its binary) must verify with the test's key of
	// that target and no other's, and the workflow's own rpsign verify
	// of the binary must have passed with that same key.
	signed := make(map[string]ghrelease.PatchInfo)
	for _, line := range strings.Split(out, "\n") {
		_, js, ok := strings.Cut(line, "::set-output:: signed=")
		if !ok {
			continue
		}
		var infos []ghrelease.PatchInfo
		if err := json.Unmarshal([]byte(js), &infos); err != nil || len(infos) != 1 {
			t.Fatalf("signed output %q: %v", js, err)
		}
		signed[infos[0].Target] = infos[0]
	}
	for tg, key := range keys {
		pi, ok := signed[tg]
		if !ok {
			t.Errorf("no signed output for %s", tg)
			continue
		}
		pub, err := region.ParsePublicKey(key.Public)
		if err != nil {
			t.Fatal(err)
		}
		if in, err := pi.Verify(pub); err != nil || in.Version != "1.2.3" || in.Target != tg || pi.PublicKey != key.Public {
			t.Errorf("%s: signed %+v does not verify with its own key: %v", tg, pi, err)
		}
		for other, ok := range keys {
			opub, _ := region.ParsePublicKey(ok.Public)
			if _, err := pi.Verify(opub); err == nil && other != tg {
				t.Errorf("%s verifies with the key of %s", tg, other)
			}
		}
		exe := ""
		if strings.HasPrefix(tg, "windows/") {
			exe = ".exe"
		}
		file := "dist/" + strings.ReplaceAll(tg, "/", "_") + "/hello" + exe
		if !strings.Contains(out, file+": OK, version 1.2.3 signed by "+key.Public) {
			t.Errorf("the workflow's rpsign verify of %s did not pass with its own key", file)
		}
	}

	// Without the public keys, the build step stops with a message that
	// names the missing variable. One leg, chosen with act's --matrix, is
	// enough: legs failing at once in parallel sometimes lose act's echo
	// of their error annotation.
	out, err = runTool(t, 15*time.Minute, dir, env, act, actArgs(t, t.TempDir(), "push", "action-selftest.yml",
		"--matrix", "target:WINDOWS_AMD64",
		"--secret-file", secrets, "--var-file", filepath.Join(t.TempDir(), "none.env"))...)
	if err == nil {
		t.Fatalf("act succeeded without the RP_PUB_* variables:\n%s", out)
	}
	if !strings.Contains(out, "set the repository variable RP_PUB_WINDOWS_AMD64 to the public key of RP_KEY_WINDOWS_AMD64") {
		t.Errorf("the failed run does not name the missing variable RP_PUB_WINDOWS_AMD64:\n%s", out)
	}
	if strings.Contains(out, "linux/amd64") {
		t.Errorf("act --matrix target:WINDOWS_AMD64 ran other legs too:\n%s", out)
	}
}

// actArgs returns the arguments of an act run of the workflow file
// .github/workflows/<workflow> for event, followed by extra. Every e2e test
// runs act through it, so that all runs share two things: host mode
// (ubuntu-latest runs on this machine, `-P ubuntu-latest=-self-hosted`),
// and running offline: act fetches every action a step uses from
// github.com, even for a step its `if` skips, so actions/cache@v4 (the
// Action caches its rpsign build) is replaced with the stand-in in
// testdata/actcache (see its README.md), which keeps the cache in store.
func actArgs(t *testing.T, store, event, workflow string, extra ...string) []string {
	t.Helper()
	stub, err := filepath.Abs(filepath.Join("testdata", "actcache"))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{event, "-W", ".github/workflows/" + workflow,
		"-P", "ubuntu-latest=-self-hosted",
		"--local-repository", "actions/cache@v4=" + stub, "--env", "ACT_CACHE_STORE=" + store}
	return append(args, extra...)
}

// TestActCachesRpsign runs one leg of the action self-test with act twice,
// with one cache: the first run builds rpsign and saves it under a key
// that names the action's ref ("local" for uses: ./), the runner's OS and
// architecture; the second run of the same ref restores it and does not
// compile. act runs offline with the stand-in for actions/cache (see
// actArgs).
func TestActCachesRpsign(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the act run in -short mode")
	}
	act := testtools.Find(t, testtools.Act())
	dir := repoCopy(t)
	k := NewKey(t)
	secrets := filepath.Join(t.TempDir(), "secrets.env")
	if err := os.WriteFile(secrets, []byte("RP_KEY_LINUX_AMD64="+k.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := filepath.Join(t.TempDir(), "vars.env")
	if err := os.WriteFile(vars, []byte("RP_PUB_LINUX_AMD64="+k.Public+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	env := toolEnv(append(goEnv(t), "XDG_CACHE_HOME="+t.TempDir(), "CGO_ENABLED=0")...)
	run := func() string {
		t.Helper()
		out, err := runTool(t, 15*time.Minute, dir, env, act, actArgs(t, store, "push", "action-selftest.yml",
			"--matrix", "target:LINUX_AMD64",
			"--secret-file", secrets, "--var-file", vars)...)
		if err != nil || !strings.Contains(out, "Success - Main Check the outputs and verify") {
			t.Fatalf("act: %v\n%s", err, out)
		}
		return out
	}
	first := run()
	key := regexp.MustCompile(`Cache saved with key: (rustpatcher-go-rpsign-local-[A-Za-z]+-[A-Za-z0-9]+-go[0-9.]+-[0-9a-f]{16})`).FindStringSubmatch(first)
	if key == nil || !strings.Contains(first, "building rpsign (not in the cache)") {
		t.Fatalf("the first run did not build rpsign and save it under a key naming ref, OS and arch:\n%s", first)
	}
	ents, err := os.ReadDir(store)
	if err != nil || len(ents) != 1 || ents[0].Name() != key[1] {
		t.Fatalf("cache store holds %v (%v), want only %s", ents, err, key[1])
	}
	second := run()
	if !strings.Contains(second, "Cache restored from key: "+key[1]) || !strings.Contains(second, "rpsign restored from the cache") {
		t.Errorf("the second run did not restore rpsign from the cache:\n%s", second)
	}
	if strings.Contains(second, "building rpsign") || strings.Contains(second, "Cache saved") {
		t.Errorf("the second run of the same ref compiled rpsign or saved it again:\n%s", second)
	}
}

// goreleaserTargets returns the targets examples/hello/.goreleaser.yaml
// builds.
func goreleaserTargets() []string {
	return []string{"linux_amd64", "linux_arm64", "darwin_amd64", "darwin_arm64", "windows_amd64", "windows_arm64"}
}

// TestGoreleaserCheck runs goreleaser check on both configurations.
func TestGoreleaserCheck(t *testing.T) {
	goreleaser := testtools.Find(t, testtools.Goreleaser())
	root := repoRoot(t)
	tests := []struct {
		dir, config string
	}{
		{root, "goreleaser.yaml"},
		{filepath.Join(root, "examples", "hello"), ".goreleaser.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.config, func(t *testing.T) {
			out, err := runTool(t, 2*time.Minute, tt.dir, toolEnv(), goreleaser, "check", "--config", tt.config)
			if err != nil {
				t.Fatalf("goreleaser check %s: %v\n%s", tt.config, err, out)
			}
		})
	}
}

// TestGoreleaserBuildSigns builds examples/hello with its goreleaser
// configuration for every target: each build links in the public key in
// RP_PUB_<OS>_<ARCH> and the post-build hook signs each binary with the key
// in RP_KEY_<OS>_<ARCH>. Each binary must verify with its own
// target's key; no key may appear in goreleaser's output; and the build
// must fail, naming the variable, when a target's key is missing.
func TestGoreleaserBuildSigns(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping goreleaser builds in -short mode")
	}
	goreleaser := testtools.Find(t, testtools.Goreleaser())
	dir := repoCopy(t)
	hello := filepath.Join(dir, "examples", "hello")
	keys := make(map[string]Key)
	var env []string
	for _, tg := range goreleaserTargets() {
		keys[tg] = NewKey(t)
		env = append(env, "RP_KEY_"+strings.ToUpper(tg)+"="+keys[tg].Secret, "RP_PUB_"+strings.ToUpper(tg)+"="+keys[tg].Public)
	}
	out, err := runTool(t, 15*time.Minute, hello, toolEnv(env...), goreleaser, "build", "--snapshot", "--clean")
	if err != nil {
		t.Fatalf("goreleaser build: %v\n%s", err, out)
	}
	for tg, k := range keys {
		if strings.Contains(out, k.Secret) {
			t.Errorf("the key of %s appears in goreleaser's output", tg)
		}
	}
	m := regexp.MustCompile(`building snapshot\.\.\.\s+version=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("goreleaser's output does not say the snapshot version:\n%s", out)
	}
	version := m[1]

	var artifacts []struct {
		Path   string `json:"path"`
		Goos   string `json:"goos"`
		Goarch string `json:"goarch"`
		Type   string `json:"type"`
	}
	b, err := os.ReadFile(filepath.Join(hello, "dist", "artifacts.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &artifacts); err != nil {
		t.Fatalf("dist/artifacts.json: %v", err)
	}
	seen := make(map[string]bool)
	for _, a := range artifacts {
		if a.Type != "Binary" {
			continue
		}
		tg := a.Goos + "_" + a.Goarch
		key, ok := keys[tg]
		if !ok {
			t.Errorf("unexpected binary for %s: %s", tg, a.Path)
			continue
		}
		seen[tg] = true
		path := a.Path
		if !filepath.IsAbs(path) {
			path = filepath.Join(hello, path)
		}
		v, err := FileVersion(path, key.Public)
		if err != nil || v != version {
			t.Errorf("%s: version %q, %v; want %s signed with the %s key", a.Path, v, err, version, tg)
		}
		for other, ok := range keys {
			if other != tg {
				if _, err := FileVersion(path, ok.Public); err == nil {
					t.Errorf("%s verifies with the key of %s", a.Path, other)
				}
			}
		}
	}
	for _, tg := range goreleaserTargets() {
		if !seen[tg] {
			t.Errorf("goreleaser built no binary for %s", tg)
		}
	}

	// Without the key of darwin/arm64, its hook and so the build fail. The
	// partial build selects the target with GGOOS/GGOARCH: GOOS and GOARCH
	// would also reach the before hook that builds rpsign for the host.
	var partial []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "RP_KEY_DARWIN_ARM64=") {
			partial = append(partial, kv)
		}
	}
	partial = append(partial, "GGOOS=darwin", "GGOARCH=arm64")
	out, err = runTool(t, 10*time.Minute, hello, toolEnv(partial...), goreleaser, "build", "--snapshot", "--clean", "--single-target")
	if err == nil {
		t.Fatalf("goreleaser build succeeded without RP_KEY_DARWIN_ARM64:\n%s", out)
	}
	if !strings.Contains(out, "RP_KEY_DARWIN_ARM64 is empty or unset") {
		t.Errorf("goreleaser's failure does not name the missing key variable:\n%s", out)
	}
}

// TestGitHubSeed runs rpseed --github against ghreleasetest, a local server
// speaking the GitHub REST shapes used (GitHub itself cannot be reached from
// tests), in a private loopback network: the fake repository has a release
// 2.0.0 of hello for this machine's target, published with rpsign's
// publisher, a newer 2.1.0 signed with a foreign key and a 2.2.0 whose
// binary was changed after signing. rpseed must download and serve 2.0.0
// only, and a hello 1.0.0 node must end at 2.0.0.
func TestGitHubSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	key := NewKey(t)
	foreign := NewKey(t)
	bin := BuildHello(t, key.Public)
	rpseed := GoBuild(t, "github.com/org/rustpatcher-go/cmd/rpseed", "")
	host := target.Current()
	dir := t.TempDir()

	srv := ghreleasetest.NewServer(t)
	gc, err := ghrelease.NewClient(ghrelease.ClientConfig{APIURL: srv.URL, Token: "test"})
	if err != nil {
		t.Fatal(err)
	}
	pub := &ghrelease.Publisher{Client: gc, Repo: ghrelease.Repo{Owner: "org", Name: "hello"}}
	release := func(version string, k Key) string {
		t.Helper()
		path := filepath.Join(dir, "release-"+version, "hello_"+host.OS+"_"+host.Arch)
		in := SignedCopy(t, bin, path, k, version)
		_, err := pub.Publish(context.Background(), "v"+version, []ghrelease.Signed{{
			Path: path, Target: host, Info: in, PublicKey: k.Private.Public().(ed25519.PublicKey),
		}})
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	want := release("2.0.0", key)
	release("2.1.0", foreign)
	// 2.2.0 has a good manifest, but its binary was changed after signing.
	tampered, err := os.ReadFile(release("2.2.0", key))
	if err != nil {
		t.Fatal(err)
	}
	tampered[len(tampered)-1] ^= 0xff
	srv.AddAsset("org/hello", "v2.2.0", "hello_"+host.OS+"_"+host.Arch, tampered)

	seedDir := filepath.Join(dir, "seed")
	os.MkdirAll(seedDir, 0o755)
	seed := Start(t, rpseed, append([]string{"--dir", seedDir, "--private", "--pub", host.String() + "=" + key.Public,
		"--identity", filepath.Join(t.TempDir(), "seed.key"),
		"--github", "org/hello", "--github-api-url", srv.URL, "--github-interval", "1s",
		"--scan-interval", "1s", "--log-level", "debug"}, seedLoopback()...)...)
	seedAddrs := listenAddrs(t, seed, 0, 2)
	seed.WaitLine(0, p2pTimeout, `release manifest rejected.*tag=v2\.1\.0.*signature does not verify`)
	seed.WaitLine(0, p2pTimeout, `release binary rejected, not serving it.*tag=v2\.2\.0.*contents do not match`)
	seed.WaitLine(0, p2pTimeout, `verified release binary.*version=2\.0\.0`)

	exe := filepath.Join(dir, "node", "hello")
	SignedCopy(t, bin, exe, key, "1.0.0")
	node := Start(t, exe, append(append([]string{"--private", "--dht-server", "--interval", "2s"}, loopback()...), bootstrapArgs(seedAddrs)...)...)
	node.WaitLine(0, 30*time.Second, `^hello 1\.0\.0`)
	node.WaitLine(0, p2pTimeout, `^hello 2\.0\.0`)
	if v, err := FileVersion(exe, key.Public); err != nil || v != "2.0.0" {
		t.Errorf("node executable is %q, %v; want a verified 2.0.0", v, err)
	}
	if !sameBytes(t, exe, want) {
		t.Error("node executable differs from the released 2.0.0")
	}
	ents, _ := os.ReadDir(seedDir)
	for _, e := range ents {
		if e.Name() != host.OS+"-"+host.Arch+"-2.0.0" && !strings.HasPrefix(e.Name(), ".") {
			t.Errorf("the seed's directory holds %s, want only the verified 2.0.0", e.Name())
		}
	}
}

// updateOverSeed installs old (a signed hello 1.0.0) as a node's
// executable, serves next (a signed hello 2.0.0) from an rpseed on a
// private loopback network, and checks that the node updates itself to
// exactly next and restarts into it.
func updateOverSeed(t *testing.T, key Key, old, next string) {
	t.Helper()
	rpseed := GoBuild(t, rpseedPkg, "")
	host := target.Current()
	dir := t.TempDir()
	seedDir := filepath.Join(dir, "seed")
	CopyFile(t, next, filepath.Join(seedDir, "hello-2.0.0"))
	seed := Start(t, rpseed, append([]string{"--dir", seedDir, "--private", "--pub", host.String() + "=" + key.Public,
		"--identity", filepath.Join(t.TempDir(), "seed.key"), "--scan-interval", "1s"}, seedLoopback()...)...)
	seed.WaitLine(0, 30*time.Second, `release found.*version=2\.0\.0`)
	seedAddrs := listenAddrs(t, seed, 0, 2)

	exe := filepath.Join(dir, "node", "hello")
	CopyFile(t, old, exe)
	node := Start(t, exe, append(append([]string{"--private", "--dht-server", "--interval", "2s"}, loopback()...), append(bootstrapArgs(seedAddrs), "arg")...)...)
	node.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=arg$`)
	node.WaitLine(0, p2pTimeout, `^hello 2\.0\.0 args=arg$`)
	if v, err := FileVersion(exe, key.Public); err != nil || v != "2.0.0" {
		t.Errorf("node executable is %q, %v; want a verified 2.0.0", v, err)
	}
	if !sameBytes(t, exe, next) {
		t.Error("node executable differs from the released 2.0.0")
	}
}

// TestGoreleaserUpdates builds hello 1.0.0 and 2.0.0 for this machine's
// target through goreleaser with examples/hello/.goreleaser.yaml, as a
// release engineer would on two tags: the build links in the target's
// public key from RP_PUB_<OS>_<ARCH> and the post-build hook signs with
// RP_KEY_<OS>_<ARCH>. The goreleaser-built 1.0.0 must then update itself to
// the goreleaser-built 2.0.0 served by rpseed. A build without the public
// key must fail in the hook, naming the key.
func TestGoreleaserUpdates(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping goreleaser builds in -short mode")
	}
	goreleaser := testtools.Find(t, testtools.Goreleaser())
	dir := repoCopy(t)
	hello := filepath.Join(dir, "examples", "hello")
	host := target.Current()
	key := NewKey(t)
	name := strings.ToUpper(host.OS + "_" + host.Arch)
	env := toolEnv("RP_KEY_"+name+"="+key.Secret, "RP_PUB_"+name+"="+key.Public, "GGOOS="+host.OS, "GGOARCH="+host.Arch)
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, b)
		}
	}
	// goreleaser reads the remote's URL, never contacts it.
	git("remote", "add", "origin", "https://github.com/org/hello.git")
	out := t.TempDir()
	release := func(version string) string {
		t.Helper()
		git("tag", "v"+version)
		log, err := runTool(t, 10*time.Minute, hello, env, goreleaser, "build", "--clean", "--single-target")
		if err != nil {
			t.Fatalf("goreleaser build of v%s: %v\n%s", version, err, log)
		}
		if !strings.Contains(log, "for public key "+key.Public) {
			t.Errorf("the signing hook did not report the public key:\n%s", log)
		}
		if strings.Contains(log, key.Secret) {
			t.Error("the owner key appears in goreleaser's output")
		}
		bins, _ := filepath.Glob(filepath.Join(hello, "dist", "hello_"+host.OS+"_"+host.Arch+"*", "hello"))
		if len(bins) != 1 {
			t.Fatalf("goreleaser built %v, want one hello for %s", bins, host)
		}
		p := filepath.Join(out, "hello-"+version)
		CopyFile(t, bins[0], p)
		if v, err := FileVersion(p, key.Public); err != nil || v != version {
			t.Fatalf("goreleaser's hello: version %q, %v; want %s", v, err, version)
		}
		return p
	}
	old := release("1.0.0")
	git("commit", "-q", "--allow-empty", "-m", "next release")
	next := release("2.0.0")
	updateOverSeed(t, key, old, next)

	// Without the public key, the hook refuses to sign the keyless build.
	git("commit", "-q", "--allow-empty", "-m", "release without the public key")
	git("tag", "v3.0.0")
	var noPub []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "RP_PUB_") {
			noPub = append(noPub, kv)
		}
	}
	log, err := runTool(t, 10*time.Minute, hello, noPub, goreleaser, "build", "--clean", "--single-target")
	if err == nil {
		t.Fatalf("goreleaser built a release without RP_PUB_%s:\n%s", name, log)
	}
	if !strings.Contains(log, "does not embed the signing key's public key "+key.Public) {
		t.Errorf("the failure does not name the missing public key:\n%s", log)
	}
}

// TestActionEntrypointUpdates signs hello builds through the GitHub
// Action's entrypoint, rpsign action, run as a process with the INPUT_*
// variables and files that action.yml gives it (GitHub itself cannot run
// here; TestActSelftest runs the whole Action under act). The builds link
// in the public key as the documented matrix workflow does. The signed
// 1.0.0 must update itself to the signed 2.0.0 over rpseed.
func TestActionEntrypointUpdates(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	key := NewKey(t)
	bin := GoBuildWith(t, Build{
		Pkg:     helloPkg,
		LDFlags: "-s -w -X github.com/org/rustpatcher-go/client.linkedPublicKey=" + key.Public,
		Flags:   []string{"-trimpath"},
		Env:     []string{"CGO_ENABLED=0"},
	})
	rpsign := GoBuild(t, "github.com/org/rustpatcher-go/cmd/rpsign", "")
	host := target.Current()
	sign := func(version string) string {
		t.Helper()
		dir := t.TempDir()
		f := filepath.Join(dir, "dist", "hello_"+host.OS+"_"+host.Arch)
		CopyFile(t, bin, f)
		output := filepath.Join(dir, "output")
		os.WriteFile(output, nil, 0o644)
		out, err := runTool(t, 2*time.Minute, dir, toolEnv(
			"GITHUB_ACTIONS=true", "GITHUB_OUTPUT="+output, "GITHUB_STEP_SUMMARY="+filepath.Join(dir, "summary"),
			"GITHUB_REF=refs/tags/v"+version, "INPUT_KEY="+key.Secret, "INPUT_FILES=dist/hello_*"), rpsign, "action")
		if err != nil {
			t.Fatalf("rpsign action: %v\n%s", err, out)
		}
		if strings.Count(out, key.Secret) > 1 {
			t.Errorf("the key appears unmasked in the action's output:\n%s", out)
		}
		b, _ := os.ReadFile(output)
		if !strings.Contains(string(b), key.Public) {
			t.Errorf("the outputs do not carry the public key %s:\n%s", key.Public, b)
		}
		if s, _ := os.ReadFile(filepath.Join(dir, "summary")); !strings.Contains(string(s), key.Public) {
			t.Errorf("the step summary does not show the public key:\n%s", s)
		}
		return f
	}
	updateOverSeed(t, key, sign("1.0.0"), sign("2.0.0"))
}
