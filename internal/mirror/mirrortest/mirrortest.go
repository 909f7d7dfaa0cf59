// Package mirrortest holds the answers of hostile mirrors, for tests of
// the HTTPS source: a body that drips and one that never ends.
package mirrortest

import (
	"fmt"
	"net/http"
	"time"
)

// Drip answers with b as its body, announced whole in Content-Length, n
// bytes at a time with a pause of every between them, until the client
// goes away.
func Drip(w http.ResponseWriter, r *http.Request, b []byte, n int, every time.Duration) {
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	for i := 0; i < len(b); i += n {
		if _, err := w.Write(b[i:min(i+n, len(b))]); err != nil {
			return
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(every):
		}
	}
}

// Endless answers with b, then zeros until the client goes away, and
// returns the bytes it sent.
func Endless(w http.ResponseWriter, r *http.Request, b []byte) int64 {
	sent, err := w.Write(b)
	n := int64(sent)
	junk := make([]byte, 64<<10)
	for err == nil && r.Context().Err() == nil {
		sent, err = w.Write(junk)
		n += int64(sent)
	}
	return n
}
