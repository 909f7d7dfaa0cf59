package client

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// An EventKind says what an Event reports.
type EventKind int

// The kinds of events, in the order an update usually produces them.
const (
	// EventDisabled: updates are off for the life of this process; Err says
	// why (an unsigned build, a file that no longer matches its region, no
	// key for this target). Reported once.
	EventDisabled EventKind = iota + 1
	// EventVerified: the running binary's file verified against its own
	// region; Release is that region. Updates are on.
	EventVerified
	// EventRejected: a source offered a release that is not taken; Err
	// says why (not newer, bad signature, pre-release). Reported once per
	// release.
	EventRejected
	// EventFound: a newer release was chosen and its download starts.
	EventFound
	// EventProgress: Done of Total bytes of the release are downloaded.
	EventProgress
	// EventApplied: the release is verified, self-tested and in place of
	// the executable. It runs after the next restart.
	EventApplied
	// EventRestartScheduled: the program will restart at At.
	EventRestartScheduled
	// EventRestarting: the program is about to exec the new binary.
	EventRestarting
	// EventFailed: something went wrong; Err says what. If Release is set
	// the update to it was abandoned and the executable is unchanged.
	EventFailed
	// EventHealthy: the running update, on trial since it was applied,
	// ran Config.HealthyAfter or the program called Updater.Healthy: it
	// stays.
	EventHealthy
	// EventRolledBack: the running update did not become healthy in its
	// first Config.MaxUnhealthyStarts starts; the previous binary is back
	// in place and the program restarts into it. Release is the update
	// rolled back, not applied again (see ForgetRolledBack); Err says so.
	EventRolledBack
	// EventKeyRotated: a valid key rotation statement, signed by the key
	// trusted so far, moved this target to the owner key Key: releases
	// must be signed with it from now on, and the old one is refused.
	EventKeyRotated
)

var kindNames = map[EventKind]string{
	EventDisabled:         "disabled",
	EventVerified:         "verified",
	EventRejected:         "rejected",
	EventFound:            "found",
	EventProgress:         "progress",
	EventApplied:          "applied",
	EventRestartScheduled: "restart-scheduled",
	EventRestarting:       "restarting",
	EventFailed:           "failed",
	EventHealthy:          "healthy",
	EventRolledBack:       "rolled-back",
	EventKeyRotated:       "key-rotated",
}

// String returns the kind's name, such as "applied".
func (k EventKind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// An Event reports progress of the update engine to the app; see
// Config.OnEvent.
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// Release is the region of the release concerned (for EventVerified
	// and EventDisabled, the running binary's), if any.
	Release region.Info
	// Source names where the release came from, if anywhere.
	Source string
	// FileID names the exact file applied (EventApplied): see
	// region.Scanned.FileID.
	FileID [sha256.Size]byte
	// Key is the owner key trusted from now on (EventKeyRotated), in
	// z-base-32.
	Key string
	// Done and Total count bytes for EventProgress.
	Done, Total int64
	// At is the restart time for EventRestartScheduled.
	At time.Time
	// Err is the reason for EventDisabled, EventRejected and EventFailed.
	Err error
}

// String describes the event in one line.
func (e Event) String() string {
	s := e.Kind.String()
	if e.Release.Version != "" {
		s += " " + e.Release.Version
	}
	if e.Source != "" {
		s += " from " + e.Source
	}
	switch e.Kind {
	case EventProgress:
		s += fmt.Sprintf(" %d/%d bytes", e.Done, e.Total)
	case EventRestartScheduled:
		s += " at " + e.At.Format(time.RFC3339)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}
