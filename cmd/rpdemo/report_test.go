package main

import (
	"testing"

	"github.com/org/rustpatcher-go/client"
)

func TestParseReports(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		parse  func(string) (report, bool)
		line   string
		want   report
		wantOK bool
	}{
		{"hello line", parseStdout, "hello 1.0.0 args=demo node1", report{kind: reportHello, version: "1.0.0", args: "demo node1"}, true},
		{"hello line without args", parseStdout, "hello 2.0.0-rc.1 args=", report{kind: reportHello, version: "2.0.0-rc.1"}, true},
		{"listening line", parseStdout, "listening: /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW", report{kind: reportListening, addr: "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW"}, true},
		{"metrics line", parseStdout, "metrics: http://127.0.0.1:9/metrics", report{}, false},
		{"hello without args=", parseStdout, "hello world", report{}, false},
		{"event record", parseStderr, `{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"update event","component":"x","event":"found","version":"2.0.0","source":"seed /p2p/12D3KooW"}`,
			report{kind: reportEvent, event: "found", version: "2.0.0", source: "seed /p2p/12D3KooW"}, true},
		{"other record", parseStderr, `{"level":"INFO","msg":"update found","version":"2.0.0"}`, report{}, false},
		{"text log line", parseStderr, `time=2026-01-02T03:04:05Z level=INFO msg="update found" event=found`, report{}, false},
		{"broken JSON", parseStderr, `{"event":"found"`, report{}, false},
	}
	for _, tt := range tests {
		got, ok := tt.parse(tt.line)
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("%s: parse(%q) = %+v, %v; want %+v, %v", tt.name, tt.line, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestReportMatchers(t *testing.T) {
	t.Parallel()
	applied := report{kind: reportEvent, event: client.EventApplied.String(), version: "2.0.0"}
	if !isEvent(client.EventApplied, "2.0.0")(applied) {
		t.Error("isEvent(applied, 2.0.0) does not match an applied event for 2.0.0")
	}
	if isEvent(client.EventFound, "2.0.0")(applied) || isEvent(client.EventApplied, "3.0.0")(applied) {
		t.Error("isEvent matches another kind or version")
	}
	hello := report{kind: reportHello, version: "2.0.0"}
	if !isHello("2.0.0")(hello) || isHello("1.0.0")(hello) || isHello("2.0.0")(applied) {
		t.Error("isHello matches the wrong reports")
	}
}
