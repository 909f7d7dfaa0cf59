// Command crashy is a bad release for the end-to-end tests of automatic
// rollback: it passes its self-test (it calls client.Spawn first, as an app
// must) and prints its version like hello, then exits with status 3 some
// time after it starts, every time. It takes hello's update flags, so that
// hello can update into it and restart it with the same arguments.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/org/rustpatcher-go/client"
	"github.com/org/rustpatcher-go/region"
)

// crashAfter is how long crashy runs, set at link time with
// -X main.crashAfter=5s.
var crashAfter = "5s"

func main() {
	mode := flag.String("mode", "now", "as hello's")
	source := flag.String("source", "", "as hello's")
	interval := flag.Duration("interval", time.Minute, "as hello's")
	healthy := flag.Duration("healthy-after", 0, "as hello's")
	flag.Parse()
	after, err := time.ParseDuration(crashAfter)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashy: -X main.crashAfter:", err)
		os.Exit(2)
	}
	m, err := client.ParseMode(*mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashy:", err)
		os.Exit(2)
	}
	cfg := client.Config{Mode: m, Interval: *interval, HealthyAfter: *healthy,
		Network: client.NetworkConfig{Disabled: true}, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if *source != "" {
		cfg.Sources = []client.Source{client.DirSource(*source)}
	}
	u, err := client.Spawn(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashy:", err)
		os.Exit(2)
	}
	defer u.Close()
	in, _ := region.Current()
	fmt.Printf("crashy %s args=%s\n", in.Version, strings.Join(flag.Args(), " "))
	time.Sleep(after)
	fmt.Fprintln(os.Stderr, "crashy: crashing on purpose")
	os.Exit(3)
}
