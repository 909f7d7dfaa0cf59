package rollout

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

var t0 = time.Date(2026, 12, 4, 17, 0, 0, 0, time.UTC)

// statement returns a signed statement of key for linux/amd64 with the
// given sequence, channels and yanks, issued at t0 and expiring a week
// later.
func statement(t testing.TB, key regiontest.Key, seq uint64, chans []Channel, yanks []Yank) Statement {
	t.Helper()
	s := Statement{Target: "linux/amd64", Sequence: seq, Issued: t0, Expires: t0.Add(7 * 24 * time.Hour), Channels: chans, Yanks: yanks}
	if err := s.Sign(key.Private); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	k := regiontest.NewKey(t)
	s := statement(t, k, 3, []Channel{
		{Name: "stable", Version: "2.0.0", Percent: 25, Ramp: 24 * time.Hour, Start: t0},
		{Name: "beta", Version: "2.1.0-rc.1", Percent: 100, Halted: true},
	}, []Yank{{Version: "1.9.0", To: "1.8.2"}})
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	b, _ := s.MarshalText()
	want := "rustpatcher-go rollout v1\ntarget: linux/amd64\nkey: " + k.PublicText + "\nsequence: 3\n" +
		"issued: 2026-12-04T17:00:00Z\nexpires: 2026-12-11T17:00:00Z\n" +
		"channel: beta 2.1.0-rc.1 percent=100 halted\n" +
		"channel: stable 2.0.0 percent=25 ramp=86400 start=2026-12-04T17:00:00Z\n" +
		"yank: 1.9.0 to=1.8.2\nsignature: "
	if !strings.HasPrefix(string(b), want) {
		t.Errorf("text form:\n%s\nwant it to start with\n%s", b, want)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(s) {
		t.Errorf("Parse(MarshalText) = %+v, want %+v", got, s)
	}
}

func TestVerifyRefuses(t *testing.T) {
	k, evil := regiontest.NewKey(t), regiontest.NewKey(t)
	tests := []struct {
		name   string
		change func(*Statement)
		want   error
	}{
		{"signed by another key", func(s *Statement) { s.Sign(evil.Private); s.Key = k.Public }, ErrBadSignature},
		{"target changed", func(s *Statement) { s.Target = "linux/arm64" }, ErrBadSignature},
		{"sequence changed", func(s *Statement) { s.Sequence++ }, ErrBadSignature},
		{"percent changed", func(s *Statement) { s.Channels[0].Percent = 100 }, ErrBadSignature},
		{"halt removed", func(s *Statement) { s.Channels[0].Halted = false }, ErrBadSignature},
		{"yank removed", func(s *Statement) { s.Yanks = nil }, ErrBadSignature},
		{"expiry moved", func(s *Statement) { s.Expires = s.Expires.Add(time.Hour) }, ErrBadSignature},
		{"no sequence", func(s *Statement) { s.Sequence = 0 }, ErrMalformed},
		{"bad target", func(s *Statement) { s.Target = "linux" }, ErrMalformed},
		{"expires before issued", func(s *Statement) { s.Expires = s.Issued }, ErrMalformed},
		{"percent above 100", func(s *Statement) { s.Channels[0].Percent = 101 }, ErrMalformed},
		{"bad channel name", func(s *Statement) { s.Channels[0].Name = "Stable" }, ErrMalformed},
		{"ramp without start", func(s *Statement) { s.Channels[0].Ramp = time.Hour }, ErrMalformed},
		{"ramp over ten years", func(s *Statement) { s.Channels[0].Ramp, s.Channels[0].Start = MaxRamp+time.Second, t0 }, ErrMalformed},
		{"yank to itself", func(s *Statement) { s.Yanks[0].To = s.Yanks[0].Version }, ErrMalformed},
		{"non-canonical version", func(s *Statement) { s.Channels[0].Version = "v2.0.0" }, ErrMalformed},
		{"channels twice", func(s *Statement) { s.Channels = append(s.Channels, s.Channels[0]) }, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := statement(t, k, 1, []Channel{{Name: "stable", Version: "2.0.0", Percent: 25, Halted: true}}, []Yank{{Version: "1.9.0", To: "1.8.2"}})
			tt.change(&s)
			if err := s.Verify(); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	k := regiontest.NewKey(t)
	s := statement(t, k, 3, []Channel{{Name: "stable", Version: "2.0.0", Percent: 25}}, nil)
	b, _ := s.MarshalText()
	good := string(b)
	for name, text := range map[string]string{
		"empty":              "",
		"other header":       strings.Replace(good, "rollout v1", "rollout v9", 1),
		"bad key":            strings.Replace(good, k.PublicText, "nope", 1),
		"bad sequence":       strings.Replace(good, "sequence: 3", "sequence: three", 1),
		"short signature":    good[:len(good)-10] + "\n",
		"too long":           good + strings.Repeat("x", MaxSize),
		"missing field":      strings.Replace(good, "sequence: 3\n", "", 1),
		"field twice":        strings.Replace(good, "sequence: 3\n", "sequence: 3\nsequence: 3\n", 1),
		"unknown field":      strings.Replace(good, "sequence: 3\n", "sequence: 3\nmood: fine\n", 1),
		"extra space":        strings.Replace(good, "sequence: 3", "sequence:  3", 1),
		"crlf":               strings.ReplaceAll(good, "\n", "\r\n"),
		"no final newline":   strings.TrimSuffix(good, "\n"),
		"after signature":    good + "channel: beta 2.0.0 percent=1\n",
		"local time":         strings.Replace(good, "17:00:00Z", "18:00:00+01:00", 1),
		"percent missing":    strings.Replace(good, " percent=25", "", 1),
		"percent not number": strings.Replace(good, "percent=25", "percent=x", 1),
		"bad ramp":           strings.Replace(good, "percent=25", "percent=25 ramp=-1 start=2026-12-04T17:00:00Z", 1),
		"unknown flag":       strings.Replace(good, "percent=25", "percent=25 paused", 1),
		"bad yank":           strings.Replace(good, "signature:", "yank: 1.0.0\nsignature:", 1),
	} {
		if _, err := Parse([]byte(text)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := Parse(b); err != nil {
		t.Errorf("the good statement: %v", err)
	}
}

func TestCheck(t *testing.T) {
	k, evil := regiontest.NewKey(t), regiontest.NewKey(t)
	ch := []Channel{{Name: "stable", Version: "2.0.0", Percent: 25}}
	s3 := statement(t, k, 3, ch, nil)
	s4 := statement(t, k, 4, ch, nil)
	other3 := statement(t, k, 3, []Channel{{Name: "stable", Version: "2.0.0", Percent: 100}}, nil)
	byEvil := statement(t, evil, 9, ch, nil)
	arm := Statement{Target: "linux/arm64", Sequence: 9, Issued: t0, Expires: t0.Add(time.Hour), Channels: ch}
	if err := arm.Sign(k.Private); err != nil {
		t.Fatal(err)
	}
	forged := s4
	forged.Channels = []Channel{{Name: "stable", Version: "9.0.0", Percent: 100}}
	tests := []struct {
		name  string
		held  *Statement
		next  Statement
		now   time.Time
		newer bool
		err   error
	}{
		{"first", nil, s3, t0, true, nil},
		{"higher sequence", &s3, s4, t0, true, nil},
		{"same statement again", &s3, s3, t0, false, nil},
		{"replayed older", &s4, s3, t0, false, ErrReplay},
		{"same sequence, other content", &s3, other3, t0, false, ErrConflict},
		{"another key", &s3, byEvil, t0, false, ErrOtherKey},
		{"another target", nil, arm, t0, false, ErrOtherTarget},
		{"forged", &s3, forged, t0, false, ErrBadSignature},
		{"expired", &s3, s4, s4.Expires, false, ErrExpired},
		{"held one expired, same again", &s3, s3, s3.Expires.Add(time.Hour), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newer, err := Check(tt.held, tt.next, k.Public, "linux/amd64", tt.now)
			if newer != tt.newer || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("Check = %v, %v; want %v, %v", newer, err, tt.newer, tt.err)
			}
		})
	}
}

func TestFileName(t *testing.T) {
	if got := FileName("linux/amd64"); got != "linux-amd64.rollout" {
		t.Errorf("FileName = %q", got)
	}
}

func TestShare(t *testing.T) {
	c := Channel{Name: "stable", Version: "2.0.0", Percent: 20, Ramp: 10 * time.Hour, Start: t0}
	for _, tt := range []struct {
		at   time.Duration
		want int
	}{
		{-time.Hour, 2000},
		{0, 2000},
		{5 * time.Hour, 6000},
		{10 * time.Hour, Buckets},
		{100 * time.Hour, Buckets},
	} {
		if got := c.Share(t0.Add(tt.at)); got != tt.want {
			t.Errorf("Share(start%+v) = %d, want %d", tt.at, got, tt.want)
		}
	}
	if got := (Channel{Percent: 25}).Share(t0); got != 2500 {
		t.Errorf("Share without ramp = %d, want 2500", got)
	}
}

func TestDecide(t *testing.T) {
	k := regiontest.NewKey(t)
	s := statement(t, k, 1, []Channel{
		{Name: "stable", Version: "2.0.0", Percent: 25},
		{Name: "halted", Version: "2.0.0", Percent: 100, Halted: true},
		{Name: "onyanked", Version: "1.9.0", Percent: 100},
		{Name: "loop", Version: "3.0.0", Percent: 100},
	}, []Yank{{Version: "1.9.0", To: "1.8.2"}, {Version: "3.0.0", To: "3.0.1"}, {Version: "3.0.1", To: "3.0.0"}})
	tests := []struct {
		name      string
		channel   string
		bucket    int
		running   string
		version   string
		downgrade bool
	}{
		{"in the rollout", "stable", 0, "1.0.0", "2.0.0", false},
		{"last bucket in", "stable", 2499, "1.0.0", "2.0.0", false},
		{"first bucket out", "stable", 2500, "1.0.0", "", false},
		{"already on it", "stable", 0, "2.0.0", "", false},
		{"above it: no downgrade", "stable", 0, "2.1.0", "", false},
		{"no such channel", "nightly", 0, "1.0.0", "", false},
		{"halted", "halted", 0, "1.0.0", "", false},
		{"running a yanked version", "stable", 9999, "1.9.0", "1.8.2", true},
		{"channel on a yanked version", "onyanked", 0, "1.0.0", "1.8.2", false},
		{"channel on a yanked version, above it", "onyanked", 0, "1.8.5", "", false},
		{"yanks that loop", "loop", 0, "1.0.0", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Decide(tt.channel, tt.bucket, tt.running, t0)
			if d.Version != tt.version || d.Downgrade != tt.downgrade {
				t.Errorf("Decide = %+v, want version %q downgrade %v", d, tt.version, tt.downgrade)
			}
			if d.Why == "" {
				t.Error("no reason given")
			}
		})
	}
}

// TestGolden checks the known-answer statement in testdata, also given in
// docs/FORMAT.md: the test-vector key (seed
// 5wrjzq7h54t61sr8izgqdkrjx9tcqey5n6apff5ju5yadoobuj3o) puts linux/amd64's
// stable channel on 2.0.0 for 25% of nodes, ramping to all over a day,
// and yanks 1.9.0 to 1.8.2, sequence 7. Ed25519 signatures are
// deterministic, so Sign must write it byte for byte.
func TestGolden(t *testing.T) {
	want, err := os.ReadFile("testdata/golden.rollout")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Verify(); err != nil {
		t.Fatalf("the golden statement does not verify: %v", err)
	}
	seed, err := region.ParseSecretKey("5wrjzq7h54t61sr8izgqdkrjx9tcqey5n6apff5ju5yadoobuj3o")
	if err != nil {
		t.Fatal(err)
	}
	made := Statement{
		Target: "linux/amd64", Sequence: 7, Issued: t0, Expires: t0.Add(7 * 24 * time.Hour),
		Channels: []Channel{{Name: "stable", Version: "2.0.0", Percent: 25, Ramp: 24 * time.Hour, Start: t0}},
		Yanks:    []Yank{{Version: "1.9.0", To: "1.8.2"}},
	}
	if err := made.Sign(seed); err != nil {
		t.Fatal(err)
	}
	got, _ := made.MarshalText()
	if string(got) != string(want) {
		t.Errorf("Sign wrote\n%s\nwant\n%s", got, want)
	}
}

// TestFormatDoc checks that docs/FORMAT.md prints the known-answer
// statement byte for byte and the digest its key signs.
func TestFormatDoc(t *testing.T) {
	doc, err := os.ReadFile("../../docs/FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("testdata/golden.rollout")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```\n"+string(golden)+"```\n") {
		t.Error("docs/FORMAT.md does not print testdata/golden.rollout")
	}
	st, err := Parse(golden)
	if err != nil {
		t.Fatal(err)
	}
	m := digest(st.body())
	h := hex.EncodeToString(m[:])
	if !strings.Contains(string(doc), "    "+h[:64]+"\n    "+h[64:]+"\n") {
		t.Errorf("docs/FORMAT.md does not print the digest %s", h)
	}
	if want := fmt.Sprintf("Its body is %d bytes\n(the statement %d)", len(st.body()), len(golden)); !strings.Contains(string(doc), want) {
		t.Errorf("docs/FORMAT.md does not say %q", want)
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/golden.rollout"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(header + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		out, _ := s.MarshalText()
		if string(out) != string(b) {
			t.Fatalf("Parse accepted a form MarshalText does not write:\n%q\n%q", b, out)
		}
		_ = s.Verify()
		_ = s.Decide("stable", 0, "1.0.0", t0)
	})
}
