//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
)

// TestDemo runs the whole demo with two nodes and checks its timeline and
// that it leaves nothing behind.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a network of processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, options{nodes: 2, goTool: regiontest.GoTool()}); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	text := out.String()
	t.Log("\n" + text)
	for _, want := range []string{
		`node1 +running hello 1\.0\.0`,
		`node2 +restarted \(same pid \d+, same args\): running hello 2\.0\.0`,
		`rpseed +stopped`,
		`late +restarted \(same pid \d+, same args\): running hello 2\.0\.0`,
		`all 3 executables verify as the signed 2\.0\.0`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("timeline lacks %q", want)
		}
	}
	// The work directory is gone.
	m := regexp.MustCompile(`demo +working in (\S+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("the timeline does not name the work directory")
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("work directory %s still there (%v)", m[1], err)
	}
}
