//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/testtools"
)

// A winePrefix is a fresh Wine prefix (a C: drive and registry) that runs
// windows/amd64 console programs headless.
type winePrefix struct {
	wine string   // the wine64 loader
	env  []string // added to a program's environment
}

// unsetForWine are the variables a Wine program does not get, so that it
// never looks for a display: hello is a console program.
var unsetForWine = []string{"DISPLAY", "WAYLAND_DISPLAY"}

// newWinePrefix makes a Wine prefix in a temporary directory and puts the
// stand-in bcryptprimitives.dll into its system32, built from
// testdata/bcryptprimitives with MinGW: Go 1.26 programs take their random
// bytes from its ProcessPrng, which Wine 8.0 lacks. The prefix's
// wineserver runs, persistent, until the test ends, so that the services
// Wine starts with it (which inherit the starting program's output) are
// started once, by wineboot, and not by a program under test.
func newWinePrefix(t *testing.T, wine, mingw string) *winePrefix {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "wineprefix")
	w := &winePrefix{
		wine: wine,
		env: []string{
			"WINEPREFIX=" + dir,
			"WINEDEBUG=-all",
			// No Mono or Gecko installer, no desktop menu entries.
			"WINEDLLOVERRIDES=mscoree,mshtml=;winemenubuilder.exe=d",
		},
	}
	server := filepath.Join(filepath.Dir(wine), "wineserver")
	start := time.Now()
	t.Cleanup(func() {
		// Ends every process of the prefix and its server, and waits
		// for the server to save the registry and exit before the
		// prefix is removed.
		if out, err := w.runErr(t, time.Minute, server, "-k"); err != nil {
			t.Logf("wineserver -k: %v: %s", err, out)
		}
		if out, err := w.runErr(t, time.Minute, server, "-w"); err != nil {
			t.Logf("wineserver -w: %v: %s", err, out)
		}
	})
	logs := t.TempDir()
	// A persistent server needs the prefix's directory; wine fills it.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w.runTo(t, time.Minute, filepath.Join(logs, "wineserver.log"), server, "-p")
	w.runTo(t, 3*time.Minute, filepath.Join(logs, "wineboot.log"), wine, "wineboot", "--init")
	dll := filepath.Join(dir, "drive_c", "windows", "system32", "bcryptprimitives.dll")
	src, err := filepath.Abs(filepath.Join("testdata", "bcryptprimitives"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, 2*time.Minute, nil, mingw, "-shared", "-O2", "-s", "-o", dll,
		filepath.Join(src, "processprng.c"), filepath.Join(src, "bcryptprimitives.def"), "-ladvapi32")
	t.Logf("Wine prefix ready in %v", time.Since(start).Round(100*time.Millisecond))
	return w
}

// environ returns the environment of a command run in the prefix.
func (w *winePrefix) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !slices.Contains(unsetForWine, name) {
			env = append(env, kv)
		}
	}
	return append(env, w.env...)
}

func (w *winePrefix) runErr(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	return runErr(t, timeout, w.environ(), name, args...)
}

// runTo runs name with the prefix's environment and its output going to
// the file log, not to a pipe: processes it leaves running (Wine's
// services) hold on to their output.
func (w *winePrefix) runTo(t *testing.T, timeout time.Duration, log, name string, args ...string) {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(name, args...)
	cmd.Env = w.environ()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		err = <-done
		t.Errorf("%s %s did not finish within %v", name, strings.Join(args, " "), timeout)
	}
	if err != nil {
		out, _ := os.ReadFile(log)
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// start runs the windows program exe (a Linux path) with args.
func (w *winePrefix) start(t *testing.T, exe string, args ...string) *Proc {
	t.Helper()
	return StartWith(t, StartOptions{Env: w.env, Unset: unsetForWine}, w.wine, append([]string{exe}, args...)...)
}

// winPath returns the Windows name of a Linux path in a Wine prefix:
// Wine's Z: drive is the Linux root.
func winPath(p string) string {
	return "Z:" + strings.ReplaceAll(p, "/", `\`)
}

// authenticode signs and verifies PE files with osslsigncode and a
// self-signed code-signing certificate, as a release pipeline would with
// signtool or osslsigncode and a real one.
type authenticode struct {
	osslsigncode string
	cert, key    string
}

// newAuthenticode makes a self-signed code-signing certificate with
// openssl.
func newAuthenticode(t *testing.T, osslsigncode, openssl string) *authenticode {
	t.Helper()
	dir := t.TempDir()
	a := &authenticode{osslsigncode: osslsigncode, cert: filepath.Join(dir, "cs.crt"), key: filepath.Join(dir, "cs.key")}
	run(t, time.Minute, nil, openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
		"-keyout", a.key, "-out", a.cert, "-days", "2", "-subj", "/CN=rustpatcher-go e2e code signing",
		"-addext", "extendedKeyUsage=codeSigning", "-addext", "keyUsage=digitalSignature")
	return a
}

// sign Authenticode-signs the PE file at path in place (replacing any
// Authenticode signature it has).
func (a *authenticode) sign(t *testing.T, path string) {
	t.Helper()
	out := path + ".authenticode"
	run(t, time.Minute, nil, a.osslsigncode, "sign", "-certs", a.cert, "-key", a.key, "-h", "sha256",
		"-n", "hello", "-in", path, "-out", out)
	if err := os.Rename(out, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// verify checks the file's Authenticode signature.
func (a *authenticode) verify(t *testing.T, path string) error {
	t.Helper()
	out, err := runErr(t, time.Minute, nil, a.osslsigncode, "verify", "-CAfile", a.cert, "-in", path)
	if err != nil {
		return &cmdError{err: err, out: out}
	}
	return nil
}

// cmdError is a failed command and what it printed.
type cmdError struct {
	err error
	out string
}

func (e *cmdError) Error() string { return e.err.Error() + ": " + e.out }

// TestWindowsWine runs hello built for windows/amd64 under Wine, which
// enforces Windows' rule that a running .exe can be renamed but not
// overwritten. Both releases are signed the documented way, rpsign first,
// then Authenticode (osslsigncode here, signtool elsewhere); both
// signatures must hold on both versions. 1.0.0 then updates itself to
// 2.0.0 from a --source directory in mode now (the restart starts the new
// binary and exits, keeping the arguments) and in mode onrestart (the next
// start, by hand, runs 2.0.0); the executable ends byte for byte the
// signed 2.0.0, Authenticode signature included. All subtests share one
// Wine prefix.
func TestWindowsWine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs hello under Wine; skipped with -short")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("Wine runs windows/amd64 programs on amd64 machines only")
	}
	tools := testtools.Commands(t,
		testtools.Package{Name: "wine64", Command: "/usr/lib/wine/wine64"},
		testtools.Package{Name: "gcc-mingw-w64-x86-64", Command: "x86_64-w64-mingw32-gcc"},
		testtools.Package{Name: "osslsigncode", Command: "osslsigncode"},
		testtools.Package{Name: "openssl", Command: "openssl"},
	)
	const target = "windows/amd64"
	key := OwnerKey(t)
	rpsign := GoBuild(t, rpsignPkg, "")
	bin := crossHello(t, target, key)
	signEnv := append(toolEnv(), "RP_KEY_WINDOWS_AMD64="+key.Secret)
	auth := newAuthenticode(t, tools[2], tools[3])
	wine := newWinePrefix(t, tools[0], tools[1])

	// checkSigned checks both signatures of the file at path.
	checkSigned := func(t *testing.T, path, version string) {
		t.Helper()
		if err := auth.verify(t, path); err != nil {
			t.Errorf("osslsigncode verify %s: %v", path, err)
		}
		if out, err := runErr(t, time.Minute, nil, rpsign, "verify", path, "--pub", key.Public); err != nil || !strings.Contains(out, "OK, version "+version) {
			t.Errorf("rpsign verify %s: %v: %s", path, err, out)
		}
	}
	dir := t.TempDir()
	rels := filepath.Join(dir, "releases")
	old := filepath.Join(dir, "hello-1.0.0.exe")
	next := filepath.Join(rels, "hello-2.0.0.exe")
	// The releases, signed in the documented order: rpsign, then
	// Authenticode. Both signatures hold.
	for v, p := range map[string]string{"1.0.0": old, "2.0.0": next} {
		CopyFile(t, bin, p)
		run(t, time.Minute, signEnv, rpsign, "sign", p, "--key-env", "RP_KEY_WINDOWS_AMD64", "--version", v)
		auth.sign(t, p)
		checkSigned(t, p, v)
		out := run(t, time.Minute, nil, rpsign, "inspect", p)
		if !strings.Contains(out, "bytes of OS code signature") || !strings.Contains(out, "matches:    yes") {
			t.Errorf("rpsign inspect %s:\n%s", p, out)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("Authenticode then rpsign", func(t *testing.T) {
		// The wrong order: the region invalidates the Authenticode
		// signature, and rpsign says so; signing with Authenticode again
		// mends it and leaves the release's signature valid.
		p := filepath.Join(t.TempDir(), "hello.exe")
		CopyFile(t, bin, p)
		auth.sign(t, p)
		out := run(t, time.Minute, signEnv, rpsign, "sign", p, "--key-env", "RP_KEY_WINDOWS_AMD64", "--version", "1.0.0")
		if !strings.Contains(out, "carries an Authenticode signature, which the region invalidated") {
			t.Errorf("rpsign sign does not say that it invalidated the Authenticode signature:\n%s", out)
		}
		if err := auth.verify(t, p); err == nil {
			t.Error("osslsigncode verify passes after rpsign changed the file")
		}
		auth.sign(t, p)
		checkSigned(t, p, "1.0.0")
	})

	// install puts the signed 1.0.0 in a directory of its own.
	install := func(t *testing.T) string {
		exe := filepath.Join(t.TempDir(), "app", "hello.exe")
		CopyFile(t, old, exe)
		return exe
	}
	// checkUpdated checks the executable and its backup after the update.
	checkUpdated := func(t *testing.T, exe string) {
		t.Helper()
		if !sameBytes(t, exe, next) {
			t.Error("the executable differs from the Authenticode-signed 2.0.0")
		}
		checkSigned(t, exe, "2.0.0")
		if !sameBytes(t, exe+".old", old) {
			t.Error("hello.exe.old is not the previous 1.0.0")
		}
	}
	args := []string{"--source", winPath(rels), "--interval", "1s", "a", "b"}

	t.Run("now", func(t *testing.T) {
		exe := install(t)
		start := time.Now()
		p := wine.start(t, exe, append([]string{"--mode", "now"}, args...)...)
		p.WaitLine(0, time.Minute, `^hello 1\.0\.0 args=a b$`)
		_, i := p.WaitLine(0, 2*time.Minute, `^hello 2\.0\.0 args=a b$`)
		t.Logf("1.0.0 started, updated and restarted as 2.0.0 in %v under Wine", time.Since(start).Round(100*time.Millisecond))
		if _, _, err := p.FindLine(0, 0, `msg="restarting into the update"`); err != nil {
			t.Errorf("no restart logged before line %d: %v", i, err)
		}
		checkUpdated(t, exe)
		p.Kill()
	})

	t.Run("onrestart", func(t *testing.T) {
		exe := install(t)
		p := wine.start(t, exe, append([]string{"--mode", "onrestart"}, args...)...)
		p.WaitLine(0, time.Minute, `^hello 1\.0\.0 args=a b$`)
		_, i := p.WaitLine(0, 2*time.Minute, `msg="update applied"`)
		if l, _, err := p.FindLine(i, 2500*time.Millisecond, `^hello 2\.0\.0|restarting`); err == nil {
			t.Fatalf("mode onrestart restarted by itself: %q", l.Text)
		}
		if p.Exited() {
			t.Fatal("hello exited after applying the update")
		}
		checkUpdated(t, exe)
		p.Kill()
		// The restart by hand runs 2.0.0.
		p2 := wine.start(t, exe, append([]string{"--mode", "onrestart"}, args...)...)
		p2.WaitLine(0, time.Minute, `^hello 2\.0\.0 args=a b$`)
		p2.Kill()
	})
}
