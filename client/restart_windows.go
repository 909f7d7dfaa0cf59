//go:build windows

package client

import (
	"os"
	"os/exec"
)

// restartProcess starts path with argv's arguments, the environment and the
// standard streams, and exits the current process with status 0. Windows
// has no exec, so the new process gets a new pid, and deferred functions of
// the current one do not run. It returns only when the start failed.
func restartProcess(path string, argv, env []string) error {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	os.Exit(0)
	return nil
}

func isBusy(error) bool { return false }

// ownGroup does nothing on Windows: cancellation kills the process only.
func ownGroup(*exec.Cmd) {}
