//go:build unix

package client

import (
	"errors"
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
