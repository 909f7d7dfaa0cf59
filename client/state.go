package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/org/rustpatcher-go/internal/rotation"
)

// Defaults of the rollback settings.
const (
	DefaultHealthyAfter       = time.Minute
	defaultMaxUnhealthyStarts = 2
)

// stateSuffix is appended to the executable's path to name the file where
// the engine keeps, across restarts, the update on trial and the files it
// rolled back.
const stateSuffix = ".rustpatcher.json"

// maxRolledBack bounds the files the state remembers as rolled back.
const maxRolledBack = 64

// A savedState is all that the engine keeps next to the executable, in
// <exe>.rustpatcher.json, across restarts: the update on trial, the files
// rolled back, the key rotations followed and the rollout record.
//
// The update on trial is the one the engine applied last: until the new
// version is healthy (it ran HealthyAfter, or the app said so), each start
// of it counts, unless it ends in a clean stop (the program called
// Updater.Close); at the start after MaxUnhealthyStarts unhealthy ones, the
// previous binary (<exe>.old) is put back and the new file is remembered as
// rolled back, never applied again (until ForgetRolledBack).
//
// A start is counted as it begins, before the program goes on, so that a
// crash, a kill or a hang that is then killed leaves it counted; Close
// takes it back (see pipeline.stopped).
type savedState struct {
	// New is the file ID of the update on trial; empty when none is.
	New string `json:"new,omitempty"`
	// Version and Previous are the versions of the update and of the
	// binary it replaced (kept as <exe>.old).
	Version  string `json:"version,omitempty"`
	Previous string `json:"previous,omitempty"`
	// Starts counts the starts of New that did not become healthy and
	// did not end in a clean stop.
	Starts int `json:"starts,omitempty"`
	// RolledBack lists the file IDs of updates rolled back, oldest
	// first.
	RolledBack []string `json:"rolled_back,omitempty"`
	// Rotations holds the key rotation statements the engine followed
	// (their text form), oldest first: see Config's key.
	Rotations []string `json:"rotations,omitempty"`
	// The rollout bucket and statement (see rollouts).
	rolloutRecord
}

// statePath returns the path of the state file of the executable exe.
func statePath(exe string) string { return exe + stateSuffix }

// loadState reads the state of the executable exe; a missing file is an
// empty state.
func loadState(exe string) (savedState, error) {
	var t savedState
	b, err := os.ReadFile(statePath(exe))
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return savedState{}, fmt.Errorf("%s: %w (delete it to start afresh)", statePath(exe), err)
	}
	return t, nil
}

// save writes the state atomically: a temporary file in the executable's
// directory, synced and renamed over the state file.
func (t savedState) save(exe string) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	path := statePath(exe)
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("saving %s: %w", path, err)
	}
	return nil
}

// hexID is the form of file IDs in the state file.
func hexID(id [sha256.Size]byte) string { return hex.EncodeToString(id[:]) }

// begin puts the file id, version v replacing previous, on trial.
func (t *savedState) begin(id [sha256.Size]byte, v, previous string) {
	t.New, t.Version, t.Previous, t.Starts = hexID(id), v, previous, 0
}

// onTrial reports whether the file id is the update on trial.
func (t savedState) onTrial(id [sha256.Size]byte) bool {
	return t.New != "" && t.New == hexID(id)
}

// healthy ends the trial: the update stays.
func (t *savedState) healthy() { t.New, t.Version, t.Previous, t.Starts = "", "", "", 0 }

// rotations returns the statements kept, parsed; ones that do not parse
// are left out (they are checked again anyway: see rotation.Follow).
func (t savedState) rotations() []rotation.Statement {
	var out []rotation.Statement
	for _, text := range t.Rotations {
		if s, err := rotation.Parse([]byte(text)); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// setRotations keeps the chain of statements followed.
func (t *savedState) setRotations(chain []rotation.Statement) {
	t.Rotations = t.Rotations[:0]
	for _, s := range chain {
		b, _ := s.MarshalText()
		t.Rotations = append(t.Rotations, string(b))
	}
}

// rollBack ends the trial: the update is remembered as rolled back.
func (t *savedState) rollBack() {
	t.RolledBackFrom = t.Version
	t.RolledBack = append(t.RolledBack, t.New)
	if len(t.RolledBack) > maxRolledBack {
		t.RolledBack = t.RolledBack[len(t.RolledBack)-maxRolledBack:]
	}
	t.healthy()
}

// ForgetRolledBack gives the updates rolled back for the executable at exe
// another chance: it clears the record, kept in <exe>.rustpatcher.json, of
// the files that did not become healthy, so that the next Spawn applies such
// a file again when a source offers it. Empty exe means the running
// program's own executable. Call it when no Updater runs for exe (before
// Spawn, or from another program): a running engine keeps its own copy of
// the record until it stops. A newer release never needs it: the record
// names files, and a newer release is another file.
//
// The rest of the state (an update on trial, key rotations followed) is
// kept. It is not an error that there is nothing to forget.
func ForgetRolledBack(exe string) error {
	if exe == "" {
		var err error
		if exe, err = executable(); err != nil {
			return err
		}
	}
	t, err := loadState(exe)
	if err != nil {
		return err
	}
	if len(t.RolledBack) == 0 {
		return nil
	}
	t.RolledBack = nil
	return t.save(exe)
}

// stopped runs when Close has stopped the engine: a clean stop. If the
// running binary is the update on trial and it has not become healthy,
// its start is taken back: stopping a program is not the program failing.
// A start that ends otherwise (a crash, a kill, an exit without Close)
// stays counted.
func (p *pipeline) stopped() {
	if p.healthyAt.IsZero() || p.verified == nil || !p.state.onTrial(p.verified.id) || p.state.Starts <= 0 {
		return
	}
	p.state.Starts--
	p.saveState()
	p.log.Info("stopped cleanly while the update is on trial; this start does not count against it", "version", p.state.Version, "unhealthy_starts", p.state.Starts, "of", p.cfg.MaxUnhealthyStarts)
}

// rolledBackHint says, in the rollback message, how to try the file again.
func rolledBackHint(exe string) string {
	return "a newer release is applied as usual; to try this one again, call client.ForgetRolledBack before Spawn, or delete the \"rolled_back\" list in " + statePath(exe)
}

// rolledBack returns the file IDs rolled back.
func (t savedState) rolledBack() [][sha256.Size]byte {
	var out [][sha256.Size]byte
	for _, s := range t.RolledBack {
		var id [sha256.Size]byte
		if b, err := hex.DecodeString(s); err == nil && len(b) == len(id) {
			copy(id[:], b)
			out = append(out, id)
		}
	}
	return out
}
