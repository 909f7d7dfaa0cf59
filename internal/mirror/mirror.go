// Package mirror fetches the files of a published release over HTTP(S),
// from a static mirror laid out by rpsign publish --out or from a GitHub
// release, as carefully as the peer-to-peer network fetches from a peer:
// every length it reads is bounded, a body must make progress or it is
// dropped, a release's content is checked piece by piece against the signed
// root as it arrives (PieceReader), and polls are conditional (ETag,
// If-Modified-Since), so that an unchanged release costs the server a 304.
// Nothing it fetches is trusted: the update engine checks it all.
package mirror

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultIdleTimeout is how long a body may go without MinProgress
	// bytes (or the rest of it) before it is dropped.
	DefaultIdleTimeout = 10 * time.Second
	// MinProgress is what a server must send within each idle period: one
	// that stalls, or drips a byte at a time, is dropped, as a peer is.
	MinProgress = 64 << 10
	// maxRedirects bounds the redirects of one request (GitHub uses two).
	maxRedirects = 5
	// responseHeaderTimeout bounds the time from the connection to a
	// response's headers: a proxy's tunnel, the TLS handshake, the
	// request and the headers.
	responseHeaderTimeout = 30 * time.Second
)

// Sentinel errors, wrapped with the URL and details.
var (
	// ErrNotFound means the server has no such file (404 or 410).
	ErrNotFound = errors.New("not found")
	// ErrTooLarge means a file is longer than the most it may be.
	ErrTooLarge = errors.New("file too large")
	// ErrStalled means the server sent less than MinProgress bytes in an
	// idle period.
	ErrStalled = errors.New("server stalled")
)

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if err := CheckURL(req.URL); err != nil {
		return fmt.Errorf("redirect to %s: %w", req.URL.Redacted(), err)
	}
	return nil
}

// CheckURL refuses a URL the client must not fetch from: anything but
// https, and http but to a loopback address (local tests, a proxy on the
// machine itself).
func CheckURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("plain http is allowed only to a loopback address, not %q: use https", u.Host)
	}
	return fmt.Errorf("unsupported scheme %q: want https", u.Scheme)
}

// IsLoopback reports whether host is localhost or a loopback IP address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// A Fetcher fetches files over HTTP(S) (http1.go): proxies as HTTPS_PROXY,
// HTTP_PROXY and NO_PROXY say (http.ProxyFromEnvironment), the system's
// roots (on Unix, SSL_CERT_FILE and SSL_CERT_DIR replace them), bounded
// connection, TLS handshake and response header times, and at most a few
// redirects, never from https to plain http (but to a loopback address).
// Its zero value is ready to use. It is safe for concurrent use.
type Fetcher struct {
	// TLS, if set, configures the TLS connections (tests: a test
	// server's roots); nil means the system's roots.
	TLS *tls.Config
	// IdleTimeout bounds each wait for MinProgress bytes of a body; zero
	// means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string

	// proxy, if set, replaces http.ProxyFromEnvironment (tests).
	proxy func(*http.Request) (*url.URL, error)
}

func (f *Fetcher) idle() time.Duration {
	if f.IdleTimeout > 0 {
		return f.IdleTimeout
	}
	return DefaultIdleTimeout
}

// Cached is a small file as fetched, kept for the next conditional
// request for it.
type Cached struct {
	// Body is the file's content.
	Body []byte
	// ETag and LastModified are the validators the server sent;
	// LastModified only when it is strong (see strongLastModified).
	ETag, LastModified string
	// Via lists the URLs requested, the first one and each redirect's.
	Via []*url.URL
}

// Small fetches the file at u, at most max bytes, with a conditional
// request when prev holds validators: when the server answers 304 Not
// Modified, Small returns prev and false. It fails with ErrNotFound for a
// 404 or 410 and ErrTooLarge for a file longer than max.
func (f *Fetcher) Small(ctx context.Context, u string, max int64, prev *Cached) (Cached, bool, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := f.request(ctx, u)
	if err != nil {
		return Cached{}, false, err
	}
	if prev != nil {
		if prev.ETag != "" {
			req.Header.Set("If-None-Match", prev.ETag)
		}
		if prev.LastModified != "" {
			req.Header.Set("If-Modified-Since", prev.LastModified)
		}
	}
	resp, err := f.do(req)
	if err != nil {
		return Cached{}, false, fmt.Errorf("fetching %s: %w", redact(u), err)
	}
	defer resp.Body.Close()
	via := chain(resp)
	switch {
	case resp.StatusCode == http.StatusNotModified && prev != nil:
		c := *prev
		c.Via = via
		return c, false, nil
	case resp.StatusCode != http.StatusOK:
		return Cached{}, false, statusError(u, resp)
	case resp.ContentLength > max:
		return Cached{}, false, fmt.Errorf("fetching %s: %w: %d bytes, at most %d", redact(u), ErrTooLarge, resp.ContentLength, max)
	}
	body := newWatchedBody(resp.Body, f.idle(), cancel)
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return Cached{}, false, fmt.Errorf("fetching %s: %w", redact(u), body.cause(ctx, err))
	}
	if int64(len(b)) > max {
		return Cached{}, false, fmt.Errorf("fetching %s: %w: more than %d bytes", redact(u), ErrTooLarge, max)
	}
	return Cached{Body: b, ETag: resp.Header.Get("ETag"), LastModified: strongLastModified(resp.Header), Via: via}, true, nil
}

// strongLastModified returns the Last-Modified of h when it may stand for
// the file's content in If-Modified-Since, else "". Times have a
// resolution of a second: a file written again within the second its
// Last-Modified names would be answered 304 forever. So, as RFC 9110
// (section 8.8.2.2) says, Last-Modified is a strong validator only when
// the response's Date is at least a second later: a mirror then
// rewritten within that second is fetched whole at the next poll.
func strongLastModified(h http.Header) string {
	lm, err := http.ParseTime(h.Get("Last-Modified"))
	if err != nil {
		return ""
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil || date.Sub(lm) < time.Second {
		return ""
	}
	return h.Get("Last-Modified")
}

// Open returns the bytes of the file at u from offset off on, at most n
// of them: a Range request, or the whole file with the bytes before off
// skipped when the server ignores ranges. total, when positive, is the
// file's expected length: a server that says the file has another length
// is refused. The body must make progress (MinProgress bytes, or the
// rest, every IdleTimeout) or reading it fails with ErrStalled. Close the
// reader to end the request.
func (f *Fetcher) Open(ctx context.Context, u string, off, n, total int64) (io.ReadCloser, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("fetching %s: bad range %d+%d", redact(u), off, n)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := f.request(ctx, u)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := f.do(req)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("fetching %s: %w", redact(u), err)
	}
	fail := func(err error) (io.ReadCloser, error) {
		resp.Body.Close()
		cancel(nil)
		return nil, err
	}
	skip := int64(0)
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, size, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fail(fmt.Errorf("fetching %s: %w", redact(u), err))
		}
		if start != off {
			return fail(fmt.Errorf("fetching %s: asked for bytes from %d, got from %d", redact(u), off, start))
		}
		if total > 0 && size >= 0 && size != total {
			return fail(fmt.Errorf("fetching %s: the server holds a file of %d bytes, the manifest says %d", redact(u), size, total))
		}
	case http.StatusOK:
		if total > 0 && resp.ContentLength >= 0 && resp.ContentLength != total {
			return fail(fmt.Errorf("fetching %s: the server holds a file of %d bytes, the manifest says %d", redact(u), resp.ContentLength, total))
		}
		skip = off
	case http.StatusRequestedRangeNotSatisfiable:
		// Asked from the end of the file: nothing follows it.
		if sz, ok := strings.CutPrefix(resp.Header.Get("Content-Range"), "bytes */"); ok && sz == strconv.FormatInt(off, 10) {
			resp.Body.Close()
			cancel(nil)
			return io.NopCloser(strings.NewReader("")), nil
		}
		return fail(statusError(u, resp))
	default:
		return fail(statusError(u, resp))
	}
	body := newWatchedBody(resp.Body, f.idle(), cancel)
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, body, skip); err != nil {
			body.Close()
			return nil, fmt.Errorf("fetching %s: skipping to byte %d: %w", redact(u), skip, body.cause(ctx, err))
		}
	}
	return &rangeBody{r: io.LimitReader(body, n), body: body, ctx: ctx, url: u}, nil
}

// rangeBody is Open's reader: it names the URL and the cause in errors.
type rangeBody struct {
	r    io.Reader
	body *watchedBody
	ctx  context.Context
	url  string
}

func (b *rangeBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("fetching %s: %w", redact(b.url), b.body.cause(b.ctx, err))
	}
	return n, err
}

func (b *rangeBody) Close() error { return b.body.Close() }

func (f *Fetcher) request(ctx context.Context, u string) (*http.Request, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	if err := CheckURL(pu); err != nil {
		return nil, fmt.Errorf("fetching %s: %w", redact(u), err)
	}
	req := (&http.Request{
		Method:     http.MethodGet,
		URL:        pu,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header),
	}).WithContext(ctx)
	if f.UserAgent != "" {
		req.Header.Set("User-Agent", f.UserAgent)
	}
	return req, nil
}

// chain returns the URLs requested to get resp, first to last.
func chain(resp *http.Response) []*url.URL {
	var out []*url.URL
	for r := resp.Request; r != nil && len(out) <= maxRedirects; {
		out = append(out, r.URL)
		if r.Response == nil {
			break
		}
		r = r.Response.Request
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func statusError(u string, resp *http.Response) error {
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return fmt.Errorf("fetching %s: %w (%s)", redact(u), ErrNotFound, resp.Status)
	}
	return fmt.Errorf("fetching %s: server answered %s", redact(u), resp.Status)
}

// parseContentRange parses "bytes START-END/SIZE"; size is -1 for "*".
func parseContentRange(s string) (start, size int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	rng, sz, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	size = -1
	if sz != "*" {
		if size, err = strconv.ParseInt(sz, 10, 64); err != nil || size <= end {
			return 0, 0, fmt.Errorf("malformed Content-Range %q", s)
		}
	}
	return start, size, nil
}

// redact drops a URL's user information and query (a signed URL's
// secrets) from errors and logs.
func redact(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(malformed URL)"
	}
	pu.User, pu.RawQuery, pu.ForceQuery = nil, "", false
	return pu.String()
}

// watchedBody is a response body that must bring MinProgress bytes (or
// its end) within every idle period; otherwise it cancels the request,
// and reads fail with ErrStalled.
type watchedBody struct {
	body   io.ReadCloser
	idle   time.Duration
	cancel context.CancelCauseFunc

	mu    sync.Mutex
	timer *time.Timer
	got   int
}

func newWatchedBody(body io.ReadCloser, idle time.Duration, cancel context.CancelCauseFunc) *watchedBody {
	w := &watchedBody{body: body, idle: idle, cancel: cancel}
	w.timer = time.AfterFunc(idle, func() {
		cancel(fmt.Errorf("%w: less than %d bytes in %v", ErrStalled, MinProgress, idle))
	})
	return w
}

func (w *watchedBody) Read(p []byte) (int, error) {
	n, err := w.body.Read(p)
	w.mu.Lock()
	w.got += n
	if w.got >= MinProgress {
		// A new window: the timer is reset only while it has not fired.
		if w.timer.Stop() {
			w.timer.Reset(w.idle)
		}
		w.got = 0
	}
	w.mu.Unlock()
	return n, err
}

func (w *watchedBody) Close() error {
	w.timer.Stop()
	err := w.body.Close()
	w.cancel(nil)
	return err
}

// cause returns the reason the request's context ended, if it did, for
// err: ErrStalled rather than "context canceled".
func (w *watchedBody) cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && errors.Is(c, ErrStalled) {
		return c
	}
	return err
}
