package main

import (
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/rollout"
)

func TestApplyRollout(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 17, 0, 0, 0, time.UTC)
	ramping := func() rollout.Statement {
		return rollout.Statement{Sequence: 2,
			Channels: []rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 20, Ramp: 10 * time.Hour, Start: t0}},
			Yanks:    []rollout.Yank{{Version: "1.9.0", To: "2.0.0"}}}
	}
	tests := []struct {
		name     string
		change   rolloutChange
		at       time.Duration
		channels []rollout.Channel
		yanks    []rollout.Yank
	}{
		{"halt freezes the ramp's share now", rolloutChange{channel: "stable", halt: true}, 5 * time.Hour,
			[]rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 60, Halted: true}}, []rollout.Yank{{Version: "1.9.0", To: "2.0.0"}}},
		{"halt after the ramp", rolloutChange{channel: "stable", halt: true}, 20 * time.Hour,
			[]rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 100, Halted: true}}, []rollout.Yank{{Version: "1.9.0", To: "2.0.0"}}},
		{"yank: channels and earlier yanks move on", rolloutChange{channel: "stable", yank: "2.0.0", to: "1.8.2"}, 0,
			[]rollout.Channel{{Name: "stable", Version: "1.8.2", Percent: 20, Ramp: 10 * time.Hour, Start: t0}},
			[]rollout.Yank{{Version: "1.9.0", To: "1.8.2"}, {Version: "2.0.0", To: "1.8.2"}}},
		{"a new channel is added", rolloutChange{channel: "beta", version: "2.1.0", percent: 5}, time.Hour,
			[]rollout.Channel{{Name: "stable", Version: "2.0.0", Percent: 20, Ramp: 10 * time.Hour, Start: t0}, {Name: "beta", Version: "2.1.0", Percent: 5}},
			[]rollout.Yank{{Version: "1.9.0", To: "2.0.0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ramping()
			if _, err := applyRollout(&s, tt.change, t0.Add(tt.at)); err != nil {
				t.Fatal(err)
			}
			if len(s.Channels) != len(tt.channels) || len(s.Yanks) != len(tt.yanks) {
				t.Fatalf("got %+v %+v, want %+v %+v", s.Channels, s.Yanks, tt.channels, tt.yanks)
			}
			for i := range s.Channels {
				if s.Channels[i] != tt.channels[i] {
					t.Errorf("channel %d: got %+v, want %+v", i, s.Channels[i], tt.channels[i])
				}
			}
			for i := range s.Yanks {
				if s.Yanks[i] != tt.yanks[i] {
					t.Errorf("yank %d: got %+v, want %+v", i, s.Yanks[i], tt.yanks[i])
				}
			}
		})
	}
}
