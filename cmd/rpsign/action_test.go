package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// copyHello copies the test build of examples/hello, which links in the
// public key of testKey, to dir/name.
func copyHello(t *testing.T, dir, name string) string {
	t.Helper()
	hello, _ := buildHello(t)
	b, err := os.ReadFile(hello)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// testKey returns the key whose public key copyHello's binaries embed:
// the test vector of docs/FORMAT.md.
func testKey(t *testing.T) (string, ed25519.PublicKey) {
	t.Helper()
	const seed = "5wrjzq7h54t61sr8izgqdkrjx9tcqey5n6apff5ju5yadoobuj3o"
	k, err := region.ParseSecretKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	return seed, k.Public().(ed25519.PublicKey)
}

// randomKey returns a fresh key, which no test binary embeds.
func randomKey(t *testing.T) (string, ed25519.PublicKey) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return region.EncodeSecretKey(key), pub
}

// actionRun is one run of rpsign action with its environment and results.
type actionRun struct {
	vars            map[string]string
	stdout          bytes.Buffer
	output, summary string // paths of GITHUB_OUTPUT and GITHUB_STEP_SUMMARY
}

func newActionRun(t *testing.T, vars map[string]string) *actionRun {
	dir := t.TempDir()
	r := &actionRun{vars: map[string]string{}, output: filepath.Join(dir, "output"), summary: filepath.Join(dir, "summary")}
	r.vars["GITHUB_ACTIONS"] = "true"
	r.vars["GITHUB_OUTPUT"] = r.output
	r.vars["GITHUB_STEP_SUMMARY"] = r.summary
	for k, v := range vars {
		r.vars[k] = v
	}
	return r
}

func (r *actionRun) run() error {
	var stderr bytes.Buffer
	return runAction(&env{stdout: &r.stdout, stderr: &stderr, getenv: func(k string) string { return r.vars[k] }}, nil)
}

// outputs parses the GITHUB_OUTPUT file (name<<DELIM lines).
func (r *actionRun) outputs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(r.output)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		name, delim, ok := strings.Cut(lines[i], "<<")
		if !ok {
			continue
		}
		var val []string
		for i++; i < len(lines) && lines[i] != delim; i++ {
			val = append(val, lines[i])
		}
		out[name] = strings.Join(val, "\n")
	}
	return out
}

func TestActionSigns(t *testing.T) {
	key, pub := testKey(t)
	dir := t.TempDir()
	a := copyHello(t, dir, "dist/hello_a")
	b := copyHello(t, dir, "dist/hello_b")
	tests := []struct {
		name        string
		vars        map[string]string
		wantVersion string
		wantTarget  string
	}{
		{"version from tag, target detected", map[string]string{
			"INPUT_FILES": filepath.Join(dir, "dist/hello_*"),
			"GITHUB_REF":  "refs/tags/v1.2.3",
		}, "1.2.3", runtime.GOOS + "/" + runtime.GOARCH},
		{"version and target inputs win", map[string]string{
			"INPUT_FILES":   a + "\n" + b + "\n" + a,
			"INPUT_VERSION": "v2.0.0-rc.1",
			"INPUT_TARGET":  strings.ToUpper(runtime.GOOS + "_" + runtime.GOARCH),
			"GITHUB_REF":    "refs/tags/v1.2.3",
		}, "2.0.0-rc.1", runtime.GOOS + "/" + runtime.GOARCH},
		{"v0 format", map[string]string{
			"INPUT_FILES":   a + "\n" + b,
			"INPUT_VERSION": "3.1.0",
			"INPUT_FORMAT":  "v0",
		}, "3.1.0", runtime.GOOS + "/" + runtime.GOARCH},
		{"space separated files", map[string]string{
			"INPUT_FILES":   a + " " + b,
			"INPUT_VERSION": "3.0.0",
			"GITHUB_REF":    "refs/heads/main",
		}, "3.0.0", runtime.GOOS + "/" + runtime.GOARCH},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.vars["INPUT_KEY"] = key + "\n"
			r := newActionRun(t, tt.vars)
			if err := r.run(); err != nil {
				t.Fatalf("action: %v\n%s", err, &r.stdout)
			}
			for _, f := range []string{a, b} {
				in, err := region.VerifyFile(context.Background(), f, pub)
				if err != nil || in.Version != tt.wantVersion {
					t.Errorf("VerifyFile(%s) = %v, %v; want version %s", f, in.Version, err, tt.wantVersion)
				}
			}
			out := r.outputs(t)
			if got := strings.Split(out["files"], "\n"); len(got) != 2 || got[0] != a || got[1] != b {
				t.Errorf("files output = %q, want %s and %s once each", out["files"], a, b)
			}
			if out["public-key"] != region.EncodePublicKey(pub) || out["version"] != tt.wantVersion {
				t.Errorf("outputs = %v", out)
			}
			var infos []ghrelease.PatchInfo
			if err := json.Unmarshal([]byte(out["signed"]), &infos); err != nil {
				t.Fatalf("signed output %q: %v", out["signed"], err)
			}
			if len(infos) != 2 {
				t.Fatalf("signed output has %d entries, want 2", len(infos))
			}
			for i, pi := range infos {
				if pi.File != []string{a, b}[i] || pi.Target != tt.wantTarget || pi.Version != tt.wantVersion || len(pi.Hash) != 64 || pi.PublicKey != out["public-key"] {
					t.Errorf("signed[%d] = %+v", i, pi)
				}
				if _, err := pi.Verify(pub); err != nil {
					t.Errorf("signed[%d]: %v", i, err)
				}
			}
			sum, err := os.ReadFile(r.summary)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(sum), "| File | Target | Version |") || !strings.Contains(string(sum), "`"+a+"` | "+tt.wantTarget+" | "+tt.wantVersion) {
				t.Errorf("step summary lacks the table row:\n%s", sum)
			}
			// The key is masked before anything else is printed, and
			// appears nowhere else.
			stdout := r.stdout.String()
			if !strings.HasPrefix(stdout, "::add-mask::"+key+"\n") {
				t.Errorf("stdout does not start by masking the key:\n%s", stdout)
			}
			rest := strings.TrimPrefix(stdout, "::add-mask::"+key+"\n")
			for name, s := range map[string]string{"stdout": rest, "outputs": out["signed"] + out["files"], "summary": string(sum)} {
				if strings.Contains(s, key) {
					t.Errorf("the key appears in %s", name)
				}
			}
		})
	}
}

func TestActionErrors(t *testing.T) {
	key, _ := testKey(t)
	other, otherPub := randomKey(t)
	dir := t.TempDir()
	hello := copyHello(t, dir, "hello")
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("not a binary\n"), 0o644)
	tests := []struct {
		name       string
		vars       map[string]string
		noOutput   bool
		annotation string // the ::error line wanted on stdout
	}{
		{"no key", map[string]string{"INPUT_FILES": hello, "INPUT_VERSION": "1.0.0"}, false,
			`::error title=rpsign::input "key" is empty`},
		{"bad key", map[string]string{"INPUT_KEY": "nope", "INPUT_FILES": hello, "INPUT_VERSION": "1.0.0"}, false,
			`::error title=rpsign::input "key": malformed key`},
		{"no files", map[string]string{"INPUT_KEY": key, "INPUT_VERSION": "1.0.0"}, false,
			`::error title=rpsign::input "files" is empty`},
		{"glob matches nothing", map[string]string{"INPUT_KEY": key, "INPUT_FILES": filepath.Join(dir, "dist/*"), "INPUT_VERSION": "1.0.0"}, false,
			"::error file=" + filepath.Join(dir, "dist/*") + ",title=rpsign::"},
		{"not a binary", map[string]string{"INPUT_KEY": key, "INPUT_FILES": text, "INPUT_VERSION": "1.0.0", "INPUT_TARGET": "linux/amd64"}, false,
			"::error file=" + text + ",title=rpsign::signing: " + text + ": no signed region found"},
		{"not a program", map[string]string{"INPUT_KEY": key, "INPUT_FILES": text, "INPUT_VERSION": "1.0.0"}, false,
			"::error file=" + text + ",title=rpsign::" + text + ": no signed region found"},
		{"target input disagrees with the header", map[string]string{"INPUT_KEY": key, "INPUT_FILES": hello, "INPUT_VERSION": "1.0.0", "INPUT_TARGET": "plan9/mips"}, false,
			"::error file=" + hello + ",title=rpsign::the \"target\" input is plan9/mips, but " + hello + " is a " + runtime.GOOS + "/" + runtime.GOARCH + " binary"},
		{"bad format", map[string]string{"INPUT_KEY": key, "INPUT_FILES": hello, "INPUT_VERSION": "1.0.0", "INPUT_FORMAT": "v9"}, false,
			`::error title=rpsign::input "format"`},
		{"bad version", map[string]string{"INPUT_KEY": key, "INPUT_FILES": hello, "INPUT_VERSION": "1.0"}, false,
			`::error title=rpsign::input "version": not a semantic version`},
		{"no version anywhere", map[string]string{"INPUT_KEY": key, "INPUT_FILES": hello, "GITHUB_REF": "refs/heads/main"}, false,
			"::error file=" + hello + ",title=rpsign::no \"version\" input and not run on a tag"},
		{"tag not a version", map[string]string{"INPUT_KEY": key, "INPUT_FILES": hello, "GITHUB_REF": "refs/tags/nightly"}, false,
			`::error title=rpsign::no "version" input, and tag "nightly" is not a version`},
		{"token without tag", map[string]string{"INPUT_KEY": key, "INPUT_FILES": hello, "INPUT_VERSION": "1.0.0", "INPUT_TOKEN": "tok", "GITHUB_REF": "refs/heads/main"}, false,
			`::error title=rpsign::input "token" is set but there is no release tag`},
		{"binary without the key's public key", map[string]string{"INPUT_KEY": other, "INPUT_FILES": hello, "INPUT_VERSION": "1.0.0"}, false,
			"::error file=" + hello + ",title=rpsign::signing: " + hello + ": binary does not embed the signing key's public key " + region.EncodePublicKey(otherPub)},
		{"bad runtime-key", map[string]string{"INPUT_KEY": key, "INPUT_FILES": hello, "INPUT_VERSION": "1.0.0", "INPUT_RUNTIME-KEY": "yes"}, false,
			`::error title=rpsign::input "runtime-key" is "yes"; want true or false`},
		{"no GITHUB_OUTPUT", map[string]string{"INPUT_KEY": key, "INPUT_FILES": hello, "INPUT_VERSION": "1.0.0"}, true,
			"::error title=rpsign::GITHUB_OUTPUT is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newActionRun(t, tt.vars)
			if tt.noOutput {
				delete(r.vars, "GITHUB_OUTPUT")
			}
			err := r.run()
			if err == nil {
				t.Fatal("action succeeded")
			}
			if !strings.Contains(r.stdout.String(), tt.annotation) {
				t.Errorf("stdout lacks %q:\n%s", tt.annotation, &r.stdout)
			}
			if k := tt.vars["INPUT_KEY"]; k != "" && strings.Count(r.stdout.String(), k) != 1 {
				t.Errorf("the key appears unmasked in stdout:\n%s", &r.stdout)
			}
			if b, _ := os.ReadFile(r.output); len(b) != 0 {
				t.Errorf("a failed run wrote outputs: %s", b)
			}
		})
	}
	// Through the command table, a failure exits 1.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"action"}, &stdout, &stderr, func(string) string { return "" }); code != 1 {
		t.Errorf("rpsign action with no environment exited %d, want 1", code)
	}
}

// TestActionOutsideActions runs rpsign action where GITHUB_ACTIONS is not
// "true" (another CI, a shell): "::add-mask::" masks nothing there, so the
// action must fail before it prints anything of its inputs.
func TestActionOutsideActions(t *testing.T) {
	t.Parallel()
	key, _ := randomKey(t)
	hello := copyHello(t, t.TempDir(), "hello")
	for _, v := range []string{"", "false", "1"} {
		r := newActionRun(t, map[string]string{"INPUT_KEY": key, "INPUT_TOKEN": "secret-token", "INPUT_FILES": hello, "INPUT_VERSION": "1.0.0", "GITHUB_ACTIONS": v})
		err := r.run()
		if err == nil || !strings.Contains(err.Error(), `GITHUB_ACTIONS is not "true"`) || !strings.Contains(err.Error(), "rpsign sign BINARY --key-env VAR") {
			t.Errorf("GITHUB_ACTIONS=%q: error %v, want one that says to use rpsign sign", v, err)
		}
		for _, secret := range []string{key, "secret-token", "add-mask"} {
			if strings.Contains(r.stdout.String(), secret) || strings.Contains(fmt.Sprint(err), secret) {
				t.Errorf("GITHUB_ACTIONS=%q: %q printed:\n%s", v, secret, &r.stdout)
			}
		}
	}
}

// TestActionPublishes runs the action with a token against ghreleasetest, a
// local server speaking the GitHub REST shapes used, as GitHub cannot be
// reached from tests.
func TestActionPublishes(t *testing.T) {
	srv := ghreleasetest.NewServer(t)
	key, pub := testKey(t)
	dir := t.TempDir()
	hello := copyHello(t, dir, "hello")
	host := target.Current()
	asset := "hello_" + host.OS + "_" + host.Arch
	r := newActionRun(t, map[string]string{
		"INPUT_KEY":         key,
		"INPUT_FILES":       hello,
		"INPUT_TARGET":      host.String(),
		"INPUT_TOKEN":       "secret-token",
		"INPUT_API-URL":     srv.URL,
		"GITHUB_REPOSITORY": "org/app",
		"GITHUB_REF":        "refs/tags/v1.4.0",
	})
	for range 2 { // a re-run replaces the assets
		if err := r.run(); err != nil {
			t.Fatalf("action: %v\n%s", err, &r.stdout)
		}
	}
	assets := srv.Assets("org/app", "v1.4.0")
	if len(assets) != 3 {
		t.Fatalf("release has %d assets, want the binary, its piece hashes and its manifest", len(assets))
	}
	pi, err := ghrelease.ReadPatchInfo(bytes.NewReader(assets[ghrelease.ManifestName(host)]))
	if err != nil {
		t.Fatal(err)
	}
	if pi.Asset != asset || pi.Version != "1.4.0" {
		t.Errorf("manifest = %+v", pi)
	}
	if _, err := pi.Verify(pub); err != nil {
		t.Error(err)
	}
	local, _ := os.ReadFile(hello)
	if !bytes.Equal(assets[asset], local) {
		t.Error("published binary differs from the signed file")
	}
	if strings.Contains(r.stdout.String(), "secret-token\n") && !strings.HasPrefix(r.stdout.String(), "::add-mask::") {
		t.Error("token printed before being masked")
	}
}

// TestActionPublishesPacks: with compress and delta-from, the action
// attaches the binary's pieces compressed and as the delta from the last
// release's binary, named by the manifest; without token, they are
// refused. Against ghreleasetest, as TestActionPublishes.
func TestActionPublishesPacks(t *testing.T) {
	srv := ghreleasetest.NewServer(t)
	key, _ := testKey(t)
	dir := t.TempDir()
	host := target.Current()
	last := copyHello(t, filepath.Join(dir, "last"), "hello")
	hello := copyHello(t, dir, "hello")
	vars := map[string]string{
		"INPUT_KEY":         key,
		"INPUT_FILES":       last,
		"INPUT_TARGET":      host.String(),
		"INPUT_TOKEN":       "secret-token",
		"INPUT_API-URL":     srv.URL,
		"GITHUB_REPOSITORY": "org/app",
		"GITHUB_REF":        "refs/tags/v1.3.0",
	}
	if err := newActionRun(t, vars).run(); err != nil {
		t.Fatal(err)
	}
	vars["INPUT_FILES"], vars["GITHUB_REF"] = hello, "refs/tags/v1.4.0"
	vars["INPUT_COMPRESS"], vars["INPUT_DELTA-FROM"] = "true", filepath.Join(dir, "last", "hello*")
	r := newActionRun(t, vars)
	if err := r.run(); err != nil {
		t.Fatalf("action: %v\n%s", err, &r.stdout)
	}
	assets := srv.Assets("org/app", "v1.4.0")
	pi, err := ghrelease.ReadPatchInfo(bytes.NewReader(assets[ghrelease.ManifestName(host)]))
	if err != nil {
		t.Fatal(err)
	}
	if len(pi.Packs) != 2 || len(assets) != 5 {
		t.Fatalf("packs %+v in a release of %d assets, want the compressed pieces and a delta", pi.Packs, len(assets))
	}
	for _, p := range pi.Packs {
		if b, ok := assets[p.Asset]; !ok || int64(len(b)) != p.Size {
			t.Errorf("pack %s: %d bytes attached (%v), the manifest says %d", p.Asset, len(b), ok, p.Size)
		}
		if p.Base != "" && p.Size > int64(len(assets[pi.Asset]))/20 {
			t.Errorf("the delta from a build that differs in its version is %d bytes", p.Size)
		}
	}

	delete(vars, "INPUT_TOKEN")
	if err := newActionRun(t, vars).run(); err == nil || !strings.Contains(err.Error(), `set "token" too`) {
		t.Errorf("packs without a token: %v", err)
	}
}

func TestAssetName(t *testing.T) {
	tests := []struct {
		path string
		t    target.Target
		want string
	}{
		{"dist/hello", target.Target{OS: "linux", Arch: "amd64"}, "hello_linux_amd64"},
		{"hello.exe", target.Target{OS: "windows", Arch: "arm64"}, "hello_windows_arm64.exe"},
		{"out/hello_linux_amd64", target.Target{OS: "linux", Arch: "amd64"}, "hello_linux_amd64"},
		{"hello-Darwin-ARM64", target.Target{OS: "darwin", Arch: "arm64"}, "hello-Darwin-ARM64"},
		{"app.v2", target.Target{OS: "linux", Arch: "arm64"}, "app.v2_linux_arm64"},
	}
	for _, tt := range tests {
		if got := assetName(tt.path, tt.t); got != tt.want {
			t.Errorf("assetName(%q, %v) = %q, want %q", tt.path, tt.t, got, tt.want)
		}
	}
}
