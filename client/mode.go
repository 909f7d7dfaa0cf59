package client

import (
	"fmt"
	"strconv"
	"strings"
)

// A Mode says when an applied update starts running. The zero Mode is Now.
type Mode struct {
	kind         modeKind
	hour, minute int
}

type modeKind int

const (
	modeNow modeKind = iota
	modeOnRestart
	modeAt
)

// Now restarts the program as soon as an update is applied.
func Now() Mode { return Mode{kind: modeNow} }

// OnRestart applies an update on disk and leaves the running program alone:
// the new version runs the next time the program is started.
func OnRestart() Mode { return Mode{kind: modeOnRestart} }

// At applies an update on disk at once and restarts the program at the next
// local time hour:minute (24-hour clock) after that. Midnight is an
// ordinary time (At(0, 0) after 23:59 restarts a minute later); a time that
// a daylight saving change skips restarts at the change itself, and a time
// that occurs twice, at its first occurrence. Spawn rejects hours outside
// 0..23 and minutes outside 0..59.
func At(hour, minute int) Mode { return Mode{kind: modeAt, hour: hour, minute: minute} }

// ParseMode parses the forms String returns: "now", "onrestart" and
// "at=HH:MM", as an app's command line might take them.
func ParseMode(s string) (Mode, error) {
	switch t := strings.ToLower(strings.TrimSpace(s)); {
	case t == "now":
		return Now(), nil
	case t == "onrestart":
		return OnRestart(), nil
	case strings.HasPrefix(t, "at="):
		hh, mm, ok := strings.Cut(strings.TrimPrefix(t, "at="), ":")
		h, err1 := strconv.Atoi(hh)
		m, err2 := strconv.Atoi(mm)
		if !ok || err1 != nil || err2 != nil || len(mm) != 2 {
			return Mode{}, fmt.Errorf("mode %q: want at=HH:MM, such as at=03:30", s)
		}
		md := At(h, m)
		if err := md.check(); err != nil {
			return Mode{}, err
		}
		return md, nil
	default:
		return Mode{}, fmt.Errorf("mode %q: want now, onrestart or at=HH:MM", s)
	}
}

// String returns "now", "onrestart" or "at=HH:MM".
func (m Mode) String() string {
	switch m.kind {
	case modeNow:
		return "now"
	case modeOnRestart:
		return "onrestart"
	default:
		return fmt.Sprintf("at=%02d:%02d", m.hour, m.minute)
	}
}

func (m Mode) check() error {
	if m.kind == modeAt && (m.hour < 0 || m.hour > 23 || m.minute < 0 || m.minute > 59) {
		return fmt.Errorf("mode at=%d:%d: hour must be 0 to 23 and minute 0 to 59", m.hour, m.minute)
	}
	return nil
}
