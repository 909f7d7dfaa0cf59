// Package e2e holds the multi-process end-to-end tests. They are Unix
// programs (process groups, signals, exec), so every file but this one is
// built for Unix only; on Windows the package is empty, and go test ./...
// passes over it instead of failing to set it up.
package e2e
