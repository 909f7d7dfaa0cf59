package p2p

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/org/rustpatcher-go/internal/pack"
	"github.com/org/rustpatcher-go/internal/wire"
	"github.com/org/rustpatcher-go/region"
)

// MakeDeltas has a node with a Config.PackDir make, in the background,
// the frames of the release of target signed by pub whose region is in,
// when it is the one served: its pieces compressed alone, and its deltas
// from each file in bases (the paths of older releases of the same target,
// newest first; at most wire.MaxDeltaBases are used). Frames made before
// and still in PackDir are used again. Peers are told of a delta in info
// answers once it is made. Frames of files no longer served are removed
// from PackDir. Without a PackDir it does nothing.
func (n *Node) MakeDeltas(pub ed25519.PublicKey, target string, in region.Info, bases []string) {
	if n.packer == nil || n.checkOpen() != nil {
		return
	}
	sv := n.server.newestOf(pub, target)
	if sv == nil || sv.info != in {
		return
	}
	n.packer.add(sv, bases[:min(len(bases), wire.MaxDeltaBases)])
}

// A packer makes the frames of served files in PackDir, one job at a
// time on one goroutine: at most one core, and the memory of one
// pack.Make (about 40 MiB, see pack.Make) plus one base's index (at most
// 32 MiB), whatever the length of the files.
type packer struct {
	dir    string
	server *server
	log    *slog.Logger

	mu    sync.Mutex
	queue []packJob
	known map[string]time.Time // jobs queued or done (zero), or failed (when), by packJob.key
	wake  chan struct{}
}

// packJob makes the frames of target: compressed alone when base is
// empty, else deltas from the file at base.
type packJob struct {
	target *served // with a reference, given back when the job is done
	base   string
	key    string
}

func newPacker(dir string, s *server, log *slog.Logger) *packer {
	return &packer{dir: dir, server: s, log: log, known: map[string]time.Time{}, wake: make(chan struct{}, 1)}
}

// add queues the jobs of sv not queued or done before: its compressed
// pieces, and a delta from each base.
func (p *packer) add(sv *served, bases []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range append([]string{""}, bases...) {
		key := hex.EncodeToString(sv.id[:]) + "\x00" + b
		if b != "" {
			st, err := os.Stat(b)
			if err != nil {
				continue
			}
			key += fmt.Sprintf("\x00%d\x00%d", st.Size(), st.ModTime().UnixNano())
		}
		if failed, ok := p.known[key]; ok && (failed.IsZero() || time.Since(failed) < packRetry) {
			continue
		}
		if len(p.known) > 4096 {
			clear(p.known)
		}
		p.known[key] = time.Time{}
		sv.acquire()
		p.queue = append(p.queue, packJob{target: sv, base: b, key: key})
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run makes the queued frames until ctx is done.
func (p *packer) run(ctx context.Context) {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		p.log.Warn("no directory for compressed pieces and deltas; pieces are compressed on the fly", "dir", p.dir, "err", err)
	}
	p.clean(true)
	worked := false // since the last clean
	for {
		p.mu.Lock()
		var job packJob
		ok := len(p.queue) > 0
		if ok {
			job = p.queue[0]
			p.queue = p.queue[1:]
		}
		p.mu.Unlock()
		if !ok {
			if worked {
				// Only once jobs ran, so that the frames of a release
				// about to be served again (at a start) are kept.
				p.clean(false)
				worked = false
			}
			select {
			case <-ctx.Done():
				p.drain()
				return
			case <-p.wake:
				continue
			}
		}
		p.do(ctx, job)
		job.target.release()
		worked = true
	}
}

// packRetry is how long after a failure a job is not queued again.
const packRetry = 10 * time.Minute

// forget lets the job key be queued again packRetry after a failure.
func (p *packer) forget(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.known[key] = time.Now()
}

// drain gives back the references of the jobs left.
func (p *packer) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, j := range p.queue {
		j.target.release()
	}
	p.queue = nil
}

// do runs one job, unless its target is no longer served.
func (p *packer) do(ctx context.Context, job packJob) {
	sv := job.target
	if p.server.byIDOf(sv.id) != sv {
		return
	}
	t := pack.Target{File: sv.f, ID: sv.id, Layout: sv.layout}
	log := p.log.With("version", sv.info.Version, "file", fmt.Sprintf("%x", sv.id[:8]))
	start := time.Now()
	if job.base == "" {
		c, made, err := p.makeOrOpen(ctx, t, nil)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("compressing the pieces of a release failed; they are compressed on the fly", "err", err)
			}
			p.forget(job.key)
			return
		}
		if p.keep(sv, c) && made {
			log.Info("pieces compressed", "bytes", c.Size(), "of", sv.layout.Size, "took", time.Since(start).Round(time.Millisecond))
		}
		return
	}
	f, err := os.Open(job.base)
	if err != nil {
		log.Warn("no delta from a file that cannot be opened", "base", job.base, "err", err)
		return
	}
	defer f.Close()
	base, bin, err := pack.OpenBase(ctx, f)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("no delta from a file that is not a whole release", "base", job.base, "err", err)
		}
		return
	}
	if base.ID == sv.id || sv.hasPack(base.ID) {
		return
	}
	log = log.With("base", filepath.Base(job.base), "base_version", bin.Version)
	c, made, err := p.makeOrOpen(ctx, t, base)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("making a delta failed", "err", err)
		}
		p.forget(job.key)
		return
	}
	if p.keep(sv, c) && made {
		log.Info("delta made", "bytes", c.Size(), "of", sv.layout.Size, "took", time.Since(start).Round(time.Millisecond))
	}
}

// makeOrOpen opens the frames of t from base (nil: compressed alone) made
// before, or makes them. made reports whether they were made now.
func (p *packer) makeOrOpen(ctx context.Context, t pack.Target, base *pack.Base) (c *pack.Cache, made bool, err error) {
	var id [wire.IDLen]byte
	if base != nil {
		id = base.ID
	}
	path := filepath.Join(p.dir, pack.CacheName(t.ID, id))
	if c, err := pack.OpenCache(path, t, id); err == nil {
		return c, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		p.log.Warn("making again frames that do not check", "err", err)
	}
	if path, err = pack.Make(ctx, p.dir, t, base); err != nil {
		return nil, false, err
	}
	c, err = pack.OpenCache(path, t, id)
	return c, true, err
}

// keep attaches c to sv, or closes it when sv is no longer served.
func (p *packer) keep(sv *served, c *pack.Cache) bool {
	if sv.attach(c) {
		return true
	}
	c.Close()
	return false
}

// clean removes from the directory the temporary files an interrupted job
// left (at start) or the frames of files no longer served (after jobs).
func (p *packer) clean(start bool) {
	es, err := os.ReadDir(p.dir)
	if err != nil {
		return
	}
	for _, e := range es {
		name := e.Name()
		if strings.HasPrefix(name, ".making-") {
			if start {
				os.Remove(filepath.Join(p.dir, name))
			}
			continue
		}
		if start {
			continue
		}
		if !strings.HasSuffix(name, ".zst") && !strings.HasSuffix(name, ".delta") {
			continue
		}
		h, _, _ := strings.Cut(name, ".")
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != wire.IDLen {
			continue
		}
		if p.server.byIDOf([wire.IDLen]byte(b)) == nil {
			if os.Remove(filepath.Join(p.dir, name)) == nil {
				p.log.Debug("removed the frames of a file no longer served", "file", name)
			}
		}
	}
}
