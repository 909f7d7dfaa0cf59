package main

import (
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"rpseed": func() { os.Exit(rpseedMain()) },
	})
}

// TestScripts runs the command-line scripts in testdata/script: rpseed as a
// real process, started and stopped within each script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
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
		},
	})
}
