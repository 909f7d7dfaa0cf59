package main

import (
	"encoding/json"
	"strings"

	"github.com/org/rustpatcher-go/client"
)

// A report is one thing a child process reported in a form meant for
// programs, not people: hello's "hello VERSION args=ARGS" line and the
// "listening: ADDR" lines of hello and rpseed on standard output, and the
// update events hello logs as JSON on standard error with --log-json.
type report struct {
	kind    reportKind
	version string // hello: the version running; event: the release's
	args    string // hello: its arguments
	addr    string // listening: the multiaddr, ending in /p2p/<peer id>
	event   string // event: the kind, as client.EventKind names it
	source  string // event: where the release came from
}

type reportKind int

const (
	reportHello reportKind = iota + 1
	reportListening
	reportEvent
)

// parseStdout reads a line of a child's standard output.
func parseStdout(line string) (report, bool) {
	if a, ok := strings.CutPrefix(line, "listening: "); ok {
		return report{kind: reportListening, addr: a}, true
	}
	if rest, ok := strings.CutPrefix(line, "hello "); ok {
		v, args, ok := strings.Cut(rest, " args=")
		if ok && v != "" && !strings.Contains(v, " ") {
			return report{kind: reportHello, version: v, args: args}, true
		}
	}
	return report{}, false
}

// parseStderr reads a line of a child's standard error: a JSON log record
// with an "event" attribute is an update event; anything else (text logs,
// other records) is not a report.
func parseStderr(line string) (report, bool) {
	var rec struct {
		Event   string `json:"event"`
		Version string `json:"version"`
		Source  string `json:"source"`
	}
	if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &rec) != nil || rec.Event == "" {
		return report{}, false
	}
	return report{kind: reportEvent, event: rec.Event, version: rec.Version, source: rec.Source}, true
}

// isHello matches hello's line for version.
func isHello(version string) func(report) bool {
	return func(s report) bool { return s.kind == reportHello && s.version == version }
}

// isEvent matches an update event of kind about version.
func isEvent(kind client.EventKind, version string) func(report) bool {
	return func(s report) bool { return s.kind == reportEvent && s.event == kind.String() && s.version == version }
}
