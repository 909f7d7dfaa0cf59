// Package rollout implements rollout statements: an owner tells the apps of
// one target, with a statement signed by the target's owner key, which
// version each channel is on, for what share of the nodes, which versions
// are halted or yanked, and until when the statement is fresh
// (docs/FORMAT.md, "Rollout statements").
//
// A statement is a few lines of text, so that it can be read, diffed and
// kept in a repository:
//
//	rustpatcher-go rollout v1
//	target: linux/amd64
//	key: <owner public key, z-base-32>
//	sequence: 7
//	issued: 2026-12-04T17:00:00Z
//	expires: 2026-12-11T17:00:00Z
//	channel: beta 2.1.0-rc.1 percent=100
//	channel: stable 2.0.0 percent=25 ramp=86400 start=2026-12-04T17:00:00Z
//	yank: 1.9.0 to=1.8.2
//	signature: <hex of the Ed25519 signature by the key>
//
// The package decides nothing about the network: Check says whether a
// statement may replace the one a node holds, and Decide what a statement
// tells one node to run. Both are pure functions of their arguments.
package rollout

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/org/rustpatcher-go/region"
)

// header is the first line of every statement.
const header = "rustpatcher-go rollout v1"

// domain separates rollout signatures from any other use of the key.
const domain = "rustpatcher-go/v1 rollout\x00"

// Limits of one statement; readers read no more than MaxSize bytes.
const (
	MaxSize     = 4096
	MaxChannels = 16
	MaxYanks    = 32
	// MaxNameLen bounds a channel's name.
	MaxNameLen = 32
	// MaxRamp bounds a channel's ramp: ten years.
	MaxRamp = 10 * 365 * 24 * time.Hour
)

// FileSuffix ends the names of files that hold one statement each, as
// rpsign rollout writes them next to the releases (such as
// linux-amd64.rollout); directory sources and rpseed read them.
const FileSuffix = ".rollout"

// FileName returns the name of the file, or release asset, that holds the
// statement of target ("GOOS/GOARCH"): "GOOS-GOARCH.rollout", such as
// linux-amd64.rollout.
func FileName(target string) string {
	return strings.Replace(target, "/", "-", 1) + FileSuffix
}

// DefaultChannel is the channel of a node that names none.
const DefaultChannel = "stable"

// Buckets is the number of rollout buckets: a node draws one in [0,
// Buckets) once and keeps it, and is in a rollout of P percent when its
// bucket is below P*Buckets/100.
const Buckets = 10000

// Errors of statements. Check's refusals wrap one of them.
var (
	// ErrMalformed means a statement does not follow the format.
	ErrMalformed = errors.New("malformed rollout statement")
	// ErrBadSignature means a statement is not signed by the key it names.
	ErrBadSignature = errors.New("rollout statement not signed by the key it names")
	// ErrOtherKey means a statement is signed by another key than the one
	// the node trusts for its target.
	ErrOtherKey = errors.New("rollout statement signed by another key than the owner's")
	// ErrOtherTarget means a statement is for another target.
	ErrOtherTarget = errors.New("rollout statement for another target")
	// ErrReplay means a statement has a lower sequence than the one the
	// node holds: an old statement played again.
	ErrReplay = errors.New("rollout statement older than the one held")
	// ErrConflict means a statement has the sequence of the one the node
	// holds but other content.
	ErrConflict = errors.New("rollout statement conflicts with the one held (same sequence, other content)")
	// ErrExpired means a statement's expiry has passed.
	ErrExpired = errors.New("rollout statement expired")
)

// A Channel is one channel's line of a statement: the channel is on
// Version for Percent percent of its nodes, growing linearly to 100 over
// Ramp from Start when Ramp is set. A Halted channel stops where it is:
// no node that does not run Version yet moves to it.
type Channel struct {
	Name    string
	Version string
	Percent int // 0 to 100
	Ramp    time.Duration
	Start   time.Time // set when Ramp is
	Halted  bool
}

// A Yank takes Version back: nodes that run it move to To, which may be
// older, and no node installs Version.
type Yank struct {
	Version string
	To      string
}

// A Statement is the rollout state of one target, signed by its owner key.
// Sequence orders the statements of one target and key: a node takes a
// statement only with a higher sequence than the one it holds.
type Statement struct {
	Target    string
	Key       ed25519.PublicKey
	Sequence  uint64
	Issued    time.Time
	Expires   time.Time
	Channels  []Channel // sorted by Name
	Yanks     []Yank    // sorted by Version
	Signature [ed25519.SignatureSize]byte
}

// Sign fills in s.Key and s.Signature with key, after sorting the channels
// and yanks and truncating the times to seconds, and checks s.
func (s *Statement) Sign(key ed25519.PrivateKey) error {
	s.Key = key.Public().(ed25519.PublicKey)
	s.Issued = s.Issued.UTC().Truncate(time.Second)
	s.Expires = s.Expires.UTC().Truncate(time.Second)
	for i := range s.Channels {
		s.Channels[i].Start = s.Channels[i].Start.UTC().Truncate(time.Second)
		s.Channels[i].Ramp = s.Channels[i].Ramp.Truncate(time.Second)
	}
	slices.SortFunc(s.Channels, func(a, b Channel) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Yanks, func(a, b Yank) int { return strings.Compare(a.Version, b.Version) })
	if err := s.check(); err != nil {
		return err
	}
	m := digest(s.body())
	copy(s.Signature[:], ed25519.Sign(key, m[:]))
	return nil
}

// Verify checks the statement's fields and that its Key signed it.
func (s Statement) Verify() error {
	if err := s.check(); err != nil {
		return err
	}
	m := digest(s.body())
	if !ed25519.Verify(s.Key, m[:], s.Signature[:]) {
		return ErrBadSignature
	}
	return nil
}

// digest returns SHA-512(domain || body): what the key signs.
func digest(body []byte) [sha512.Size]byte {
	h := sha512.New()
	h.Write([]byte(domain))
	h.Write(body)
	var m [sha512.Size]byte
	h.Sum(m[:0])
	return m
}

func (s Statement) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	switch {
	case !region.ValidTarget(s.Target):
		return bad("target %q (want GOOS/GOARCH)", s.Target)
	case len(s.Key) != ed25519.PublicKeySize:
		return bad("key must be %d bytes", ed25519.PublicKeySize)
	case s.Sequence == 0:
		return bad("sequence must be 1 or more")
	case s.Issued.IsZero() || s.Expires.IsZero():
		return bad("issued and expires must be set")
	case !s.Expires.After(s.Issued):
		return bad("expires %s is not after issued %s", s.Expires.Format(time.RFC3339), s.Issued.Format(time.RFC3339))
	case len(s.Channels) > MaxChannels:
		return bad("%d channels, at most %d", len(s.Channels), MaxChannels)
	case len(s.Yanks) > MaxYanks:
		return bad("%d yanks, at most %d", len(s.Yanks), MaxYanks)
	}
	for i, c := range s.Channels {
		if err := checkName(c.Name); err != nil {
			return bad("%v", err)
		}
		if i > 0 && s.Channels[i-1].Name >= c.Name {
			return bad("channels must be sorted by name and named once (%q)", c.Name)
		}
		if err := checkVersion(c.Version); err != nil {
			return bad("channel %s: %v", c.Name, err)
		}
		switch {
		case c.Percent < 0 || c.Percent > 100:
			return bad("channel %s: percent %d (want 0 to 100)", c.Name, c.Percent)
		case c.Ramp < 0:
			return bad("channel %s: negative ramp", c.Name)
		case c.Ramp > MaxRamp:
			return bad("channel %s: a ramp of %s, longer than ten years", c.Name, c.Ramp)
		case c.Ramp > 0 && c.Start.IsZero():
			return bad("channel %s: a ramp needs a start", c.Name)
		case c.Ramp == 0 && !c.Start.IsZero():
			return bad("channel %s: a start without a ramp", c.Name)
		}
	}
	for i, y := range s.Yanks {
		if err := checkVersion(y.Version); err != nil {
			return bad("yank: %v", err)
		}
		if err := checkVersion(y.To); err != nil {
			return bad("yank of %s: %v", y.Version, err)
		}
		if y.Version == y.To {
			return bad("yank of %s to itself", y.Version)
		}
		if i > 0 && s.Yanks[i-1].Version >= y.Version {
			return bad("yanks must be sorted by version and name each version once (%s)", y.Version)
		}
	}
	return nil
}

// checkName checks a channel's name: lower-case letters, digits, '.', '_'
// and '-', starting with a letter or digit, at most MaxNameLen bytes.
func checkName(n string) error {
	if n == "" || len(n) > MaxNameLen {
		return fmt.Errorf("channel name %q: want 1 to %d bytes", n, MaxNameLen)
	}
	for i, r := range n {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || i > 0 && (r == '.' || r == '_' || r == '-')
		if !ok {
			return fmt.Errorf("channel name %q: want [a-z0-9][a-z0-9._-]*", n)
		}
	}
	return nil
}

// CheckChannel checks a channel's name as statements and Config take it.
func CheckChannel(name string) error { return checkName(name) }

// checkVersion accepts a version only in the canonical form rpsign signs
// into regions.
func checkVersion(v string) error {
	c, err := region.ParseVersion(v)
	if err != nil {
		return err
	}
	if c != v {
		return fmt.Errorf("version %q is not in canonical form (%q)", v, c)
	}
	return nil
}

// body returns the statement's text form up to, not including, the
// signature line: what is signed.
func (s Statement) body() []byte {
	var b bytes.Buffer
	fmt.Fprintln(&b, header)
	fmt.Fprintf(&b, "target: %s\n", s.Target)
	fmt.Fprintf(&b, "key: %s\n", region.EncodePublicKey(s.Key))
	fmt.Fprintf(&b, "sequence: %d\n", s.Sequence)
	fmt.Fprintf(&b, "issued: %s\n", s.Issued.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "expires: %s\n", s.Expires.UTC().Format(time.RFC3339))
	for _, c := range s.Channels {
		fmt.Fprintf(&b, "channel: %s %s percent=%d", c.Name, c.Version, c.Percent)
		if c.Ramp > 0 {
			fmt.Fprintf(&b, " ramp=%d start=%s", int64(c.Ramp/time.Second), c.Start.UTC().Format(time.RFC3339))
		}
		if c.Halted {
			b.WriteString(" halted")
		}
		b.WriteByte('\n')
	}
	for _, y := range s.Yanks {
		fmt.Fprintf(&b, "yank: %s to=%s\n", y.Version, y.To)
	}
	return b.Bytes()
}

// MarshalText returns the statement's text form.
func (s Statement) MarshalText() ([]byte, error) {
	b := s.body()
	b = fmt.Appendf(b, "signature: %s\n", hex.EncodeToString(s.Signature[:]))
	return b, nil
}

// Parse reads one statement from its text form, at most MaxSize bytes. The
// form must be exactly the one MarshalText writes (one spelling per
// statement, so that what is signed is what is read). It does not verify
// the signature: see Verify.
func Parse(b []byte) (Statement, error) {
	var s Statement
	if len(b) > MaxSize {
		return s, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxSize)
	}
	bad := func(format string, a ...any) (Statement, error) {
		return Statement{}, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 512), MaxSize)
	line := 0
	var sig string
	for sc.Scan() {
		l := sc.Text()
		line++
		if line == 1 {
			if l != header {
				return bad("first line %q, want %q", clip(l), header)
			}
			continue
		}
		if sig != "" {
			return bad("line %d follows the signature", line)
		}
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			return bad("line %d: %q is not \"field: value\"", line, clip(l))
		}
		var err error
		switch k {
		case "target":
			s.Target = v
		case "key":
			s.Key, err = region.ParsePublicKey(v)
		case "sequence":
			s.Sequence, err = strconv.ParseUint(v, 10, 64)
		case "issued":
			s.Issued, err = time.Parse(time.RFC3339, v)
		case "expires":
			s.Expires, err = time.Parse(time.RFC3339, v)
		case "channel":
			if len(s.Channels) == MaxChannels {
				return bad("more than %d channels", MaxChannels)
			}
			var c Channel
			c, err = parseChannel(v)
			s.Channels = append(s.Channels, c)
		case "yank":
			if len(s.Yanks) == MaxYanks {
				return bad("more than %d yanks", MaxYanks)
			}
			var y Yank
			y, err = parseYank(v)
			s.Yanks = append(s.Yanks, y)
		case "signature":
			sig = v
			if v == "" {
				return bad("empty signature")
			}
		default:
			return bad("line %d: unknown field %q", line, clip(k))
		}
		if err != nil {
			return bad("line %d: %s: %v", line, k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return bad("%v", err)
	}
	if line == 0 {
		return bad("empty")
	}
	raw, err := hex.DecodeString(sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return bad("signature: want %d hex digits", 2*ed25519.SignatureSize)
	}
	copy(s.Signature[:], raw)
	if err := s.check(); err != nil {
		return Statement{}, err
	}
	if canon, _ := s.MarshalText(); !bytes.Equal(canon, b) {
		return bad("not in canonical form (fields in order, one space after each colon, times in UTC, lines ending in a newline)")
	}
	return s, nil
}

// parseChannel reads "NAME VERSION percent=P [ramp=SECONDS start=TIME] [halted]".
func parseChannel(v string) (Channel, error) {
	f := strings.Split(v, " ")
	if len(f) < 3 {
		return Channel{}, errors.New("want NAME VERSION percent=P")
	}
	c := Channel{Name: f[0], Version: f[1]}
	p, ok := strings.CutPrefix(f[2], "percent=")
	if !ok {
		return c, errors.New("want percent=P after the version")
	}
	var err error
	if c.Percent, err = strconv.Atoi(p); err != nil {
		return c, fmt.Errorf("percent: %v", err)
	}
	rest := f[3:]
	if len(rest) >= 2 && strings.HasPrefix(rest[0], "ramp=") {
		secs, err := strconv.ParseInt(strings.TrimPrefix(rest[0], "ramp="), 10, 64)
		if err != nil || secs <= 0 || secs > int64(MaxRamp/time.Second) {
			return c, fmt.Errorf("ramp %q: want seconds, 1 to ten years", rest[0])
		}
		c.Ramp = time.Duration(secs) * time.Second
		st, ok := strings.CutPrefix(rest[1], "start=")
		if !ok {
			return c, errors.New("want start=TIME after ramp=")
		}
		if c.Start, err = time.Parse(time.RFC3339, st); err != nil {
			return c, fmt.Errorf("start: %v", err)
		}
		rest = rest[2:]
	}
	if len(rest) == 1 && rest[0] == "halted" {
		c.Halted = true
		rest = rest[1:]
	}
	if len(rest) > 0 {
		return c, fmt.Errorf("unexpected %q", clip(strings.Join(rest, " ")))
	}
	return c, nil
}

// parseYank reads "VERSION to=VERSION".
func parseYank(v string) (Yank, error) {
	ver, to, ok := strings.Cut(v, " to=")
	if !ok {
		return Yank{}, errors.New("want VERSION to=VERSION")
	}
	return Yank{Version: ver, To: to}, nil
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Read reads one statement from r, at most MaxSize bytes.
func Read(r io.Reader) (Statement, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return Statement{}, err
	}
	return Parse(b)
}

// Equal reports whether two statements are the same, signature included.
func (s Statement) Equal(t Statement) bool {
	a, _ := s.MarshalText()
	b, _ := t.MarshalText()
	return bytes.Equal(a, b)
}

// Expired reports whether the statement's expiry has passed at now.
func (s Statement) Expired(now time.Time) bool { return !now.Before(s.Expires) }

// Channel returns the statement's line for the channel name.
func (s Statement) Channel(name string) (Channel, bool) {
	i := slices.IndexFunc(s.Channels, func(c Channel) bool { return c.Name == name })
	if i < 0 {
		return Channel{}, false
	}
	return s.Channels[i], true
}

// Yanked reports whether the statement yanks version v.
func (s Statement) Yanked(v string) bool {
	_, ok := s.yank(v)
	return ok
}

func (s Statement) yank(v string) (Yank, bool) {
	for _, y := range s.Yanks {
		if region.CompareVersions(y.Version, v) == 0 {
			return y, true
		}
	}
	return Yank{}, false
}

// resolve follows the yanks from v to a version no yank takes back, at
// most MaxYanks steps; ok is false when the yanks loop.
func (s Statement) resolve(v string) (string, bool) {
	for range MaxYanks + 1 {
		y, ok := s.yank(v)
		if !ok {
			return v, true
		}
		v = y.To
	}
	return "", false
}

// Check reports whether next may replace held, the statement a node holds
// for target (nil: none yet), when the node trusts key for target at now.
// It returns newer = true when next is valid and newer than held; newer =
// false and a nil error when next is held itself. Otherwise the error says
// why next is refused: malformed or forged (ErrMalformed,
// ErrBadSignature), signed by another key (ErrOtherKey), for another
// target (ErrOtherTarget), older than held (ErrReplay), of held's sequence
// with other content (ErrConflict), or expired (ErrExpired).
func Check(held *Statement, next Statement, key ed25519.PublicKey, target string, now time.Time) (newer bool, err error) {
	if err := next.Verify(); err != nil {
		return false, err
	}
	switch {
	case !next.Key.Equal(key):
		return false, fmt.Errorf("%w: signed by %s, this target's owner key is %s", ErrOtherKey, region.EncodePublicKey(next.Key), region.EncodePublicKey(key))
	case next.Target != target:
		return false, fmt.Errorf("%w: %s, this is %s", ErrOtherTarget, next.Target, target)
	}
	if held != nil && held.Key.Equal(key) {
		switch {
		case next.Sequence < held.Sequence:
			return false, fmt.Errorf("%w: sequence %d, held %d", ErrReplay, next.Sequence, held.Sequence)
		case next.Sequence == held.Sequence && !next.Equal(*held):
			return false, fmt.Errorf("%w: sequence %d", ErrConflict, next.Sequence)
		case next.Sequence == held.Sequence:
			return false, nil
		}
	}
	if next.Expired(now) {
		return false, fmt.Errorf("%w: sequence %d expired at %s", ErrExpired, next.Sequence, next.Expires.Format(time.RFC3339))
	}
	return true, nil
}

// Share returns the share of the channel's nodes in its rollout at now,
// in buckets (0 to Buckets): Percent of them, growing linearly to all of
// them over the ramp from its start.
func (c Channel) Share(now time.Time) int {
	base := c.Percent * Buckets / 100
	if c.Ramp <= 0 || !now.After(c.Start) {
		return base
	}
	el := now.Sub(c.Start)
	if el >= c.Ramp {
		return Buckets
	}
	return base + int(int64(Buckets-base)*int64(el/time.Second)/int64(c.Ramp/time.Second))
}

// A Decision is what a statement tells one node.
type Decision struct {
	// Version is the version the node is to run, when it is not running
	// it: the channel's version when the node's bucket is in the rollout,
	// or the version a yank of the running one leads to. Empty when the
	// statement gives this node nothing to move to.
	Version string
	// Downgrade is set when Version is below the running version: a yank
	// authorises exactly that move.
	Downgrade bool
	// Why says what led to the decision, for logs.
	Why string
}

// Decide returns what the statement tells a node of channel whose bucket
// is bucket, running version running, at now. A node runs no yanked
// version: when running is yanked it moves to the version the yank names
// (also an older one), else to the channel's version if its bucket is in
// the channel's rollout and the channel is not halted, and never below
// running otherwise.
func (s Statement) Decide(channel string, bucket int, running string, now time.Time) Decision {
	if y, ok := s.yank(running); ok {
		to, ok := s.resolve(running)
		if !ok {
			return Decision{Why: fmt.Sprintf("%s is yanked, but the yanks loop; staying", running)}
		}
		return Decision{Version: to, Downgrade: region.CompareVersions(to, running) < 0, Why: fmt.Sprintf("%s is yanked to %s", running, y.To)}
	}
	c, ok := s.Channel(channel)
	if !ok {
		return Decision{Why: fmt.Sprintf("the statement names no channel %q", channel)}
	}
	v, ok := s.resolve(c.Version)
	switch {
	case !ok:
		return Decision{Why: fmt.Sprintf("channel %s is on %s, whose yanks loop", c.Name, c.Version)}
	case region.CompareVersions(v, running) <= 0:
		return Decision{Why: fmt.Sprintf("channel %s is on %s, not above %s", c.Name, v, running)}
	case c.Halted:
		return Decision{Why: fmt.Sprintf("the rollout of %s on channel %s is halted", c.Version, c.Name)}
	case bucket >= c.Share(now):
		return Decision{Why: fmt.Sprintf("channel %s is on %s for %.2f%% of nodes, and this node's bucket is not among them", c.Name, v, float64(c.Share(now))*100/Buckets)}
	}
	return Decision{Version: v, Why: fmt.Sprintf("channel %s is on %s", c.Name, v)}
}

// String describes the channel's line in words, for logs and summaries:
// "stable 2.0.0 for 25%, growing to 100% over 24h0m0s from
// 2026-12-04T17:00:00Z, halted".
func (c Channel) String() string {
	s := fmt.Sprintf("%s %s for %d%%", c.Name, c.Version, c.Percent)
	if c.Ramp > 0 {
		s += fmt.Sprintf(", growing to 100%% over %s from %s", c.Ramp, c.Start.UTC().Format(time.RFC3339))
	}
	if c.Halted {
		s += ", halted"
	}
	return s
}

// String describes the yank, for logs and summaries: "1.9.0 to 1.8.2".
func (y Yank) String() string { return y.Version + " to " + y.To }

// WriteFile writes the statement's text form to path through a hidden
// temporary file in the same directory (named so that directory readers
// skip it) renamed over path: readers see the previous file or the new
// one, never a part.
func WriteFile(path string, s Statement) error {
	text, err := s.MarshalText()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = tmp.Write(text)
	if serr := tmp.Sync(); err == nil {
		err = serr
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// ChannelSummary describes the statement's channels in words, separated
// by "; " (see Channel.String).
func (s Statement) ChannelSummary() string { return joinStrings(s.Channels) }

// YankSummary describes the statement's yanks, separated by "; ".
func (s Statement) YankSummary() string { return joinStrings(s.Yanks) }

func joinStrings[T fmt.Stringer](a []T) string {
	out := make([]string, len(a))
	for i, x := range a {
		out[i] = x.String()
	}
	return strings.Join(out, "; ")
}
