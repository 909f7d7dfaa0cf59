//go:build unix

package main

import (
	"os"
	"os/exec"
	"syscall"
)

// ownGroup starts cmd in a process group of its own, so that kill stops it
// with any process it started.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// kill stops cmd's process group at once.
func kill(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// interrupt asks a process to stop cleanly (SIGTERM).
func interrupt(p *os.Process) error {
	return p.Signal(syscall.SIGTERM)
}
