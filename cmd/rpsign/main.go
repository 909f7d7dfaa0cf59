// Command rpsign makes owner keys and signs, verifies and inspects release
// binaries for rustpatcher-go. It is also the entrypoint of the GitHub Action.
//
// Usage:
//
//	rpsign help [COMMAND]
//	rpsign --version
//	rpsign gen PATH
//	rpsign pub --key-file PATH | --key-env VAR
//	rpsign sign BINARY --key-file PATH | --key-env VAR [--version V]
//	rpsign verify BINARY --pub KEY
//	rpsign inspect BINARY [--json]
//	rpsign action
//	rpsign publish BINARY... --repo OWNER/REPO --tag TAG --pub [TARGET=]KEY...
//	rpsign rollout --key-file KEY --target OS/ARCH --version V [--percent P] [--ramp D] --out DIR
//	rpsign rollout --key-file KEY --target OS/ARCH --out DIR --halt | --yank V --to W | --refresh
//	rpsign rollout --show FILE [--json]
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
	"slices"
	"strings"

	"github.com/org/rustpatcher-go/internal/version"
)

// command is one rpsign subcommand.
type command struct {
	name    string
	usage   string // one line, after "rpsign "
	summary string // what it does, in one line
	help    string // what it does and examples, for rpsign help NAME
	run     func(env *env, args []string) error
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

// helpRequest is the error of a command given -h or --help: it carries the
// command's flags, for its help.
type helpRequest struct{ flags string }

func (h *helpRequest) Error() string        { return flag.ErrHelp.Error() }
func (h *helpRequest) Is(target error) bool { return target == flag.ErrHelp }

func commands() []command {
	return []command{
		{"gen", "gen PATH", "make an owner key", genHelp, runGen},
		{"pub", "pub --key-file PATH | --key-env VAR", "print an owner key's public key", pubHelp, runPub},
		{"sign", "sign BINARY --key-file PATH | --key-env VAR [--version V] [flags]", "sign a release binary in place", signHelp, runSign},
		{"verify", "verify BINARY --pub KEY", "check a binary's signature", verifyHelp, runVerify},
		{"inspect", "inspect BINARY [--json]", "show a binary's signed region", inspectHelp, runInspect},
		{"action", "action", "the GitHub Action's entrypoint (reads INPUT_* variables)", actionHelp, runAction},
		{"publish", publishUsage, "attach signed binaries and their manifests to a GitHub release", publishHelp, runPublish},
		{"rollout", rolloutUsage, "roll a release out to a share of the nodes, halt it, yank it (a signed statement)", rolloutHelp, runRollout},
		{"rotate", "rotate FILE --key-file OLD --to NEWKEY --target GOOS/GOARCH [--sequence N]", "move a target to a new owner key, with a statement signed by the old one", rotateHelp, runRotate},
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `rpsign makes owner keys and signs, verifies and inspects the release binaries
of apps that update themselves with rustpatcher-go.

usage:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  rpsign %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
  rpsign help COMMAND   what a command does, its flags and examples
  rpsign --version      rpsign's version

Flags may come before or after a command's arguments. See docs/RELEASING.md.
`)
}

// commandHelp prints the help of c: its usage line, what it does with
// examples, and its flags.
func commandHelp(w io.Writer, c command, flags string) {
	fmt.Fprintf(w, "usage: rpsign %s\n\n%s", c.usage, c.help)
	if strings.TrimSpace(flags) != "" {
		fmt.Fprintf(w, "\nFlags:\n%s", flags)
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// run runs rpsign with args (without the program name) and returns the exit
// status.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || isHelp(args[0]) {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "version" {
		fmt.Fprintln(stdout, version.Line("rpsign"))
		return 0
	}
	if args[0] == "help" {
		if len(args) == 1 {
			usage(stdout)
			return 0
		}
		args = []string{args[1], "--help"}
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		e := &env{stdout, stderr, getenv}
		if len(args) > 1 && slices.ContainsFunc(args[1:], isHelp) {
			args = []string{c.name, "--help"} // help, whatever else was given
		}
		err := c.run(e, args[1:])
		var hr *helpRequest
		switch {
		case err == nil:
			return 0
		case errors.As(err, &hr):
			commandHelp(stdout, c, hr.flags)
			return 0
		case errors.Is(err, flag.ErrHelp):
			commandHelp(stdout, c, "")
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "rpsign %s: %v\nusage: rpsign %s\n(rpsign help %s for more)\n", c.name, err, c.usage, c.name)
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
				var b strings.Builder
				fs.SetOutput(&b)
				fs.PrintDefaults()
				return nil, &helpRequest{flags: b.String()}
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
