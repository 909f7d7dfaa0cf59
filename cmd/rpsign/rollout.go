package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/org/rustpatcher-go/internal/releasedir"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

const rolloutUsage = "rollout --key-file KEY --target OS/ARCH --version V [--channel C] [--percent P] [--ramp D] [--expires D] --out DIR | ... --halt | ... --yank V --to W | --show FILE [--json]"

const rolloutHelp = `Writes the rollout statement of a target: signed by the target's owner key, it
tells the apps which version each channel is on and for what share of the
nodes, which rollouts are halted, and which versions are yanked and where the
nodes that run them go. Apps ask for it before every poll; rpseed serves it
from --dir and --github. The statement is DIR/OS-ARCH.rollout (such as
linux-amd64.rollout); each run replaces it with the next sequence number,
keeping what it said about the other channels and the yanks, and a fresh
expiry: re-sign it (--refresh) before it expires, or the apps warn that they
cannot confirm they run the newest release.

  --version V   put --channel (stable) on V for --percent (100) of the nodes,
                growing to all of them over --ramp, from now; this also
                resumes a halted channel
  --halt        stop the channel's rollout where it is: a ramp's share now is
                kept as its percent; nodes that run the version keep it
  --resume      go on with a halted channel at the percent it was halted at
  --yank V --to W
                take V back: nodes that run V go to W, also when W is older
                (the only downgrade apps make), no node installs V again, and
                nodes stop serving it; every channel on V moves to W
  --refresh     re-sign the statement as it is, with a new expiry
  --show FILE   print a statement and check its signature (--json: as JSON)

A pre-release goes only on a channel other than stable. See docs/RELEASING.md,
"Rolling out, halting and yanking".

Examples:
  rpsign rollout --key-file keys/linux_amd64.key --target linux/amd64 --version 2.0.0 --percent 10 --ramp 48h --out releases
  rpsign rollout --key-file keys/linux_amd64.key --target linux/amd64 --halt --out releases
  rpsign rollout --key-file keys/linux_amd64.key --target linux/amd64 --yank 2.0.0 --to 1.9.3 --out releases
  rpsign rollout --key-env RP_KEY_LINUX_AMD64 --target linux/amd64 --refresh --out releases
  rpsign rollout --show releases/linux-amd64.rollout
`

// rolloutChange is what one rpsign rollout run changes in a statement.
type rolloutChange struct {
	channel string
	version string        // --version: put the channel on it
	percent int           // with version
	ramp    time.Duration // with version
	halt    bool
	resume  bool
	yank    string // --yank V
	to      string // --to W
	refresh bool
}

func runRollout(e *env, args []string) error {
	flags := flag.NewFlagSet("rollout", flag.ContinueOnError)
	var kf keyFlags
	kf.register(flags)
	tgt := flags.String("target", "", "`GOOS/GOARCH` the statement is for")
	out := flags.String("out", "", "`DIR` whose statement of the target is written or replaced")
	var c rolloutChange
	flags.StringVar(&c.channel, "channel", rollout.DefaultChannel, "the `CHANNEL` to change")
	flags.StringVar(&c.version, "version", "", "put the channel on `V`")
	flags.IntVar(&c.percent, "percent", 100, "the share of the channel's nodes, in `PERCENT` (0 to 100), that move to --version")
	ramp := flags.String("ramp", "", "grow the share linearly to 100% over `DURATION` (such as 48h or 3d), from now")
	expires := flags.String("expires", "7d", "the statement is fresh for `DURATION` (such as 168h or 7d)")
	flags.BoolVar(&c.halt, "halt", false, "halt the channel's rollout where it is")
	flags.BoolVar(&c.resume, "resume", false, "resume a halted channel at its percent")
	flags.StringVar(&c.yank, "yank", "", "yank `VERSION`: nodes that run it go to --to")
	flags.StringVar(&c.to, "to", "", "the `VERSION` nodes that run the yanked one go to")
	flags.BoolVar(&c.refresh, "refresh", false, "re-sign the statement unchanged, with a new sequence and expiry")
	show := flags.String("show", "", "print the statement in `FILE` and check its signature")
	asJSON := flags.Bool("json", false, "with --show: print one JSON object")
	if _, err := parse(flags, args, 0); err != nil {
		return err
	}
	if *show != "" {
		return showRollout(e, *show, *asJSON, time.Now())
	}
	if *asJSON {
		return fmt.Errorf("%w: --json goes with --show FILE", errUsage)
	}
	ops := 0
	for _, set := range []bool{c.version != "", c.halt, c.resume, c.yank != "" || c.to != "", c.refresh} {
		if set {
			ops++
		}
	}
	if ops != 1 {
		return fmt.Errorf("%w: give one of --version V, --halt, --resume, --yank V --to W, --refresh (or --show FILE)", errUsage)
	}
	if *tgt == "" || *out == "" {
		return fmt.Errorf("%w: --target GOOS/GOARCH and --out DIR are required", errUsage)
	}
	t, err := target.Parse(*tgt)
	if err != nil {
		return fmt.Errorf("--target: %w", err)
	}
	if err := rollout.CheckChannel(c.channel); err != nil {
		return fmt.Errorf("--channel: %w", err)
	}
	if c.version == "" && (flagSet(flags, "percent") || *ramp != "") {
		return fmt.Errorf("%w: --percent and --ramp go with --version V", errUsage)
	}
	if c.percent < 0 || c.percent > 100 {
		return fmt.Errorf("--percent %d: want 0 to 100", c.percent)
	}
	if *ramp != "" {
		if c.ramp, err = parseDays(*ramp); err != nil || c.ramp < time.Second {
			return fmt.Errorf("--ramp %q: want a duration of a second or more, such as 48h or 3d", *ramp)
		}
	}
	life, err := parseDays(*expires)
	if err != nil || life < time.Minute {
		return fmt.Errorf("--expires %q: want a duration of a minute or more, such as 168h or 7d", *expires)
	}
	for _, v := range []struct {
		flag string
		v    *string
	}{{"version", &c.version}, {"yank", &c.yank}, {"to", &c.to}} {
		if *v.v == "" {
			continue
		}
		canon, err := region.ParseVersion(*v.v)
		if err != nil {
			return fmt.Errorf("--%s %q is not a version (want such as 1.2.3): %w", v.flag, *v.v, err)
		}
		*v.v = canon
	}
	if c.yank != "" && c.to == "" || c.yank == "" && c.to != "" {
		return fmt.Errorf("%w: --yank V and --to W go together", errUsage)
	}
	key, err := kf.load(e)
	if err != nil {
		return err
	}
	if err := checkKeyTarget(kf.env, t, "the statement"); err != nil {
		return err
	}
	_, err = writeRollout(e, key, kf.String(), t, *out, c, time.Now(), life)
	return err
}

// publishes reports whether c puts a channel on a version, which needs no
// statement before it.
func (c rolloutChange) publishes() bool { return c.version != "" }

// flagSet reports whether the flag name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parseDays parses a Go duration, or a whole number of days such as "7d".
func parseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 3650 {
			return 0, fmt.Errorf("%q: want days from 0 to 3650", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// writeRollout applies c to the statement of t in dir (none yet: an empty
// one), signs the result with key, named keyName in messages, as the next
// sequence, issued at now and fresh for life, and replaces the file
// atomically. It prints what it wrote.
func writeRollout(e *env, key ed25519.PrivateKey, keyName string, t target.Target, dir string, c rolloutChange, now time.Time, life time.Duration) (rollout.Statement, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return rollout.Statement{}, fmt.Errorf("--out %s is not a directory (make it, or name the directory of the releases)", dir)
	}
	path := filepath.Join(dir, rollout.FileName(t.String()))
	prev, err := readRolloutFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		prev = nil
	case err != nil:
		return rollout.Statement{}, fmt.Errorf("%w (fix or move the file away; its sequence is needed for the next one)", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	next := rollout.Statement{Target: t.String(), Sequence: 1}
	if prev != nil {
		if !prev.Key.Equal(pub) {
			return rollout.Statement{}, fmt.Errorf("%s is signed by %s, not by the %s (%s): sign with the owner key of %s (if %s moved to this key by a key rotation, move the old statement away first)",
				path, region.EncodePublicKey(prev.Key), keyName, region.EncodePublicKey(pub), t, t)
		}
		if prev.Target != t.String() {
			return rollout.Statement{}, fmt.Errorf("%s is the statement of %s, not of %s", path, prev.Target, t)
		}
		next.Sequence = prev.Sequence + 1
		next.Channels = append(next.Channels, prev.Channels...)
		next.Yanks = append(next.Yanks, prev.Yanks...)
	}
	what, err := applyRollout(&next, c, now)
	if err != nil {
		return rollout.Statement{}, err
	}
	if c.yank != "" {
		warnMissingRelease(e, dir, pub, t, c.to)
	}
	next.Issued, next.Expires = now, now.Add(life)
	if err := next.Sign(key); err != nil {
		return rollout.Statement{}, err
	}
	if err := rollout.WriteFile(path, next); err != nil {
		return rollout.Statement{}, err
	}
	fmt.Fprintf(e.stdout, "wrote %s: %s, sequence %d, expires %s\n", path, what, next.Sequence, next.Expires.Format(time.RFC3339))
	printRollout(e, next, now)
	return next, nil
}

// applyRollout applies c to s and says what it did.
func applyRollout(s *rollout.Statement, c rolloutChange, now time.Time) (string, error) {
	i := -1
	for j, ch := range s.Channels {
		if ch.Name == c.channel {
			i = j
		}
	}
	yankOf := func(v string) (rollout.Yank, bool) {
		for _, y := range s.Yanks {
			if region.CompareVersions(y.Version, v) == 0 {
				return y, true
			}
		}
		return rollout.Yank{}, false
	}
	switch {
	case c.refresh:
		if s.Sequence == 1 {
			return "", errors.New("--refresh: there is no statement to re-sign yet; write one with --version V")
		}
		return "re-signed unchanged", nil

	case c.version != "":
		if y, ok := yankOf(c.version); ok {
			return "", fmt.Errorf("%s is yanked (to %s): a yanked version is never rolled out again; release a newer one", c.version, y.To)
		}
		if region.IsPrerelease(c.version) && c.channel == rollout.DefaultChannel {
			return "", fmt.Errorf("%s is a pre-release: put it on another channel than %s (such as --channel beta)", c.version, rollout.DefaultChannel)
		}
		ch := rollout.Channel{Name: c.channel, Version: c.version, Percent: c.percent}
		if c.ramp > 0 {
			ch.Ramp, ch.Start = c.ramp, now
		}
		if i >= 0 {
			if old := s.Channels[i].Version; region.CompareVersions(c.version, old) < 0 {
				return "", fmt.Errorf("channel %s is on %s, above %s: nodes never go down by a channel; to take %s back, yank it: --yank %s --to %s", c.channel, old, c.version, old, old, c.version)
			}
			s.Channels[i] = ch
		} else {
			if len(s.Channels) >= rollout.MaxChannels {
				return "", fmt.Errorf("the statement has %d channels already, the most it may", rollout.MaxChannels)
			}
			s.Channels = append(s.Channels, ch)
		}
		what := fmt.Sprintf("channel %s on %s for %d%%", c.channel, c.version, c.percent)
		if c.ramp > 0 {
			what += fmt.Sprintf(", growing to 100%% over %s", c.ramp)
		}
		return what, nil

	case c.halt, c.resume:
		if i < 0 {
			return "", fmt.Errorf("the statement has no channel %s (it has %s): nothing to halt or resume", c.channel, channelNames(*s))
		}
		ch := &s.Channels[i]
		if c.resume {
			if !ch.Halted {
				return "", fmt.Errorf("channel %s is not halted (on %s for %d%%); to change its share, use --version %s --percent P", ch.Name, ch.Version, ch.Percent, ch.Version)
			}
			ch.Halted = false
			return fmt.Sprintf("channel %s resumed on %s for %d%%", ch.Name, ch.Version, ch.Percent), nil
		}
		if ch.Halted {
			return "", fmt.Errorf("channel %s is halted already, on %s at %d%%", ch.Name, ch.Version, ch.Percent)
		}
		// The share now, rounded down, is the percent a resume goes on
		// with; nodes that moved meanwhile keep the version anyway.
		ch.Percent = ch.Share(now) * 100 / rollout.Buckets
		ch.Ramp, ch.Start, ch.Halted = 0, time.Time{}, true
		return fmt.Sprintf("channel %s halted on %s at %d%%", ch.Name, ch.Version, ch.Percent), nil
	}

	// A yank.
	if region.CompareVersions(c.yank, c.to) == 0 {
		return "", fmt.Errorf("--yank %s --to %s: a version cannot be yanked to itself", c.yank, c.to)
	}
	if y, ok := yankOf(c.to); ok {
		return "", fmt.Errorf("--to %s is yanked itself (to %s): yank to a version that stays, such as --to %s", c.to, y.To, y.To)
	}
	replaced := false
	for j := range s.Yanks {
		if region.CompareVersions(s.Yanks[j].Version, c.yank) == 0 {
			s.Yanks[j].To, replaced = c.to, true
		}
	}
	if !replaced {
		if len(s.Yanks) >= rollout.MaxYanks {
			return "", fmt.Errorf("the statement records %d yanks already, the most it may", rollout.MaxYanks)
		}
		s.Yanks = append(s.Yanks, rollout.Yank{Version: c.yank, To: c.to})
	}
	// Earlier yanks that led to the version yanked now lead on to W.
	for j := range s.Yanks {
		if region.CompareVersions(s.Yanks[j].To, c.yank) == 0 {
			s.Yanks[j].To = c.to
		}
	}
	what := fmt.Sprintf("%s yanked: nodes that run it go to %s", c.yank, c.to)
	for j := range s.Channels {
		if region.CompareVersions(s.Channels[j].Version, c.yank) == 0 {
			s.Channels[j].Version = c.to
			what += fmt.Sprintf("; channel %s moves to %s", s.Channels[j].Name, c.to)
		}
	}
	return what, nil
}

// warnMissingRelease warns when dir holds releases of t signed with pub but
// none of version v: nodes that run a yanked version go to v, and find it
// only where it is served.
func warnMissingRelease(e *env, dir string, pub ed25519.PublicKey, t target.Target, v string) {
	ents, err := releasedir.New(dir).List(context.Background())
	if err != nil {
		return
	}
	var have []string
	for _, ent := range ents {
		in, err := ent.Verify(pub)
		if err != nil || in.Target != "" && in.Target != t.String() {
			continue
		}
		if region.CompareVersions(in.Version, v) == 0 {
			return
		}
		have = append(have, in.Version)
	}
	if len(have) > 0 {
		fmt.Fprintf(e.stderr, "rpsign: warning: %s holds releases of %s signed with this key (%s) but none of %s: nodes that run the yanked version go to %s, so make sure seeds serve it\n",
			dir, t, strings.Join(have, ", "), v, v)
	}
}

// channelNames lists the channels of s, for messages.
func channelNames(s rollout.Statement) string {
	if len(s.Channels) == 0 {
		return "none"
	}
	var n []string
	for _, c := range s.Channels {
		n = append(n, c.Name)
	}
	return strings.Join(n, ", ")
}

// readRolloutFile reads and verifies the statement at path. A missing
// file's error wraps fs.ErrNotExist.
func readRolloutFile(path string) (*rollout.Statement, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := rollout.Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := s.Verify(); err != nil {
		return &s, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// printRollout prints s in readable form, with the shares at now.
func printRollout(e *env, s rollout.Statement, now time.Time) {
	fmt.Fprintf(e.stdout, "target:    %s\n", s.Target)
	fmt.Fprintf(e.stdout, "key:       %s\n", region.EncodePublicKey(s.Key))
	fmt.Fprintf(e.stdout, "sequence:  %d\n", s.Sequence)
	fmt.Fprintf(e.stdout, "issued:    %s\n", s.Issued.Format(time.RFC3339))
	exp := ""
	if s.Expired(now) {
		exp = " (EXPIRED: apps refuse it; re-sign with rpsign rollout --refresh)"
	}
	fmt.Fprintf(e.stdout, "expires:   %s%s\n", s.Expires.Format(time.RFC3339), exp)
	for _, c := range s.Channels {
		fmt.Fprintf(e.stdout, "channel:   %s on %s for %s\n", c.Name, c.Version, describeShare(c, now))
	}
	for _, y := range s.Yanks {
		fmt.Fprintf(e.stdout, "yanked:    %s, nodes that run it go to %s\n", y.Version, y.To)
	}
}

// describeShare says in words what share of its nodes a channel is on.
func describeShare(c rollout.Channel, now time.Time) string {
	s := fmt.Sprintf("%d%%", c.Percent)
	if c.Ramp > 0 {
		s += fmt.Sprintf(", growing to 100%% over %s from %s (%s now)", c.Ramp, c.Start.Format(time.RFC3339), sharePercent(c, now))
	}
	if c.Halted {
		s += ", HALTED"
	}
	return s
}

// sharePercent formats a channel's share at now as a percentage.
func sharePercent(c rollout.Channel, now time.Time) string {
	return strconv.FormatFloat(float64(c.Share(now))*100/rollout.Buckets, 'f', -1, 64) + "%"
}

// rolloutJSON is the --show --json form of a statement.
type rolloutJSON struct {
	File      string        `json:"file"`
	Target    string        `json:"target"`
	Key       string        `json:"key"`
	Sequence  uint64        `json:"sequence"`
	Issued    time.Time     `json:"issued"`
	Expires   time.Time     `json:"expires"`
	Expired   bool          `json:"expired"`
	Valid     bool          `json:"signature_valid"`
	Channels  []channelJSON `json:"channels"`
	Yanks     []yankJSON    `json:"yanks"`
	Signature string        `json:"signature"`
}

type channelJSON struct {
	Name        string     `json:"name"`
	Version     string     `json:"version"`
	Percent     int        `json:"percent"`
	RampSeconds int64      `json:"ramp_seconds,omitempty"`
	Start       *time.Time `json:"start,omitempty"`
	Halted      bool       `json:"halted"`
	ShareNow    float64    `json:"share_now_percent"`
}

type yankJSON struct {
	Version string `json:"version"`
	To      string `json:"to"`
}

// showRollout prints the statement in the file at path, and fails when its
// signature does not hold.
func showRollout(e *env, path string, asJSON bool, now time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := rollout.Read(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	verr := s.Verify()
	if asJSON {
		out := rolloutJSON{File: path, Target: s.Target, Key: region.EncodePublicKey(s.Key), Sequence: s.Sequence,
			Issued: s.Issued, Expires: s.Expires, Expired: s.Expired(now), Valid: verr == nil,
			Channels: []channelJSON{}, Yanks: []yankJSON{}, Signature: fmt.Sprintf("%x", s.Signature)}
		for _, c := range s.Channels {
			cj := channelJSON{Name: c.Name, Version: c.Version, Percent: c.Percent, Halted: c.Halted,
				ShareNow: float64(c.Share(now)) * 100 / rollout.Buckets}
			if c.Ramp > 0 {
				start := c.Start
				cj.RampSeconds, cj.Start = int64(c.Ramp/time.Second), &start
			}
			out.Channels = append(out.Channels, cj)
		}
		for _, y := range s.Yanks {
			out.Yanks = append(out.Yanks, yankJSON(y))
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		e.stdout.Write(b.Bytes())
	} else {
		fmt.Fprintf(e.stdout, "file:      %s (rollout statement)\n", filepath.Clean(path))
		printRollout(e, s, now)
		if verr != nil {
			fmt.Fprintf(e.stdout, "signature: INVALID: %v\n", verr)
		} else {
			fmt.Fprintf(e.stdout, "signature: valid, by the key\n")
		}
	}
	if verr != nil {
		return fmt.Errorf("%s: %w", path, verr)
	}
	return nil
}

// isRollout reports whether the file at path is a rollout statement.
func isRollout(path string) bool { return startsWith(path, "rustpatcher-go rollout") }
