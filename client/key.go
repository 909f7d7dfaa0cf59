package client

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"

	"github.com/org/rustpatcher-go/region"
)

// linkedPublicKey is the owner public key linked into the program when it is
// built, the documented way for a release pipeline to give each target's
// build its own key:
//
//	go build -ldflags "-X github.com/org/rustpatcher-go/client.linkedPublicKey=<z-base-32 key>"
//
// Spawn uses it when the Config names no key for the running target. The
// linker writes it; nothing in the program ever assigns it.
var linkedPublicKey string

// LinkedKeyFlag is the -X linker flag name that sets the key returned by
// LinkedPublicKey: go build -ldflags "-X " + LinkedKeyFlag + "=<key>".
const LinkedKeyFlag = "github.com/org/rustpatcher-go/client.linkedPublicKey"

// LinkedPublicKey returns the owner public key linked into the program with
// -ldflags "-X github.com/org/rustpatcher-go/client.linkedPublicKey=<key>",
// or "" when the build carries none.
func LinkedPublicKey() string { return linkedPublicKey }

// TestVectorPublicKey is the public key of the test vectors in
// docs/FORMAT.md. Its secret seed is published there, so anyone can sign
// releases for it: Spawn refuses it.
//
// The client compares keys with testVectorKey, its raw bytes, and never
// uses this text, so that an app's file holds no key text but its own
// (rpsign sign looks for the signing key's text in the binary).
const TestVectorPublicKey = "axegnqus3miex47g1kxf1j7j8spczbc57go7jgpeixq8nxjfz7gy"

// testVectorKey is TestVectorPublicKey decoded.
var testVectorKey = ed25519.PublicKey{
	0xc3, 0xd0, 0x61, 0x3a, 0x76, 0xca, 0xea, 0x87, 0xeb, 0xa6, 0x92, 0x9e, 0x59, 0x27, 0xa9, 0x3d,
	0x9a, 0xcb, 0x85, 0x9b, 0xe9, 0xa1, 0xd4, 0x99, 0xa8, 0xab, 0xdc, 0x71, 0x3d, 0x25, 0xbf, 0x4c,
}

// ErrPublishedKey means the configured public key is one whose secret is
// public (the documentation's test vector).
var ErrPublishedKey = errors.New("public key's secret is published")

// key returns the public key for the running target: the Config's, else the
// one linked in at build time. When both are set they must agree, so that
// the key rpsign checked for in the binary is the one the app trusts.
func (cfg *options) key() (ed25519.PublicKey, error) {
	target := runtime.GOOS + "/" + runtime.GOARCH
	s, from := cfg.PublicKey, "Config.PublicKey"
	if s == "" {
		if k, ok := cfg.PublicKeys[target]; ok {
			s, from = k, fmt.Sprintf("Config.PublicKeys[%q]", target)
		}
	}
	linked := linkedPublicKey
	if cfg.linked != nil {
		linked = *cfg.linked
	}
	switch {
	case s == "" && linked != "":
		s, from = linked, "the key linked in with -X "+LinkedKeyFlag
	case s == "" && len(cfg.PublicKeys) > 0:
		return nil, fmt.Errorf("client: %w: PublicKeys has no entry %q and the build links in no key (-ldflags \"-X %s=<key>\")", ErrNoKey, target, LinkedKeyFlag)
	case s == "":
		return nil, fmt.Errorf("client: %w: Config has neither PublicKey nor PublicKeys, and the build links in no key; set one, or build with -ldflags \"-X %s=<key>\" (rpsign gen prints the key)", ErrNoKey, LinkedKeyFlag)
	case linked != "" && linked != s:
		return nil, fmt.Errorf("client: %s is %s but the build links in %s (-X %s): releases would be signed for one and checked with the other; keep one", from, s, linked, LinkedKeyFlag)
	}
	k, err := region.ParsePublicKey(s)
	if err != nil {
		return nil, fmt.Errorf("client: %s %q: %w (want the 52-character z-base-32 key that rpsign gen or rpsign pub prints)", from, s, err)
	}
	if k.Equal(testVectorKey) && !cfg.allowTestVectorKey {
		return nil, fmt.Errorf("client: %s: %w: %s is the test-vector key of docs/FORMAT.md, whose secret anyone can read; make your own key with rpsign gen", from, ErrPublishedKey, s)
	}
	return k, nil
}
