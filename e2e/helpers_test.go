//go:build unix

// Package e2e holds the multi-process end-to-end tests: they build real
// binaries, sign them with real keys, run them as real processes and look at
// the files they leave on disk.
//
// This file holds the helpers every e2e test shares. It also owns TestMain,
// so no other file in the package may define one.
package e2e

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// helloPkg is the import path of the example app the e2e tests run.
const helloPkg = "github.com/org/rustpatcher-go/examples/hello"

// builds caches the binaries built during one run of the test binary, keyed
// by package and linker flags, in buildDir. TestMain creates and removes
// buildDir; the cache lives only as long as the test process.
type buildCache struct {
	dir  string
	key  Key // see OwnerKey
	mu   sync.Mutex
	bin  map[string]*buildResult
	keys map[string]int // NewKey's calls so far, by test name
}

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// builds is created by TestMain; it is the one piece of shared state in the
// package and exists so that every test can reuse a binary built once.
var builds *buildCache

// parallelTests is how many of the tests that call t.Parallel run at once
// by default. Those are the tests that mostly wait, on a scheduled minute,
// a trial, a stalling mirror or a crashing program, with one or two
// processes and little CPU; the CPU-heavy tests (floods, networks of many
// nodes, builds, act, goreleaser) and those that bound a time by what the
// machine does in it run one after the other, before the parallel ones
// start. go test's default, GOMAXPROCS, would run two of the waiting tests
// at a time on a 2-core machine.
const parallelTests = 8

// TestMain creates the directory that holds the binaries built by GoBuild,
// and removes it after all tests ran.
//
// Unless -test.parallel is given, it runs up to parallelTests parallel
// tests at once rather than GOMAXPROCS: see parallelTests.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", strconv.Itoa(parallelTests)); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			os.Exit(2)
		}
	}
	dir, err := os.MkdirTemp("", "rustpatcher-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	builds = &buildCache{dir: dir, key: testKey("owner"), bin: map[string]*buildResult{}, keys: map[string]int{}}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// GoBuild builds the main package pkg (an import path or a directory) with
// the given -ldflags and returns the path of the binary. It builds each
// (pkg, ldflags) pair once per test run (go build's own cache makes repeats
// cheap anyway); the returned file is shared between tests and must not be
// modified: copy it first, for example with SignedCopy.
func GoBuild(t testing.TB, pkg, ldflags string) string {
	t.Helper()
	return GoBuildWith(t, Build{Pkg: pkg, LDFlags: ldflags})
}

// A Build says how to build a main package.
type Build struct {
	// Pkg is the import path or directory of the main package.
	Pkg string
	// LDFlags are passed as -ldflags when not empty.
	LDFlags string
	// Flags are more go build flags, such as -trimpath.
	Flags []string
	// Env is added to the environment, such as GOOS=windows.
	Env []string
	// Dir, if set, is the directory go build runs in: another checkout
	// of the module, whose Pkg (such as ./examples/hello) is built.
	Dir string
}

// GoBuildWith is GoBuild with more build settings; each distinct Build is
// built once per test run.
func GoBuildWith(t testing.TB, b Build) string {
	t.Helper()
	if builds == nil {
		t.Fatal("GoBuild: TestMain did not run")
	}
	path, err := goBuild(b)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// GoBuildAll is GoBuildWith for several Builds at once, side by side (a
// link waits on the disk and on one core much of the time); it returns
// their paths in order.
func GoBuildAll(t testing.TB, bs ...Build) []string {
	t.Helper()
	if builds == nil {
		t.Fatal("GoBuild: TestMain did not run")
	}
	paths := make([]string, len(bs))
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Go(func() { paths[i], errs[i] = goBuild(b) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return paths
}

// goBuild builds b, once per test run.
func goBuild(b Build) (string, error) {
	key := fmt.Sprintf("%q", []any{b.Pkg, b.LDFlags, b.Flags, b.Env, b.Dir})
	builds.mu.Lock()
	r, ok := builds.bin[key]
	if !ok {
		r = &buildResult{}
		builds.bin[key] = r
	}
	n := len(builds.bin)
	builds.mu.Unlock()
	r.once.Do(func() {
		out := filepath.Join(builds.dir, fmt.Sprintf("%s-%d", filepath.Base(b.Pkg), n))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var flags []string
		if b.LDFlags != "" {
			flags = append(flags, "-ldflags", b.LDFlags)
		}
		// GoBuildCmd: a run whose sources did not change copies its
		// binaries from go run's cache instead of linking them again.
		cmd := regiontest.GoBuildCmd(ctx, out, b.Pkg, append(flags, b.Flags...)...)
		cmd.Env = append(os.Environ(), b.Env...)
		cmd.Dir = b.Dir
		if msg, err := cmd.CombinedOutput(); err != nil {
			r.err = fmt.Errorf("%v %s: %w\n%s", b.Env, strings.Join(cmd.Args, " "), err, msg)
			return
		}
		r.path = out
	})
	return r.path, r.err
}

// BuildHello builds examples/hello with pub (a z-base-32 public key, or ""
// for a build that cannot update) embedded as its owner key through
// -ldflags "-X github.com/org/rustpatcher-go/client.linkedPublicKey=<pub>". The binary is unsigned and shared: copy
// it with SignedCopy before running or changing it.
func BuildHello(t testing.TB, pub string) string {
	t.Helper()
	ldflags := ""
	if pub != "" {
		ldflags = "-X github.com/org/rustpatcher-go/client.linkedPublicKey=" + pub
	}
	return GoBuild(t, helloPkg, ldflags)
}

// BuildHelloQUIC is BuildHello with the tag hello_quic: a hello that asks
// for QUIC (client/quic) besides TCP.
func BuildHelloQUIC(t testing.TB, pub string) string {
	t.Helper()
	return GoBuildWith(t, Build{Pkg: helloPkg, LDFlags: "-X github.com/org/rustpatcher-go/client.linkedPublicKey=" + pub, Flags: []string{"-tags", "hello_quic"}})
}

// A Key is an owner key pair made for one test.
type Key struct {
	// Private signs releases.
	Private ed25519.PrivateKey
	// Public is the z-base-32 public key, as apps embed it.
	Public string
	// Secret is the z-base-32 seed, as key files hold it.
	Secret string
}

// OwnerKey returns the owner key shared by all tests (the same in every
// run, like NewKey's, and none of NewKey's). Building
// hello for a key links a new binary (seconds), so tests that do not need a
// key of their own use this one with BuildHello, and NewKey for the
// "another owner" cases.
func OwnerKey(t testing.TB) Key {
	t.Helper()
	if builds == nil {
		t.Fatal("OwnerKey: TestMain did not run")
	}
	return builds.key
}

// NewKey returns an owner key of the test's own, other than OwnerKey and
// than the key of every other call: the Nth call in the test named T gets
// the key whose seed is the SHA-256 of "rustpatcher-go e2e key T#N".
//
// The keys are the same in every run of the tests, so that a hello built
// for one (its public key linked in) is the same binary each time and
// GoBuild finds it in go run's cache instead of linking it again; they are
// test keys and sign nothing outside the tests' temporary directories.
func NewKey(t testing.TB) Key {
	t.Helper()
	if builds == nil {
		t.Fatal("NewKey: TestMain did not run")
	}
	builds.mu.Lock()
	n := builds.keys[t.Name()]
	builds.keys[t.Name()]++
	builds.mu.Unlock()
	return testKey(fmt.Sprintf("%s#%d", t.Name(), n))
}

// testKey derives the key named name (see NewKey).
func testKey(name string) Key {
	seed := sha256.Sum256([]byte("rustpatcher-go e2e key " + name))
	priv := ed25519.NewKeyFromSeed(seed[:])
	return Key{Private: priv, Public: region.EncodePublicKey(priv.Public().(ed25519.PublicKey)), Secret: region.EncodeSecretKey(priv)}
}

// CopyFile copies src to dst, streaming, and gives dst the mode 0755. It
// creates dst's directory if needed.
func CopyFile(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatalf("copying %s to %s: %v", src, dst, err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		t.Fatal(err)
	}
}

// SignedCopy copies the binary src to dst and signs the copy in place with
// key as version (through region.SignFile). It returns the signed region.
func SignedCopy(t testing.TB, src, dst string, key Key, version string) region.Info {
	t.Helper()
	CopyFile(t, src, dst)
	in, err := region.SignFile(context.Background(), dst, key.Private, version, runtime.GOOS+"/"+runtime.GOARCH)
	if err != nil {
		t.Fatalf("signing %s as %s: %v", dst, version, err)
	}
	return in
}

// FileSum returns the hex SHA-256 of the file at path, to check that a file
// did or did not change.
func FileSum(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FileVersion verifies the binary at path with the public key pub and returns
// its signed version, or an error saying why it does not verify.
func FileVersion(path, pub string) (string, error) {
	k, err := region.ParsePublicKey(pub)
	if err != nil {
		return "", err
	}
	in, err := region.VerifyFile(context.Background(), path, k)
	if err != nil {
		return "", err
	}
	return in.Version, nil
}

// A versionWatch reads the signed version of a file with FileVersion for a
// wait that asks again and again: it reads the file again only once it
// changed (another inode, size or modification time), or when it last read
// it within a second of its modification time (a write in place may have
// gone on while it read, within the clock's resolution). A wait that
// hashed a 30 MB binary every 50 ms would keep a core busy, which the
// processes under test need.
type versionWatch struct {
	path, pub string
	st        os.FileInfo
	read      time.Time
	v         string
	err       error
}

// version returns the file's signed version, or why it does not verify.
func (w *versionWatch) version() (string, error) {
	st, err := os.Stat(w.path)
	if err != nil {
		return "", err
	}
	if w.st == nil || !os.SameFile(st, w.st) || st.Size() != w.st.Size() || !st.ModTime().Equal(w.st.ModTime()) || w.read.Before(st.ModTime().Add(time.Second)) {
		w.st, w.read = st, time.Now()
		w.v, w.err = FileVersion(w.path, w.pub)
	}
	return w.v, w.err
}

// A Line is one line a process wrote.
type Line struct {
	// Stream is "stdout" or "stderr".
	Stream string
	// Text is the line without its newline.
	Text string
	// At is when the test read the line.
	At time.Time
}

// A Proc is a running process whose stdout and stderr are captured line by
// line. Every line is also logged with t.Logf, so a failing test shows what
// the process said.
type Proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []Line
	changed chan struct{} // closed and replaced whenever lines or exited change
	exited  bool
	err     error // from cmd.Wait, valid once exited

	readers sync.WaitGroup
	done    chan struct{} // closed when the process was reaped
}

// StartOptions adjust how Start runs a process.
type StartOptions struct {
	// Env is added to the test process's environment.
	Env []string
	// Unset names variables of the test process's environment that the
	// process does not get, such as DISPLAY.
	Unset []string
	// Dir is the working directory; empty means the test's current one.
	Dir string
	// Credential, if set, runs the process as another user (the test
	// runs as root).
	Credential *syscall.Credential
}

// Start runs the binary at path with args and captures its output. The
// process runs in its own process group; a cleanup registered with t kills
// the whole group and waits for it, so no process outlives its test.
func Start(t testing.TB, path string, args ...string) *Proc {
	t.Helper()
	return StartWith(t, StartOptions{}, path, args...)
}

// StartWith is Start with options.
func StartWith(t testing.TB, opt StartOptions, path string, args ...string) *Proc {
	t.Helper()
	var (
		cmd            *exec.Cmd
		stdout, stderr io.ReadCloser
	)
	// A file just written (a signed copy) cannot be executed while
	// another process holds it open for writing (ETXTBSY): a process
	// forked meanwhile by another test running in parallel inherits the
	// descriptor until it execs (golang.org/issue/22315). So the start
	// is tried again, for a few seconds at most.
	for attempt := 0; ; attempt++ {
		cmd = exec.Command(path, args...)
		for _, kv := range os.Environ() {
			if name, _, _ := strings.Cut(kv, "="); !slices.Contains(opt.Unset, name) {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, opt.Env...)
		cmd.Dir = opt.Dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: opt.Credential}
		var err error
		if stdout, err = cmd.StdoutPipe(); err != nil {
			t.Fatal(err)
		}
		if stderr, err = cmd.StderrPipe(); err != nil {
			t.Fatal(err)
		}
		err = cmd.Start()
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ETXTBSY) || attempt >= 100 {
			t.Fatalf("starting %s: %v", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := &Proc{
		t:       t,
		name:    filepath.Base(path),
		cmd:     cmd,
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	p.name = fmt.Sprintf("%s[%d]", p.name, cmd.Process.Pid)
	p.readers.Add(2)
	go p.read("stdout", stdout)
	go p.read("stderr", stderr)
	go func() {
		// Reading must finish before Wait closes the pipes.
		p.readers.Wait()
		err := cmd.Wait()
		p.mu.Lock()
		p.exited, p.err = true, err
		p.notifyLocked()
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

func (p *Proc) read(stream string, r io.Reader) {
	defer p.readers.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := Line{Stream: stream, Text: sc.Text(), At: time.Now()}
		p.t.Logf("%s %s: %s", p.name, stream, line.Text)
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.notifyLocked()
		p.mu.Unlock()
	}
	// Drain anything left (an over-long line) so the process never blocks.
	io.Copy(io.Discard, r)
}

func (p *Proc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Pid returns the process id. It stays the same across a restart by exec.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Lines returns a copy of all lines captured so far, in the order they were
// read (the order between stdout and stderr is only approximate).
func (p *Proc) Lines() []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Line(nil), p.lines...)
}

// Output returns all captured lines as text, one "stream: text" per line, for
// error messages.
func (p *Proc) Output() string {
	var b strings.Builder
	for _, l := range p.Lines() {
		fmt.Fprintf(&b, "%s: %s\n", l.Stream, l.Text)
	}
	return b.String()
}

// ErrExited is returned by WaitLine when the process exits before a matching
// line appears.
var ErrExited = errors.New("process exited")

// WaitLine waits at most timeout for a line on either stream that matches
// re, looking at lines from index from onwards (0 for all lines captured
// since the start; use len(p.Lines()) to wait only for new ones). It returns
// the line and its index. It fails the test when the time is up or the
// process exits first.
func (p *Proc) WaitLine(from int, timeout time.Duration, re string) (Line, int) {
	p.t.Helper()
	l, i, err := p.FindLine(from, timeout, re)
	if err != nil {
		p.t.Fatalf("%s: %v\noutput so far:\n%s", p.name, err, p.Output())
	}
	return l, i
}

// FindLine is WaitLine returning an error instead of failing the test.
func (p *Proc) FindLine(from int, timeout time.Duration, re string) (Line, int, error) {
	rx, err := regexp.Compile(re)
	if err != nil {
		return Line{}, -1, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if rx.MatchString(p.lines[i].Text) {
				l := p.lines[i]
				p.mu.Unlock()
				return l, i, nil
			}
		}
		from = max(from, len(p.lines))
		exited, werr, changed := p.exited, p.err, p.changed
		p.mu.Unlock()
		if exited {
			return Line{}, -1, fmt.Errorf("%w (%v) before printing a line matching %q", ErrExited, werr, re)
		}
		select {
		case <-changed:
		case <-timer.C:
			return Line{}, -1, fmt.Errorf("no line matching %q within %v", re, timeout)
		}
	}
}

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("%s: signal %v: %v", p.name, sig, err)
	}
}

// Wait waits at most timeout for the process to exit and returns its exit
// error (nil for status 0). It fails the test when the process is still
// running after timeout.
func (p *Proc) Wait(timeout time.Duration) error {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s: still running after %v\noutput so far:\n%s", p.name, timeout, p.Output())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop asks the process to stop with SIGINT and waits at most timeout for
// it to exit, then kills it. It returns the exit error.
func (p *Proc) Stop(timeout time.Duration) error {
	p.t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Errorf("%s: did not stop within %v of SIGINT; killing it", p.name, timeout)
		p.Kill()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Kill kills the process's whole group with SIGKILL and waits (at most ten
// seconds) until it is reaped. It is safe to call more than once and is
// registered as a cleanup by Start.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s: not reaped 10s after SIGKILL", p.name)
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Eventually calls cond every 50ms until it returns true or timeout passes;
// then it fails the test with msg.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sameBytes reports whether the files a and b have the same contents.
func sameBytes(t testing.TB, a, b string) bool {
	t.Helper()
	return FileSum(t, a) == FileSum(t, b)
}
