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
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/org/rustpatcher-go/region"
)

func runSign(e *env, args []string) error {
	flags := flag.NewFlagSet("sign", flag.ContinueOnError)
	var kf keyFlags
	kf.register(flags)
	version := flags.String("version", "", "release `VERSION` to write (semver, e.g. 1.2.3); default: the binary's Go module version")
	runtimeKey := flags.Bool("runtime-key", false, "the app loads its public key at run time: skip the check that the binary embeds the signing key's public key")
	pos, err := parse(flags, args, 1)
	if err != nil {
		return err
	}
	bin := pos[0]
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
	if _, err := region.ParseVersion(v); err != nil {
		return fmt.Errorf("--version: %w", err)
	}
	in, err := signBinary(bin, key, v, kf.String(), *runtimeKey)
	if err != nil {
		return err
	}
	pub := region.EncodePublicKey(key.Public().(ed25519.PublicKey))
	fmt.Fprintf(e.stdout, "signed %s: version %s for public key %s, %d bytes, hash %s\n", bin, in.Version, pub, in.Size, hex.EncodeToString(in.Hash[:]))
	return nil
}

// linkedKeyFlag is client.LinkedKeyFlag, the -X name that links an owner
// key into an app (rpsign does not import client, to stay small; a test
// checks that the two agree).
const linkedKeyFlag = "github.com/org/rustpatcher-go/client.linkedPublicKey"

// signBinary signs the binary at path with key as version. Unless
// runtimeKey is set, it first checks, in the same pass over the file, that
// the binary embeds the key's public key as z-base-32 text (a Config
// literal or a key linked in with -X), and refuses to sign otherwise; from
// names the key's origin in that message.
func signBinary(path string, key ed25519.PrivateKey, version, from string, runtimeKey bool) (region.Info, error) {
	opts := region.SignOptions{Version: version}
	if !runtimeKey {
		pub := region.EncodePublicKey(key.Public().(ed25519.PublicKey))
		opts.Find = []string{pub, region.EncodeSecretKey(key)}
		opts.Check = func(s *region.Scanned) error { return checkEmbedsKey(path, pub, from, s.Found) }
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
	return fmt.Errorf(`%s: %w %s, so the app would refuse every release signed with it.
Build the app with that key linked in:
	go build -ldflags "-X %s=%s" ...
or set client.Config.PublicKey to it. The same error comes from signing with another target's key, or from a build that links in no key. If the app loads its key at run time, pass --runtime-key`, bin, errKeyNotEmbedded, pub, linkedKeyFlag, pub)
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
	Version   string `json:"version"`
	Size      uint64 `json:"size"`
	Hash      string `json:"hash"`
	Signature string `json:"signature"`
	Signed    bool   `json:"signed"`
}

func runInspect(e *env, args []string) error {
	flags := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := flags.Bool("json", false, "print one JSON object")
	pos, err := parse(flags, args, 1)
	if err != nil {
		return err
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
		Version:   in.Version,
		Size:      in.Size,
		Hash:      hex.EncodeToString(in.Hash[:]),
		Signature: hex.EncodeToString(in.Signature[:]),
		Signed:    in.Signed(),
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		return enc.Encode(out)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "file:      %s\n", pos[0])
	fmt.Fprintf(&b, "region:    at offset %d\n", s.Offset)
	if !out.Signed {
		fmt.Fprintf(&b, "signed:    no (sign it with: rpsign sign %s --key-file PATH --version X.Y.Z)\n", pos[0])
		fmt.Fprintf(&b, "file size: %d bytes without the region\n", s.Size)
	} else {
		fmt.Fprintf(&b, "signed:    yes\n")
		fmt.Fprintf(&b, "version:   %s\n", out.Version)
		fmt.Fprintf(&b, "size:      %d\n", out.Size)
		fmt.Fprintf(&b, "hash:      %s\n", out.Hash)
		fmt.Fprintf(&b, "signature: %s\n", out.Signature)
		if in.Size != s.Size || in.Hash != s.Hash {
			fmt.Fprintf(&b, "matches:   NO, the file changed after signing (verify will fail)\n")
		} else {
			fmt.Fprintf(&b, "matches:   yes (hash and size; check the key with rpsign verify)\n")
		}
	}
	_, err = fmt.Fprint(e.stdout, b.String())
	return err
}
