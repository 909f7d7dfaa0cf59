// Command rpdemo shows rustpatcher-go end to end on one machine, in one
// command from a fresh clone:
//
//	go run ./cmd/rpdemo
//
// It builds examples/hello and rpseed, makes an owner key, signs hello as
// 1.0.0 and 2.0.0, and starts a private network on loopback: an rpseed
// serving 2.0.0 and a few hello 1.0.0 nodes. Each node finds 2.0.0, verifies
// it, replaces itself and restarts. Then the seed is stopped and a late
// 1.0.0 node updates from the updated peers alone. rpdemo prints a timeline
// of what happened and removes everything it made.
//
// rpdemo follows its children through what they print for programs, never
// through their log messages: the "hello VERSION args=ARGS" and
// "listening: ADDR" lines on standard output, and the update events hello
// logs as JSON on standard error when run with --log-json.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/org/rustpatcher-go/client"
	"github.com/org/rustpatcher-go/region"
)

func main() {
	opts := options{goTool: "go"}
	flag.IntVar(&opts.nodes, "nodes", 3, "number of hello nodes that start with the seed")
	flag.BoolVar(&opts.keep, "keep", false, "keep the work directory")
	flag.BoolVar(&opts.verbose, "v", false, "show every line the processes print")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "rpdemo:", err)
		os.Exit(1)
	}
}

// options are the demo's settings.
type options struct {
	nodes   int    // hello nodes that start with the seed
	keep    bool   // keep the work directory
	verbose bool   // show every line the processes print
	goTool  string // the go command that builds hello and rpseed
}

// demo holds the running processes and the timeline.
type demo struct {
	out     io.Writer
	dir     string
	start   time.Time
	verbose bool

	mu    sync.Mutex
	procs []*proc
}

func (d *demo) logf(who, format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "%6.1fs  %-8s %s\n", time.Since(d.start).Seconds(), who, fmt.Sprintf(format, args...))
}

// copyFile copies the file src to dst, an executable, creating its
// directory.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// moduleRoot returns the directory of the rustpatcher-go module the demo
// is run from.
func moduleRoot(ctx context.Context, goTool string) (string, error) {
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run rpdemo from inside a clone of rustpatcher-go (go run ./cmd/rpdemo)")
	}
	return filepath.Dir(mod), nil
}

// run is the demo; it prints the timeline on out.
func run(ctx context.Context, out io.Writer, opts options) error {
	if runtime.GOOS == "windows" {
		return errors.New("the demo restarts processes by exec and needs a Unix system")
	}
	nodes := opts.nodes
	if nodes < 1 {
		return errors.New("--nodes must be at least 1")
	}
	root, err := moduleRoot(ctx, opts.goTool)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "rpdemo-")
	if err != nil {
		return err
	}
	d := &demo{out: out, dir: dir, start: time.Now(), verbose: opts.verbose}
	defer func() {
		d.stopAll()
		if opts.keep {
			fmt.Fprintln(out, "work directory kept:", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()

	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	pubS := region.EncodePublicKey(pub)
	d.logf("demo", "working in %s", dir)
	d.logf("demo", "owner key made: %s", pubS)

	bin := filepath.Join(dir, "bin")
	for _, b := range []struct{ out, pkg, ldflags string }{
		{filepath.Join(bin, "hello"), "./examples/hello", "-X github.com/org/rustpatcher-go/client.linkedPublicKey=" + pubS},
		{filepath.Join(bin, "rpseed"), "./cmd/rpseed", ""},
	} {
		cmd := exec.CommandContext(ctx, opts.goTool, "build", "-o", b.out, "-ldflags", b.ldflags, b.pkg)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s in %s: %w\n%s", b.pkg, root, err, msg)
		}
	}
	d.logf("demo", "built hello and rpseed")

	seedDir := filepath.Join(dir, "seed")
	release := filepath.Join(seedDir, "hello-2.0.0")
	if err := copyFile(filepath.Join(bin, "hello"), release); err != nil {
		return err
	}
	in, err := region.SignFile(context.Background(), release, key, "2.0.0", runtime.GOOS+"/"+runtime.GOARCH)
	if err != nil {
		return err
	}
	d.logf("demo", "signed hello 2.0.0 (%d bytes) for the seed", in.Size+region.Size)

	// rpseed listens on QUIC and TCP, the hello nodes on TCP alone (an
	// app has QUIC only when it asks for it: client/quic).
	seedListen := []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	listen := seedListen[1:]
	listenFlags := func(addrs []string) []string {
		var f []string
		for _, a := range addrs {
			f = append(f, "--listen", a)
		}
		return f
	}
	loop := listenFlags(listen) // the nodes' --listen flags
	target := runtime.GOOS + "/" + runtime.GOARCH
	seed, err := d.startProc("rpseed", filepath.Join(bin, "rpseed"), append([]string{"--dir", seedDir, "--private",
		"--identity", filepath.Join(dir, "rpseed.key"), "--pub", target + "=" + pubS, "--upload-slots", "2"}, listenFlags(seedListen)...)...)
	if err != nil {
		return err
	}
	seedAddrs, err := seed.addrs(ctx, 0, len(seedListen))
	if err != nil {
		return err
	}
	d.logf("rpseed", "serving hello 2.0.0 at %s", seedAddrs[0])

	startNode := func(name string, boot []string) (*proc, string, error) {
		exe := filepath.Join(dir, name, "hello")
		if err := copyFile(filepath.Join(bin, "hello"), exe); err != nil {
			return nil, "", err
		}
		if _, err := region.SignFile(context.Background(), exe, key, "1.0.0", runtime.GOOS+"/"+runtime.GOARCH); err != nil {
			return nil, "", err
		}
		args := append([]string{"--private", "--dht-server", "--interval", "2s", "--log-json"}, loop...)
		for _, b := range boot {
			args = append(args, "--bootstrap", b)
		}
		args = append(args, "demo", name)
		p, err := d.startProc(name, exe, args...)
		return p, exe, err
	}
	// follow reports a node's progress to 2.0.0 and returns its listen
	// addresses after the restart.
	follow := func(p *proc) ([]string, error) {
		first, _, err := p.wait(ctx, 0, 30*time.Second, "hello 1.0.0 line", isHello("1.0.0"))
		if err != nil {
			return nil, err
		}
		d.logf(p.name, "running hello 1.0.0")
		if s, _, err := p.wait(ctx, 0, 2*time.Minute, "update found event", isEvent(client.EventFound, "2.0.0")); err == nil {
			d.logf(p.name, "found 2.0.0 (%s)", s.source)
		}
		if _, _, err := p.wait(ctx, 0, 2*time.Minute, "update applied event", isEvent(client.EventApplied, "2.0.0")); err == nil {
			d.logf(p.name, "verified 2.0.0, replaced its executable, serving 2.0.0 to peers")
		}
		second, _, err := p.wait(ctx, 0, 2*time.Minute, "hello 2.0.0 line", isHello("2.0.0"))
		if err != nil {
			return nil, err
		}
		if second.args != first.args {
			return nil, fmt.Errorf("%s restarted with args %q, not %q", p.name, second.args, first.args)
		}
		d.logf(p.name, "restarted (same pid %d, same args): running hello 2.0.0", p.cmd.Process.Pid)
		// The addresses of the restarted run follow those of the first.
		return p.addrs(ctx, len(listen), len(listen))
	}

	procs := make([]*proc, nodes)
	exes := make([]string, nodes)
	for i := range procs {
		if procs[i], exes[i], err = startNode(fmt.Sprintf("node%d", i+1), seedAddrs); err != nil {
			return err
		}
	}
	d.logf("demo", "started %d hello 1.0.0 nodes bootstrapping from the seed", nodes)
	type result struct {
		addrs []string
		err   error
	}
	results := make([]result, nodes)
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); a, err := follow(p); results[i] = result{a, err} }()
	}
	wg.Wait()
	var peers []string
	for _, r := range results {
		if r.err != nil {
			return r.err
		}
		peers = append(peers, r.addrs...)
	}

	if err := interrupt(seed.cmd.Process); err != nil {
		return fmt.Errorf("stopping rpseed: %w", err)
	}
	select {
	case <-seed.done:
	case <-time.After(30 * time.Second):
		return errors.New("rpseed did not stop within 30s of being asked to")
	}
	d.logf("rpseed", "stopped")

	late, lateExe, err := startNode("late", peers)
	if err != nil {
		return err
	}
	d.logf("demo", "started a late hello 1.0.0 node that knows only the updated nodes")
	if _, err := follow(late); err != nil {
		return err
	}
	for _, exe := range append(exes, lateExe) {
		got, err := region.VerifyFile(context.Background(), exe, pub)
		if err != nil || got != in {
			return fmt.Errorf("%s: not the signed 2.0.0 after the update: %v", exe, err)
		}
	}
	d.logf("demo", "all %d executables verify as the signed 2.0.0; cleaning up", nodes+1)
	return nil
}
