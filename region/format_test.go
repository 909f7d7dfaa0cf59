package region

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestFormatSpelling checks that a format reads the same in text logs, JSON
// logs and JSON: "v1", never the number 2.
func TestFormatSpelling(t *testing.T) {
	for _, tt := range []struct {
		f    Format
		want string
	}{{V0, "v0"}, {V1, "v1"}, {0, "unsigned"}} {
		var text, js bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("m", "format", tt.f)
		slog.New(slog.NewJSONHandler(&js, nil)).Info("m", "format", tt.f)
		if !strings.Contains(text.String(), " format="+tt.want+"\n") {
			t.Errorf("text log of %s: %s", tt.want, text.String())
		}
		if !strings.Contains(js.String(), `"format":"`+tt.want+`"`) {
			t.Errorf("JSON log of %s: %s", tt.want, js.String())
		}
		b, err := json.Marshal(tt.f)
		if err != nil || string(b) != `"`+tt.want+`"` {
			t.Errorf("json.Marshal(%s) = %s, %v", tt.want, b, err)
		}
		var back Format
		if err := json.Unmarshal(b, &back); err != nil || back != tt.f {
			t.Errorf("json.Unmarshal(%s) = %v, %v", b, back, err)
		}
	}
	var f Format
	if err := f.UnmarshalText([]byte("2")); err == nil {
		t.Error("UnmarshalText took 2")
	}
}
