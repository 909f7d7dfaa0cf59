//go:build unix

package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/mirror/mirrortest"
)

// mirrorHost is the name the test CA's certificate holds besides loopback
// addresses: no resolver knows it, so a client that reaches it went
// through the test's proxy, which maps it to the mirror.
const mirrorHost = "mirror.test"

// testCA is a certificate authority made for one test, and a server
// certificate it issued for loopback and mirrorHost. A process trusts it
// through SSL_CERT_FILE=<CAFile>, which replaces the system's roots.
type testCA struct {
	CAFile string
	cert   tls.Certificate
}

func newTestCA(t testing.TB, ips ...net.IP) *testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rustpatcher-go e2e test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: mirrorHost},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{mirrorHost, "localhost"}, IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCA{CAFile: filepath.Join(t.TempDir(), "ca.pem")}
	if err := os.WriteFile(c.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	c.cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return c
}

// serveTLS starts an HTTPS server on loopback with the CA's certificate.
func (c *testCA) serveTLS(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	return c.serveTLSOn(t, "127.0.0.1:0", h)
}

// serveTLSOn is serveTLS listening on addr.
func (c *testCA) serveTLSOn(t testing.TB, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = l
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{c.cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// mirrorSetup is an installed hello 1.0.0 and a static mirror holding
// 2.0.0 as rpsign publish --out laid it out, served over HTTPS by a file
// server on loopback that counts the bytes it sends.
type mirrorSetup struct {
	*updateSetup
	ca     *testCA
	mirror string // the directory served
	asset  string // the binary's name in it
	srv    *httptest.Server
	sent   atomic.Int64 // bytes of bodies sent
	binary atomic.Int64 // of them, bytes of the binary

	mu    sync.Mutex
	serve http.Handler // what the server does now
}

func newMirrorSetup(t *testing.T) *mirrorSetup {
	t.Helper()
	return newMirrorSetupFrom(t, newUpdateSetup(t))
}

// newMirrorSetupFrom is newMirrorSetup with the installed hello of u.
func newMirrorSetupFrom(t *testing.T, u *updateSetup) *mirrorSetup {
	t.Helper()
	return newMirrorSetupPublish(t, u)
}

// newMirrorSetupPublish is newMirrorSetupFrom with more arguments for
// rpsign publish.
func newMirrorSetupPublish(t *testing.T, u *updateSetup, args ...string) *mirrorSetup {
	t.Helper()
	m := &mirrorSetup{updateSetup: u, ca: newTestCA(t), mirror: filepath.Join(t.TempDir(), "mirror")}
	rel := m.release(t, m.key, "2.0.0")
	rpsign := GoBuild(t, rpsignPkg, "")
	out, err := exec.Command(rpsign, append([]string{"publish", "--out", m.mirror, rel, "--pub", m.key.Public}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rpsign publish --out: %v\n%s", err, out)
	}
	m.asset = "hello-2.0.0_" + runtime.GOOS + "_" + runtime.GOARCH
	if !bytes.Contains(out, []byte("wrote "+filepath.Join(m.mirror, m.asset)+"\n")) {
		t.Fatalf("rpsign publish --out wrote:\n%s", out)
	}
	// The release directory is not a source here: only the mirror.
	os.Remove(rel)
	m.serve = http.FileServer(http.Dir(m.mirror))
	m.srv = m.ca.serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		h := m.serve
		m.mu.Unlock()
		cw := &countingWriter{ResponseWriter: w, n: &m.sent}
		if r.URL.Path == "/"+m.asset {
			cw.bin = &m.binary
		}
		h.ServeHTTP(cw, r)
	}))
	return m
}

func (m *mirrorSetup) handle(h http.Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.serve = h
}

// url returns the mirror's URL on host (an address, or mirrorHost).
func (m *mirrorSetup) url(host string) string {
	_, port, _ := net.SplitHostPort(m.srv.Listener.Addr().String())
	return "https://" + net.JoinHostPort(host, port) + "/"
}

// start runs the installed hello with source, trusting the test CA only.
func (m *mirrorSetup) start(t *testing.T, source string, env ...string) *Proc {
	t.Helper()
	opt := StartOptions{
		Env:   append([]string{"SSL_CERT_FILE=" + m.ca.CAFile, "SSL_CERT_DIR="}, env...),
		Unset: []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"},
	}
	p := StartWith(t, opt, m.exe, "--mode", "now", "--source", source, "--interval", "1s", "a", "b")
	p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=a b$`)
	return p
}

// waitUpdated waits for p, started by start, to run 2.0.0 (after its
// line from) with the executable verifying as 2.0.0.
func (m *mirrorSetup) waitUpdated(t *testing.T, p *Proc, from int) {
	t.Helper()
	p.WaitLine(from, 60*time.Second, `^hello 2\.0\.0 args=a b$`)
	m.waitFileVersion(t, "2.0.0", 5*time.Second)
}

type countingWriter struct {
	http.ResponseWriter
	n, bin *atomic.Int64 // bin may be nil
}

func (w *countingWriter) Write(b []byte) (int, error) {
	k, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(k))
	if w.bin != nil {
		w.bin.Add(int64(k))
	}
	return k, err
}

func (w *countingWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

// TestHTTPSMirror: hello 1.0.0 updates to 2.0.0 from an HTTPS mirror on
// loopback that serves what rpsign publish --out laid out, trusting the
// mirror's certificate through SSL_CERT_FILE; the server sends about one
// copy of the release.
func TestHTTPSMirror(t *testing.T) {
	m := newMirrorSetup(t)
	p := m.start(t, m.url("127.0.0.1"))
	m.waitUpdated(t, p, 0)
	m.checkBackup(t)
	st, _ := os.Stat(filepath.Join(m.mirror, m.asset))
	if sent := m.sent.Load(); sent < st.Size() || sent > st.Size()+st.Size()/10 {
		t.Errorf("the server sent %d bytes for a release of %d", sent, st.Size())
	}
	p.Stop(10 * time.Second)
}

// TestHTTPSMirrorPacks: with the packs rpsign publish --delta-from and
// --compress add, hello 1.0.0 takes 2.0.0 from the mirror as the delta
// from its own binary, and without a delta from it as its pieces
// compressed: the server sends a small part of the release, and none of
// the binary itself.
func TestHTTPSMirrorPacks(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		delta bool
		most  float64 // of the binary's length, sent in all
	}{
		{"delta", true, 0.02},
		{"compressed", false, 0.7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpdateSetup(t)
			args := []string{"--compress"}
			if tt.delta {
				args = append(args, "--delta-from", u.exe)
			}
			m := newMirrorSetupPublish(t, u, args...)
			p := m.start(t, m.url("127.0.0.1"))
			m.waitUpdated(t, p, 0)
			st, _ := os.Stat(filepath.Join(m.mirror, m.asset))
			sent, bin := m.sent.Load(), m.binary.Load()
			t.Logf("the server sent %d bytes (%d of the binary) for a release of %d", sent, bin, st.Size())
			if bin != 0 || float64(sent) > tt.most*float64(st.Size()) {
				t.Errorf("the server sent %d bytes, %d of them the binary's, for a release of %d", sent, bin, st.Size())
			}
			p.Stop(10 * time.Second)
		})
	}
}

// TestHTTPSNoP2PBuild: hello built with -tags rustpatcher_nop2p (no
// libp2p) updates from the HTTPS mirror the same way.
func TestHTTPSNoP2PBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: TestHTTPSMirror is the HTTPS update of -short")
	}
	bin := GoBuildWith(t, Build{Pkg: helloPkg, LDFlags: "-X github.com/org/rustpatcher-go/client.linkedPublicKey=" + OwnerKey(t).Public,
		Flags: []string{"-tags", "rustpatcher_nop2p"}})
	m := newMirrorSetupFrom(t, newUpdateSetupFrom(t, bin))
	p := m.start(t, m.url("127.0.0.1"))
	m.waitUpdated(t, p, 0)
	m.checkBackup(t)
	if _, _, err := p.FindLine(0, 0, `p2p node started|listening: `); err == nil {
		t.Error("the nop2p build started a network")
	}
	p.Stop(10 * time.Second)
}

// TestHTTPSMirrorThroughProxy: the same through an HTTP CONNECT proxy on
// loopback named by HTTPS_PROXY. The mirror is addressed as mirror.test,
// which only the proxy resolves, so the update went through it.
func TestHTTPSMirrorThroughProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: TestHTTPSMirror is the HTTPS update of -short")
	}
	m := newMirrorSetup(t)
	var tunnels atomic.Int64
	_, port, _ := net.SplitHostPort(m.srv.Listener.Addr().String())
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Host != net.JoinHostPort(mirrorHost, port) {
			http.Error(w, "this proxy only tunnels to "+mirrorHost, http.StatusForbidden)
			return
		}
		up, err := net.Dial("tcp", m.srv.Listener.Addr().String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer up.Close()
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		tunnels.Add(1)
		io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		done := make(chan struct{}, 2)
		go func() { io.Copy(up, buf); done <- struct{}{} }()
		go func() { io.Copy(conn, up); done <- struct{}{} }()
		<-done
	}))
	defer proxy.Close()
	p := m.start(t, m.url(mirrorHost), "HTTPS_PROXY="+proxy.URL)
	m.waitUpdated(t, p, 0)
	if tunnels.Load() == 0 {
		t.Error("no tunnel through the proxy")
	}
	p.Stop(10 * time.Second)
}

// TestHTTPSGitHub: the same with github:OWNER/REPO, against ghreleasetest,
// a local server that speaks GitHub's shapes (GitHub cannot be reached
// from tests): the latest release's download links, redirected to the
// release of its tag and to the object store. The release holds what
// rpsign publish --out --compress --delta-from laid out, and hello takes
// the delta from its own binary.
func TestHTTPSGitHub(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: TestHTTPSMirror is the HTTPS update of -short")
	}
	t.Parallel()
	u := newUpdateSetup(t)
	m := newMirrorSetupPublish(t, u, "--compress", "--delta-from", u.exe)
	gh := ghreleasetest.NewServer(t)
	gh.AddRelease("org/hello", "v2.0.0")
	ents, err := os.ReadDir(m.mirror)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(m.mirror, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		gh.AddAsset("org/hello", "v2.0.0", e.Name(), b)
	}
	p := m.start(t, "github:org/hello?base="+gh.URL)
	m.waitUpdated(t, p, 0)
	reqs := strings.Join(gh.Requests(), "\n")
	// The manifest through the latest link; the piece hashes and the
	// delta from hello 1.0.0 from the release it led to; not the binary.
	if !strings.Contains(reqs, "GET /org/hello/releases/latest/download/rustpatcher-") ||
		!strings.Contains(reqs, "GET /org/hello/releases/download/v2.0.0/"+m.asset+".pieces") ||
		!regexp.MustCompile(`GET /org/hello/releases/download/v2\.0\.0/`+regexp.QuoteMeta(m.asset)+`\.[0-9a-f]{16}\.delta`).MatchString(reqs) ||
		slices.Contains(gh.Requests(), "GET /org/hello/releases/download/v2.0.0/"+m.asset) {
		t.Errorf("requests:\n%s", reqs)
	}
	p.Stop(10 * time.Second)
}

// TestHTTPSMirrorDamaged: a damaged binary on the mirror fails its piece
// check and is refused; once the mirror is fixed, the node updates.
func TestHTTPSMirrorDamaged(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: TestHTTPSMirror is the HTTPS update of -short")
	}
	t.Parallel()
	m := newMirrorSetup(t)
	bin := filepath.Join(m.mirror, m.asset)
	good, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)/3] ^= 0xff
	if err := os.WriteFile(bin, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	p := m.start(t, m.url("127.0.0.1"))
	_, i := p.WaitLine(0, 60*time.Second, `release refused; the executable is unchanged.*piece does not match its signed hash`)
	if got := FileSum(t, m.exe); got != m.oldSum {
		t.Fatal("the executable changed")
	}
	if err := os.WriteFile(bin, good, 0o644); err != nil {
		t.Fatal(err)
	}
	m.waitUpdated(t, p, i)
	p.Stop(10 * time.Second)
}

// TestHTTPSMirrorHostile: a mirror that drips its binary a few bytes at a
// time is dropped for stalling, and one that sends endless bytes after it
// is refused after one byte too many: the node stays on 1.0.0 and runs on.
func TestHTTPSMirrorHostile(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: TestHTTPSMirror is the HTTPS update of -short")
	}
	t.Parallel() // mirrors that stall or never end: it waits
	for _, tt := range []struct {
		name string
		body func(w http.ResponseWriter, r *http.Request, b []byte)
		want string
	}{
		{"drip", func(w http.ResponseWriter, r *http.Request, b []byte) {
			mirrortest.Drip(w, r, b, 16, 20*time.Millisecond)
		}, `server stalled: less than 65536 bytes in 10s`},
		{"endless", func(w http.ResponseWriter, r *http.Request, b []byte) {
			mirrortest.Endless(w, r, b)
		}, `release is longer than its signed size`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMirrorSetup(t)
			files := http.FileServer(http.Dir(m.mirror))
			b, err := os.ReadFile(filepath.Join(m.mirror, m.asset))
			if err != nil {
				t.Fatal(err)
			}
			m.handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/"+m.asset {
					files.ServeHTTP(w, r)
					return
				}
				tt.body(w, r, b)
			}))
			p := m.start(t, m.url("127.0.0.1"))
			p.WaitLine(0, 90*time.Second, `release refused; the executable is unchanged.*`+tt.want)
			if got := FileSum(t, m.exe); got != m.oldSum {
				t.Fatal("the executable changed")
			}
			if p.Exited() {
				t.Fatal("hello exited")
			}
			p.Stop(10 * time.Second)
		})
	}
}

// TestHTTPSAndPeers: 20 nodes on one network (loopback) with the network
// on and the HTTPS mirror as their source prefer their peers: the first
// node whose wait for a peer runs out takes the release over HTTPS, serves
// it, and the others take it from the network, also those whose download
// from it failed (it has 2 upload slots). Counted at the server, the
// mirror sends at most two copies of the binary (one in most runs; two when
// a second node's wait ends before the first copy has spread, which a
// loaded machine makes likelier), and a few KiB a node of manifests and
// piece hashes. The nodes wait the default PeerWait (10 minutes): with 20
// nodes and a copy that takes about 10 s to spread, a wait of 5 minutes
// makes a third copy likely in about one run in seven (two of the 19
// waits left, drawn over the 285 s after the first, ending within 10 s of
// it), 10 minutes in about one in twenty.
func TestHTTPSAndPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	t.Parallel() // waits for the first PeerWait draw: runs beside the other waiting tests
	const nodes = 20
	m := newMirrorSetup(t)
	rpseed := GoBuild(t, "github.com/org/rustpatcher-go/cmd/rpseed", "")
	dir := t.TempDir()
	empty := filepath.Join(dir, "seed")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	// A bootstrap peer without releases.
	seed := Start(t, rpseed, append([]string{"--dir", empty, "--private", "--pub", runtime.GOOS + "/" + runtime.GOARCH + "=" + m.key.Public,
		"--identity", filepath.Join(dir, "seed.key")}, seedLoopback()...)...)
	seedAddrs := listenAddrs(t, seed, 0, 2)
	var exes []*versionWatch
	for i := range nodes {
		exe := filepath.Join(dir, fmt.Sprint("node", i), "hello")
		CopyFile(t, m.exe, exe)
		exes = append(exes, &versionWatch{path: exe, pub: m.key.Public})
		args := append([]string{"--mode", "onrestart", "--private", "--dht-server", "--interval", "1s",
			"--source", m.url("127.0.0.1")}, loopback()...)
		args = append(args, bootstrapArgs(seedAddrs)...)
		StartWith(t, StartOptions{Env: []string{"SSL_CERT_FILE=" + m.ca.CAFile}}, exe, args...)
	}
	// The first of 20 waits within 600 s ends after about 30 s (after
	// 200 s in one run in 3,000); the others find the release on the
	// network before theirs end.
	Eventually(t, 4*time.Minute, "every node has 2.0.0", func() bool {
		for _, exe := range exes {
			if v, err := exe.version(); err != nil || v != "2.0.0" {
				return false
			}
		}
		return true
	})
	st, _ := os.Stat(filepath.Join(m.mirror, m.asset))
	sent, bin := m.sent.Load(), m.binary.Load()
	t.Logf("the mirror sent %d bytes for %d nodes, %d of them of the binary (%d bytes); the rest are manifests and piece hashes", sent, nodes, bin, st.Size())
	if bin > 2*st.Size() {
		t.Errorf("the mirror sent %d bytes of the binary, more than two copies (%d bytes each)", bin, st.Size())
	}
	if other := sent - bin; other > nodes*(8<<10) {
		t.Errorf("the mirror sent %d bytes besides the binary, more than 8 KiB a node", other)
	}
}

// TestHTTPSNoPeers: a node with the network on whose peers cannot be
// reached (its only bootstrap peer is gone) updates over HTTPS at once,
// without the default PeerWait of 10 minutes: it has no peer to wait for.
func TestHTTPSNoPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process network test")
	}
	t.Parallel() // one node, whose only peer is gone
	m := newMirrorSetup(t)
	rpseed := GoBuild(t, "github.com/org/rustpatcher-go/cmd/rpseed", "")
	dir := t.TempDir()
	seed := Start(t, rpseed, append([]string{"--dir", dir, "--private", "--pub", runtime.GOOS + "/" + runtime.GOARCH + "=" + m.key.Public,
		"--identity", filepath.Join(t.TempDir(), "seed.key")}, seedLoopback()...)...)
	seedAddrs := listenAddrs(t, seed, 0, 2)
	seed.Kill()
	args := append([]string{"--mode", "now", "--private", "--dht-server", "--interval", "1s",
		"--source", m.url("127.0.0.1")}, loopback()...)
	args = append(args, bootstrapArgs(seedAddrs)...)
	p := StartWith(t, StartOptions{Env: []string{"SSL_CERT_FILE=" + m.ca.CAFile}}, m.exe, append(args, "a", "b")...)
	p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=a b$`)
	m.waitUpdated(t, p, 0)
	p.Stop(10 * time.Second)
}
