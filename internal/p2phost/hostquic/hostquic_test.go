package hostquic

import (
	"crypto/rand"
	"testing"

	"github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// TestQUICKeysMatchLibp2p checks that a host's QUIC stateless reset and
// token keys are the ones libp2p.New derives from the same identity, so
// that a node's QUIC keys stay what they were across restarts and match a
// stock go-libp2p host's with its key.
func TestQUICKeysMatchLibp2p(t *testing.T) {
	for range 3 {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		reset, token, err := quicKeys(key)
		if err != nil {
			t.Fatal(err)
		}
		wantReset, err := config.PrivKeyToStatelessResetKey(key)
		if err != nil {
			t.Fatal(err)
		}
		wantToken, err := config.PrivKeyToTokenGeneratorKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if reset != wantReset {
			t.Errorf("stateless reset key %x, go-libp2p derives %x (info string %q)", reset, wantReset, quicResetKeyInfo)
		}
		if token != wantToken {
			t.Errorf("token generator key %x, go-libp2p derives %x (info string %q)", token, wantToken, quicTokenKeyInfo)
		}
		if reset == ([32]byte{}) || [32]byte(token[:32]) == reset {
			t.Error("the two keys are zero or the same")
		}
	}
}
