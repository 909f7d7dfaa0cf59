// Command rpseed is a long-running seed node of the rustpatcher network: it
// serves every signed release found in a directory to the peers of the
// network and announces them in the DHT.
//
// Usage:
//
//	rpseed --dir DIR --pub GOOS/GOARCH=KEY [--pub ...] [flags]
//
// Each file in DIR that verifies with one of the --pub keys is served for
// that key's target; the newest version per key and target wins. A target
// may have several keys (one seed serving several apps), and several
// targets may share a key: the target is then read from the executable's
// header. New, changed and removed files are picked up every
// --scan-interval. A file longer than any release can be
// (region.MaxFileLen) is named at WARN and never read; every other file
// is read to its end at most once per change. rpseed listens, and serves
// /healthz, before its first scan of DIR ends.
//
// Every flag can also be set through the environment as RPSEED_<NAME> with
// dashes as underscores (RPSEED_DIR, RPSEED_METRICS_ADDR); repeatable flags
// take a comma-separated list there. A flag on the command line wins.
//
// rpseed prints each listen address as "listening: <multiaddr>/p2p/<id>" on
// standard output, logs to standard error in one format (--log-format text
// or json; libp2p's own logs included, one level above --log-level), and
// stops cleanly on SIGINT or SIGTERM. A file in DIR that is not served is
// named at WARN with the reason, and failed announcements in the DHT are
// logged at WARN at most once a minute.
//
// The node's key (its peer ID) is kept in --identity, by default
// $STATE_DIRECTORY/identity.key under systemd, else rpseed/identity.key in
// the user's configuration directory: never in DIR (an identity file left
// there by an earlier version is still used, with a warning). The file is
// created with mode 0600 and refused if others can read it or if it is a
// symbolic link.
//
// Peers that ask for packed pieces get them compressed (zstd) and, when
// they run an older release that is in DIR too, as deltas from it: for
// each release served rpseed makes, in the background on one core, its
// pieces compressed and its deltas from the --deltas newest older releases
// of the same key and target in DIR, and keeps them in DIR/.rpseed-packs
// (removed when the release is no longer served). A node checks every
// piece it rebuilds against the signed root, as any piece, so a damaged
// delta costs it the full pieces, never a bad update. --compress=false
// sends raw pieces only.
//
// With --metrics-addr, /metrics serves Prometheus metrics and /healthz a JSON
// report: 200 when the seed serves a release, has a peer and its
// announcements succeed, 503 with the reasons otherwise (see
// docs/OPERATING.md, and deploy/ for a systemd unit and a container image).
//
// With --github OWNER/REPO it also follows the repository's GitHub releases
// and downloads each target's newest release into DIR once it verifies (see
// docs/RELEASING.md).
//
// # Updating itself
//
// With --self-update now, onrestart or at=HH:MM (RPSEED_SELF_UPDATE; the
// default is off) rpseed keeps its own binary up to date the way an app
// does, with client.Spawn, on its own node (no second libp2p host). Its
// owner key is the one linked into the build; a release pipeline builds each
// target's rpseed with that target's key and signs it with the same key:
//
//	go build -ldflags "-X github.com/org/rustpatcher-go/client.linkedPublicKey=<key>" ./cmd/rpseed
//	rpsign sign rpseed --key-file <key file> --version 1.2.3
//
// rpseed refuses to start with --self-update on when the build has no linked
// key. A binary that does not verify with its linked key (unsigned, or
// signed with another key) runs without updates, says so at WARN and goes on
// seeding. Releases of rpseed come from the network and from DIR: a signed
// rpseed for the running target dropped into DIR (copied under a hidden or
// .tmp name, then renamed) is served to peers and applied, every
// --self-update-interval. The running binary is served to peers once it
// verified itself, and each rpseed release as soon as it is applied. The
// mode says when the new binary runs: now, at the next local HH:MM, or at
// the next start. On Unix a restart execs the new binary in the same process
// with the same arguments and environment; --identity keeps the peer ID.
//
// A new rpseed binary is run once with RUSTPATCHER_SELFTEST=1 before it
// replaces the running one: it then only verifies itself and exits, before
// it reads a flag or opens a listener.
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/org/rustpatcher-go/client"
	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/p2p"
	"github.com/org/rustpatcher-go/internal/p2phost/hostmetrics"
	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
	targetpkg "github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/internal/version"
	"github.com/org/rustpatcher-go/region"
)

// packSubdir is the hidden subdirectory of DIR where rpseed keeps the
// compressed pieces and deltas it made (see --compress): the watcher skips
// hidden names.
const packSubdir = ".rpseed-packs"

func main() {
	os.Exit(rpseedMain())
}

// rpseedMain is rpseed's main, returning the exit status (the tests' scripts
// run it as the rpseed command).
func rpseedMain() int {
	if os.Getenv(client.SelfTestEnv) != "" {
		// A self-test run of a new rpseed binary (see the package
		// documentation): Spawn verifies this file with the linked key
		// and exits.
		_, err := client.Spawn(context.Background(), client.Config{})
		fmt.Fprintln(os.Stderr, "rpseed: self-test run did not exit:", err)
		return 1
	}
	// Before anything logs: the libraries' logs go through rpseed's
	// handler once run has made it.
	libs := &libraryLogs{}
	libs.install()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, client.LinkedPublicKey(), os.Stdout, os.Stderr, libs); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "rpseed: %v\nusage: %s\n(rpseed --help for more)\n", ue.err, usageLine)
			return 2
		}
		fmt.Fprintln(os.Stderr, "rpseed:", err)
		return 1
	}
	return 0
}

// usageLine is rpseed's synopsis, printed after a mistyped command line.
const usageLine = "rpseed --dir DIR --pub GOOS/GOARCH=KEY [--pub ...] [flags]"

// usageError is a command line rpseed cannot parse (a mistyped flag, a
// value of the wrong kind, an extra argument): rpseed says what, prints
// its synopsis and exits with status 2, not its whole help.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// options are rpseed's parsed flags.
type options struct {
	showVersion                                  bool
	dir, identity, metricsAddr, logLevel, prefix string
	logFormat                                    string
	unhealthyAfter                               time.Duration
	identityNote                                 string // a warning about the identity file, logged at start
	identityFrom                                 string // where the default identity path came from, when --identity was not given
	pubFrom                                      string // where the --pub values came from: "--pub" or "RPSEED_PUB"
	listenDefault                                bool   // o.listen holds the default addresses
	github, githubAPI                            string // see internal/ghrelease: rpseed --github
	githubEvery                                  time.Duration
	pubs, listen, bootstrap                      listFlag
	private, relay, dhtClient                    bool
	slots, slotsPerPeer, uploadRate              int
	deltas                                       int  // older releases per target to make deltas from
	compress                                     bool // packed pieces, compressed and as deltas
	scanEvery, idle, reprovide                   time.Duration
	selfUpdate                                   string // off, now, onrestart or at=HH:MM
	selfUpdateEvery                              time.Duration
	fleetWindow                                  time.Duration
	self                                         selfUpdate // parsed from selfUpdate and the linked key
}

// parseFlags parses rpseed's arguments, with the environment's RPSEED_*
// variables for flags not given. linked is the owner key linked into the
// build (client.LinkedPublicKey), which --self-update needs.
func parseFlags(args []string, getenv func(string) string, linked string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("rpseed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dir, "dir", "", "directory of signed release binaries to serve (required)")
	fs.Var(&o.pubs, "pub", "`GOOS/GOARCH=KEY`: serve releases of a target signed with the z-base-32 public KEY (repeatable, at least one; a target may have several keys)")
	fs.Var(&o.listen, "listen", "`multiaddr` to listen on (repeatable; default QUIC and TCP on all interfaces, port 4001)")
	fs.Var(&o.bootstrap, "bootstrap", "`multiaddr` with /p2p/<id> of a peer to join through (repeatable)")
	fs.BoolVar(&o.private, "private", false, "join a private network (own DHT prefix, only --bootstrap peers) instead of the public one")
	fs.StringVar(&o.prefix, "dht-prefix", p2p.PrivatePrefix, "DHT protocol prefix of the private network")
	fs.StringVar(&o.identity, "identity", "", "`FILE` holding the node's secret key, created if missing (mode 0600), for a stable peer ID; outside DIR "+
		"(default $STATE_DIRECTORY/identity.key under systemd, else rpseed/identity.key in the user's configuration directory)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "`host:port` to serve Prometheus /metrics and /healthz on (off when empty)")
	fs.BoolVar(&o.relay, "relay", false, "act as a circuit relay for peers behind NAT (hole punching, info requests); only for a seed others can dial: it declares the seed publicly reachable")
	fs.BoolVar(&o.dhtClient, "dht-client", false, "run the DHT in automatic mode instead of always as a server")
	fs.IntVar(&o.slots, "upload-slots", 16, "concurrent uploads in total")
	fs.IntVar(&o.slotsPerPeer, "upload-slots-per-peer", 1, "concurrent uploads per peer")
	fs.IntVar(&o.uploadRate, "upload-rate", 0, "cap on upload bandwidth in bytes per second (0: none)")
	fs.BoolVar(&o.compress, "compress", true, "send pieces compressed and as deltas to nodes that hold an older release, made in the background and kept in DIR/"+packSubdir+" (false: raw pieces only, no CPU spent)")
	fs.IntVar(&o.deltas, "deltas", 4, "make deltas to each release served from this many older releases of its target in DIR, newest first (0: none; at most 16)")
	fs.DurationVar(&o.scanEvery, "scan-interval", 10*time.Second, "how often to look for new files in DIR")
	fs.DurationVar(&o.idle, "idle-timeout", p2p.DefaultIdleTimeout, "drop a transfer when a read or write stalls this long")
	fs.DurationVar(&o.reprovide, "reprovide-interval", p2p.DefaultReprovideInterval, "how often to announce the releases again")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error (libp2p's own logs one level higher: at info, their warnings)")
	fs.StringVar(&o.logFormat, "log-format", "text", "text (logfmt) or json, one record a line on standard error")
	fs.DurationVar(&o.unhealthyAfter, "unhealthy-after", DefaultUnhealthyAfter, "/healthz reports unhealthy when no DHT announcement has succeeded for this long (counted from start)")
	fs.DurationVar(&o.fleetWindow, "fleet-window", DefaultFleetWindow, "the window over which /metrics and /healthz count the versions nodes report running and rolling back from")
	fs.BoolVar(&o.showVersion, "version", false, "print rpseed's version and exit")
	fs.StringVar(&o.github, "github", "", "`OWNER/REPO` whose GitHub releases to follow: new verified per-target assets are downloaded into DIR (token, if any, from $GITHUB_TOKEN)")
	fs.StringVar(&o.githubAPI, "github-api-url", "", "GitHub API base `URL` for --github (default https://api.github.com)")
	fs.DurationVar(&o.githubEvery, "github-interval", 5*time.Minute, "how often --github polls the releases (unchanged polls are free conditional requests)")
	fs.StringVar(&o.selfUpdate, "self-update", selfUpdateOff, "`MODE` in which rpseed updates its own binary from the network and DIR: off, now, onrestart or at=HH:MM (local time). "+
		"Needs the owner key linked into the build with -ldflags \"-X "+client.LinkedKeyFlag+"=<key>\" and the binary signed with that key")
	fs.DurationVar(&o.selfUpdateEvery, "self-update-interval", client.DefaultInterval, "how often --self-update looks for a newer rpseed")
	// The help on request; after a mistyped flag only what was wrong and
	// the synopsis (see usageError).
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			usage(fs)
			return nil, err
		}
		return nil, &usageError{err}
	}
	if o.showVersion {
		return &o, nil
	}
	if fs.NArg() > 0 {
		return nil, &usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.pubFrom = "--pub"
	if !set["pub"] {
		o.pubFrom = envName("pub")
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		name := envName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		vals := []string{v}
		if _, ok := f.Value.(*listFlag); ok {
			vals = strings.Split(v, ",")
		}
		for _, s := range vals {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if err := f.Value.Set(s); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if o.dir == "" {
		return nil, errors.New("--dir is required (or RPSEED_DIR)")
	}
	if len(o.pubs) == 0 {
		return nil, errors.New("at least one --pub GOOS/GOARCH=KEY is required (or RPSEED_PUB)")
	}
	if _, err := parseOwnersFrom(o.pubs, o.pubFrom); err != nil {
		return nil, err
	}
	if _, err := newHandler(io.Discard, o.logFormat, slog.LevelInfo); err != nil {
		return nil, err
	}
	if o.fleetWindow < time.Second {
		return nil, fmt.Errorf("--fleet-window %v: want a second or more, such as 1h", o.fleetWindow)
	}
	if o.deltas < 0 || o.deltas > 16 {
		return nil, fmt.Errorf("--deltas %d: want 0 to 16", o.deltas)
	}
	if len(o.listen) == 0 {
		o.listenDefault = true
		o.listen = listFlag{"/ip4/0.0.0.0/udp/4001/quic-v1", "/ip4/0.0.0.0/tcp/4001", "/ip6/::/udp/4001/quic-v1", "/ip6/::/tcp/4001"}
	}
	self, err := parseSelfUpdate(o.selfUpdate, linked)
	if err != nil {
		return nil, err
	}
	o.self = self
	if o.identity == "" {
		id, note, err := defaultIdentity(getenv, o.dir)
		if err != nil {
			return nil, err
		}
		o.identity, o.identityNote = id, note
		o.identityFrom = identitySource(getenv)
	} else if inside(o.dir, o.identity) {
		o.identityNote = "the identity file is inside --dir: keep the node's secret key out of the directory it serves (see --identity)"
	}
	return &o, nil
}

// parseOwners reads the --pub flags. A target may have several keys and a
// key several targets; the same key and target twice is an error.
func parseOwners(pubs []string) ([]owner, error) { return parseOwnersFrom(pubs, "--pub") }

// parseOwnersFrom is parseOwners naming in its errors where the values
// came from: the flag or its variable, RPSEED_PUB.
func parseOwnersFrom(pubs []string, from string) ([]owner, error) {
	var owners []owner
	seen := map[string]bool{}
	for _, p := range pubs {
		target, key, ok := strings.Cut(p, "=")
		t, err := targetpkg.Parse(target)
		if !ok || err != nil {
			return nil, fmt.Errorf("%s %q: want GOOS/GOARCH=KEY, e.g. linux/amd64=<52 z-base-32 characters>", from, p)
		}
		if !targetpkg.Known(t) {
			return nil, fmt.Errorf("%s %s: Go builds no such target; for %s it knows %s (go tool dist list)", from, t, t.OS, strings.Join(targetpkg.KnownFor(t.OS), ", "))
		}
		target = t.String()
		k, err := region.ParsePublicKey(key)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", from, target, err)
		}
		o := owner{target: target, pub: k}
		if seen[o.id()] {
			return nil, fmt.Errorf("%s %s given twice; give each key and target once", from, o)
		}
		seen[o.id()] = true
		owners = append(owners, o)
	}
	return owners, nil
}

// writableDir makes the directory dir if it is missing and checks that a
// file can be created in it.
func writableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// withOwner returns owners with o added, unless it is there already (the
// operator may list rpseed's own key with --pub too).
func withOwner(owners []owner, o owner) []owner {
	for _, have := range owners {
		if have.id() == o.id() {
			return owners
		}
	}
	return append(owners, o)
}

// githubKeys returns the key of each target for --github, which follows one
// repository: one key per target.
func githubKeys(owners []owner) (map[string]ed25519.PublicKey, error) {
	keys := map[string]ed25519.PublicKey{}
	for _, o := range owners {
		if _, dup := keys[o.target]; dup {
			return nil, fmt.Errorf("--github follows one repository, whose releases have one key per target, but --pub gives %s several keys; run a separate rpseed for the other apps", o.target)
		}
		keys[o.target] = o.pub
	}
	return keys, nil
}

// run is rpseed: linked is the owner key linked into the build
// (client.LinkedPublicKey in the real program).
//
// libs, when not nil, is where the libraries' logs go (main installs it);
// run points it at rpseed's handler.
func run(ctx context.Context, args []string, getenv func(string) string, linked string, stdout, stderr io.Writer, libs *libraryLogs) error {
	start := time.Now()
	o, err := parseFlags(args, getenv, linked, stderr)
	if err != nil {
		return err
	}
	if o.showVersion {
		_, err := fmt.Fprintln(stdout, version.Line("rpseed"))
		return err
	}
	owners, err := parseOwnersFrom(o.pubs, o.pubFrom)
	if err != nil {
		return err
	}
	var ghKeys map[string]ed25519.PublicKey
	if o.github != "" {
		if ghKeys, err = githubKeys(owners); err != nil {
			return err
		}
	}
	if o.self.on {
		owners = withOwner(owners, o.self.own)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	handler, err := newHandler(stderr, o.logFormat, level)
	if err != nil {
		return err
	}
	log := slog.New(handler)
	if libs != nil {
		libs.set(handler, level)
	}
	if st, err := os.Stat(o.dir); err != nil {
		return fmt.Errorf("--dir: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("--dir %s: not a directory", o.dir)
	}
	id, err := p2p.LoadIdentity(o.identity)
	if err != nil {
		if o.identityFrom != "" {
			// No --identity given: say where rpseed tried and why.
			return fmt.Errorf("identity key: no --identity given, and the default %s (%s) cannot be used: %w\npass --identity FILE (or RPSEED_IDENTITY) in a directory rpseed can write, outside --dir, or set STATE_DIRECTORY (systemd's StateDirectory= does)", o.identity, o.identityFrom, err)
		}
		return fmt.Errorf("--identity: %w", err)
	}
	if o.identityNote != "" {
		log.Warn(o.identityNote, "identity", o.identity)
	}

	packDir := ""
	if o.compress {
		packDir = filepath.Join(o.dir, packSubdir)
		if err := writableDir(packDir); err != nil {
			// Said once here, rather than by every job that would fail.
			log.Warn("cannot write the directory for compressed pieces and deltas; pieces are compressed on the fly and no deltas are made",
				"dir", packDir, "err", err, "hint", "let rpseed write to --dir (it keeps "+packSubdir+" there), or pass --compress=false")
			packDir = ""
		}
	}
	if err := checkListen(o.listen, o.listenDefault); err != nil {
		return explainListen(err)
	}
	reg := prometheus.NewRegistry() // the process's metrics and libp2p's, not the global registry
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	fl := newFleet(o.fleetWindow)
	node, err := p2p.New(ctx, p2p.Config{
		Private:            o.private,
		ProtocolPrefix:     o.prefix,
		Bootstrap:          o.bootstrap,
		ListenAddrs:        o.listen,
		Identity:           id,
		DHTServer:          !o.dhtClient,
		RelayService:       o.relay,
		MoreSecurity:       []p2p.SecurityProtocol{{ID: noise.ID, New: newNoise}},
		QUIC:               hostquic.New,
		UploadSlots:        o.slots,
		UploadSlotsPerPeer: o.slotsPerPeer,
		UploadRate:         o.uploadRate,
		IdleTimeout:        o.idle,
		ReprovideInterval:  o.reprovide,
		PackDir:            packDir,
		NoCompression:      !o.compress,
		// As apps do: its downloads (self-update) serve their pieces
		// early, and an ended upload's slot is kept 50 ms, not 500 ms,
		// since the apps it serves pass on each piece at once and ask
		// their next pieces of other peers as often as not: a slot kept
		// longer would idle while others are told busy.
		PiecesEarly: true,
		Metrics:     hostmetrics.New(reg),
		Logger:      log,
		OnReport:    fl.record,
	})
	if err != nil {
		return explainListen(err)
	}
	defer node.Close()
	registerNodeMetrics(reg, node)
	h := &health{peerID: node.ID().String(), version: version.Current(), start: start, after: o.unhealthyAfter, stats: node.Stats}

	if o.github != "" {
		gp, err := ghrelease.NewSeedPoller(ghrelease.SeedConfig{Repo: o.github, APIURL: o.githubAPI, Token: getenv("GITHUB_TOKEN"),
			Keys: ghKeys, Dir: o.dir, Interval: o.githubEvery, Log: log})
		if err != nil {
			return fmt.Errorf("--github: %w", err)
		}
		gctx, gcancel := context.WithCancel(ctx)
		wait := gp.Start(gctx)
		defer func() { gcancel(); wait() }()
	}
	var srv server = node
	own := &ownRelease{owner: o.self.own}
	if o.self.on {
		srv = &ownServer{server: node, ctx: ctx, own: own, log: log}
	}
	w := newWatcher(o.dir, owners, srv, log)
	w.deltas, w.maxBases, w.pubFrom = node, o.deltas, o.pubFrom
	h.fleet, h.rollouts = fl, w.rollouts.all
	reg.MustRegister(newFleetCollector(fl, w.rollouts.all))
	// Listen first: the first scan reads every file in --dir, which takes
	// as long as reading the releases there, and /healthz and the
	// listening lines must not wait for it.
	if o.metricsAddr != "" {
		ln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(noPaths{reg}, promhttp.HandlerOpts{}))
		mux.Handle("/healthz", h)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		fmt.Fprintf(stdout, "metrics: http://%s/metrics\n", ln.Addr())
	}
	for _, a := range node.Addrs() {
		fmt.Fprintf(stdout, "listening: %s\n", a)
	}
	if n, err := w.scan(ctx); err != nil {
		if ctx.Err() != nil { // stopped during the first scan
			log.Info("rpseed stopping")
			return nil
		}
		return err
	} else if w.secretPub != nil {
		// As rpsign verify: a secret key given as a public key is
		// refused, not served around.
		return w.secretPub
	} else if n == 0 {
		log.Warn("serving no release yet", "dir", o.dir,
			"hint", "put binaries signed with a --pub key into --dir (copy under a hidden or .tmp name, then rename); /healthz reports unhealthy until one is served")
	}
	log.Info("rpseed running", "version", version.Current(), "peer", node.ID(), "dir", o.dir, "identity", o.identity, "owners", len(owners), "self_update", o.self.String())
	outer := ctx
	ctx, stop := context.WithCancelCause(ctx) // stopped early by a failed self-update restart
	defer stop(nil)
	if o.self.on {
		u, err := startSelfUpdate(ctx, o.self, node, own, o.dir, o.selfUpdateEvery, stop, log)
		if err != nil {
			return err
		}
		defer u.Close()
	}

	aw := &announceWarner{log: log, every: announceWarnEvery}
	wctx, wcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { aw.watch(wctx, 5*time.Second, node.Stats) })
	defer func() { wcancel(); wg.Wait() }()
	w.watch(ctx, o.scanEvery)
	if outer.Err() == nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	log.Info("rpseed stopping")
	return nil
}
