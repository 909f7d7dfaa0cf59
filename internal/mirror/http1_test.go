package mirror

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer answers each connection on loopback with handle, which gets
// the request's head as read.
func rawServer(t *testing.T, handle func(c net.Conn, head string)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				var head strings.Builder
				for {
					line, err := br.ReadString('\n')
					head.WriteString(line)
					if err != nil || line == "\r\n" {
						break
					}
				}
				handle(c, head.String())
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

// TestHTTP1Responses: the framings and oddities of responses the client
// reads, and the bounds it keeps.
func TestHTTP1Responses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		answer  string
		body    string
		wantErr string
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", ""},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", "hello", ""},
		{"until close", "HTTP/1.0 200 OK\r\n\r\nhello", "hello", ""},
		{"informational first", "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", ""},
		{"endless informational", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 10), "", "informational"},
		{"huge headers", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 1000)+"\r\n", 100) + "\r\n", "", "headers longer"},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", "", "malformed HTTP"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := rawServer(t, func(c net.Conn, _ string) { io.WriteString(c, tt.answer) })
			var f Fetcher
			got, _, err := f.Small(context.Background(), base+"/x", 1000, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got.Body) != tt.body {
				t.Fatalf("got %q, %v; want %q", got.Body, err, tt.body)
			}
		})
	}
}

// TestHTTP1Cancel: a server that never answers is dropped when the
// request's context ends.
func TestHTTP1Cancel(t *testing.T) {
	t.Parallel()
	base := rawServer(t, func(c net.Conn, _ string) { io.Copy(io.Discard, c) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var f Fetcher
	start := time.Now()
	if _, _, err := f.Small(ctx, base+"/x", 1000, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want the context's", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestHTTP1Redirects: redirects keep the request's headers, are bounded,
// and chain lists them.
func TestHTTP1Redirects(t *testing.T) {
	t.Parallel()
	var hops atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/a", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/b", http.StatusFound) })
	mux.HandleFunc("/b", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/c?sig=secret", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/c", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Header.Get("User-Agent") + " " + r.Header.Get("If-None-Match")))
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		hops.Add(1)
		http.Redirect(w, r, "/loop", http.StatusMovedPermanently)
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	f := &Fetcher{TLS: trust(srv), UserAgent: "ua"}
	got, changed, err := f.Small(context.Background(), srv.URL+"/a", 100, &Cached{ETag: `"e"`})
	if err != nil || !changed || string(got.Body) != `ua "e"` {
		t.Fatalf("got %q, %v, %v", got.Body, changed, err)
	}
	var paths []string
	for _, u := range got.Via {
		paths = append(paths, u.Path)
	}
	if strings.Join(paths, " ") != "/a /b /c" {
		t.Errorf("via %v", paths)
	}
	if _, _, err := f.Small(context.Background(), srv.URL+"/loop", 100, nil); err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("redirect loop: %v", err)
	}
	if n := hops.Load(); n != maxRedirects {
		t.Errorf("%d requests of the loop, want %d", n, maxRedirects)
	}
}

// TestHTTP1Proxy: https goes through a CONNECT tunnel of the proxy with
// the proxy URL's credentials; a proxy that refuses is named.
func TestHTTP1Proxy(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "through")
	}))
	defer srv.Close()
	var tunnels atomic.Int64
	proxy := rawServer(t, func(c net.Conn, head string) {
		if !strings.HasPrefix(head, "CONNECT "+srv.Listener.Addr().String()+" HTTP/1.1\r\n") ||
			!strings.Contains(head, "\r\nProxy-Authorization: Basic dXNlcjpwdw==\r\n") { // user:pw
			io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
			return
		}
		up, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			return
		}
		defer up.Close()
		tunnels.Add(1)
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		go io.Copy(up, c)
		io.Copy(c, up)
	})
	pu, _ := url.Parse(proxy)
	f := &Fetcher{TLS: trust(srv)}
	for _, tt := range []struct {
		user    *url.Userinfo
		wantErr string
	}{
		{url.UserPassword("user", "pw"), ""},
		{nil, "refused a tunnel"},
	} {
		p := *pu
		p.User = tt.user
		f.proxy = func(*http.Request) (*url.URL, error) { return &p, nil }
		got, _, err := f.Small(context.Background(), srv.URL+"/x", 100, nil)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err %v, want %q", err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(got.Body) != "through" {
			t.Errorf("got %q, %v", got.Body, err)
		}
	}
	if tunnels.Load() != 1 {
		t.Errorf("%d tunnels, want 1", tunnels.Load())
	}
}

// TestHTTP1PlainProxy: a plain http request through a proxy is sent in
// absolute form to the proxy, with its credentials and without the URL's.
func TestHTTP1PlainProxy(t *testing.T) {
	t.Parallel()
	want := "GET http://127.0.0.1:9/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nProxy-Authorization: Basic dXNlcjpwdw==\r\nUser-Agent: ua\r\nConnection: close\r\n\r\n"
	proxy := rawServer(t, func(c net.Conn, head string) {
		if head != want {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied")
	})
	pu, _ := url.Parse(proxy)
	pu.User = url.UserPassword("user", "pw")
	f := &Fetcher{UserAgent: "ua", proxy: func(*http.Request) (*url.URL, error) { return pu, nil }}
	got, _, err := f.Small(context.Background(), "http://secret@127.0.0.1:9/x?q=1#frag", 100, nil)
	if err != nil || string(got.Body) != "proxied" {
		t.Errorf("got %q, %v; want the request\n%q", got.Body, err, want)
	}
}

// TestHTTP1Request: the request as written, and a host name that is not
// ASCII refused with a clear error.
func TestHTTP1Request(t *testing.T) {
	t.Parallel()
	heads := make(chan string, 1)
	base := rawServer(t, func(c net.Conn, head string) {
		heads <- head
		io.WriteString(c, "HTTP/1.1 304 Not Modified\r\n\r\n")
	})
	f := &Fetcher{UserAgent: "ua"}
	if _, _, err := f.Small(context.Background(), base+"/a%20b/c.json?x=1", 100, &Cached{ETag: "\"e\"\r\nX-Evil: 1"}); err != nil {
		t.Fatal(err)
	}
	want := "GET /a%20b/c.json?x=1 HTTP/1.1\r\nHost: " + strings.TrimPrefix(base, "http://") + "\r\nIf-None-Match: \"e\"  X-Evil: 1\r\nUser-Agent: ua\r\nConnection: close\r\n\r\n"
	if got := <-heads; got != want {
		t.Errorf("request\n%q\nwant\n%q", got, want)
	}
	if _, _, err := f.Small(context.Background(), "https://bücher.example/x", 100, nil); err == nil || !strings.Contains(err.Error(), "xn--") {
		t.Errorf("host not ASCII: %v", err)
	}
}
