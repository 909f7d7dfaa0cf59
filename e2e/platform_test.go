//go:build unix

package e2e

// Helpers of the tests that run or refuse release targets other than this
// machine's: hello cross-built for a target, signed for it, and the rpsign
// command.

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// rpsignPkg is the import path of the signing tool.
const rpsignPkg = "github.com/org/rustpatcher-go/cmd/rpsign"

// crossHello builds hello for target ("GOOS/GOARCH") with the release
// flags and key's public key linked in, as TestCrossCompiled and the
// release pipelines do (so the build cache serves them all). The binary is
// unsigned and shared: copy it before changing it.
func crossHello(t testing.TB, target string, key Key) string {
	t.Helper()
	goos, goarch, _ := strings.Cut(target, "/")
	return GoBuildWith(t, Build{
		Pkg:     helloPkg,
		LDFlags: "-s -w -X github.com/org/rustpatcher-go/client.linkedPublicKey=" + key.Public,
		Flags:   []string{"-trimpath"},
		Env:     []string{"CGO_ENABLED=0", "GOOS=" + goos, "GOARCH=" + goarch},
	})
}

// signedCopyAs copies src to dst and signs the copy with key as version in
// format f; a V1 signature is for target. It returns the signed region.
func signedCopyAs(t testing.TB, src, dst string, key Key, version, target string, f region.Format) region.Info {
	t.Helper()
	CopyFile(t, src, dst)
	opts := region.SignOptions{Version: version, Format: f}
	if f == region.V1 {
		opts.Target = target
	}
	in, err := region.Sign(context.Background(), dst, key.Private, opts)
	if err != nil {
		t.Fatalf("signing %s as %s %s: %v", dst, version, f, err)
	}
	return in
}

// run runs name with args within timeout and returns its combined output;
// the test fails if it does not exit 0.
func run(t testing.TB, timeout time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(t, timeout, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runErr is run returning the command's error instead of failing. env
// replaces the environment when not nil.
func runErr(t testing.TB, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not finish within %v:\n%s", name, strings.Join(args, " "), timeout, out)
	}
	return string(out), err
}
