package main

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TestLibraryLogs checks the forwarding handler and the zap core that carry
// the libraries' records into rpseed's handler, without installing them in
// the libraries (which is process-wide).
func TestLibraryLogs(t *testing.T) {
	t.Parallel()
	var l libraryLogs
	fwd := slog.New(&forward{to: &l}).With("logger", "swarm2")
	fwd.Warn("dropped: no handler yet")

	var out strings.Builder
	h, err := newHandler(&out, "text", slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	l.h.Store(&h) // as set does, without touching go-log's levels
	fwd.Warn("listening failed", "on", "/ip4/127.0.0.1/tcp/1")
	fwd.Debug("kept at debug")
	fx := slog.New(&forward{to: &l}).With("logger", "p2p-config").With("system", "fx")
	fx.Error("OnStart hook failed")

	z := zap.New(&zapCore{to: &forward{to: &l}}).Named("dht").With(zap.String("peer", "12D3"))
	z.Warn("failed to bootstrap", zap.Int("tries", 3), zap.Duration("after", time.Second))
	z.Sugar().Infow("no closer peers to send", "12D3") // a key without a value: zap complains at ERROR

	got := out.String()
	for _, want := range []string{
		`level=WARN msg="listening failed" logger=swarm2 on=/ip4/127.0.0.1/tcp/1`,
		`level=DEBUG msg="kept at debug" logger=swarm2`,
		`level=DEBUG msg="OnStart hook failed" logger=p2p-config system=fx`,
		`level=WARN msg="failed to bootstrap" logger=dht after=1s peer=12D3 tries=3`,
		`level=DEBUG msg="Ignored key without a value." logger=dht`,
		`level=INFO msg="no closer peers to send" logger=dht`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "dropped") {
		t.Errorf("a record logged before set reached the handler:\n%s", got)
	}
	if zapToSlog(zapcore.DPanicLevel) != slog.LevelError || zapToSlog(zapcore.DebugLevel) != slog.LevelDebug {
		t.Error("zapToSlog maps levels wrongly")
	}

	// The libraries log one level above rpseed.
	for _, tt := range []struct{ rpseed, lib slog.Level }{
		{slog.LevelDebug, slog.LevelInfo}, {slog.LevelInfo, slog.LevelWarn}, {slog.LevelWarn, slog.LevelError}, {slog.LevelError, slog.LevelError},
	} {
		if got := libraryLevel(tt.rpseed); got != tt.lib {
			t.Errorf("libraryLevel(%v) = %v, want %v", tt.rpseed, got, tt.lib)
		}
	}
	// Noise an operator cannot act on is lowered to DEBUG: shown at
	// --log-level debug, not at the default info.
	out.Reset()
	var infoLib slog.Handler = &minLevel{Handler: h, level: libraryLevel(slog.LevelInfo)}
	var l3 libraryLogs
	l3.h.Store(&infoLib)
	swarm := slog.New(&forward{to: &l3}).With("logger", "swarm2")
	swarm.Error("swarm listener accept error", "addr", "/ip4/0.0.0.0/udp/4001/quic-v1", "err", errors.New("quic: server closed"))
	swarm.Error("swarm listener accept error", "addr", "/ip4/0.0.0.0/tcp/4001", "err", errors.New("too many open files"))
	rt := zap.New(&zapCore{to: &forward{to: &l3}}).Named("dht/RtRefreshManager").Sugar()
	rt.Warn("failed when refreshing routing table", errors.New("failed to query for self, err=failed to find any peer in table"))
	rt.Warnw("failed when refreshing routing table", "error", errors.New("failed to find any peer in table"))
	got = out.String()
	if strings.Contains(got, "routing table") || strings.Contains(got, "closed") {
		t.Errorf("noise shown at the default level:\n%s", got)
	}
	if !strings.Contains(got, "too many open files") {
		t.Errorf("an accept error that is not noise was lowered:\n%s", got)
	}
	out.Reset()
	var l4 libraryLogs
	var debugLib slog.Handler = &minLevel{Handler: h, level: slog.LevelDebug}
	l4.h.Store(&debugLib)
	zap.New(&zapCore{to: &forward{to: &l4}}).Named("dht/RtRefreshManager").Sugar().Warn("failed when refreshing routing table", errors.New("x"))
	if !strings.Contains(out.String(), `level=DEBUG msg="failed when refreshing routing tablex"`) {
		t.Errorf("noise not at DEBUG: %s", &out)
	}

	var l2 libraryLogs
	out.Reset()
	var lh slog.Handler = &minLevel{Handler: h, level: libraryLevel(slog.LevelDebug)}
	l2.h.Store(&lh)
	slog.New(&forward{to: &l2}).Debug("library debug")
	if out.Len() != 0 {
		t.Errorf("a library's debug record passed at --log-level debug: %s", &out)
	}
}
