package client

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/org/rustpatcher-go/internal/selfreplace"
	"github.com/org/rustpatcher-go/region"
)

// unwritable is the pipeline's state while the executable's directory takes
// no new file (see selfreplace.ErrNotWritable): no update can be applied, so
// none is fetched, and the engine stays quiet but for changes. It said so
// once; it says once more when a newer release appears (one it cannot
// apply), and once when the directory takes files again, and then applies
// updates as usual.
type unwritable struct {
	err  error  // as Check returned it
	seen string // the newest version reported as not applicable, or ""
}

// checkWritable reports why the executable's directory takes no new file,
// or nil.
func (p *pipeline) checkWritable() error {
	r := &selfreplace.Replacer{Path: p.exe, FS: p.cfg.fs}
	return r.Check()
}

// blockUnwritable enters the quiet state after err, the Check of the
// executable's directory, failed with ErrNotWritable; seen is the version
// whose update failed on it, if any. It logs it, once; the caller emits
// the event.
func (p *pipeline) blockUnwritable(err error, seen string) {
	p.unwritable = &unwritable{err: err, seen: seen}
	p.log.Error("updates cannot be applied here; the program goes on and serves its own release, and says so again only when a newer release appears or the directory becomes writable", "err", err)
}

// stillUnwritable runs at each poll, with the candidates found (newest
// first): it reports whether the directory still takes no new file, in
// which case nothing is fetched. A newer release than the last one
// reported is reported once; a directory writable again is said once,
// and the poll goes on.
func (p *pipeline) stillUnwritable(cands []candidate) bool {
	u := p.unwritable
	if u == nil {
		return false
	}
	if err := p.checkWritable(); !errors.Is(err, selfreplace.ErrNotWritable) {
		p.unwritable = nil
		p.log.Info("the executable's directory takes new files again; updates are applied again", "dir", filepath.Dir(p.exe))
		return false
	}
	if len(cands) > 0 && (u.seen == "" || region.CompareVersions(cands[0].in.Version, u.seen) > 0) {
		c := cands[0]
		u.seen = c.in.Version
		err := fmt.Errorf("%w: update %s cannot be applied", u.err, c.in.Version)
		p.log.Warn("a newer release is available but cannot be applied here; the program goes on and serves its own release", "version", c.in.Version, "source", c.name(), "err", u.err)
		p.emit(Event{Kind: EventFailed, Release: c.in, Source: c.name(), Err: err})
	}
	return true
}

// unwritableAfter reports whether a failure on this machine's side while
// applying c came from a directory that takes no new file (it became
// unwritable since the start); if so the pipeline turns quiet (see
// unwritable) instead of backing off and failing at every step.
func (p *pipeline) unwritableAfter(c candidate) bool {
	err := p.checkWritable()
	if !errors.Is(err, selfreplace.ErrNotWritable) {
		return false
	}
	p.blockUnwritable(err, c.in.Version)
	return true
}
