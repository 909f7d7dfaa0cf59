package client

import (
	"testing"
	"time"
	_ "time/tzdata" // the tests need real zones even where the system has none
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestNextAt(t *testing.T) {
	t.Parallel()
	ny := mustLoad(t, "America/New_York")
	lordHowe := mustLoad(t, "Australia/Lord_Howe") // 30-minute DST shift
	// parse reads a time with an explicit offset and puts it in loc.
	parse := func(loc *time.Location, s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.In(loc)
	}
	tests := []struct {
		name         string
		loc          *time.Location
		now          string
		hour, minute int
		want         string
	}{
		{"later today", time.UTC, "2026-05-10T08:00:00Z", 9, 30, "2026-05-10T09:30:00Z"},
		{"already passed today", time.UTC, "2026-05-10T10:00:00Z", 9, 30, "2026-05-11T09:30:00Z"},
		{"exactly now is next day", time.UTC, "2026-05-10T09:30:00Z", 9, 30, "2026-05-11T09:30:00Z"},
		{"a second before", time.UTC, "2026-05-10T09:29:59Z", 9, 30, "2026-05-10T09:30:00Z"},
		{"midnight from late evening", time.UTC, "2026-05-10T23:59:00Z", 0, 0, "2026-05-11T00:00:00Z"},
		{"just after midnight", time.UTC, "2026-05-11T00:00:01Z", 0, 0, "2026-05-12T00:00:00Z"},
		{"across month and year", time.UTC, "2026-12-31T23:30:00Z", 0, 15, "2027-01-01T00:15:00Z"},
		{"new york summer", ny, "2026-07-01T10:00:00-04:00", 3, 0, "2026-07-02T03:00:00-04:00"},
		{"new york winter", ny, "2026-01-15T10:00:00-05:00", 3, 0, "2026-01-16T03:00:00-05:00"},
		// 2026-03-08: clocks go from 02:00 EST to 03:00 EDT.
		{"skipped time fires after the gap", ny, "2026-03-07T22:00:00-05:00", 2, 30, "2026-03-08T03:00:00-04:00"},
		{"time after the gap", ny, "2026-03-07T22:00:00-05:00", 3, 30, "2026-03-08T03:30:00-04:00"},
		{"day after the gap is normal", ny, "2026-03-08T04:00:00-04:00", 2, 30, "2026-03-09T02:30:00-04:00"},
		{"time before the gap", ny, "2026-03-07T22:00:00-05:00", 1, 30, "2026-03-08T01:30:00-05:00"},
		// 2026-11-01: clocks go from 02:00 EDT back to 01:00 EST.
		{"repeated time fires once, first", ny, "2026-10-31T22:00:00-04:00", 1, 30, "2026-11-01T01:30:00-04:00"},
		{"repeated time not again the same night", ny, "2026-11-01T01:30:00-04:00", 1, 30, "2026-11-02T01:30:00-05:00"},
		{"after the repeat", ny, "2026-10-31T22:00:00-04:00", 2, 30, "2026-11-01T02:30:00-05:00"},
		{"midnight before fall back", ny, "2026-10-31T23:00:00-04:00", 0, 0, "2026-11-01T00:00:00-04:00"},
		// 2026-10-04 in Lord Howe: 02:00 +10:30 becomes 02:30 +11:00.
		{"half-hour gap", lordHowe, "2026-10-03T20:00:00+10:30", 2, 15, "2026-10-04T02:30:00+11:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := parse(tt.loc, tt.now)
			want := parse(tt.loc, tt.want)
			got := nextAt(now, tt.hour, tt.minute)
			if !got.Equal(want) {
				t.Errorf("nextAt(%v, %02d:%02d) = %v, want %v", now, tt.hour, tt.minute, got, want)
			}
			if !got.After(now) {
				t.Errorf("nextAt(%v) = %v is not after now", now, got)
			}
			if got.Location() != tt.loc {
				t.Errorf("nextAt returned a time in %v, want %v", got.Location(), tt.loc)
			}
		})
	}
}

// TestNextAtEveryMinute checks over two whole years in New York that
// nextAt is always in the future, at most a day (plus a DST hour) away,
// and reads hour:minute unless the clocks skipped it.
func TestNextAtEveryMinute(t *testing.T) {
	t.Parallel()
	ny := mustLoad(t, "America/New_York")
	start := time.Date(2026, 1, 1, 0, 7, 0, 0, ny)
	for now := start; now.Before(start.AddDate(2, 0, 0)); now = now.Add(97 * time.Minute) {
		for _, hm := range [][2]int{{0, 0}, {1, 30}, {2, 30}, {23, 59}} {
			got := nextAt(now, hm[0], hm[1])
			if !got.After(now) || got.Sub(now) > 25*time.Hour {
				t.Fatalf("nextAt(%v, %v) = %v", now, hm, got)
			}
			if got.Hour() != hm[0] || got.Minute() != hm[1] {
				// Only allowed at a spring-forward gap: an hour earlier
				// the wall clock read less.
				if before := got.Add(-time.Second); before.Hour() != 1 || got.Hour() != 3 {
					t.Fatalf("nextAt(%v, %v) = %v, which reads neither the time nor the end of a gap", now, hm, got)
				}
			}
		}
	}
}
