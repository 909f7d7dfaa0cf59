package main

import (
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
	in, err := region.SignFile(bin, key, v)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "signed %s: version %s, %d bytes, hash %s\n", bin, in.Version, in.Size, hex.EncodeToString(in.Hash[:]))
	return nil
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
	in, err := region.VerifyFile(pos[0], pub)
	if err != nil {
		if errors.Is(err, region.ErrBadSignature) {
			return fmt.Errorf("%w (signed with another key, or the region was tampered with)", err)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "%s: OK, version %s signed by %s\n", pos[0], in.Version, *pubStr)
	return nil
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
	s, err := region.ScanFile(pos[0])
	if err != nil {
		return err
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
