package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/tv42/zbase32"

	"github.com/org/rustpatcher-go/client"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"rpsign": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv)) },
	})
}

// vectorPublicKey is the public key of the test-vector seed that the
// scripts sign with (docs/FORMAT.md).
const vectorPublicKey = "axegnqus3miex47g1kxf1j7j8spczbc57go7jgpeixq8nxjfz7gy"

var helloOnce struct {
	sync.Once
	withKey, noKey string
	err            error
}

// buildHello builds examples/hello twice per test run, once with the
// test-vector public key linked in and once without a key; scripts get
// copies as $WORK/hello and $WORK/hello-nokey.
func buildHello(t testing.TB) (withKey, noKey string) {
	helloOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rpsign-test-")
		if err != nil {
			helloOnce.err = err
			return
		}
		helloOnce.withKey = filepath.Join(dir, "hello")
		helloOnce.noKey = filepath.Join(dir, "hello-nokey")
		// The two links, most of the time, run side by side.
		builds := []struct{ out, ldflags string }{
			{helloOnce.withKey, "-X " + client.LinkedKeyFlag + "=" + vectorPublicKey},
			{helloOnce.noKey, ""},
		}
		errs := make([]error, len(builds))
		var wg sync.WaitGroup
		for i, b := range builds {
			wg.Go(func() {
				out, err := regiontest.GoBuildCmd(context.Background(), b.out, "../../examples/hello", "-ldflags", b.ldflags).CombinedOutput()
				if err != nil {
					errs[i] = fmt.Errorf("building hello (-ldflags %q): %v\n%s", b.ldflags, err, out)
				}
			})
		}
		wg.Wait()
		helloOnce.err = errors.Join(errs...)
	})
	if helloOnce.err != nil {
		t.Fatal(helloOnce.err)
	}
	return helloOnce.withKey, helloOnce.noKey
}

// TestLinkedKeyFlag checks that rpsign's copy of the -X name is the
// client's.
func TestLinkedKeyFlag(t *testing.T) {
	if linkedKeyFlag != client.LinkedKeyFlag {
		t.Errorf("rpsign's linkedKeyFlag = %q, client.LinkedKeyFlag = %q", linkedKeyFlag, client.LinkedKeyFlag)
	}
}

// copyExecutable copies the program src to dst, in a child process where
// there is cp. Scripts run in parallel: had this process written dst, a
// child forked meanwhile by another script would hold dst open for writing
// until it execs, and running dst would fail with "text file busy"
// (golang.org/issue/22315).
func copyExecutable(src, dst string) error {
	if cp, err := exec.LookPath("cp"); err == nil && runtime.GOOS != "windows" {
		if out, err := exec.Command(cp, src, dst).CombinedOutput(); err != nil {
			return fmt.Errorf("cp %s %s: %v\n%s", src, dst, err, out)
		}
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

func TestScripts(t *testing.T) {
	hello, noKey := buildHello(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			// The host's target, as asset names spell it.
			e.Setenv("HOSTOS", runtime.GOOS)
			e.Setenv("HOSTARCH", runtime.GOARCH)
			if err := copyExecutable(hello, filepath.Join(e.WorkDir, "hello")); err != nil {
				return err
			}
			return copyExecutable(noKey, filepath.Join(e.WorkDir, "hello-nokey"))
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// flipbyte FILE OFFSET: invert one byte; a negative OFFSET counts
			// from the end.
			"flipbyte": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: flipbyte FILE OFFSET")
				}
				p := ts.MkAbs(args[0])
				b, err := os.ReadFile(p)
				ts.Check(err)
				off, err := strconv.Atoi(args[1])
				ts.Check(err)
				if off < 0 {
					off += len(b)
				}
				b[off] ^= 0xff
				ts.Check(os.WriteFile(p, b, 0o755))
			},
			// rustpatcherkey FILE: the key file loads with rustpatcher
			// 0.2.1's rule, which z-base-32-decodes the file's bytes as
			// they are (no trimming) and wants 32 bytes.
			"rustpatcherkey": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: rustpatcherkey FILE")
				}
				b, err := os.ReadFile(ts.MkAbs(args[0]))
				ts.Check(err)
				k, err := zbase32.DecodeString(string(b))
				ok := err == nil && len(k) == 32
				if ok == neg {
					ts.Fatalf("rustpatcher's loader on %s: decoded %d bytes, %v", args[0], len(k), err)
				}
			},
			// regionfile FILE N [TRUNC]: write a file holding N unsigned
			// regions between filler bytes, the last one cut to TRUNC bytes.
			"regionfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: regionfile FILE N [TRUNC]")
				}
				n, err := strconv.Atoi(args[1])
				ts.Check(err)
				reg, _ := region.Info{}.Marshal()
				var b []byte
				for i := 0; i < n; i++ {
					b = append(b, "filler"...)
					b = append(b, reg[:]...)
				}
				if len(args) == 3 {
					cut, err := strconv.Atoi(args[2])
					ts.Check(err)
					b = b[:len(b)-region.Size+cut]
				}
				ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o755))
			},
		},
	})
}

func TestCleanVersion(t *testing.T) {
	tests := []struct {
		v  string
		ok bool
	}{
		{"v1.2.3", true},
		{"v1.2.3-rc.1", true},
		{"(devel)", false},
		{"", false},
		{"v0.0.0-20240101000000-abcdefabcdef", false},
		{"v1.2.4-0.20240101000000-abcdefabcdef", false},
		{"v1.2.3+dirty", false},
		{"v1.2.3+incompatible", false},
		{"v1.2", false},
	}
	for _, tt := range tests {
		if got := isReleaseTag(tt.v); got != tt.ok {
			t.Errorf("isReleaseTag(%q) = %v, want %v", tt.v, got, tt.ok)
		}
	}
}

// TestGoldenVectors runs rpsign sign on the files of the known-answer
// vectors of docs/FORMAT.md, in both formats: the region it writes must
// equal each vector's byte for byte. (The vector files embed no public key,
// so the embedded-key check is off.)
func TestGoldenVectors(t *testing.T) {
	for _, v := range regiontest.AllVectors(t, filepath.Join("..", "..", "region", "testdata")) {
		t.Run(v.TestName(), func(t *testing.T) {
			dir := t.TempDir()
			bin, key := filepath.Join(dir, "bin"), filepath.Join(dir, "key")
			if err := os.WriteFile(bin, v.File(), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(key, []byte(v.Seed), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"sign", bin, "--key-file", key, "--version", v.Version, "--runtime-key", "--format", v.Format.String()}
			if v.Target != "" {
				args = append(args, "--target", v.Target)
			}
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr, os.Getenv); code != 0 {
				t.Fatalf("rpsign sign exited %d: %s", code, &stderr)
			}
			got, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if reg := got[v.Offset() : v.Offset()+region.Size]; !bytes.Equal(reg, v.Region) {
				t.Errorf("rpsign wrote region\n%x\nwant\n%x", reg, v.Region)
			}
		})
	}
}
