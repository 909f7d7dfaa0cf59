package client

import (
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, wantErr string
	}{
		{"now", "now", ""},
		{"NOW", "now", ""},
		{"onrestart", "onrestart", ""},
		{"at=03:30", "at=03:30", ""},
		{"at=0:00", "at=00:00", ""},
		{"at=23:59", "at=23:59", ""},
		{"at=24:00", "", "hour must be 0 to 23"},
		{"at=12:60", "", "minute 0 to 59"},
		{"at=12", "", "want at=HH:MM"},
		{"at=1:5", "", "want at=HH:MM"},
		{"later", "", "want now, onrestart or at=HH:MM"},
	}
	for _, tt := range tests {
		m, err := ParseMode(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseMode(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || m.String() != tt.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %s", tt.in, m, err, tt.want)
		}
	}
	var zero Mode
	if zero.String() != "now" {
		t.Errorf("zero Mode is %v, want now", zero)
	}
}
