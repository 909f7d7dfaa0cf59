package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/org/rustpatcher-go/internal/regiontest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"rpseed": func() { os.Exit(rpseedMain()) },
	})
}

// TestScripts runs the command-line scripts in testdata/script: rpseed as a
// real process, started and stopped within each script. Each script starts
// with vector/app, a release signed with the test-vector key of
// docs/FORMAT.md for this machine's target ($TARGET).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			regiontest.WriteBinary(t, filepath.Join(env.WorkDir, "vector", "app"), 100_000, 1, regiontest.VectorKey(t), "1.0.0")
			env.Setenv("TARGET", regiontest.Target)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// holdport VAR: listen on a free TCP port of 127.0.0.1 until
			// the script ends, and set VAR to its number.
			"holdport": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: holdport VAR")
				}
				l, err := net.Listen("tcp", "127.0.0.1:0")
				ts.Check(err)
				ts.Defer(func() { l.Close() })
				ts.Setenv(args[0], strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
			},
			// freeport VAR: set VAR to a port of 127.0.0.1 free for both
			// TCP and UDP just now.
			"freeport": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: freeport VAR")
				}
				for range 100 {
					l, err := net.Listen("tcp", "127.0.0.1:0")
					ts.Check(err)
					port := l.Addr().(*net.TCPAddr).Port
					u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
					l.Close()
					if err == nil {
						u.Close()
						ts.Setenv(args[0], strconv.Itoa(port))
						return
					}
				}
				ts.Fatalf("no port free for TCP and UDP")
			},
			// waitfile FILE REGEXP: wait (at most 30 s) until the file
			// (such as the log of a command run in the background) has a
			// line matching REGEXP.
			"waitfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: waitfile FILE REGEXP")
				}
				re, err := regexp.Compile("(?m)" + args[1])
				ts.Check(err)
				deadline := time.Now().Add(30 * time.Second)
				for {
					b, _ := os.ReadFile(ts.MkAbs(args[0]))
					if re.Match(b) {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("no line matching %q in %s within 30s:\n%s", args[1], args[0], b)
					}
					time.Sleep(50 * time.Millisecond)
				}
			},
		},
	})
}
