package client

import (
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// TestConfigKey checks which key is used when the Config and the build
// give one; TestSpawnConfigErrors has the keys that are refused.
func TestConfigKey(t *testing.T) {
	t.Parallel()
	k, other := regiontest.NewKey(t), regiontest.NewKey(t)
	none := ""
	target := goTarget()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"PublicKeys entry", Config{PublicKeys: map[string]string{target: k.PublicText}, linked: &none}, k.PublicText},
		{"linked only", Config{linked: &k.PublicText}, k.PublicText},
		{"linked and PublicKeys without this target", Config{PublicKeys: map[string]string{"plan9/mips": other.PublicText}, linked: &k.PublicText}, k.PublicText},
		{"linked equals Config", Config{PublicKey: k.PublicText, linked: &k.PublicText}, k.PublicText},
		{"test vector key opted in", Config{PublicKey: TestVectorPublicKey, allowTestVectorKey: true}, TestVectorPublicKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.key()
			if err != nil {
				t.Fatalf("key() = %v", err)
			}
			if s := region.EncodePublicKey(got); s != tt.want {
				t.Errorf("key() = %s, want %s", s, tt.want)
			}
		})
	}
}

func TestTestVectorKeyBytes(t *testing.T) {
	t.Parallel()
	k, err := region.ParsePublicKey(TestVectorPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Equal(testVectorKey) {
		t.Errorf("testVectorKey = %x, want %x", testVectorKey, k)
	}
}
