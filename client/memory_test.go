package client

import "testing"

// TestNextTrim: memory is returned after the first poll and after the
// first poll with the network up, and never again.
func TestNextTrim(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		netUp []bool // at each poll
		trims []bool // want
	}{
		{"network off or up from the start", []bool{true, true, true}, []bool{true, false, false}},
		{"network joins after the first poll", []bool{false, false, true, true}, []bool{true, false, true, false}},
		{"network never up", []bool{false, false, false}, []bool{true, false, false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stage := trimNone
			for i, up := range tt.netUp {
				var trim bool
				stage, trim = nextTrim(stage, up)
				if trim != tt.trims[i] {
					t.Errorf("poll %d (network up: %v): trim %v, want %v", i+1, up, trim, tt.trims[i])
				}
			}
		})
	}
}
