package backoff

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		p        Policy
		failures int
		want     time.Duration
	}{
		{"zero policy", Policy{}, 3, 0},
		{"no failure", Policy{Base: time.Second}, 0, 0},
		{"negative failures", Policy{Base: time.Second}, -2, 0},
		{"first failure", Policy{Base: time.Second}, 1, time.Second},
		{"second doubles", Policy{Base: time.Second}, 2, 2 * time.Second},
		{"fifth", Policy{Base: 100 * time.Millisecond}, 5, 1600 * time.Millisecond},
		{"capped", Policy{Base: time.Second, Max: 5 * time.Second}, 4, 5 * time.Second},
		{"at the cap", Policy{Base: time.Second, Max: 4 * time.Second}, 3, 4 * time.Second},
		{"base above the cap", Policy{Base: time.Hour, Max: time.Minute}, 1, time.Minute},
		{"many failures, capped", Policy{Base: time.Minute, Max: time.Hour}, 1_000_000, time.Hour},
		{"many failures, no cap, no overflow", Policy{Base: time.Second}, 1_000, time.Second << 33}, // the first doubling past MaxInt64/2,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Delay(tt.failures, nil); got != tt.want {
				t.Errorf("%+v.Delay(%d) = %v, want %v", tt.p, tt.failures, got, tt.want)
			}
		})
	}
}

// TestDelayNoOverflow checks that a doubled wait never wraps around,
// with or without a cap and jitter.
func TestDelayNoOverflow(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range []Policy{{Base: time.Second}, {Base: math.MaxInt64 / 3}, {Base: time.Second, Jitter: 1}, {Base: math.MaxInt64 / 3, Jitter: 1}} {
		for f := 1; f < 200; f++ {
			if d := p.Delay(f, r); d < p.Base {
				t.Fatalf("%+v.Delay(%d) = %v, below Base", p, f, d)
			}
		}
	}
}

// TestDelayJitter checks, with a seeded random source, that jitter adds
// between nothing and Jitter of the wait, reaches both ends, and comes
// from the source given.
func TestDelayJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		p        Policy
		failures int
		lo, hi   time.Duration
	}{
		{"half", Policy{Base: time.Second, Jitter: 0.5}, 1, time.Second, 1500 * time.Millisecond},
		{"as much again, capped first", Policy{Base: 50 * time.Millisecond, Max: 500 * time.Millisecond, Jitter: 1}, 6, 500 * time.Millisecond, time.Second},
		{"tiny wait", Policy{Base: 1, Jitter: 1}, 1, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 7))
			least, most := time.Duration(math.MaxInt64), time.Duration(0)
			for range 10_000 {
				d := tt.p.Delay(tt.failures, r)
				if d < tt.lo || d > tt.hi {
					t.Fatalf("Delay = %v, outside [%v, %v]", d, tt.lo, tt.hi)
				}
				least, most = min(least, d), max(most, d)
			}
			// Both ends are reached, to within a thousandth of the span.
			slack := (tt.hi - tt.lo) / 1000
			if least > tt.lo+slack || most < tt.hi-slack {
				t.Errorf("jitter spans [%v, %v], want about [%v, %v]", least, most, tt.lo, tt.hi)
			}
			// The same seed gives the same waits.
			a, b := rand.New(rand.NewPCG(3, 4)), rand.New(rand.NewPCG(3, 4))
			for range 100 {
				if x, y := tt.p.Delay(tt.failures, a), tt.p.Delay(tt.failures, b); x != y {
					t.Fatalf("same seed, different waits: %v, %v", x, y)
				}
			}
		})
	}
}
