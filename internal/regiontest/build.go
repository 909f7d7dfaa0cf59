package regiontest

import (
	"context"
	"os/exec"
	"runtime"
)

// GoBuildCmd returns the command that builds the main package pkg, with the
// go build flags in flags (such as -ldflags and its value), into the file
// out, an absolute path.
//
// On unix it runs "go run -exec cp FLAGS PKG OUT": go run keeps the
// executables it links in the build cache (Go 1.24 and later), and -exec cp
// copies the one it built or found there to out instead of running it. A
// second run of the tests, with the same sources and flags, so copies a
// binary instead of linking it again, which takes seconds for each binary
// that links libp2p. Where there is no cp (Windows) it is go build -o OUT.
// The caller sets the command's Dir and Env as for go build.
func GoBuildCmd(ctx context.Context, out, pkg string, flags ...string) *exec.Cmd {
	var args []string
	if cp, err := exec.LookPath("cp"); err == nil && runtime.GOOS != "windows" {
		args = append(append(append([]string{"run", "-exec", cp}, flags...), pkg), out)
	} else {
		args = append(append([]string{"build", "-o", out}, flags...), pkg)
	}
	return exec.CommandContext(ctx, GoTool(), args...)
}
