package client

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// logLines records the lines a logger writes, and passes them to t.Log.
type logLines struct {
	t      *testing.T
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
}

func newLogLines(t *testing.T) *logLines { return &logLines{t: t, notify: make(chan struct{}, 1)} }

func (l *logLines) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(b), "\n"))
	l.mu.Lock()
	l.lines = append(l.lines, string(b))
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
	return len(b), nil
}

// wait returns the index of the first line from index from on that
// contains s, failing the test if none comes within 30 s.
func (l *logLines) wait(from int, s string) int {
	l.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		for i := from; i < len(l.lines); i++ {
			if strings.Contains(l.lines[i], s) {
				l.mu.Unlock()
				return i
			}
		}
		l.mu.Unlock()
		select {
		case <-l.notify:
		case <-deadline:
			l.t.Fatalf("no log line with %q within 30s", s)
		}
	}
}
