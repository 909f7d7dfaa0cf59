// Package backoff computes how long to wait before trying again after
// failures in a row: a first wait that doubles with each further failure,
// up to a cap, plus, if asked, a random share of it so that many retrying
// nodes do not retry in step.
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// A Policy describes a backoff. The zero Policy never waits.
type Policy struct {
	// Base is the wait after the first failure; it doubles with each
	// further failure in a row.
	Base time.Duration
	// Max caps the doubled wait; zero means no cap (but for the range
	// of time.Duration).
	Max time.Duration
	// Jitter is the largest share of the wait added to it at random:
	// 0.5 adds up to half of it, 1 up to as much again. Zero adds
	// nothing.
	Jitter float64
}

// Delay returns the wait after failures failures in a row: none for
// failures < 1, else Base doubled failures-1 times, at most Max, plus up
// to Jitter of that, drawn from r (nil means math/rand/v2's own source).
func (p Policy) Delay(failures int, r *rand.Rand) time.Duration {
	if failures < 1 || p.Base <= 0 {
		return 0
	}
	d := p.Base
	for i := 1; i < failures && d <= math.MaxInt64/2 && (p.Max <= 0 || d < p.Max); i++ {
		d *= 2
	}
	if p.Max > 0 {
		d = min(d, p.Max)
	}
	if p.Jitter > 0 {
		span := int64(min(float64(d)*p.Jitter, float64(math.MaxInt64-d-1)))
		var n int64
		if r != nil {
			n = r.Int64N(span + 1)
		} else {
			n = rand.Int64N(span + 1)
		}
		d += time.Duration(n)
	}
	return d
}
