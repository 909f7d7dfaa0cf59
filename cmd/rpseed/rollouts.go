package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/region"
)

// servedRollouts are the rollout statements the watcher serves, by owner
// id, for the watcher, /healthz and /metrics. It is safe for concurrent
// use.
type servedRollouts struct {
	mu sync.Mutex
	by map[string]rollout.Statement
}

// get returns the statement served for o.
func (r *servedRollouts) get(o owner) (rollout.Statement, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.by[o.id()]
	return st, ok
}

func (r *servedRollouts) put(o owner, st rollout.Statement) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.by == nil {
		r.by = map[string]rollout.Statement{}
	}
	r.by[o.id()] = st
}

// all returns the statements served, by target and then key.
func (r *servedRollouts) all() []rollout.Statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]rollout.Statement, 0, len(r.by))
	for _, st := range r.by {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Target != out[j].Target {
			return out[i].Target < out[j].Target
		}
		return string(out[i].Key) < string(out[j].Key)
	})
	return out
}

// yanked reports whether the statement served for o yanks version.
func (r *servedRollouts) yanked(o owner, version string) bool {
	st, ok := r.get(o)
	return ok && st.Yanked(version)
}

// followRollouts reads the rollout statements in the directory and serves,
// for each owner (given with --pub, or moved to by a key rotation), the
// one it signed for its target with the highest sequence, once it is
// newer than the one served and not expired. The releases of the versions
// it yanks are not served from then on (see scan). A statement signed by
// no owner's key, for a target the key is not given for, older than the
// one served or expired is logged once, at WARN, and not served: nodes
// would refuse it anyway.
func (w *watcher) followRollouts(ctx context.Context, now time.Time) {
	stmts, err := w.dir.Rollouts(ctx)
	if msg := fmt.Sprint(err); err != nil && msg != w.rolloutErr {
		w.log.Warn("reading rollout statements", "err", err)
		w.rolloutErr = msg
	} else if err == nil {
		w.rolloutErr = ""
	}
	best := map[string]rollout.Statement{}
	owners := map[string]owner{}
	for _, st := range stmts {
		o := owner{target: st.Target, pub: st.Key}
		if !slices.ContainsFunc(w.owners, func(h owner) bool { return h.id() == o.id() }) {
			w.warnRollout(st, "not serving rollout statement: its key is given with --pub for no such target (nor moved to by a key rotation)")
			continue
		}
		var held *rollout.Statement
		if h, ok := w.rollouts.get(o); ok {
			held = &h
		}
		newer, err := rollout.Check(held, st, st.Key, st.Target, now)
		if err != nil {
			msg := "not serving rollout statement: " + err.Error()
			if errors.Is(err, rollout.ErrExpired) {
				msg += "; re-sign it with rpsign rollout --refresh"
			}
			w.warnRollout(st, msg)
			continue
		}
		if cur, ok := best[o.id()]; newer && (!ok || st.Sequence > cur.Sequence) {
			best[o.id()], owners[o.id()] = st, o
		}
	}
	for id, st := range best {
		if err := w.srv.ServeRollout(ctx, st); err != nil {
			if stopping(ctx, err) {
				return
			}
			w.log.Error("cannot serve rollout statement", "target", st.Target, "sequence", st.Sequence, "err", err)
			continue
		}
		w.rollouts.put(owners[id], st)
		w.log.Info("serving rollout statement", "target", st.Target, "owner", region.EncodePublicKey(st.Key), "sequence", st.Sequence,
			"expires", st.Expires.Format(time.RFC3339), "channels", st.ChannelSummary(), "yanked", st.YankSummary())
	}
}

// warnRollout logs msg about st once.
func (w *watcher) warnRollout(st rollout.Statement, msg string) {
	k := string(st.Signature[:])
	if w.unservedRollouts[k] {
		return
	}
	w.unservedRollouts[k] = true
	w.log.Warn(msg, "target", st.Target, "owner", region.EncodePublicKey(st.Key), "sequence", st.Sequence)
}
