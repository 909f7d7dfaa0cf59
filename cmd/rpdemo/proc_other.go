//go:build !unix

package main

import (
	"os"
	"os/exec"
)

// ownGroup does nothing here: cmd runs as a plain child process.
func ownGroup(*exec.Cmd) {}

// kill stops cmd's process at once.
func kill(cmd *exec.Cmd) error {
	return cmd.Process.Kill()
}

// interrupt stops a process. Windows cannot send another process an
// interrupt, so it is killed.
func interrupt(p *os.Process) error {
	return p.Kill()
}
