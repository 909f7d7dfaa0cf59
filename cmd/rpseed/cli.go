package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
)

// envName returns the environment variable of the flag name:
// RPSEED_<NAME> with dashes as underscores.
func envName(flagName string) string {
	return "RPSEED_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// usage prints rpseed's help: what it is, examples, the flags and the
// environment variables.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `rpseed is a long-running seed node of the rustpatcher network. It serves the
signed release binaries in a directory to the apps and seeds of the network
(libp2p over QUIC and TCP, port 4001), announces them in the DHT, picks up new
files while running, and keeps a stable peer ID.

Usage:
  rpseed --dir DIR --pub GOOS/GOARCH=KEY [--pub ...] [flags]

Each file in DIR that verifies with a --pub key, for that key's target, is
served; the newest version per key and target wins. Files that do not are
named at WARN with the reason. The rollout statements in DIR (*.rollout,
written by rpsign rollout; placed there by --github from release assets) of a
--pub key are served too, the newest per key and target, and the versions they
yank are no longer served. /metrics and /healthz count the versions the nodes
that ask for statements report running and rolling back from.

Examples:
  # releases of one app for two targets, on the public network, with metrics
  rpseed --dir /srv/rpseed --pub linux/amd64=KEY1 --pub linux/arm64=KEY2 \
         --metrics-addr 127.0.0.1:9464

  # a private network: the first seed, then one that joins through it
  rpseed --private --dir /srv/rpseed --pub linux/amd64=KEY1
  rpseed --private --dir /srv/rpseed --pub linux/amd64=KEY1 \
         --bootstrap /ip4/10.0.0.5/tcp/4001/p2p/12D3KooW...

  # follow an app's GitHub releases, and keep rpseed itself up to date
  rpseed --dir /srv/rpseed --pub linux/amd64=KEY1 --github org/app --self-update at=03:30

Flags:
`)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Environment:
  Every flag can also be set as RPSEED_<FLAG>, dashes as underscores; a flag on
  the command line wins, and repeatable flags take a comma-separated list:
`)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "version" {
			fmt.Fprintf(w, "    %-30s --%s\n", envName(f.Name), f.Name)
		}
	})
	fmt.Fprint(w, `  GITHUB_TOKEN       GitHub token for --github (optional: more requests an hour, private repositories)
  STATE_DIRECTORY    set by systemd's StateDirectory=: the default --identity is identity.key in it

Health and metrics: with --metrics-addr, GET /healthz answers 200 when the seed
serves a release, has a peer and its announcements succeed, and 503 with the
reasons otherwise; /metrics is Prometheus. See docs/OPERATING.md.
`)
}

// defaultIdentity returns the identity file to use without --identity:
// identity.key in $STATE_DIRECTORY (systemd's StateDirectory=), else
// rpseed/identity.key in the user's configuration directory. Earlier
// versions kept it in DIR as .rpseed.key: if that file exists and the new
// one does not, it is used still, with a note (logged at WARN) that says how
// to move it, so that the peer ID does not change.
func defaultIdentity(getenv func(string) string, dir string) (path, note string, err error) {
	if sd := getenv("STATE_DIRECTORY"); sd != "" {
		// systemd joins several state directories with colons.
		path = filepath.Join(strings.Split(sd, ":")[0], "identity.key")
	} else {
		cfg, err := userConfigDir(getenv)
		if err != nil {
			return "", "", fmt.Errorf("no --identity given, and %w: pass --identity FILE (outside --dir; it holds the node's secret key and keeps its peer ID)", err)
		}
		path = filepath.Join(cfg, "rpseed", "identity.key")
	}
	old := filepath.Join(dir, ".rpseed.key")
	if exists(old) && !exists(path) {
		return old, fmt.Sprintf("using the identity file of an earlier rpseed inside --dir; move it out to keep the peer ID: mv %s %s (or pass --identity)", old, path), nil
	}
	return path, "", nil
}

// identitySource says where the default identity path comes from, for
// messages: the variable that set it.
func identitySource(getenv func(string) string) string {
	switch {
	case getenv("STATE_DIRECTORY") != "":
		return "from $STATE_DIRECTORY"
	case runtime.GOOS == "windows":
		return "from %AppData%"
	case runtime.GOOS == "darwin" || runtime.GOOS == "ios" || runtime.GOOS == "plan9":
		return "from $HOME"
	case getenv("XDG_CONFIG_HOME") != "":
		return "from $XDG_CONFIG_HOME"
	}
	return "from $HOME"
}

// userConfigDir is os.UserConfigDir with the environment from getenv.
func userConfigDir(getenv func(string) string) (string, error) {
	switch runtime.GOOS {
	case "windows":
		if d := getenv("AppData"); d != "" {
			return d, nil
		}
		return "", errors.New("%AppData% is not set")
	case "darwin", "ios":
		if h := getenv("HOME"); h != "" {
			return filepath.Join(h, "Library", "Application Support"), nil
		}
		return "", errors.New("$HOME is not set")
	case "plan9":
		if h := getenv("home"); h != "" {
			return filepath.Join(h, "lib"), nil
		}
		return "", errors.New("$home is not set")
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		if !filepath.IsAbs(d) {
			return "", fmt.Errorf("$XDG_CONFIG_HOME is the relative path %q", d)
		}
		return d, nil
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config"), nil
	}
	return "", errors.New("neither $STATE_DIRECTORY (systemd) nor $XDG_CONFIG_HOME nor $HOME is set")
}

// inside reports whether path is dir or inside it (lexically).
func inside(dir, path string) bool {
	d, err1 := filepath.Abs(dir)
	p, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// checkListen binds each TCP and UDP listen address for a moment, and
// fails on the first that cannot be bound, naming it. libp2p binds its TCP
// ports with SO_REUSEPORT, so a second rpseed on the same port would share
// it with the first instead of failing, and a QUIC port it cannot bind is
// only a warning to it: rpseed must stop at start instead. A plain bind
// (no SO_REUSEPORT) fails on a port another process holds, libp2p or not.
// Among the default addresses, an IPv6 one on a host without IPv6 is
// skipped, as libp2p skips it.
func checkListen(addrs []string, defaults bool) error {
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			continue // p2p.New names it
		}
		network, host := "", ""
		if ip, err := a.ValueForProtocol(ma.P_IP4); err == nil {
			network, host = "4", ip
		} else if ip, err := a.ValueForProtocol(ma.P_IP6); err == nil {
			network, host = "6", ip
		} else {
			continue
		}
		var l io.Closer
		if port, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			l, err = net.Listen("tcp"+network, net.JoinHostPort(host, port))
			if err != nil {
				if defaults && network == "6" && !errors.Is(err, syscall.EADDRINUSE) {
					continue
				}
				return fmt.Errorf("listen address %s: %w", s, err)
			}
		} else if port, err := a.ValueForProtocol(ma.P_UDP); err == nil {
			l, err = net.ListenPacket("udp"+network, net.JoinHostPort(host, port))
			if err != nil {
				if defaults && network == "6" && !errors.Is(err, syscall.EADDRINUSE) {
					continue
				}
				return fmt.Errorf("listen address %s: %w", s, err)
			}
		} else {
			continue
		}
		l.Close()
	}
	return nil
}

// explainListen adds to an error of starting the node what to do when a
// listen address is taken.
func explainListen(err error) error {
	if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
		return fmt.Errorf("%w\nanother program (or another rpseed) listens on that port: stop it, or give this rpseed other --listen addresses (e.g. --listen /ip4/0.0.0.0/tcp/4002 --listen /ip4/0.0.0.0/udp/4002/quic-v1)", err)
	}
	return err
}

// exists reports whether something is at path.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
