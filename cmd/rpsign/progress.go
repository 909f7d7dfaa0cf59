package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// isTerminal reports whether w is a terminal (a character device), where a
// progress line that rewrites itself makes sense; in a CI log or a file it
// would leave one line per update.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLine draws one line of upload progress on a terminal,
// rewriting it at most every interval, and ends it when an upload is done.
type progressLine struct {
	w        io.Writer
	interval time.Duration
	now      func() time.Time

	asset string
	drawn time.Time
}

// newProgressLine returns a progress line on w.
func newProgressLine(w io.Writer) *progressLine {
	return &progressLine{w: w, interval: 100 * time.Millisecond, now: time.Now}
}

// update reports sent of size bytes of asset (ghrelease.Publisher.Progress).
func (p *progressLine) update(asset string, sent, size int64) {
	now := p.now()
	done := sent >= size
	if asset == p.asset && !done && now.Sub(p.drawn) < p.interval {
		return
	}
	p.asset, p.drawn = asset, now
	pct := 100
	if size > 0 {
		pct = int(sent * 100 / size)
	}
	// \r and the erase-line sequence rewrite the line in place.
	fmt.Fprintf(p.w, "\r\x1b[Kuploading %s  %s / %s  %3d%%", asset, mib(sent), mib(size), pct)
	if done {
		fmt.Fprintln(p.w)
		p.asset = ""
	}
}

// mib formats n bytes in MiB with one decimal.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
