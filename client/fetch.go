package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/org/rustpatcher-go/internal/backoff"
	"github.com/org/rustpatcher-go/internal/checked"
	"github.com/org/rustpatcher-go/internal/exefmt"
)

// progressWriter writes to the temporary file, remembers a write error (so
// the pipeline can tell a full disk from a bad release) and reports progress
// in steps of about 5%.
type progressWriter struct {
	w     io.Writer
	total int64
	done  int64
	last  int64
	err   error
	emit  func(done int64)
}

func (pw *progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.done += int64(n)
	if err != nil {
		pw.err = err
		return n, err
	}
	if pw.done == pw.total || pw.done-pw.last >= pw.total/20 {
		pw.last = pw.done
		pw.emit(pw.done)
	}
	return n, nil
}

// Retry policy for reading a release: at most maxReadFailures failures in
// a row without progress, waiting readBackoff between them.
const maxReadFailures = 4

var readBackoff = backoff.Policy{Base: 100 * time.Millisecond, Max: time.Second}

// releaseReader reads exactly limit bytes of a release, reopening it at the
// offset reached when a read fails, and refuses a release that goes on past
// limit.
type releaseReader struct {
	ctx  context.Context
	rel  Release
	into *os.File // with a fileOpener, the file its download writes
	// (the reader's bytes are written there already), or nil
	limit    int64
	off      int64
	rc       io.ReadCloser
	failures int
	lastErr  error
	// checkHeader, if set, is called once with the release's first
	// exefmt.MaxHeader bytes (all of a shorter one) as soon as they are
	// read: an error it returns fails the read there, so that a release
	// whose headers rule it out is not read further.
	checkHeader func(header []byte) error
	header      []byte
}

// sawHeader collects b, the bytes read at offset off, into the header and
// checks it once it is whole.
func (r *releaseReader) sawHeader(off int64, b []byte) error {
	want := min(r.limit, exefmt.MaxHeader)
	if r.checkHeader == nil || off >= want {
		return nil
	}
	r.header = append(r.header, b[:min(int64(len(b)), want-off)]...)
	if int64(len(r.header)) < want {
		return nil
	}
	check, h := r.checkHeader, r.header
	r.checkHeader, r.header = nil, nil
	return check(h)
}

func (r *releaseReader) Read(b []byte) (int, error) {
	for {
		if err := r.ctx.Err(); err != nil {
			r.close()
			return 0, err
		}
		if r.rc == nil {
			rc, err := r.open()
			if err != nil {
				if ferr := r.fail(err); ferr != nil {
					return 0, ferr
				}
				continue
			}
			r.rc = rc
		}
		if r.off == r.limit {
			// Everything signed is here; make sure nothing follows.
			var one [1]byte
			n, _ := io.ReadFull(r.rc, one[:])
			r.close()
			if n > 0 {
				return 0, fmt.Errorf("%w (%d bytes)", errTooLong, r.limit)
			}
			return 0, io.EOF
		}
		if int64(len(b)) > r.limit-r.off {
			b = b[:r.limit-r.off]
		}
		n, err := r.rc.Read(b)
		if herr := r.sawHeader(r.off, b[:n]); herr != nil {
			r.off += int64(n)
			r.close()
			return n, herr
		}
		r.off += int64(n)
		if n > 0 {
			r.failures = 0
		}
		if err == nil {
			return n, nil
		}
		r.close()
		if errors.Is(err, checked.ErrWrite) {
			return n, err // this machine's side: no use reading again
		}
		if n > 0 {
			return n, nil // reopen at the new offset on the next call
		}
		if ferr := r.fail(err); ferr != nil {
			return 0, ferr
		}
	}
}

// open opens the release at r.off, for its download to write r.into too
// when it is set and the release is a fileOpener.
func (r *releaseReader) open() (io.ReadCloser, error) {
	if fo, ok := r.rel.(fileOpener); ok && r.into != nil {
		return fo.OpenFile(r.ctx, r.into, r.off)
	}
	return r.rel.Open(r.ctx, r.off)
}

// fail counts a failure without progress and waits before the next try; it
// returns an error once there were too many.
func (r *releaseReader) fail(err error) error {
	r.failures++
	r.lastErr = err
	if r.failures >= maxReadFailures {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: it ends after %d of %d bytes", errTruncated, r.off, r.limit)
		}
		return fmt.Errorf("reading at byte %d of %d, %d tries: %w", r.off, r.limit, r.failures, err)
	}
	t := time.NewTimer(readBackoff.Delay(r.failures, nil))
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *releaseReader) close() {
	if r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
}
