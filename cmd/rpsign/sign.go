package main

import (
	"context"
	"crypto/ed25519"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/org/rustpatcher-go/internal/exefmt"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

func runSign(e *env, args []string) error {
	flags := flag.NewFlagSet("sign", flag.ContinueOnError)
	var kf keyFlags
	kf.register(flags)
	version := flags.String("version", "", "release `VERSION` to write (semver, e.g. 1.2.3); default: the binary's Go module version")
	runtimeKey := flags.Bool("runtime-key", false, "the app loads its public key at run time: skip the check that the binary embeds the signing key's public key")
	targetFlag := flags.String("target", "", "`GOOS/GOARCH` of the binary; default: read from its ELF, Mach-O or PE header, which must agree")
	formatFlag := flags.String("format", "v1", "region `FORMAT`: v1, or v0 for rustpatcher 0.2's tools")
	force := flags.Bool("force", false, "sign even if the binary is already signed as a higher version")
	pos, err := parse(flags, args, 1)
	if err != nil {
		return err
	}
	bin := pos[0]
	format, err := parseFormat(*formatFlag)
	if err != nil {
		return err
	}
	key, err := kf.load(e)
	if err != nil {
		return err
	}
	v := *version
	if v == "" {
		if v, err = buildVersion(bin); err != nil {
			return err
		}
	}
	pv, err := region.ParseVersion(v)
	if err != nil {
		return fmt.Errorf("--version: %w", err)
	}
	notBelow := pv // the version the binary is signed with must not be higher
	if *force {
		notBelow = ""
	}
	t, err := binaryTarget(bin, *targetFlag, "--target", format)
	if err != nil {
		return err
	}
	if err := checkKeyTarget(kf.env, t, bin); err != nil {
		return err
	}
	in, err := signBinary(bin, key, v, t, format, kf.String(), *runtimeKey, notBelow)
	if err != nil {
		return err
	}
	pub := region.EncodePublicKey(key.Public().(ed25519.PublicKey))
	what := in.Format.String()
	if t != (target.Target{}) {
		what = t.String() + " " + what
	}
	fmt.Fprintf(e.stdout, "signed %s: version %s (%s) for public key %s, %d bytes of content, hash %s\n", bin, in.Version, what, pub, in.ContentLen(), hex.EncodeToString(in.Hash[:]))
	for _, w := range codeSignatureNotes(bin) {
		fmt.Fprintf(e.stderr, "rpsign sign: %s\n", w)
	}
	return nil
}

// checkNotLower refuses to sign the binary at path, whose scan is s, as
// version when it is signed already as a higher one: apps never go back to
// a lower version, so such a re-signing is a mistake (a stale version
// flag, the wrong file).
func checkNotLower(path string, s *region.Scanned, version string) error {
	in, err := s.Info()
	if err != nil || !in.Signed() {
		return nil
	}
	if region.CompareVersions(version, in.Version) < 0 {
		return fmt.Errorf("%s is signed as %s already; refusing to sign it as %s, a lower version that no app would update to: give a higher --version, or --force to sign it anyway", path, in.Version, version)
	}
	return nil
}

// parseFormat reads a --format value.
func parseFormat(s string) (region.Format, error) {
	switch strings.ToLower(s) {
	case "v1", "1", "":
		return region.V1, nil
	case "v0", "0", "rustpatcher":
		return region.V0, nil
	}
	return 0, fmt.Errorf("%w: --format %q: want v1 (the default) or v0 (rustpatcher 0.2)", errUsage, s)
}

// binaryTarget returns the target of the binary at path: the one its
// executable header names, which must agree with given (a --target flag or
// the Action's target input, named by what) when that is set. A file whose
// header names no target needs given, unless it is signed in format V0,
// which has no target field (the zero Target is returned then).
func binaryTarget(path, given, what string, f region.Format) (target.Target, error) {
	st, err := os.Stat(path)
	if err != nil {
		return target.Target{}, err
	}
	if st.IsDir() {
		return target.Target{}, fmt.Errorf("%s: is a directory, not a binary", path)
	}
	detected, derr := target.DetectFile(path)
	if given == "" {
		if derr != nil {
			// Say first if it is not a program rpsign can sign at all.
			if _, err := region.ScanFile(context.Background(), path); err != nil {
				return target.Target{}, explainNoRegion(err)
			}
			if f == region.V0 {
				return target.Target{}, nil
			}
			return target.Target{}, fmt.Errorf("%w; pass %s GOOS/GOARCH", derr, what)
		}
		return detected, nil
	}
	t, err := target.Parse(given)
	if err != nil {
		return target.Target{}, fmt.Errorf("%s: %w", what, err)
	}
	if derr == nil && t != detected {
		return target.Target{}, fmt.Errorf("%s is %s, but %s is a %s binary (its header says so): build it for %s, or sign it with the key of %s", what, t, path, detected, t, detected)
	}
	return t, nil
}

// checkKeyTarget refuses a key variable named for another target than the
// binary's: RP_KEY_LINUX_ARM64 signs linux/arm64 binaries only.
func checkKeyTarget(env string, t target.Target, path string) error {
	rest, ok := strings.CutPrefix(env, "RP_KEY_")
	if !ok || t == (target.Target{}) {
		return nil
	}
	kt, err := target.Parse(rest)
	if err != nil {
		return nil // not a target-named variable
	}
	if kt != t {
		return fmt.Errorf("%s holds the key of %s, but %s is a %s binary: sign it with %s", env, kt, path, t, t.KeyEnv())
	}
	return nil
}

// codeSignatureNotes says what signing did to an OS code signature in the
// binary at path, for the user to act on.
func codeSignatureNotes(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	h := make([]byte, min(st.Size(), exefmt.MaxHeader))
	if _, err := io.ReadFull(f, h); err != nil {
		return nil
	}
	l, err := exefmt.Parse(h, st.Size())
	if err != nil || !l.HasSignature() {
		return nil
	}
	switch l.Kind {
	case exefmt.MachO:
		adhoc, err := exefmt.Adhoc(f, l)
		if err == nil && !adhoc {
			return []string{fmt.Sprintf("%s carries a code signature by a certificate, which the region invalidated: sign it again with codesign now (rpsign verify still passes afterwards)", path)}
		}
	case exefmt.PE:
		return []string{fmt.Sprintf("%s carries an Authenticode signature, which the region invalidated: sign it again with osslsigncode or signtool now (rpsign verify still passes afterwards)", path)}
	}
	return nil
}

// linkedKeyFlag is client.LinkedKeyFlag, the -X name that links an owner
// key into an app (rpsign does not import client, to stay small; a test
// checks that the two agree).
const linkedKeyFlag = "github.com/org/rustpatcher-go/client.linkedPublicKey"

// signBinary signs the binary at path for target t with key as version, in
// format f. In the same pass over the file, before it writes anything, it
// checks, unless notBelow is empty, that the binary is not signed already
// with a version above notBelow, and, unless runtimeKey is set, that the
// binary embeds the key's public key as z-base-32 text (a Config literal
// or a key linked in with -X); it refuses to sign otherwise. from names
// the key's origin in that message.
func signBinary(path string, key ed25519.PrivateKey, version string, t target.Target, f region.Format, from string, runtimeKey bool, notBelow string) (region.Info, error) {
	opts := region.SignOptions{Version: version, Format: f}
	if f == region.V1 {
		opts.Target = t.String()
	}
	pub := region.EncodePublicKey(key.Public().(ed25519.PublicKey))
	if !runtimeKey {
		opts.Find = []string{pub, region.EncodeSecretKey(key)}
	}
	// Checked in the signing pass, before anything is written.
	opts.Check = func(s *region.Scanned) error {
		if notBelow != "" {
			if err := checkNotLower(path, s, notBelow); err != nil {
				return err
			}
		}
		if runtimeKey {
			return nil
		}
		return checkEmbedsKey(path, pub, from, s.Found)
	}
	in, err := region.Sign(context.Background(), path, key, opts)
	if err != nil {
		return in, explainNoRegion(err)
	}
	return in, nil
}

// errKeyNotEmbedded means a binary does not carry the public key of the key
// it is being signed with, so the app would never accept its own releases.
var errKeyNotEmbedded = errors.New("binary does not embed the signing key's public key")

// checkEmbedsKey checks the result of a scan that looked for the signing
// key's public key and for the signing key's own text (found[0], found[1]).
// A binary that embeds neither was built without the key, or for another
// target's key; one that embeds the signing key's text was given its own
// public key as the signing key.
func checkEmbedsKey(bin, pub, from string, found []bool) error {
	switch {
	case found[0]:
		return nil
	case found[1]:
		return fmt.Errorf("%s embeds the key from %s as its public key: that is a public key, not a secret key. Sign with the owner key that rpsign gen wrote (its public key is the one in the app), never with the public key itself", bin, from)
	}
	if linked, ok := linkedKey(bin); ok {
		// The binary carries another key: most likely the signing key
		// is the wrong one (another target's, another app's), not the
		// build.
		return fmt.Errorf(`%s: %w %s (the %s holds its owner key): the binary carries public key %s instead (linked in with -X %s).
Sign with the owner key of %s (with per-target keys: the one of this binary's target), or, if %s is the key to release with, rebuild the app with -ldflags "-X %s=%s". If the app loads its key at run time, pass --runtime-key`,
			bin, errKeyNotEmbedded, pub, from, linked, linkedKeyFlag, linked, pub, linkedKeyFlag, pub)
	}
	return fmt.Errorf(`%s: %w %s (the %s holds its owner key), so the app would refuse every release signed with it. The binary links in no key with -X %s; if it sets client.Config.PublicKey, that is another key.
Build the app with that key linked in:
	go build -ldflags "-X %s=%s" ...
or set client.Config.PublicKey to it. The same error comes from signing with another target's key. If the app loads its key at run time, pass --runtime-key`, bin, errKeyNotEmbedded, pub, from, linkedKeyFlag, linkedKeyFlag, pub)
}

// linkedKey returns the public key linked into the Go binary at path with
// -X linkedKeyFlag=KEY, as its build info records the -ldflags.
func linkedKey(path string) (string, bool) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", false
	}
	for _, s := range bi.Settings {
		if s.Key != "-ldflags" {
			continue
		}
		// The flags as go build quoted them: split on spaces and
		// quotes, and take the last -X that sets the key.
		var key string
		fields := strings.FieldsFunc(s.Value, func(r rune) bool { return r == ' ' || r == '"' || r == '\'' })
		for i, f := range fields {
			f = strings.TrimPrefix(f, "-X=")
			if i > 0 && fields[i-1] == "-X" || strings.HasPrefix(fields[i], "-X=") {
				if v, ok := strings.CutPrefix(f, linkedKeyFlag+"="); ok {
					key = v
				}
			}
		}
		if key != "" {
			return key, true
		}
	}
	return "", false
}

// explainNoRegion adds to a "no region" error what to do about it.
func explainNoRegion(err error) error {
	if errors.Is(err, region.ErrNoRegion) {
		return fmt.Errorf("%w: rpsign signs Go programs that import github.com/org/rustpatcher-go/client (or .../region); import it, call client.Spawn in main, rebuild and sign again", err)
	}
	return err
}

// buildVersion returns the main module version recorded in the Go binary at
// path when it is a clean release tag, and otherwise an error that tells the
// user to pass --version.
func buildVersion(path string) (string, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: no --version given and no Go build info to take one from (%v); pass --version 1.2.3", path, err)
	}
	v := bi.Main.Version
	if !isReleaseTag(v) {
		return "", fmt.Errorf("%s: no --version given and the binary's module version %q is not a clean release tag; pass --version 1.2.3", path, v)
	}
	return v, nil
}

// isReleaseTag reports whether a Go module version is a clean release tag:
// valid semver, not a pseudo-version, no build suffix such as +dirty.
func isReleaseTag(v string) bool {
	return semver.IsValid(v) && !module.IsPseudoVersion(v) && semver.Build(v) == "" && semver.Canonical(v) == v
}

func runVerify(e *env, args []string) error {
	flags := flag.NewFlagSet("verify", flag.ContinueOnError)
	pubStr := flags.String("pub", "", "owner public `KEY` (z-base-32)")
	pos, err := parse(flags, args, 1)
	if err != nil {
		return err
	}
	if *pubStr == "" {
		return fmt.Errorf("%w: --pub KEY is required (print it with: rpsign pub --key-file PATH)", errUsage)
	}
	pub, err := region.ParsePublicKey(*pubStr)
	if err != nil {
		return fmt.Errorf("--pub: %w", err)
	}
	in, err := region.VerifyFile(context.Background(), pos[0], pub)
	if err != nil {
		if errors.Is(err, region.ErrBadSignature) {
			if derived, ok := secretInstead(pos[0], *pubStr); ok {
				return fmt.Errorf("%w: --pub holds a secret key (the owner key of public key %s), not a public key. Keep it secret: pass the public key, --pub %s (rpsign pub prints it)", err, derived, derived)
			}
			return fmt.Errorf("%w (signed with another key, or the region was tampered with)", err)
		}
		return explainNoRegion(err)
	}
	fmt.Fprintf(e.stdout, "%s: OK, version %s signed by %s\n", pos[0], in.Version, *pubStr)
	return nil
}

// secretInstead reports whether the --pub value s, read as an owner
// (secret) key, has a public key that the binary at path verifies with, and
// returns that public key.
func secretInstead(path, s string) (string, bool) {
	k, err := region.ParseSecretKey(s)
	if err != nil {
		return "", false
	}
	pub := k.Public().(ed25519.PublicKey)
	if _, err := region.VerifyFile(context.Background(), path, pub); err != nil {
		return "", false
	}
	return region.EncodePublicKey(pub), true
}

// inspection is the JSON form of rpsign inspect.
type inspection struct {
	Format     string `json:"format"`
	Version    string `json:"version"`
	Target     string `json:"target,omitempty"`
	Offset     int64  `json:"offset"`
	Content    int64  `json:"content_length"`
	FileSize   int64  `json:"file_size"`
	Size       uint64 `json:"size"`
	Hash       string `json:"hash"`
	Signature  string `json:"signature"`
	FileID     string `json:"file_id"`
	Signed     bool   `json:"signed"`
	Matches    bool   `json:"matches"`
	Executable string `json:"executable"`
	CodeSig    bool   `json:"code_signature"`
}

func runInspect(e *env, args []string) error {
	flags := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := flags.Bool("json", false, "print one JSON object")
	pos, err := parse(flags, args, 1)
	if err != nil {
		return err
	}
	if isRotation(pos[0]) {
		return inspectRotation(e, pos[0])
	}
	if isRollout(pos[0]) {
		return showRollout(e, pos[0], *asJSON, time.Now())
	}
	s, err := region.ScanFile(context.Background(), pos[0])
	if err != nil {
		return explainNoRegion(err)
	}
	in, err := s.Info()
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	out := inspection{
		Format:     in.Format.String(),
		Version:    in.Version,
		Target:     in.Target,
		Offset:     s.Offset,
		Content:    s.ContentEnd,
		FileSize:   s.FileSize,
		Size:       in.Size,
		Hash:       hex.EncodeToString(in.Hash[:]),
		Signature:  hex.EncodeToString(in.Signature[:]),
		FileID:     hex.EncodeToString(s.FileID[:]),
		Signed:     in.Signed(),
		Executable: s.Layout().Kind.String(),
		CodeSig:    s.Layout().HasSignature(),
	}
	if out.Signed {
		out.Content = in.ContentLen()
		out.Matches = s.Matches(in) == nil
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		return enc.Encode(out)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "file:       %s (%s, %d bytes)\n", pos[0], out.Executable, out.FileSize)
	fmt.Fprintf(&b, "region:     at offset %d\n", s.Offset)
	if !out.Signed {
		fmt.Fprintf(&b, "signed:     no (sign it with: rpsign sign %s --key-file PATH --version X.Y.Z)\n", pos[0])
	} else {
		fmt.Fprintf(&b, "signed:     yes, format %s\n", out.Format)
		fmt.Fprintf(&b, "version:    %s\n", out.Version)
		if out.Target != "" {
			fmt.Fprintf(&b, "target:     %s\n", out.Target)
		}
		fmt.Fprintf(&b, "content:    %d bytes", out.Content)
		if tail := out.FileSize - out.Content; tail > 0 {
			fmt.Fprintf(&b, ", then %d bytes of OS code signature", tail)
		}
		fmt.Fprintf(&b, "\nhash:       %s\n", out.Hash)
		fmt.Fprintf(&b, "signature:  %s\n", out.Signature)
		fmt.Fprintf(&b, "file id:    %s\n", out.FileID)
		if err := s.Matches(in); err != nil {
			fmt.Fprintf(&b, "matches:    NO, the file changed after signing (verify will fail): %v\n", err)
		} else {
			fmt.Fprintf(&b, "matches:    yes (content; check the key with rpsign verify)\n")
		}
	}
	_, err = fmt.Fprint(e.stdout, b.String())
	return err
}
