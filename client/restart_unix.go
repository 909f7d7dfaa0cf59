//go:build unix

package client

import (
	"errors"
	"os/exec"
	"syscall"
)

// restartProcess replaces the process with a fresh run of path, keeping the
// pid, the standard streams, argv and the environment. It returns only on
// failure.
func restartProcess(path string, argv, env []string) error {
	return syscall.Exec(path, argv, env)
}

// isBusy reports whether starting a binary failed because it was still open
// for writing somewhere.
func isBusy(err error) bool { return errors.Is(err, syscall.ETXTBSY) }

// ownGroup runs cmd in its own process group and makes its cancellation
// kill the whole group, so that a hung self-test leaves no process behind.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
