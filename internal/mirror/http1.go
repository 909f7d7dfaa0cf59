package mirror

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// A Fetcher's requests go through the small HTTP/1.1 client below, built
// on net/http's response reader (http.ReadResponse), rather than through
// http.Client: any use of
// http.Client links net/http's Transport and its bundled HTTP/2 client,
// about 0.5 MiB of every app that embeds the client (docs/BENCHMARKS.md,
// Cost of embedding). A Fetcher makes a few small requests a poll and one
// long one per download, so each request has a connection of its own
// (Connection: close), and HTTP/1.1 is all it needs.
//
// What it does: GET over TCP, or TLS with the system's roots (or
// Fetcher.TLS); through the proxy HTTPS_PROXY, HTTP_PROXY and NO_PROXY
// name (http.ProxyFromEnvironment: a CONNECT tunnel for https, with the
// proxy URL's user information as Basic credentials); redirects, at most
// maxRedirects, each checked by checkRedirect, keeping the request's
// headers (Range, the validators); responses of any framing
// http.ReadResponse reads (length, chunked, until close), their headers
// bounded by maxHeaderBytes and the wait for them by
// responseHeaderTimeout; 1xx responses skipped. Ending the request's
// context closes the connection, which ends any read of the body.

const (
	// maxHeaderBytes bounds the headers of a response (and of a proxy's
	// answer to CONNECT).
	maxHeaderBytes = 64 << 10
	// dialTimeout bounds the connection to the server or proxy.
	dialTimeout = 30 * time.Second
	// maxInformational bounds the 1xx responses skipped before the
	// final one.
	maxInformational = 5
)

// do sends req and returns the final response, after redirects. The
// response's Request is the last request made, and each request's
// Response the response that redirected to it (chain reads them).
func (f *Fetcher) do(req *http.Request) (*http.Response, error) {
	var via []*http.Request
	for {
		resp, err := f.roundTrip(req)
		if err != nil {
			return nil, err
		}
		loc := resp.Header.Get("Location")
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			return resp, nil
		}
		if loc == "" {
			return resp, nil
		}
		resp.Body.Close()
		u, err := req.URL.Parse(loc)
		if err != nil {
			return nil, fmt.Errorf("redirect to %q: %w", loc, err)
		}
		via = append(via, req)
		next := (&http.Request{
			Method:     http.MethodGet,
			URL:        u,
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     req.Header.Clone(),
			Response:   resp,
		}).WithContext(req.Context())
		if err := checkRedirect(next, via); err != nil {
			return nil, err
		}
		req = next
	}
}

// roundTrip makes one request on a connection of its own.
func (f *Fetcher) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := checkHost(req.URL.Host); err != nil {
		return nil, err
	}
	proxyOf := f.proxy
	if proxyOf == nil {
		proxyOf = http.ProxyFromEnvironment
	}
	proxy, err := proxyOf(req)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	target := hostPort(req.URL)
	addr := target
	if proxy != nil {
		addr = hostPort(proxy)
	}
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Ending ctx closes the connection: that ends a handshake, a wait for
	// headers or a read of the body at once.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	ok := false
	defer func() {
		if !ok {
			stop()
			raw.Close()
		}
	}()
	fail := func(err error) (*http.Response, error) {
		if c := context.Cause(ctx); c != nil {
			return nil, c
		}
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(responseHeaderTimeout))
	var conn net.Conn = raw
	switch {
	case proxy != nil && req.URL.Scheme == "https":
		if err := connectTunnel(raw, proxy, target); err != nil {
			return fail(err)
		}
	}
	if req.URL.Scheme == "https" {
		cfg := &tls.Config{}
		if f.TLS != nil {
			cfg = f.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = req.URL.Hostname()
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(err)
		}
		conn = tc
	}
	// A plain http request through a proxy is in absolute form, with
	// the proxy's credentials.
	var via *url.URL
	if proxy != nil && req.URL.Scheme != "https" {
		via = proxy
	}
	if err := writeRequest(conn, req, via); err != nil {
		return fail(err)
	}
	lr := &headerLimit{r: conn, n: maxHeaderBytes}
	br := bufio.NewReader(lr)
	var resp *http.Response
	for i := 0; ; i++ {
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			if lr.n <= 0 {
				err = fmt.Errorf("response headers longer than %d bytes", maxHeaderBytes)
			}
			return fail(err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if i == maxInformational {
			return fail(fmt.Errorf("more than %d informational responses", maxInformational))
		}
	}
	// The headers are in; the body is bounded by the caller's idle
	// timeout (watchedBody), not by a deadline.
	lr.n = -1
	raw.SetDeadline(time.Time{})
	ok = true
	resp.Body = &connBody{body: resp.Body, conn: conn, stop: stop}
	return resp, nil
}

// connectTunnel asks the proxy on c for a tunnel to target (host:port).
func connectTunnel(c net.Conn, proxy *url.URL, target string) error {
	head := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if cred := proxyAuth(proxy); cred != "" {
		head += "Proxy-Authorization: " + cred + "\r\n"
	}
	if _, err := io.WriteString(c, head+"\r\n"); err != nil {
		return fmt.Errorf("proxy %s: %w", proxy.Host, err)
	}
	creq := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target}
	// A byte at a time past the headers would be slow; but the proxy
	// sends nothing after its answer until the TLS handshake starts, and
	// a reader that held back bytes of it would lose them.
	lr := &headerLimit{r: c, n: maxHeaderBytes}
	resp, err := http.ReadResponse(bufio.NewReaderSize(byteReader{lr}, 16), creq)
	if err != nil {
		if lr.n <= 0 {
			err = fmt.Errorf("headers longer than %d bytes", maxHeaderBytes)
		}
		return fmt.Errorf("proxy %s: %w", proxy.Host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("proxy %s refused a tunnel to %s: %s", proxy.Host, target, resp.Status)
	}
	return nil
}

// writeRequest writes the GET request req to w: in origin form, or in
// absolute form with the proxy's credentials when proxy is not nil; with
// Connection: close. It writes the request itself rather than with
// (*http.Request).Write, which links net/http's writer of request bodies
// and punycode conversion (41 KB of an app's stripped binary): so a host
// name must be ASCII (an internationalised name in its xn-- form;
// checkHost, before the connection).
func writeRequest(w io.Writer, req *http.Request, proxy *url.URL) error {
	host := strings.TrimSuffix(req.URL.Host, ":")
	target := req.URL.RequestURI()
	if proxy != nil {
		u := *req.URL
		u.User, u.Fragment, u.RawFragment = nil, "", ""
		target = u.String()
	}
	bw := bufio.NewWriter(w)
	bw.WriteString("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n")
	if proxy != nil {
		if cred := proxyAuth(proxy); cred != "" {
			bw.WriteString("Proxy-Authorization: " + cred + "\r\n")
		}
	}
	if err := req.Header.Write(bw); err != nil {
		return err
	}
	bw.WriteString("Connection: close\r\n\r\n")
	return bw.Flush()
}

// checkHost refuses a host name that is not printable ASCII (writeRequest
// does not convert names to punycode).
func checkHost(host string) error {
	for i := 0; i < len(host); i++ {
		if host[i] < 0x21 || host[i] >= 0x7f {
			return fmt.Errorf("host name %q is not ASCII: give it in its xn-- (punycode) form", host)
		}
	}
	return nil
}

// proxyAuth returns the Proxy-Authorization value for the proxy URL's user
// information, or "".
func proxyAuth(proxy *url.URL) string {
	if proxy.User == nil {
		return ""
	}
	pw, _ := proxy.User.Password()
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(proxy.User.Username()+":"+pw))
}

// hostPort returns u's host and port, the scheme's port when u has none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// headerLimit reads from r at most n bytes while n is not negative; when
// they are used up, reads fail.
type headerLimit struct {
	r io.Reader
	n int
}

var errHeaderLimit = errors.New("header limit reached")

func (l *headerLimit) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errHeaderLimit
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}

// byteReader reads one byte at a time, so that a bufio.Reader over it
// never reads past what it is asked for.
type byteReader struct{ r io.Reader }

func (b byteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return b.r.Read(p)
}

// connBody is a response body that closes its connection.
type connBody struct {
	body io.ReadCloser
	conn net.Conn
	stop func() bool

	once sync.Once
}

func (b *connBody) Read(p []byte) (int, error) { return b.body.Read(p) }

func (b *connBody) Close() error {
	b.once.Do(func() {
		b.stop()
		b.conn.Close()
	})
	return nil
}
