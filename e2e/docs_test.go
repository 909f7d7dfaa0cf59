//go:build unix

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/testtools"
)

// The tests of this file follow the steps the documentation gives a new
// user, as written: they read the fenced blocks of a section of README.md
// or docs/RELEASING.md and run them. `git clone` of this repository is
// replaced by a copy of the work tree (no network), and Go runs with
// GOPROXY=off and GOSUMDB=off on the module cache the tests already use
// (scripts/test-deps.sh fills it with what go mod tidy reads).

// docBlock is a fenced block of a document: its language and text.
type docBlock struct{ lang, text string }

// docSection returns the fenced blocks of the section of the markdown file
// path whose heading line is heading, up to the next heading of the same or
// a higher level.
func docSection(t *testing.T, path, heading string) []docBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("%s has no section %q", path, heading)
	}
	text = text[i+1+len(heading):]
	level := strings.Index(heading, " ")
	if j := regexp.MustCompile(fmt.Sprintf(`\n#{1,%d} `, level)).FindStringIndex(text); j != nil {
		text = text[:j[0]]
	}
	var blocks []docBlock
	for _, m := range regexp.MustCompile("(?s)\n```([a-z]*)\n(.*?)\n```\n").FindAllStringSubmatch(text, -1) {
		blocks = append(blocks, docBlock{m[1], m[2]})
	}
	return blocks
}

// docShell runs the lines of a sh block in dir, one at a time, as a user
// would type them; `git clone <this repository> DIR` copies the work tree
// to DIR instead.
func docShell(t *testing.T, dir, block string) {
	t.Helper()
	env := toolEnv(append(goEnv(t), "GOPROXY=off", "GOSUMDB=off")...)
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "git clone https://github.com/org/rustpatcher-go "); ok {
			dst := filepath.Join(dir, rest)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(repoCopy(t), dst); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if out, err := runTool(t, 5*time.Minute, dir, env, "sh", "-c", line); err != nil {
			hint := ""
			if strings.Contains(string(out), "disabled by GOPROXY=off") {
				hint = "\n(the module cache lacks what go mod tidy reads: run scripts/test-deps.sh to set up what the tests need)"
			}
			t.Fatalf("%s: %v\n%s%s", line, err, out, hint)
		}
	}
}

// newApp makes an empty module example.com/app in a new directory under
// root and returns it.
func newApp(t *testing.T, root string) string {
	t.Helper()
	app := filepath.Join(root, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(regiontest.GoTool(), "mod", "init", "example.com/app")
	cmd.Dir = app
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod init: %v\n%s", err, out)
	}
	return app
}

// buildApp checks that the app's go.mod requires rustpatcher-go (go mod
// tidy kept it) and that the app builds.
func buildApp(t *testing.T, app string) {
	t.Helper()
	mod, err := os.ReadFile(filepath.Join(app, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^require github\.com/org/rustpatcher-go v0\.0\.0-00010101000000-000000000000$`).Match(mod) {
		t.Errorf("go.mod after the documented steps does not require rustpatcher-go:\n%s", mod)
	}
	env := toolEnv(append(goEnv(t), "GOPROXY=off", "GOSUMDB=off")...)
	if out, err := runTool(t, 10*time.Minute, app, env, regiontest.GoTool(), "build", "-o", os.DevNull, "./..."); err != nil {
		t.Fatalf("go build ./... after the documented steps: %v\n%s", err, out)
	}
}

// TestReadmeAppAuthorSteps follows README.md's steps for app authors, in
// their order: clone, write main.go, replace, go mod tidy. The requirement
// must survive go mod tidy and the app must build.
func TestReadmeAppAuthorSteps(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an app with the whole client")
	}
	blocks := docSection(t, filepath.Join(repoRoot(t), "README.md"), "## For app authors")
	if len(blocks) < 3 || blocks[0].lang != "sh" || blocks[1].lang != "go" || blocks[2].lang != "sh" || !strings.Contains(blocks[2].text, "go mod tidy") {
		t.Fatalf("README's app-author steps are not clone (sh), code (go), then go.mod and go mod tidy (sh): %+v", blocks)
	}
	root := t.TempDir()
	app := newApp(t, root)
	docShell(t, app, blocks[0].text)
	if err := os.WriteFile(filepath.Join(app, "main.go"), []byte(blocks[1].text+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	docShell(t, app, blocks[2].text)
	buildApp(t, app)
}

// TestReleasingCIBeforePublish follows docs/RELEASING.md's steps for CI
// before the module is published: rustpatcher-go cloned into the
// workspace, the replace to that path, and a workflow that checks it out to
// the same path and uses the Action from there. The app must build (its
// ./... skipping the nested module), and actionlint must accept the
// workflow, with `uses: ./PATH` reading the Action's action.yml.
func TestReleasingCIBeforePublish(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an app with the whole client")
	}
	blocks := docSection(t, filepath.Join(repoRoot(t), "docs", "RELEASING.md"), "### Before the module is published: CI")
	if len(blocks) != 2 || blocks[0].lang != "sh" || blocks[1].lang != "yaml" {
		t.Fatalf("the section does not hold the steps (sh) and the workflow (yaml): %+v", blocks)
	}
	clone := regexp.MustCompile(`(?m)^git clone https://github.com/org/rustpatcher-go (\S+)$`).FindStringSubmatch(blocks[0].text)
	if clone == nil {
		t.Fatalf("the steps clone rustpatcher-go nowhere:\n%s", blocks[0].text)
	}
	path := clone[1]
	wf := blocks[1].text
	for _, want := range []string{"repository: org/rustpatcher-go", "path: " + path, "uses: ./" + path} {
		if !strings.Contains(wf, want) {
			t.Errorf("the workflow lacks %q: CI must check rustpatcher-go out where go.mod's replace points", want)
		}
	}
	if !strings.Contains(blocks[0].text, "-replace=github.com/org/rustpatcher-go=./"+path) {
		t.Errorf("the steps do not replace to ./%s", path)
	}

	root := t.TempDir()
	app := newApp(t, root)
	main := "package main\n\nimport (\n\t\"context\"\n\n\t\"github.com/org/rustpatcher-go/client\"\n)\n\nfunc main() {\n\tu, err := client.Spawn(context.Background(), client.Config{})\n\tif err == nil {\n\t\tu.Close()\n\t}\n}\n"
	if err := os.WriteFile(filepath.Join(app, "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	docShell(t, app, blocks[0].text)
	if b, _ := os.ReadFile(filepath.Join(app, ".gitignore")); !strings.Contains(string(b), path) {
		t.Errorf(".gitignore does not keep %s out of the app's repository: %q", path, b)
	}
	buildApp(t, app)

	if err := os.MkdirAll(filepath.Join(app, ".github", "workflows"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, ".github", "workflows", "ci.yml"), []byte(wf+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, git := range [][]string{{"init", "-q"}, {"add", "-A"}} {
		cmd := exec.Command("git", git...)
		cmd.Dir = app
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", git, err, out)
		}
	}
	actionlint := testtools.Find(t, testtools.Actionlint())
	if out, err := runTool(t, 2*time.Minute, app, toolEnv(), actionlint, "-verbose", ".github/workflows/ci.yml"); err != nil || !strings.Contains(out, "Found total 0 errors") {
		t.Errorf("actionlint on the documented workflow: %v\n%s", err, out)
	}
}
