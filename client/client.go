// Package client is the self-update engine an application imports: one call
// to Spawn near the top of main keeps the program up to date with releases
// signed by its owner key.
//
// In the background, Spawn verifies the running binary's own file against
// the region rpsign wrote into it, then polls its sources (a directory of
// signed binaries, an HTTPS mirror or GitHub release, the peer-to-peer
// network) for a strictly newer release signed by the same key. It streams the chosen release into a temporary
// file next to the executable while hashing it, checks hash, size and
// signature, runs the new file once in self-test mode, and renames it over
// the executable, keeping the previous binary as "<exe>.old". Depending on
// the Mode it then restarts the program at once, at a set time of day, or
// leaves that to the next start.
//
// # Self-test mode
//
// Before it replaces the executable, the engine runs the new binary once
// with the environment variable RUSTPATCHER_SELFTEST=1 and the running
// program's arguments. In that process Spawn verifies the binary's own file,
// writes one line to stderr and exits: status 0 when the file verifies. So
// call Spawn early in main, before the program does anything it should not
// do twice (opening listeners, writing files, printing its banner). A new
// binary that does not call Spawn, or cannot run on this machine, fails the
// self-test and never replaces the working one.
//
// # Rollouts
//
// The owner steers the fleet with rollout statements, signed by the owner
// key and found where releases are (directories, the network): which
// version each channel (Config.Channel) is on, for what share of the
// nodes, which rollouts are halted and which versions are yanked, and
// until when the statement is fresh. Each node draws a bucket once, keeps
// it in the state file and never sends it; it takes a channel's version
// only when its bucket is in the share reached, so raising the share only
// adds nodes, and halting and resuming keeps the same ones. A node that
// runs a yanked version moves to the version the yank names, even an
// older one: the only downgrade there is, and only a release signed by
// the owner key. The engine keeps the newest statement it accepted, with
// its sequence, across restarts, refuses older and conflicting ones and
// ones signed by another key or for another target, and passes the one
// it holds on to its peers; when it expires with no fresh one after it,
// EventStale says so once. Before it sees any statement, a node takes the
// newest signed release.
//
// A yanked version is never installed again, by a rollback neither: an
// update that does not become healthy (see Config.HealthyAfter) while the
// version before it is yanked, as when a yank moved the node down to it,
// stays, with EventFailed and an ERROR line saying so, until a new
// statement or release moves the node on. Once a node held a yank of V,
// it does not serve V to its peers again for as long as it runs, even if
// a later statement dropped the yank (rpsign never drops one).
//
// Nodes also tell the peers they ask for statements the version they run
// and the version they last rolled back from, so that a seed can count
// them for the owner. These numbers are not authenticated: any node can
// claim anything.
//
// # Restart
//
// On Unix a restart execs the executable's path with the same arguments and
// environment, in the same process (same pid, same standard streams). On
// Windows, which has no exec, it starts the new binary with the same
// arguments, environment and standard streams and exits. Before either,
// the engine leaves the peer-to-peer network (for at most a few seconds),
// so that its peers see the connections close at once rather than wait on
// a process that is gone; if the restart fails, it joins again.
//
// # Without libp2p
//
// Built with -tags rustpatcher_nop2p the package has no peer-to-peer
// network and links no libp2p: the same API, with directory and HTTPS
// sources only (see SourceFromURL), and the same engine. There a zero
// NetworkConfig means no network, and Spawn refuses any network setting
// (ErrNetworkConfig, naming the tag).
package client

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/org/rustpatcher-go/internal/selfreplace"
	"github.com/org/rustpatcher-go/region"
)

// Defaults for the Config fields left zero.
const (
	DefaultInterval = time.Minute
)

// defaultSelfTestTimeout is the SelfTestTimeout of a Config that sets none.
const defaultSelfTestTimeout = 10 * time.Second

// Sentinel errors, wrapped with details; test with errors.Is. They are the
// errors a program may act on: the rest of the reasons an update is not
// taken (see Event.Err) are for logs and people.
var (
	// ErrNoKey means the Config has no public key for the running target.
	ErrNoKey = errors.New("no public key for this target")
	// ErrFileMismatch means the running binary's file does not match the
	// region the program holds in memory (the file was changed or replaced
	// since the program started): the reason of EventDisabled when
	// something else replaced the executable, which a restart runs.
	ErrFileMismatch = errors.New("executable file does not match the running program's region")
	// ErrSelfTest means the new binary failed its self-test run: a
	// release signed by the owner that does not run on this machine.
	ErrSelfTest = errors.New("new binary failed its self-test")
	// ErrRotatedKey means a release is signed with an owner key that a
	// key rotation statement retired for this target: whoever signed it
	// holds a key the owner gave up.
	ErrRotatedKey = errors.New("signed with a retired key")
	// ErrRolledBack means an update did not become healthy and was
	// rolled back (see Config.HealthyAfter).
	ErrRolledBack = errors.New("update rolled back")
	// ErrNothingApplied means Restart was called before any update was
	// applied.
	ErrNothingApplied = errors.New("no update applied")
)

// Reasons a release is not taken, wrapped with details. They are not
// exported: nothing outside the engine branches on them.
var (
	// errNotNewer means a release is not strictly newer than the running
	// (or already applied) version.
	errNotNewer = errors.New("not newer than the running version")
	// errPrerelease means a release is a pre-release and the Config does
	// not allow them.
	errPrerelease = errors.New("pre-release not allowed")
	// errTooLong means a source sent more bytes than the release's signed
	// size.
	errTooLong = errors.New("release is longer than its signed size")
	// errTruncated means a source ended a release before its signed size,
	// even after retries.
	errTruncated = errors.New("release is shorter than its signed size")
	// errRegionMismatch means the downloaded file's region is not the one
	// the source announced.
	errRegionMismatch = errors.New("downloaded file's region differs from the one offered")
	// errWrongTarget means a release is for another GOOS/GOARCH than the
	// running program's.
	errWrongTarget = errors.New("release is for another target")
	// errV0 means a release is signed in the v0 format (rustpatcher 0.2)
	// and the Config does not accept it.
	errV0 = errors.New("v0 (rustpatcher 0.2) releases are not accepted")
)

// Config configures Spawn. Only a public key is required.
type Config struct {
	// PublicKey is the owner's z-base-32 public key. Releases must be
	// signed with it, and so must the running binary. Empty means the key
	// for the running target in PublicKeys, else the key linked into the
	// build (see LinkedPublicKey), which a release pipeline sets per
	// target with -ldflags "-X github.com/org/rustpatcher-go/client.linkedPublicKey=<key>".
	PublicKey string
	// PublicKeys holds one key per target, keyed "GOOS/GOARCH" (for
	// example "linux/amd64"), for owners who sign each target with its own
	// key. The running target's entry is used. Ignored when PublicKey is
	// set. Spawn fails with ErrNoKey when neither field nor the build
	// gives a key for the running target, and when a key in the Config
	// differs from the one linked into the build.
	PublicKeys map[string]string
	// Mode says when an applied update starts running; the zero Mode is
	// Now.
	Mode Mode
	// Interval is the time between two polls of the sources; zero means
	// DefaultInterval.
	Interval time.Duration
	// Sources are where releases come from, in addition to the network.
	Sources []Source
	// PeerWait applies with the network on, to HTTPS sources (see
	// SourceFromURL): a release that only such a source offers is taken
	// from it at a random time within PeerWait after it was first seen,
	// unless a peer offers it before; a release peers offer is taken from
	// them (when their copy fails, the node asks them again at its next
	// poll, and takes the release from the HTTPS source once its own wait
	// is over and PeerGrace, or PeerWait if shorter, has passed since a
	// peer first offered the version). So the server sends a release to
	// the first few nodes of a network, and they spread it.
	// A node with no peer at all (none connected once the network is up
	// and was asked, or the network failed to start) does not wait.
	// Zero means DefaultPeerWait; negative means no wait.
	PeerWait time.Duration
	// AllowPrerelease lets pre-release versions (such as 2.0.0-rc.1) be
	// applied, while the owner has published no rollout statement for
	// this target; under one, a node takes a pre-release only when its
	// Channel is on one.
	AllowPrerelease bool
	// Channel is the rollout channel of this node, such as "stable" or
	// "beta": lower-case letters, digits, '.', '_' and '-'. Empty means
	// DefaultChannel. Once the owner publishes a rollout statement for
	// this target (rpsign rollout), the node takes only the version the
	// statement puts its channel on, when the node is among the share of
	// nodes the rollout has reached (each node draws a random bucket once
	// and keeps it in the state file; it never leaves the machine), and
	// no version the owner halted or yanked. A node that runs a yanked
	// version moves to the one the statement names, also an older one.
	// Before any statement is seen the node takes the newest signed
	// release, as without channels.
	Channel string
	// AcceptV0 lets releases signed in the v0 format, rustpatcher 0.2's,
	// be applied. Their signature covers less than v1's (not where the
	// region sits, nor the target) and their bytes can be checked only as
	// a whole: leave it off unless rustpatcher's own tools sign your
	// releases. The running binary may be v0 either way.
	AcceptV0 bool
	// Network configures the peer-to-peer network.
	Network NetworkConfig
	// Logger receives the engine's logs; nil means slog.Default(). The
	// engine never writes to standard output.
	Logger *slog.Logger
	// OnEvent, if set, is called with every Event, from the engine's own
	// goroutine: it must not block for long.
	OnEvent func(Event)
	// ConfirmRestart, if set, is asked before every restart (modes Now and
	// At) with the release about to run. Returning false skips the
	// restart: the update stays applied on disk, runs at the next start,
	// and the app may call Updater.Restart when it likes. A restart
	// replaces the process without running deferred functions, so this is
	// also the place to save state.
	ConfirmRestart func(ctx context.Context, next region.Info) bool
	// SelfTestTimeout bounds the self-test run of a new binary; zero means
	// 10 seconds.
	SelfTestTimeout time.Duration
	// HealthyAfter is how long an update must run before it counts as
	// healthy, unless the program calls Updater.Healthy first; zero means
	// DefaultHealthyAfter, and a negative value turns automatic rollback
	// off. An update that does not become healthy in its first
	// MaxUnhealthyStarts starts (it crashes, is killed, hangs until it is
	// killed, or exits without calling Updater.Close, earlier) is rolled
	// back at the next start: the previous binary (<exe>.old) is put
	// back, the program restarts into it, and that file is not applied
	// again; a newer release is, and ForgetRolledBack gives the file
	// another chance. (Not when the previous binary's version is yanked:
	// see Rollouts in the package documentation.) A start that ends in Updater.Close (a clean stop,
	// such as on SIGTERM through the program's normal path) does not
	// count. The state lives next to the executable, in
	// <exe>.rustpatcher.json.
	HealthyAfter time.Duration
	// MaxUnhealthyStarts is how many starts an update gets to become
	// healthy; zero means 2.
	MaxUnhealthyStarts int
	// Executable is the file to verify and replace; empty means the
	// running program's own (os.Executable, symbolic links resolved).
	Executable string
}

// options is what spawn takes: a Config and the parts of the engine that
// tests replace. Spawn leaves the hooks zero, which means the real thing;
// only tests set them.
type options struct {
	Config

	linked             *string // stands for linkedPublicKey
	allowTestVectorKey bool
	restart            func(path string, argv, env []string) error
	fs                 selfreplace.FS
	step               func(selfreplace.Step) error
	current            func() (region.Info, error)
	selfTest           func(ctx context.Context, path string, want region.Info) error
	polling            func(start bool) // called as each poll starts and ends
	// network, if set, joins the network in place of startNetwork, for
	// tests.
	network func(ctx context.Context) (Source, io.Closer, error)
}

// An Updater is the running update engine returned by Spawn. Its methods
// are safe for concurrent use.
type Updater struct {
	ctl    *control // requests to the pipeline and what it applied
	cancel context.CancelFunc
	done   chan struct{} // closed when the pipeline has stopped
	net    io.Closer     // the network the pipeline joined; set before done is closed
	// stopped records a clean stop; called by Close once done is
	// closed, when the pipeline's goroutine is over.
	stopped func()
	stop    sync.Once
}

// Spawn checks the Config and starts the update engine: verifying the
// running binary, polling and applying run in the background until ctx is
// done or Close is called. Spawn fails only on a bad Config: no key for
// this target (ErrNoKey), a malformed key or one whose secret is published
// (ErrPublishedKey), a key in the Config that differs from the one linked
// into the build, an invalid Mode or Channel, a network that can never work
// (ErrNetworkConfig), or an executable it cannot locate.
//
// Before it returns, Spawn does what must happen before the program goes
// on. It reads the engine's state file next to the executable
// (<exe>.rustpatcher.json). When that file has an update on trial and
// rollback is on (see Config.HealthyAfter), Spawn also verifies the
// executable's file (one pass over the whole file, as fast as the disk and
// SHA-512 allow) and counts this start against the update, so that a
// program that crashes right after Spawn still counts; at the start after
// MaxUnhealthyStarts unhealthy ones it puts the previous binary back and
// restarts into it (see Restart in the package documentation: the process
// execs it, or on Windows starts it and exits), so that Spawn does not
// return; it returns, with updates off, only if that restart failed. With
// no update on trial, Spawn does not read the executable and returns at
// once.
//
// After its first poll, and after its first poll with the network up, the
// engine returns the memory its start freed to the system
// (debug.FreeOSMemory: one garbage collection each time), so that a small
// program does not idle megabytes above what it holds.
//
// In a self-test run (see the package documentation) Spawn does not return:
// it verifies the binary and exits the process.
func Spawn(ctx context.Context, cfg Config) (*Updater, error) {
	return spawn(ctx, options{Config: cfg})
}

// spawn is Spawn with the test hooks of cfg.
func spawn(ctx context.Context, cfg options) (*Updater, error) {
	key, keyErr := cfg.key()
	if os.Getenv(SelfTestEnv) != "" {
		os.Exit(selfTestMain(key, keyErr, os.Stderr))
	}
	if keyErr != nil {
		return nil, keyErr
	}
	if err := cfg.checkChannel(); err != nil {
		return nil, err
	}
	if err := cfg.Mode.check(); err != nil {
		return nil, err
	}
	if err := cfg.Network.check(); err != nil {
		return nil, err
	}
	preferPeers(cfg.Config)
	exe := cfg.Executable
	if exe == "" {
		var err error
		if exe, err = executable(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	u := &Updater{ctl: newControl(), cancel: cancel, done: make(chan struct{})}
	p := newPipeline(cfg, key, exe, u.ctl)
	p.startTrial(ctx)
	u.stopped = p.stopped
	go func() {
		defer close(u.done)
		u.net = p.run(ctx)
	}()
	return u, nil
}

// Close stops the engine, waits for it to finish (an update being applied is
// abandoned and its temporary file removed) and leaves the network. Call it
// also when the context given to Spawn is done, to leave the network. It
// returns the error from leaving the network, if any. Close is safe to call
// more than once.
//
// Close is also how the engine knows that the program stopped cleanly: a
// start of an update on trial that ends in Close does not count against
// the update (see Config.HealthyAfter). A program that stops on SIGTERM or
// SIGINT should therefore cancel its context (signal.NotifyContext) and
// call Close on its way out, as examples/hello does, rather than exit from
// a signal handler. Close is the program's word that it stops cleanly: one
// that stops because it failed, to exit with a non-zero status, should
// exit without calling it (log.Fatal and os.Exit skip deferred calls), so
// that the start counts.
func (u *Updater) Close() error {
	var err error
	u.stop.Do(func() {
		u.cancel()
		<-u.done
		u.stopped()
		if u.net != nil {
			err = u.net.Close()
		}
	})
	return err
}

// Check asks the engine to poll its sources now instead of waiting for the
// interval. It does not wait for the poll.
func (u *Updater) Check() { request(u.ctl.check) }

// Applied returns the region of the update applied on disk and waiting for a
// restart, if any.
func (u *Updater) Applied() (region.Info, bool) { return u.ctl.appliedRelease() }

// Restart asks the engine to restart into the applied update now, without
// asking ConfirmRestart. It returns ErrNothingApplied when there is no
// update to run; otherwise the restart happens on the engine's goroutine and
// Restart returns nil at once (on success the process is replaced).
func (u *Updater) Restart() error {
	if _, ok := u.Applied(); !ok {
		return ErrNothingApplied
	}
	request(u.ctl.restart)
	return nil
}

// Healthy tells the engine that the program, running an update that is on
// trial, works: the update stays, and is not rolled back (see
// Config.HealthyAfter). Call it once the program has done what shows it
// works, such as serving its first request. It does nothing when no update
// is on trial.
func (u *Updater) Healthy() { request(u.ctl.healthy) }
