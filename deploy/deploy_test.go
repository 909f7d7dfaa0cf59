// Package deploy holds the files that deploy rpseed (a systemd unit, its
// environment file, a container image) and the tests that check them.
package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
)

// TestSystemdUnit checks rpseed.service with systemd-analyze verify, which
// wants ExecStart's binary to exist: the test builds rpseed and points a
// copy of the unit at it. Any warning fails the test (verify itself exits 0
// on most of them). systemd-analyze security then rates the sandbox: its
// exposure must stay at 2.0 or below ("OK").
func TestSystemdUnit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd units are for Linux")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd); the unit is not checked")
	}
	unit, err := os.ReadFile("rpseed.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=rpseed", "ProtectSystem=strict", "ProtectHome=yes", "NoNewPrivileges=yes",
		"CapabilityBoundingSet=\n", "Restart=on-failure", "StartLimitBurst=", "EnvironmentFile=/etc/rpseed/rpseed.env", "ExecStart=/usr/local/bin/rpseed\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("rpseed.service lacks %q", want)
		}
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "rpseed")
	if out, err := regiontest.GoBuildCmd(t.Context(), bin, "../cmd/rpseed").CombinedOutput(); err != nil {
		t.Fatalf("building rpseed: %v\n%s", err, out)
	}
	env := filepath.Join(dir, "rpseed.env")
	if err := os.WriteFile(env, mustRead(t, "rpseed.env"), 0o600); err != nil {
		t.Fatal(err)
	}
	copied := strings.NewReplacer("ExecStart=/usr/local/bin/rpseed", "ExecStart="+bin,
		"EnvironmentFile=/etc/rpseed/rpseed.env", "EnvironmentFile="+env).Replace(string(unit))
	path := filepath.Join(dir, "rpseed.service")
	if err := os.WriteFile(path, []byte(copied), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: the exposure is above 2.0 (%v)\n%s", err, out)
	}
}

// TestEnvFile checks that the example environment file names only flags
// rpseed has (as RPSEED_<FLAG>), and the variables rpseed reads.
func TestEnvFile(t *testing.T) {
	help := rpseedHelp(t)
	sc := bufio.NewScanner(strings.NewReader(string(mustRead(t, "rpseed.env"))))
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "#")
		name, _, ok := strings.Cut(line, "=")
		if !ok || strings.Contains(name, " ") {
			continue
		}
		if name != "GITHUB_TOKEN" && !strings.Contains(help, " "+name+" ") {
			t.Errorf("rpseed.env sets %s, which rpseed --help does not list", name)
		}
	}
}

// rpseedHelp returns rpseed --help, built from source.
func rpseedHelp(t *testing.T) string {
	t.Helper()
	out, _ := exec.Command(regiontest.GoTool(), "run", "../cmd/rpseed", "--help").CombinedOutput()
	if !strings.Contains(string(out), "RPSEED_DIR") {
		t.Fatalf("rpseed --help:\n%s", out)
	}
	return string(out)
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// parseDockerfile reads a Dockerfile's instructions: comments dropped, lines
// ending in a backslash joined. It is enough for the checks below, not a
// full parser (no heredocs, no escape directive).
func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	var ins []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(mustRead(t, path))))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		ins = append(ins, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	return ins
}

// TestDockerfile checks deploy/Dockerfile by reading it: no Docker engine
// runs here (nor in CI), so the image is not built by the tests. It checks
// that the final stage's base is pinned (scratch, or an image by digest),
// that a build stage's Go is the version go.mod's toolchain line names, that
// nothing is fetched with ADD, that the binary is built static and
// reproducibly (CGO_ENABLED=0, -trimpath, no build ID, SOURCE_DATE_EPOCH),
// and that the image runs as a user other than root.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "Dockerfile")
	args := map[string]string{}
	var stages [][]instruction
	for _, in := range ins {
		switch in.cmd {
		case "ARG":
			if k, v, ok := strings.Cut(in.args, "="); ok {
				args[k] = v
			}
		case "FROM":
			stages = append(stages, nil)
		case "ADD":
			if regexp.MustCompile(`(?i)\b(https?|git|ftp)://|git@`).MatchString(in.args) {
				t.Errorf("ADD %s fetches from the network: download in a RUN step with a checksum, or COPY", in.args)
			}
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a build stage and a final stage, got %d stages", len(stages))
	}

	final := stages[len(stages)-1]
	base := strings.Fields(final[0].args)[0]
	if base != "scratch" && !regexp.MustCompile(`@sha256:[0-9a-f]{64}$`).MatchString(base) {
		t.Errorf("final stage FROM %s: pin the base (scratch, or IMAGE@sha256:DIGEST)", base)
	}
	user := ""
	for _, in := range final {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("final stage USER %q: run as a user other than root", user)
	}
	final0 := joinArgs(final)
	for _, want := range []string{"ENTRYPOINT [\"/rpseed\"]", "EXPOSE 4001/tcp 4001/udp", "STATE_DIRECTORY=/var/lib/rpseed", "VOLUME [\"/var/lib/rpseed\"]"} {
		if !strings.Contains(final0, want) {
			t.Errorf("final stage lacks %s", want)
		}
	}

	build := joinArgs(slices.Concat(stages[:len(stages)-1]...))
	for _, want := range []string{"CGO_ENABLED=0", "go build -trimpath", "-buildid=", "-buildvcs=false", "SOURCE_DATE_EPOCH", "GOTOOLCHAIN=local", "./cmd/rpseed", "go mod verify"} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage lacks %q", want)
		}
	}
	if _, ok := args["SOURCE_DATE_EPOCH"]; !ok {
		t.Error("no ARG SOURCE_DATE_EPOCH: BuildKit dates the image with it")
	}
	toolchain := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindStringSubmatch(string(mustRead(t, "../go.mod")))
	if toolchain == nil || args["GO_VERSION"] != toolchain[1] {
		t.Errorf("ARG GO_VERSION=%s, but go.mod's toolchain line names %v: build with the Go the module pins", args["GO_VERSION"], toolchain)
	}
	if from := stages[0][0].args; !strings.Contains(from, "golang:${GO_VERSION}") {
		t.Errorf("build stage FROM %s: want golang:${GO_VERSION}", from)
	}
}

func joinArgs(ins []instruction) string {
	var b strings.Builder
	for _, in := range ins {
		b.WriteString(in.cmd + " " + in.args + "\n")
	}
	return b.String()
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
