package client

import "time"

// nextAt returns the first instant strictly after now at which the wall
// clock in now's location reads hour:minute:00.
//
// Wall-clock times that a daylight saving change skips (02:30 on the night
// clocks go forward in most of the US) fire at the first instant after the
// gap, that is at the change itself; times that occur twice (01:30 on the
// night clocks go back) fire at the first occurrence only. Midnight is an
// ordinary time: At(0, 0) after 23:59 fires a minute later, on the next day.
func nextAt(now time.Time, hour, minute int) time.Time {
	loc := now.Location()
	y, mo, d := now.Date()
	// Three days cover "today already passed" plus a day whose time is
	// unusable for any reason; in practice the first or second one wins.
	for i := 0; i < 3; i++ {
		if t, ok := occurrence(y, mo, d+i, hour, minute, loc); ok && t.After(now) {
			return t
		}
	}
	return now.Add(24 * time.Hour) // not reached with real time zones
}

// occurrence returns the first instant of the day y-mo-d in loc whose wall
// clock reads hour:minute:00 or, when a clock change skips that time, the
// first instant after the gap; ok is false if that instant is not on that day.
func occurrence(y int, mo time.Month, d, hour, minute int, loc *time.Location) (t time.Time, ok bool) {
	target := time.Date(y, mo, d, hour, minute, 0, 0, time.UTC) // wall time as if in UTC
	want := wallKey(target)
	t0 := time.Date(y, mo, d, hour, minute, 0, 0, loc)
	// Every instant whose wall clock reads the target is target minus one
	// of the UTC offsets in force around it. Collect those offsets and keep
	// the earliest instant that really reads the target: with two (clocks
	// going back) that is the first occurrence.
	var best time.Time
	seen := map[int]bool{}
	for p := t0.Add(-4 * time.Hour); !p.After(t0.Add(4 * time.Hour)); p = p.Add(15 * time.Minute) {
		_, off := p.Zone()
		if seen[off] {
			continue
		}
		seen[off] = true
		c := target.Add(-time.Duration(off) * time.Second).In(loc)
		if wallKey(c) == want && (best.IsZero() || c.Before(best)) {
			best = c
		}
	}
	if !best.IsZero() {
		return best, true
	}
	// The clocks skip the target: fire at the first instant past the gap.
	// Around a forward change wall time only grows, so step in quarter
	// hours to the first instant at or past the target, then bisect to the
	// second.
	prev := t0.Add(-4 * time.Hour)
	for p := prev.Add(15 * time.Minute); !p.After(t0.Add(4 * time.Hour)); p = p.Add(15 * time.Minute) {
		if wallKey(p) >= want {
			a, b := prev, p
			for b.Sub(a) > time.Second {
				mid := a.Add(b.Sub(a) / 2).Truncate(time.Second)
				if wallKey(mid) >= want {
					b = mid
				} else {
					a = mid
				}
			}
			by, bm, bd := b.Date()
			ty, tm, td := target.Date()
			return b, by == ty && bm == tm && bd == td
		}
		prev = p
	}
	return t0, false
}

// wallKey orders instants by their wall-clock reading in their location.
func wallKey(t time.Time) int64 {
	y, mo, d := t.Date()
	h, m, s := t.Clock()
	return ((((int64(y)*13+int64(mo))*32+int64(d))*24+int64(h))*60+int64(m))*60 + int64(s)
}
