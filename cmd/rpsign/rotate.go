package main

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/org/rustpatcher-go/internal/rotation"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

const rotateHelp = `Makes a key rotation statement: signed by the old owner key of a target, it
moves the target to a new owner key. An app built with the old key that sees
the statement (in a release directory, or from seeds that serve it) trusts the
new key from then on, and the old key no more. Builds after the rotation link
in the new key (RP_PUB_<OS>_<ARCH>) and are signed with it.

The statement is written to FILE (or printed when FILE is -): put it next to
the releases in every directory the apps or seeds read, named *.rotation.
--sequence orders the statements of one target: give each later rotation a
higher number. See docs/RELEASING.md, "Rotating a key, and after a leak".

Examples:
  rpsign gen keys/linux_amd64-2.key
  rpsign rotate --key-file keys/linux_amd64.key --to "$(rpsign pub --key-file keys/linux_amd64-2.key)" \
      --target linux/amd64 --sequence 1 releases/linux-amd64-1.rotation
  rpsign inspect releases/linux-amd64-1.rotation
`

func runRotate(e *env, args []string) error {
	flags := flag.NewFlagSet("rotate", flag.ContinueOnError)
	var kf keyFlags
	kf.register(flags)
	to := flags.String("to", "", "the new owner public `KEY` (z-base-32; rpsign pub prints it)")
	tgt := flags.String("target", "", "`GOOS/GOARCH` the statement moves")
	seq := flags.Uint64("sequence", 1, "the statement's place among the target's rotations (`N` >= 1, higher for each later one)")
	pos, err := parse(flags, args, 1)
	if err != nil {
		return err
	}
	if *to == "" || *tgt == "" {
		return fmt.Errorf("%w: --to KEY and --target GOOS/GOARCH are required", errUsage)
	}
	next, err := region.ParsePublicKey(*to)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	t, err := target.Parse(*tgt)
	if err != nil {
		return fmt.Errorf("--target: %w", err)
	}
	key, err := kf.load(e)
	if err != nil {
		return err
	}
	if region.EncodeSecretKey(key) == *to {
		return fmt.Errorf("--to holds the old owner key itself, a secret: pass the new key's public key (rpsign pub --key-file NEW)")
	}
	if err := checkKeyTarget(kf.env, t, "the statement"); err != nil {
		return err
	}
	s, err := rotation.New(key, next, t.String(), *seq)
	if err != nil {
		return err
	}
	text, _ := s.MarshalText()
	if pos[0] == "-" {
		_, err := e.stdout.Write(text)
		return err
	}
	// A statement is public: readable by all, but never written over.
	f, err := os.OpenFile(pos[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("writing the statement: %w (choose another file name; a statement is never replaced)", err)
	}
	_, err = f.Write(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(pos[0])
		return fmt.Errorf("writing %s: %w", pos[0], err)
	}
	fmt.Fprintf(e.stdout, "wrote %s: %s moves from %s to %s (sequence %d)\n", pos[0], t, region.EncodePublicKey(key.Public().(ed25519.PublicKey)), *to, *seq)
	return nil
}

// isRotation reports whether the file at path is a key rotation statement.
func isRotation(path string) bool { return startsWith(path, "rustpatcher-go key rotation") }

// startsWith reports whether the file at path starts with prefix, at most
// 32 bytes.
func startsWith(path, prefix string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [32]byte
	n, _ := f.Read(b[:])
	return bytes.HasPrefix(b[:n], []byte(prefix))
}

// inspectRotation prints a key rotation statement and whether its
// signature holds.
func inspectRotation(e *env, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := rotation.Read(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(e.stdout, "file:      %s (key rotation statement)\n", filepath.Clean(path))
	fmt.Fprintf(e.stdout, "target:    %s\n", s.Target)
	fmt.Fprintf(e.stdout, "from:      %s\n", region.EncodePublicKey(s.From))
	fmt.Fprintf(e.stdout, "to:        %s\n", region.EncodePublicKey(s.To))
	fmt.Fprintf(e.stdout, "sequence:  %d\n", s.Sequence)
	if err := s.Verify(); err != nil {
		fmt.Fprintf(e.stdout, "signature: INVALID: %v\n", err)
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(e.stdout, "signature: valid, by the from key\n")
	return nil
}
