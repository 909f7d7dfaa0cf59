package p2phost

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// countingConn counts the writes that reach a connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// securePair runs the coalescing TLS handshake over a loopback TCP
// connection and returns both ends and the client's raw connection.
func securePair(t *testing.T) (client, server sec.SecureConn, raw *countingConn) {
	t.Helper()
	mk := func() (*coalescedTLS, peer.ID) {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := newCoalescedTLS(libp2ptls.ID, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(key)
		return tr, id
	}
	ct, _ := mk()
	st, sid := mk()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   sec.SecureConn
		err error
	}
	done := make(chan res, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			done <- res{nil, err}
			return
		}
		c, err := st.SecureInbound(ctx, nc, "")
		done <- res{c, err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw = &countingConn{Conn: nc}
	client, err = ct.SecureOutbound(ctx, raw, sid)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c, raw
}

func TestCoalescedTLSWritesRecordsTogether(t *testing.T) {
	t.Parallel()
	client, server, raw := securePair(t)
	msg := make([]byte, 1<<20)
	rand.Read(msg)
	got := make([]byte, len(msg))
	for round := 0; round < 3; round++ {
		before := raw.writes.Load()
		errc := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(server, got)
			errc <- err
		}()
		if n, err := client.Write(msg); n != len(msg) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		// Every byte is on the wire once Write returns: the reader
		// finishes without any further write.
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatal("bytes differ")
		}
		// 64 full records (more while TLS starts with small records)
		// in flushes of up to coalesceRecords records.
		writes := raw.writes.Load() - before
		if writes > 6 {
			t.Errorf("round %d: 1 MiB took %d writes, want at most 6", round, writes)
		}
		t.Logf("round %d: 1 MiB in %d writes", round, writes)
	}
	// Small writes are not held back.
	defer func() {
		// What a Write sent arrives before Close's alert.
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		client.Close()
		got, err := io.ReadAll(server)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read %d bytes before close, %v", len(got), err)
		}
	}()
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(server, b); err != nil || string(b) != "hello" {
		t.Fatalf("%q, %v", b, err)
	}
}

func TestCoalescedTLSConcurrentWrites(t *testing.T) {
	t.Parallel()
	client, server, _ := securePair(t)
	const writers, chunks = 4, 20
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; seq < chunks; seq++ {
				size := 8 + (seq*37%7+1)*20000 // 28 KB to 148 KB
				b := bytes.Repeat([]byte{byte(w*chunks + seq)}, size)
				binary.BigEndian.PutUint16(b, uint16(w))
				binary.BigEndian.PutUint16(b[2:], uint16(seq))
				binary.BigEndian.PutUint32(b[4:], uint32(size))
				if _, err := client.Write(b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	next := make([]int, writers)
	for i := 0; i < writers*chunks; i++ {
		var hdr [8]byte
		if _, err := io.ReadFull(server, hdr[:]); err != nil {
			t.Fatal(err)
		}
		w, seq, size := binary.BigEndian.Uint16(hdr[:]), int(binary.BigEndian.Uint16(hdr[2:])), binary.BigEndian.Uint32(hdr[4:])
		if int(w) >= writers || seq != next[w] {
			t.Fatalf("chunk %d of writer %d arrived, want chunk %d", seq, w, next[w])
		}
		next[w]++
		body := make([]byte, size-8)
		if _, err := io.ReadFull(server, body); err != nil {
			t.Fatal(err)
		}
		if want := bytes.Repeat([]byte{byte(int(w)*chunks + seq)}, len(body)); !bytes.Equal(body, want) {
			t.Fatalf("chunk %d of writer %d interleaved with another", seq, w)
		}
	}
	wg.Wait()
}

// recConn records the writes that reach it and fails once limit bytes
// were written, after a partial write.
type recConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	limit  int
	total  int
	closed bool
}

var errBroken = errors.New("broken pipe")

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit > 0 && c.total+len(p) > c.limit {
		n := c.limit - c.total
		c.writes = append(c.writes, append([]byte{}, p[:n]...))
		c.total += n
		return n, errBroken
	}
	c.writes = append(c.writes, append([]byte{}, p...))
	c.total += len(p)
	return len(p), nil
}

func (c *recConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *recConn) all() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Join(c.writes, nil)
}

// fakeTLS stands for crypto/tls: one write per 16 KiB "record".
type fakeTLS struct {
	sec.SecureConn
	raw net.Conn
}

func (f *fakeTLS) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 16<<10)
		if _, err := f.raw.Write(p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

func TestCoalescingConnOrderAndFlush(t *testing.T) {
	t.Parallel()
	rc := &recConn{}
	c := &coalescingConn{Conn: rc}
	// Outside begin/end, writes go straight through.
	c.Write([]byte("a"))
	c.begin()
	c.Write([]byte("b"))
	c.Write([]byte("c"))
	if n := len(rc.writes); n != 1 {
		t.Fatalf("%d writes before end, want 1", n)
	}
	// A write larger than the buffer flushes what is gathered first.
	big := bytes.Repeat([]byte("d"), coalesceRecords*maxRecordWire+1)
	c.Write(big)
	c.Write([]byte("e"))
	// Filling the buffer flushes it.
	fill := bytes.Repeat([]byte("f"), coalesceRecords*maxRecordWire)
	c.Write(fill)
	if err := c.end(); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("g"))
	want := [][]byte{[]byte("a"), []byte("bc"), big, []byte("e"), fill, []byte("g")}
	if len(rc.writes) != len(want) {
		t.Fatalf("%d writes, want %d", len(rc.writes), len(want))
	}
	for i := range want {
		if !bytes.Equal(rc.writes[i], want[i]) {
			t.Errorf("write %d: %d bytes, want %d", i, len(rc.writes[i]), len(want[i]))
		}
	}
	if c.pending != nil {
		t.Error("buffer kept after end")
	}
	// An empty begin/end writes nothing.
	c.begin()
	if err := c.end(); err != nil || len(rc.writes) != len(want) {
		t.Error("empty begin/end wrote")
	}
	c.Close()
	if !rc.closed {
		t.Error("Close did not close")
	}
}

func TestCoalescingConnWriteErrorIsSticky(t *testing.T) {
	t.Parallel()
	rc := &recConn{limit: 100 << 10}
	raw := &coalescingConn{Conn: rc}
	c := &coalescedConn{SecureConn: &fakeTLS{raw: raw}, raw: raw}
	msg := make([]byte, 64<<10)
	rand.Read(msg)
	if n, err := c.Write(msg); n != len(msg) || err != nil {
		t.Fatalf("first write: %d, %v", n, err)
	}
	// The second write breaks half way and says so.
	if n, err := c.Write(msg); n == len(msg) || !errors.Is(err, errBroken) {
		t.Fatalf("second write: %d, %v; want %v", n, err, errBroken)
	}
	// Nothing more reaches the wire, buffered or not.
	for _, size := range []int{64 << 10, 10} {
		if _, err := c.Write(msg[:size]); !errors.Is(err, errBroken) {
			t.Fatalf("write after the error: %v", err)
		}
	}
	if _, err := raw.Write([]byte("alert")); !errors.Is(err, errBroken) {
		t.Fatalf("direct write after the error: %v", err)
	}
	if got := rc.all(); !bytes.Equal(got, append(append([]byte{}, msg...), msg[:36<<10]...)) {
		t.Fatalf("wire has %d bytes, want the first write and a prefix of the second", len(got))
	}
	if raw.pending != nil {
		t.Error("buffer kept after a failed write")
	}
}

func TestCoalescingConnCloseBreaksBlockedWrite(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe() // nobody reads b: writes to a block
	defer b.Close()
	raw := &coalescingConn{Conn: a}
	c := &coalescedConn{SecureConn: &fakeTLS{raw: raw}, raw: raw}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, 64<<10)) // blocks in the write to the pipe
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	raw.Close() // what crypto/tls does on Close during a Write
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("write succeeded with nobody reading")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not break the blocked write")
	}
}

// chunkConn serves data in reads of at most chunk bytes.
type chunkConn struct {
	net.Conn
	r     *bytes.Reader
	chunk int
	reads int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p[:min(len(p), c.chunk)])
}

func TestCoalescingConnReads(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3<<20)
	rand.Read(data)
	for _, chunk := range []int{1000, 16 << 10, 100 << 10, 1 << 20} {
		cc := &chunkConn{r: bytes.NewReader(data), chunk: chunk}
		c := &coalescingConn{Conn: cc}
		var got []byte
		p := make([]byte, 17<<10) // what TLS asks for, about
		for {
			n, err := c.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("chunk %d: read %d bytes, not the data", chunk, len(got))
		}
		if c.rbuf != nil {
			t.Errorf("chunk %d: read buffer kept at the end", chunk)
		}
		t.Logf("chunk %d: %d reads of the connection", chunk, cc.reads)
		if bound := len(data)/min(chunk, coalesceRecords*maxRecordWire)*2 + 4; chunk >= 100<<10 && cc.reads > bound {
			t.Errorf("chunk %d: %d reads of the connection", chunk, cc.reads)
		}
	}
}

// TestCoalescedTLSInterop moves a release-sized payload both ways between
// a host of this package and a stock go-libp2p host (default TLS and yamux) over TCP.
func TestCoalescedTLSInterop(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := newTestHost(t, Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	stock, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(libp2ptls.ID, libp2ptls.New), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer stock.Close()
	const proto = "/test/echo"
	echo := func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	}
	n.SetStreamHandler(proto, echo)
	stock.SetStreamHandler(proto, echo)
	msg := make([]byte, 8<<20)
	rand.Read(msg)
	pairs := []struct {
		name string
		from func() (network.Stream, error)
	}{
		{"node to stock", func() (network.Stream, error) {
			n.Peerstore().AddAddrs(stock.ID(), stock.Addrs(), time.Hour)
			return n.NewStream(ctx, stock.ID(), proto)
		}},
		{"stock to node", func() (network.Stream, error) {
			stock.Peerstore().AddAddrs(n.ID(), n.Addrs(), time.Hour)
			return stock.NewStream(ctx, n.ID(), proto)
		}},
	}
	for _, p := range pairs {
		s, err := p.from()
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if sec := s.Conn().ConnState().Security; sec != libp2ptls.ID {
			t.Fatalf("%s: security %q, want %q", p.name, sec, libp2ptls.ID)
		}
		go func() {
			s.Write(msg)
			s.CloseWrite()
		}()
		got, err := io.ReadAll(s)
		s.Close()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%s: echoed %d of %d bytes, %v", p.name, len(got), len(msg), err)
		}
	}
}
