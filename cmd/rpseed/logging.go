package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap/zapcore"
)

// newHandler returns rpseed's log handler: format "text" (logfmt) or
// "json", one record a line on w, at level.
func newHandler(w io.Writer, format string, level slog.Leveler) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(format) {
	case "text", "":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// libraryLogs routes the logs of the libraries rpseed runs into rpseed's
// own handler, so that an operator sees one format at one level: go-libp2p
// and fx (through gologshim), the DHT (through go-log's zap core) and the
// standard log package. The libraries fix their handler at their first
// record, before rpseed has read its flags, so install hands them this
// forwarding handler at start and set points it at rpseed's handler once
// there is one; until then their records are dropped.
//
// The libraries log one level above rpseed's own: at the default INFO their
// warnings and errors show, and --log-level debug adds their INFO records
// (their DEBUG records would bury rpseed's). fx's records are debug records:
// fx logs the error that stops a libp2p host from starting (a port in use)
// three times before returning it, and rpseed prints the error it returns.
// So are zap's complaints about a library's malformed log call ("Ignored key
// without a value."), which zap logs at ERROR.
type libraryLogs struct {
	h atomic.Pointer[slog.Handler] // nil until set
}

// install hands l to the libraries' loggers. It changes process-wide
// state, so only main calls it, before anything logs.
func (l *libraryLogs) install() {
	gologshim.SetDefaultHandler(&forward{to: l})
	golog.SetPrimaryCore(&zapCore{to: &forward{to: l}})
	slog.SetDefault(slog.New(&forward{to: l}))
}

// set sends the libraries' records one level above level (see
// libraryLevel) to h.
func (l *libraryLogs) set(h slog.Handler, level slog.Level) {
	level = libraryLevel(level)
	var lh slog.Handler = &minLevel{Handler: h, level: level}
	l.h.Store(&lh)
	golog.SetLogLevel("*", strings.ToLower(level.String()))
}

// libraryLevel returns the level of the libraries' records that rpseed
// shows at its own level: one step higher (DEBUG shows their INFO, INFO
// their WARN), at most ERROR.
func libraryLevel(level slog.Level) slog.Level {
	return min(max(level+4, slog.LevelInfo), slog.LevelError)
}

// zapMisuse are the messages zap's sugared logger logs, at ERROR, when a
// library passes it malformed key-value pairs: a bug of that library's log
// call, not an error of rpseed's.
var zapMisuse = []string{"Ignored key without a value.", "Ignored key-value pairs with non-string keys.", "Multiple errors without a key."}

// isNoise reports whether a library's record is one an operator cannot act
// on, which rpseed lowers to DEBUG:
//   - the DHT's "failed when refreshing routing table", which every first
//     seed of a network logs at start (it has no peer to query yet); DHT
//     trouble that matters shows in rpseed's own "announcing releases in
//     the DHT failed" and in /healthz;
//   - the swarm's "swarm listener accept error" when the listener was
//     closed, which is how rpseed stops.
func isNoise(msg string, errText string) bool {
	switch {
	case strings.HasPrefix(msg, "failed when refreshing routing table"):
		return true
	case msg == "swarm listener accept error":
		return strings.Contains(errText, "closed")
	}
	return false
}

// recordErr returns the text of a record's "err" or "error" attribute.
func recordErr(r slog.Record) string {
	var s string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" || a.Key == "error" {
			s = a.Value.String()
			return false
		}
		return true
	})
	return s
}

// minLevel is a handler that drops records below level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m *minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}
func (m *minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return &minLevel{Handler: m.Handler.WithAttrs(as), level: m.level}
}
func (m *minLevel) WithGroup(name string) slog.Handler {
	return &minLevel{Handler: m.Handler.WithGroup(name), level: m.level}
}

// forward is a handler that sends each record to the handler libraryLogs
// holds at that time, with the attributes and groups it was given. Records
// of fx are lowered to DEBUG.
type forward struct {
	to   *libraryLogs
	ops  []func(slog.Handler) slog.Handler // WithAttrs and WithGroup, in order
	isFx bool
}

func (f *forward) target() slog.Handler {
	p := f.to.h.Load()
	if p == nil {
		return nil
	}
	h := *p
	for _, op := range f.ops {
		h = op(h)
	}
	return h
}

func (f *forward) level(l slog.Level) slog.Level {
	if f.isFx {
		return min(l, slog.LevelDebug)
	}
	return l
}

func (f *forward) Enabled(ctx context.Context, l slog.Level) bool {
	p := f.to.h.Load()
	return p != nil && (*p).Enabled(ctx, f.level(l))
}

func (f *forward) Handle(ctx context.Context, r slog.Record) error {
	h := f.target()
	if h == nil {
		return nil
	}
	r.Level = f.level(r.Level)
	if r.Level > slog.LevelDebug && isNoise(r.Message, recordErr(r)) {
		r.Level = slog.LevelDebug
	}
	if !h.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handle(ctx, r)
}

func (f *forward) WithAttrs(as []slog.Attr) slog.Handler {
	isFx := f.isFx || slices.ContainsFunc(as, func(a slog.Attr) bool { return a.Key == "system" && a.Value.String() == "fx" })
	as = slices.Clone(as)
	return &forward{to: f.to, isFx: isFx, ops: append(slices.Clip(f.ops), func(h slog.Handler) slog.Handler { return h.WithAttrs(as) })}
}

func (f *forward) WithGroup(name string) slog.Handler {
	return &forward{to: f.to, isFx: f.isFx, ops: append(slices.Clip(f.ops), func(h slog.Handler) slog.Handler { return h.WithGroup(name) })}
}

// zapCore is a zap core that writes go-log's records (the DHT's) to an
// slog handler, with the logger's name as the attribute "logger", as
// gologshim names go-libp2p's.
type zapCore struct {
	to     slog.Handler
	fields []zapcore.Field
}

func (c *zapCore) Enabled(l zapcore.Level) bool {
	return c.to.Enabled(context.Background(), zapToSlog(l))
}

func (c *zapCore) With(fs []zapcore.Field) zapcore.Core {
	return &zapCore{to: c.to, fields: append(slices.Clip(c.fields), fs...)}
}

func (c *zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *zapCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	level := zapToSlog(e.Level)
	if slices.Contains(zapMisuse, e.Message) {
		level = slog.LevelDebug
	}
	if level > slog.LevelDebug {
		var errText string
		for _, f := range fs {
			if f.Key == "error" || f.Key == "err" {
				if e, ok := f.Interface.(error); ok {
					errText = e.Error()
				}
			}
		}
		if isNoise(e.Message, errText) {
			level = slog.LevelDebug
		}
	}
	ctx := context.Background()
	if !c.to.Enabled(ctx, level) {
		return nil
	}
	r := slog.NewRecord(e.Time, level, e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(slices.Clip(c.fields), fs...) {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.AddAttrs(slog.Any(k, enc.Fields[k]))
	}
	return c.to.Handle(ctx, r)
}

func (c *zapCore) Sync() error { return nil }

// zapToSlog maps a zap level to slog's.
func zapToSlog(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l >= zapcore.WarnLevel:
		return slog.LevelWarn
	case l >= zapcore.InfoLevel:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
