// Command rpsign makes owner keys and signs, verifies and inspects release
// binaries for rustpatcher-go. It is also the entrypoint of the GitHub Action.
//
// Usage:
//
//	rpsign gen PATH
//	rpsign pub --key-file PATH | --key-env VAR
//	rpsign sign BINARY --key-file PATH | --key-env VAR [--version V]
//	rpsign verify BINARY --pub KEY
//	rpsign inspect BINARY [--json]
//	rpsign action
//	rpsign publish BINARY... --repo OWNER/REPO --tag TAG --pub [TARGET=]KEY...
//
// action is the GitHub Action's entrypoint: it reads the INPUT_* variables
// that action.yml passes in; publish attaches signed binaries and their
// manifests to a GitHub release (see docs/RELEASING.md).
//
// Flags may come before or after the positional argument.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// command is one rpsign subcommand.
type command struct {
	name  string
	usage string // one line, after "rpsign "
	run   func(env *env, args []string) error
}

// env is what a command may touch: its output streams and the process
// environment, so that tests can run commands in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// errUsage marks an error caused by a wrong command line; rpsign prints the
// command's usage after it and exits with status 2.
var errUsage = errors.New("usage")

func commands() []command {
	return []command{
		{"gen", "gen PATH", runGen},
		{"pub", "pub --key-file PATH | --key-env VAR", runPub},
		{"sign", "sign BINARY --key-file PATH | --key-env VAR [--version V]", runSign},
		{"verify", "verify BINARY --pub KEY", runVerify},
		{"inspect", "inspect BINARY [--json]", runInspect},
		{"action", "action (the GitHub Action entrypoint; reads INPUT_* variables)", runAction},
		{"publish", publishUsage, runPublish},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage:")
	for _, c := range commands() {
		fmt.Fprintln(w, "  rpsign", c.usage)
	}
}

// run runs rpsign with args (without the program name) and returns the exit
// status.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(&env{stdout, stderr, getenv}, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			fmt.Fprintln(stderr, "usage: rpsign", c.usage)
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "rpsign %s: %v\nusage: rpsign %s\n", c.name, err, c.usage)
			return 2
		default:
			fmt.Fprintf(stderr, "rpsign %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "rpsign: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// parse parses flags that may stand before or after the positional
// arguments, and checks that there are exactly want positional ones.
func parse(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	pos, err := parseAny(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != want {
		return nil, fmt.Errorf("%w: want %d argument(s), got %d", errUsage, want, len(pos))
	}
	return pos, nil
}

// parseAny is parse for any number of positional arguments.
func parseAny(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
