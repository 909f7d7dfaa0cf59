//go:build unix

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
)

// TestActionScriptRunners runs the Action's rpsign steps
// (scripts/action-rpsign.sh, as action.yml runs them from the action's
// directory) with the environment each kind of GitHub runner gives,
// simulated here: RUNNER_OS, RUNNER_ARCH, RUNNER_TEMP in that runner's
// form (on Windows with backslashes), the action's ref, and on macOS a
// PATH without sha256sum (macOS has shasum). Each must give a cache key that
// names ref, OS and architecture and the same source hash, a path Go and
// Git Bash both take, with .exe on Windows; build then builds rpsign there,
// and a second build (a restored cache) does not compile. It cannot
// simulate bash 3.2 (macOS) or Git Bash's own path conversion.
func TestActionScriptRunners(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rpsign")
	}
	root := repoRoot(t)
	tests := []struct {
		name, os, arch, ref string
		temp                func(dir string) string // RUNNER_TEMP as the runner gives it
		path                func(dir string) string // PATH, from a directory to put tools in
		exe                 string
	}{
		{name: "ubuntu", os: "Linux", arch: "X64", ref: "v1",
			temp: func(d string) string { return filepath.Join(d, "home", "runner", "work", "_temp") }},
		{name: "macos", os: "macOS", arch: "ARM64", ref: "v1.2.0",
			temp: func(d string) string { return filepath.Join(d, "Users", "runner", "work", "_temp") },
			path: macPath},
		{name: "windows", os: "Windows", arch: "X64", ref: "",
			temp: func(d string) string { return d + `\a\_temp` }, exe: ".exe"},
	}
	hashes := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out, env := filepath.Join(dir, "output"), filepath.Join(dir, "env")
			vars := append(goEnv(t), "RUNNER_OS="+tt.os, "RUNNER_ARCH="+tt.arch, "RUNNER_TEMP="+tt.temp(dir),
				"GITHUB_OUTPUT="+out, "GITHUB_ENV="+env, "ACTION_REF="+tt.ref, "CGO_ENABLED=0")
			if tt.path != nil {
				vars = append(vars, "PATH="+tt.path(t.TempDir()))
			}
			step := func(what string, extra ...string) string {
				t.Helper()
				cmd := exec.Command("bash", "scripts/action-rpsign.sh", what)
				cmd.Dir = root
				cmd.Env = append(append(toolEnv(), vars...), extra...)
				b, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("action-rpsign.sh %s: %v\n%s", what, err, b)
				}
				return string(b)
			}
			step("locate")
			outputs := readKV(t, out)
			rpsign := readKV(t, env)["RPSIGN"]
			wantDir := filepath.Join(dir, "home", "runner", "work", "_temp", "rustpatcher-go-action")
			switch tt.os {
			case "macOS":
				wantDir = filepath.Join(dir, "Users", "runner", "work", "_temp", "rustpatcher-go-action")
			case "Windows":
				wantDir = filepath.Join(dir, "a", "_temp", "rustpatcher-go-action")
			}
			if outputs["dir"] != wantDir || outputs["path"] != wantDir+"/rpsign"+tt.exe || rpsign != outputs["path"] {
				t.Errorf("dir %q, path %q, RPSIGN %q; want %s and rpsign%s in it", outputs["dir"], outputs["path"], rpsign, wantDir, tt.exe)
			}
			ref := tt.ref
			if ref == "" {
				ref = "local"
			}
			m := regexp.MustCompile(`^rustpatcher-go-rpsign-` + regexp.QuoteMeta(ref) + `-` + tt.os + `-` + tt.arch + `-go[0-9.]+-([0-9a-f]{16})$`).FindStringSubmatch(outputs["key"])
			if m == nil {
				t.Fatalf("key %q does not name ref %s, OS %s and arch %s", outputs["key"], ref, tt.os, tt.arch)
			}
			hashes[m[1]] = true

			if got := step("build", "RPSIGN="+rpsign); !strings.Contains(got, "building rpsign") {
				t.Errorf("the first build did not build: %s", got)
			}
			v, err := exec.Command(rpsign, "--version").Output()
			if err != nil || !strings.HasPrefix(string(v), "rpsign ") {
				t.Fatalf("%s --version: %v %s", rpsign, err, v)
			}
			if got := step("build", "RPSIGN="+rpsign); !strings.Contains(got, "rpsign restored from the cache") || strings.Contains(got, "building") {
				t.Errorf("with rpsign in place (a cache hit) the build step compiled: %s", got)
			}
		})
	}
	if len(hashes) > 1 {
		t.Errorf("the runners hash the same sources differently: %v", hashes)
	}
}

// macPath returns a PATH of the tools the script uses as a macOS runner
// has them: shasum, and no sha256sum.
func macPath(dir string) string {
	for _, tool := range []string{"bash", "cat", "find", "sort", "tr", "cut", "shasum", "perl", "env"} {
		if p, err := exec.LookPath(tool); err == nil {
			os.Symlink(p, filepath.Join(dir, tool))
		}
	}
	os.Symlink(regiontest.GoTool(), filepath.Join(dir, "go"))
	return dir
}

// readKV reads a GITHUB_OUTPUT or GITHUB_ENV file of name=value lines.
func readKV(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return kv
}
