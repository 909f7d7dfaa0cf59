package p2phost

import (
	"context"
	"net"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	libp2pyamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
)

// The TLS security transport of TCP connections is go-libp2p's own
// (/tls/1.0.0, same handshake, same records) over a connection that batches
// its syscalls. crypto/tls writes every record of up to 16 KiB with its own
// write syscall and reads little more than one record per read syscall, and
// on fast links those syscalls take a large share of the CPU time next to
// the encryption (docs/BENCHMARKS.md). coalescingConn gathers the records
// of one write of the secure connection (one yamux frame, up to 64
// records) into one write syscall, and reads up to 64 records per syscall
// while the peer streams. With yamux frames of 1 MiB instead of 64 KiB
// (MuxerMaxMessage), a transfer takes one write syscall per MiB instead of
// one per 16 KiB record, and fewer goroutine hand-overs and wake-ups,
// which matter most when the two ends are separate processes; a receive
// window of 8 MiB (MuxerWindow) keeps both ends busy at once. The bytes on
// the wire are the same as with any TLS and yamux peer, which stay
// interoperable.
//
// Memory: the buffers come from one pool and a connection holds them only
// while it moves data: one while it writes a frame, and one while it reads
// a stream (given back once the socket runs dry), about 1 MiB each.

// maxRecordWire is the largest TLS 1.3 record on the wire: 16 KiB of
// plaintext, the content type byte, the 5-byte header and the 16-byte
// AES-GCM or ChaCha20-Poly1305 tag.
const maxRecordWire = 16<<10 + 1 + 5 + 16

// coalesceRecords is the size of the pooled buffers in full records: a
// yamux frame of MuxerMaxMessage bytes (64 records) is one write, and
// reads take up to 64 records at a time.
const coalesceRecords = 64

// coalesceMin is the smallest write of the secure connection that is
// coalesced; smaller writes are one record anyway.
const coalesceMin = 16 << 10

var coalescePool = sync.Pool{New: func() any {
	b := make([]byte, 0, coalesceRecords*maxRecordWire)
	return &b
}}

// newCoalescedTLS makes the TLS security transport, with the same
// parameters as libp2ptls.New.
func newCoalescedTLS(id protocol.ID, key crypto.PrivKey, muxers []tptu.StreamMuxer) (*coalescedTLS, error) {
	t, err := libp2ptls.New(id, key, muxers)
	if err != nil {
		return nil, err
	}
	return &coalescedTLS{t}, nil
}

// coalescedTLS is libp2ptls.Transport over a coalescingConn.
type coalescedTLS struct {
	*libp2ptls.Transport
}

var _ sec.SecureTransport = (*coalescedTLS)(nil)

// SecureInbound runs the TLS handshake as a server.
func (t *coalescedTLS) SecureInbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	raw := &coalescingConn{Conn: insecure}
	sc, err := t.Transport.SecureInbound(ctx, raw, p)
	if err != nil {
		return nil, err
	}
	return &coalescedConn{SecureConn: sc, raw: raw}, nil
}

// SecureOutbound runs the TLS handshake as a client.
func (t *coalescedTLS) SecureOutbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	raw := &coalescingConn{Conn: insecure}
	sc, err := t.Transport.SecureOutbound(ctx, raw, p)
	if err != nil {
		return nil, err
	}
	return &coalescedConn{SecureConn: sc, raw: raw}, nil
}

// coalescedConn is a secure connection whose large writes reach the
// network in as few syscalls as the coalescing buffer allows.
type coalescedConn struct {
	sec.SecureConn
	raw *coalescingConn
	wmu sync.Mutex // one coalesced write at a time
}

// Write encrypts p (TLS splits it into records) and writes the records
// with one syscall per coalescing buffer.
func (c *coalescedConn) Write(p []byte) (int, error) {
	if len(p) < coalesceMin {
		return c.SecureConn.Write(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.raw.begin()
	n, err := c.SecureConn.Write(p)
	if ferr := c.raw.end(); ferr != nil && err == nil {
		// TLS took the records as written, but they did not all reach
		// the network; the connection is broken (the error is sticky).
		n, err = 0, ferr
	}
	return n, err
}

// coalescingConn is the insecure connection under TLS. Between begin and
// end it gathers writes in a pooled buffer, writing it out when it is
// full and at end. Outside begin and end (during the handshake, for
// alerts, for records TLS writes from a Read such as a key update answer)
// writes go straight through.
//
// The write happens in the caller: handing it to another goroutine, so
// that the next frame is encrypted meanwhile, costs goroutine hand-overs
// and wake-ups that the overlap does not win back (docs/BENCHMARKS.md).
//
// A write error is sticky: once some bytes may be lost, no later bytes are
// written, and every later write returns the error.
//
// Writes are safe for concurrent use (crypto/tls may write from its Read
// and Close as well as from Write). crypto/tls's Close during a Write
// closes this connection, which breaks a blocked write; a Close between
// writes sends the closing alert under the write deadline it sets.
type coalescingConn struct {
	net.Conn

	mu      sync.Mutex // guards pending and err, and orders writes
	pending *[]byte    // the pooled buffer, between begin and end
	err     error      // sticky write error

	rmu    sync.Mutex
	rbuf   *[]byte // pooled read buffer while streaming; nil when idle
	rr, rw int     // unread bytes are (*rbuf)[rr:rw]
	big    bool    // the last read filled its buffer: more is waiting
}

// writeWire writes b to Conn; c.mu must be held.
func (c *coalescingConn) writeWire(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Write(b)
	if err != nil {
		c.err = err
	}
	return n, err
}

// begin starts gathering writes.
func (c *coalescingConn) begin() {
	c.mu.Lock()
	if c.pending == nil {
		c.pending = coalescePool.Get().(*[]byte)
	}
	c.mu.Unlock()
}

// end writes what was gathered and lets writes go straight through again.
// It returns the error of this or an earlier write, if any.
func (c *coalescingConn) end() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.pending
	c.pending = nil
	if b == nil {
		return c.err
	}
	var err error
	if len(*b) > 0 {
		_, err = c.writeWire(*b)
	}
	*b = (*b)[:0]
	coalescePool.Put(b)
	if err == nil {
		err = c.err
	}
	return err
}

// Write gathers p or writes it through.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.pending != nil {
		b := *c.pending
		if len(b)+len(p) > cap(b) && len(b) > 0 {
			_, err := c.writeWire(b)
			*c.pending = b[:0]
			if err != nil {
				return 0, err
			}
			b = b[:0]
		}
		if len(p) <= cap(b) {
			*c.pending = append(b, p...)
			return len(p), nil
		}
	}
	return c.writeWire(p)
}

// Read reads through a pooled buffer of coalesceRecords records while the
// peer streams (the last read filled its buffer), so that TLS, which asks
// for little more than one record at a time, costs one syscall per buffer
// instead of one per record. When the socket runs dry the buffer goes back
// to the pool, so an idle connection holds none.
func (c *coalescingConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rbuf != nil {
		n := copy(p, (*c.rbuf)[c.rr:c.rw])
		c.rr += n
		if c.rr == c.rw {
			coalescePool.Put(c.rbuf)
			c.rbuf = nil
		}
		return n, nil
	}
	if !c.big || len(p) >= coalesceRecords*maxRecordWire {
		n, err := c.Conn.Read(p)
		c.big = n == len(p)
		return n, err
	}
	b := coalescePool.Get().(*[]byte)
	k, err := c.Conn.Read((*b)[:cap(*b)])
	c.big = k == cap(*b)
	n := copy(p, (*b)[:k])
	if n < k {
		err = nil // the next read of the connection returns it again
	}
	if n == k {
		coalescePool.Put(b)
	} else {
		c.rbuf, c.rr, c.rw = b, n, k
	}
	return n, err
}

// MuxerMaxMessage is the largest yamux frame this node sends, header
// included (yamux's default is 64 KiB). A frame is one write of the secure
// connection, so one syscall, and one hand-over between goroutines on
// either side. Frames never exceed the receiver's stream window (256 KiB
// at first, as the yamux specification sets it), so any yamux peer accepts
// them. A power of two keeps yamux's pooled frame buffers exact.
const MuxerMaxMessage = 1 << 20

// MuxerHeader is the size of a yamux frame header: a frame of
// MuxerMaxMessage bytes carries MuxerMaxMessage-MuxerHeader bytes of a
// stream.
const MuxerHeader = 12

// MuxerWindow is the receive window this node grants each stream from its
// first window update (yamux's default is 256 KiB, growing up to 16 MiB).
// yamux grows a window only when the previous one was used up within a few
// round trips as measured by its pings; on loopback and fast LANs those
// take microseconds while a frame takes longer than that to decrypt, so the
// window never grows, and a 256 KiB window lets the sender send one frame
// and then wait until the receiver has consumed it: the two sides take
// turns instead of working at once. 8 MiB keeps eight 1 MiB frames in
// flight, so that both ends work at once (docs/BENCHMARKS.md).
//
// Memory: a stream can hold up to this much received and unread, and
// yamux reserves only its default 256 KiB of it with the resource
// manager. On the rustpatcher protocol a server resets a stream whose
// peer sends anything after its request (internal/p2p's refuseTrailing),
// and downloads read as the bytes arrive; other protocols read their messages as they come
// (the DHT's may be up to 4 MiB). The window is the receiver's to grant:
// this node's downloads get it from any libp2p peer, while a peer with
// yamux's defaults that downloads from this node grants 256 KiB.
const MuxerWindow = 8 << 20

// muxer returns libp2p's yamux transport with MuxerMaxMessage and
// MuxerWindow.
func muxer() *libp2pyamux.Transport {
	t := *libp2pyamux.DefaultTransport
	t.MaxMessageSize = MuxerMaxMessage
	t.InitialStreamWindowSize = MuxerWindow
	return &t
}
