// Command hello is the smallest self-updating rustpatcher-go app, the one to
// copy. It prints its signed version and arguments, then runs until
// interrupted while client.Spawn keeps it up to date. On SIGINT or SIGTERM
// it stops cleanly: its context is cancelled and it calls Updater.Close, so
// that stopping an update on trial does not count against it (see
// client.Config.HealthyAfter).
//
//	hello [--mode now|onrestart|at=HH:MM] [--source DIR|URL] [--interval DURATION]
//	      [--private] [--bootstrap MULTIADDR]... [--listen MULTIADDR]... [--dht-server]
//	      [--identity FILE] [--peer-wait DURATION] [--log-json] [--log-level LEVEL]
//	      [--accept-v0] [--channel NAME] [ARGS...]
//	hello --version
//
// --source takes a directory, a file: URL, an https:// URL of a mirror laid
// out by rpsign publish --out, or github:OWNER/REPO (see
// client.SourceFromURL). With --source alone the network is off; with
// network flags (--private, --bootstrap, --listen, --dht-server) as well,
// the app prefers its peers and takes a release from the source when no
// peer offers it within --peer-wait, or at once when it has no peer at all.
//
// hello's node runs on TCP alone, as an app's does unless it asks for QUIC
// (package client/quic); built with -tags hello_quic it asks for it, and
// listens on QUIC and TCP by default.
//
// The owner public key is linked in at build time, the way release
// pipelines do it for each target, and the binary signed after:
//
//	rpsign gen owner_key
//	go build -ldflags "-X github.com/org/rustpatcher-go/client.linkedPublicKey=$(rpsign pub --key-file owner_key)" ./examples/hello
//	rpsign sign hello --key-file owner_key --version 1.0.0
//
// rpsign refuses to sign a build that does not carry the signing key's
// public key. A build without a key runs but never updates.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/org/rustpatcher-go/client"
	"github.com/org/rustpatcher-go/region"
)

// options are hello's command-line flags.
type options struct {
	version  bool
	mode     string
	source   string
	peerWait time.Duration
	interval time.Duration
	healthy  time.Duration
	logJSON  bool
	logLevel slog.Level
	acceptV0 bool
	channel  string

	private   bool
	dhtServer bool
	identity  string
	bootstrap listFlag
	listen    listFlag
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func parseOptions() options {
	var o options
	flag.BoolVar(&o.version, "version", false, "print the signed version and exit")
	flag.StringVar(&o.mode, "mode", "now", "when to run an update: now, onrestart or at=HH:MM")
	flag.StringVar(&o.source, "source", "", "a directory (or file: URL) of signed releases, an https:// URL of a mirror, or github:OWNER/REPO")
	flag.DurationVar(&o.peerWait, "peer-wait", 0, "with the network on, how long a release only --source offers waits for a peer to offer it (default 10m)")
	flag.DurationVar(&o.interval, "interval", time.Minute, "time between checks for updates")
	flag.DurationVar(&o.healthy, "healthy-after", 0, "how long an update must run before it counts as healthy (default 1m); one that does not, in its first two starts, is rolled back")
	flag.BoolVar(&o.private, "private", false, "join a private network (only --bootstrap peers) instead of the public one")
	flag.Var(&o.bootstrap, "bootstrap", "`multiaddr` with /p2p/<id> of a peer to join through, such as an rpseed (repeatable)")
	flag.Var(&o.listen, "listen", "`multiaddr` to listen on (repeatable; default TCP on all interfaces, and QUIC too when built with -tags hello_quic)")
	flag.BoolVar(&o.dhtServer, "dht-server", false, "always answer DHT queries (for LANs and loopback)")
	flag.StringVar(&o.identity, "identity", "", "`file` holding the node's network key, created if missing, to keep one peer ID across restarts")
	flag.BoolVar(&o.logJSON, "log-json", false, "log JSON lines to stderr instead of text, with one record per update event (event=KIND) for tools that follow the app")
	flag.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error (debug names the connection, direct or relayed, of every request to a peer)")
	flag.BoolVar(&o.acceptV0, "accept-v0", false, "also apply releases signed in the v0 format (rustpatcher 0.2's); see client.Config.AcceptV0")
	flag.StringVar(&o.channel, "channel", client.DefaultChannel, "rollout `channel` to follow, such as stable or beta (see client.Config.Channel)")
	flag.Parse()
	return o
}

// network returns the peer-to-peer settings: a --source without network
// flags means a setup without network (air-gapped, or HTTPS only). Each
// listen address is printed on its own line as "listening:
// <multiaddr>/p2p/<id>".
func (o options) network() client.NetworkConfig {
	netFlags := o.private || len(o.bootstrap) > 0 || len(o.listen) > 0 || o.dhtServer
	return client.NetworkConfig{
		Disabled:     o.source != "" && !netFlags,
		Private:      o.private,
		Bootstrap:    o.bootstrap,
		ListenAddrs:  o.listen,
		QUIC:         quicTransport(),
		DHTServer:    o.dhtServer,
		IdentityFile: o.identity,
		OnListen:     func(addr string) { fmt.Println("listening: " + addr) },
	}
}

func main() {
	opt := parseOptions()
	if opt.version {
		fmt.Println(version())
		return
	}
	hopts := &slog.HandlerOptions{Level: opt.logLevel}
	log := slog.New(slog.NewTextHandler(os.Stderr, hopts))
	if opt.logJSON {
		log = slog.New(slog.NewJSONHandler(os.Stderr, hopts))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	mode, err := client.ParseMode(opt.mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(2)
	}
	// No PublicKey: the key linked in at build time is used.
	cfg := client.Config{
		Mode:         mode,
		Interval:     opt.interval,
		HealthyAfter: opt.healthy,
		Network:      opt.network(),
		PeerWait:     opt.peerWait,
		Logger:       log,
		AcceptV0:     opt.acceptV0,
		Channel:      opt.channel,
	}
	if opt.logJSON {
		cfg.OnEvent = func(e client.Event) { logEvent(log, e) }
	}
	if opt.source != "" {
		src, err := client.SourceFromURL(opt.source)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hello:", err)
			os.Exit(2)
		}
		cfg.Sources = append(cfg.Sources, src)
	}
	// Spawn first: in a self-test run it verifies this binary and exits.
	u, err := client.Spawn(ctx, cfg)
	if err != nil {
		log.Warn("updates are off", "err", err)
	} else {
		defer u.Close()
	}

	fmt.Printf("hello %s args=%s\n", version(), strings.Join(flag.Args(), " "))
	<-ctx.Done()
}

// logEvent logs an update event as one record whose attributes name its
// kind (client.EventKind's name, such as "applied"), release and source.
func logEvent(log *slog.Logger, e client.Event) {
	attrs := []any{"event", e.Kind.String(), "version", e.Release.Version, "source", e.Source}
	if e.Err != nil {
		attrs = append(attrs, "err", e.Err)
	}
	log.Info("update event", attrs...)
}

// version returns the version in hello's own signed region, or "unsigned".
func version() string {
	in, err := region.Current()
	if err != nil || !in.Signed() {
		return "unsigned"
	}
	return in.Version
}
