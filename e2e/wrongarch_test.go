//go:build unix

package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// otherArch returns an architecture of this machine's OS that it is not:
// arm64 on amd64, amd64 elsewhere.
func otherArch() string {
	if runtime.GOARCH == "amd64" {
		return "arm64"
	}
	return "amd64"
}

// TestWrongArchRefused offers a hello 1.0.0 node of this machine's target
// a hello 2.0.0 built for another architecture and signed with the node's
// own owner key, as a pipeline that signed every target with one key would.
// Signed v1 for its real target, it is refused before a byte of it is
// fetched, by the target in its signed region; signed v0 (which has no
// target field) to a node that takes v0 releases, it is fetched and then
// refused by its executable header, before its self-test runs it. Either
// way the node stays on 1.0.0 and its file is unchanged.
func TestWrongArchRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles and runs real binaries; skipped with -short")
	}
	t.Parallel() // waits out the nodes' polls more than on the CPU
	host := runtime.GOOS + "/" + runtime.GOARCH
	other := runtime.GOOS + "/" + otherArch()
	tests := []struct {
		name   string
		format region.Format
		args   []string
		want   string // regexp of the refusal line
	}{
		{
			name:   "v1",
			format: region.V1,
			want:   `msg="release rejected".*hello-2\.0\.0.*reason="release is for another target: signed for ` + other + `, this is ` + host + `"`,
		},
		{
			name:   "v0",
			format: region.V0,
			args:   []string{"--accept-v0"},
			want:   `msg="release refused; the executable is unchanged".*hello-2\.0\.0.*reason="release is for another target: .*hello-2\.0\.0 is a ` + other + ` executable, this is ` + host + `"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newUpdateSetup(t)
			wrong := crossHello(t, other, s.key)
			signedCopyAs(t, wrong, filepath.Join(s.rels, "hello-2.0.0"), s.key, "2.0.0", other, tt.format)
			args := append([]string{"--mode", "now", "--source", s.rels, "--interval", "1s"}, tt.args...)
			p := Start(t, s.exe, append(args, "a", "b")...)
			p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=a b$`)
			_, i := p.WaitLine(0, 60*time.Second, tt.want)
			found, _, err := p.FindLine(0, 0, `msg="update found"`)
			switch {
			case tt.format == region.V1 && err == nil:
				t.Errorf("the v1 release for %s was fetched before it was refused: %q", other, found.Text)
			case tt.format == region.V0 && err != nil:
				t.Errorf("the v0 release was refused without being fetched (by what?)")
			}
			for _, l := range p.Lines()[:i] {
				if strings.Contains(l.Text, "self-test") {
					t.Errorf("a self-test ran before the refusal: %q", l.Text)
				}
			}
			// Two more polls change nothing.
			if l, _, err := p.FindLine(i+1, 2500*time.Millisecond, `^hello 2\.0\.0|update applied|restarting|self-test`); err == nil {
				t.Fatalf("after the refusal: %q", l.Text)
			}
			if p.Exited() {
				t.Fatal("hello exited after refusing the release")
			}
			if got := FileSum(t, s.exe); got != s.oldSum {
				t.Fatal("the executable changed")
			}
			if v, err := FileVersion(s.exe, s.key.Public); err != nil || v != "1.0.0" {
				t.Errorf("the executable is %q, %v; want 1.0.0", v, err)
			}
			ents, err := os.ReadDir(filepath.Dir(s.exe))
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 {
				t.Errorf("%d files next to the executable, want only hello (no temporary file, no backup)", len(ents))
			}
			p.Stop(10 * time.Second)
		})
	}
}

// TestSignRefusesWrongArch runs rpsign sign on hello built for another
// architecture: with the key variable of this machine's target, and with
// --target naming this machine's target, it refuses and leaves the file
// unchanged; with the right variable it signs.
func TestSignRefusesWrongArch(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles real binaries; skipped with -short")
	}
	key := OwnerKey(t)
	rpsign := GoBuild(t, rpsignPkg, "")
	host := runtime.GOOS + "/" + runtime.GOARCH
	other := runtime.GOOS + "/" + otherArch()
	bin := filepath.Join(t.TempDir(), "hello")
	CopyFile(t, crossHello(t, other, key), bin)
	sum := FileSum(t, bin)
	envName := func(target string) string {
		return "RP_KEY_" + strings.ToUpper(strings.ReplaceAll(target, "/", "_"))
	}
	env := func(target string) []string {
		return append(toolEnv(), envName(target)+"="+key.Secret)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{
			name: "key variable of " + host,
			env:  env(host),
			args: []string{"--key-env", envName(host)},
			want: envName(host) + " holds the key of " + host + ", but " + bin + " is a " + other + " binary: sign it with " + envName(other),
		},
		{
			name: "--target " + host,
			env:  env(other),
			args: []string{"--key-env", envName(other), "--target", host},
			want: "--target is " + host + ", but " + bin + " is a " + other + " binary (its header says so)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runErr(t, time.Minute, tt.env, rpsign, append([]string{"sign", bin, "--version", "2.0.0"}, tt.args...)...)
			if err == nil {
				t.Fatalf("rpsign signed a %s binary as %s:\n%s", other, host, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("rpsign's refusal does not say %q:\n%s", tt.want, out)
			}
			if FileSum(t, bin) != sum {
				t.Error("the refused binary changed")
			}
		})
	}
	out := run(t, time.Minute, env(other), rpsign, "sign", bin, "--version", "2.0.0", "--key-env", envName(other))
	if !strings.Contains(out, "("+other+" v1)") {
		t.Errorf("rpsign sign with %s: %s", envName(other), out)
	}
}
