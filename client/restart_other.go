//go:build !unix && !windows

package client

import (
	"fmt"
	"os/exec"
	"runtime"
)

// restartProcess is not possible on this system: the update runs at the
// next start.
func restartProcess(path string, argv, env []string) error {
	return fmt.Errorf("restarting is not supported on %s", runtime.GOOS)
}

func isBusy(error) bool { return false }

// ownGroup does nothing here: cancellation kills the process only.
func ownGroup(*exec.Cmd) {}
