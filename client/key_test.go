package client

import (
	"errors"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// TestConfigKey checks which key is used when the Config and the build
// (-X LinkedKeyFlag) give one, and which keys are refused and why.
func TestConfigKey(t *testing.T) {
	t.Parallel()
	k, other := regiontest.NewKey(t), regiontest.NewKey(t)
	none := ""
	target := goTarget()
	tests := []struct {
		name    string
		cfg     options
		want    string // the key used, or
		wantErr string // a part of the error
		is      error  // and the sentinel it wraps
	}{
		{name: "PublicKeys entry", cfg: options{Config: Config{PublicKeys: map[string]string{target: k.PublicText}}, linked: &none}, want: k.PublicText},
		{name: "linked only", cfg: options{linked: &k.PublicText}, want: k.PublicText},
		{name: "linked and PublicKeys without this target", cfg: options{Config: Config{PublicKeys: map[string]string{"plan9/mips": other.PublicText}}, linked: &k.PublicText}, want: k.PublicText},
		{name: "linked equals Config", cfg: options{Config: Config{PublicKey: k.PublicText}, linked: &k.PublicText}, want: k.PublicText},
		{name: "test vector key opted in", cfg: options{Config: Config{PublicKey: TestVectorPublicKey}, allowTestVectorKey: true}, want: TestVectorPublicKey},

		{name: "no key", cfg: options{linked: &none}, wantErr: "neither PublicKey nor PublicKeys", is: ErrNoKey},
		{name: "no key for target", cfg: options{Config: Config{PublicKeys: map[string]string{"plan9/mips": k.PublicText}}, linked: &none}, wantErr: `no entry "` + target + `"`, is: ErrNoKey},
		{name: "bad key", cfg: options{Config: Config{PublicKey: "not a key"}}, wantErr: "malformed key", is: region.ErrBadKey},
		{name: "README placeholder", cfg: options{Config: Config{PublicKey: "<your public key from rpsign gen>"}}, wantErr: "want the 52-character z-base-32 key", is: region.ErrBadKey},
		{name: "bad linked key", cfg: options{linked: ptr("not a key")}, wantErr: "linked in with -X " + LinkedKeyFlag, is: region.ErrBadKey},
		{name: "linked and Config differ", cfg: options{Config: Config{PublicKey: k.PublicText}, linked: &other.PublicText}, wantErr: "but the build links in " + other.PublicText},
		{name: "linked and PublicKeys differ", cfg: options{Config: Config{PublicKeys: map[string]string{target: k.PublicText}}, linked: &other.PublicText}, wantErr: "but the build links in"},
		{name: "test vector key", cfg: options{Config: Config{PublicKey: TestVectorPublicKey}}, wantErr: "test-vector key", is: ErrPublishedKey},
		{name: "linked test vector key", cfg: options{linked: ptr(TestVectorPublicKey)}, wantErr: "test-vector key", is: ErrPublishedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.key()
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("key() = %s, want an error with %q", region.EncodePublicKey(got), tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || (tt.is != nil && !errors.Is(err, tt.is)) {
					t.Errorf("key() error = %v, want %q / %v", err, tt.wantErr, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatalf("key() = %v", err)
			}
			if s := region.EncodePublicKey(got); s != tt.want {
				t.Errorf("key() = %s, want %s", s, tt.want)
			}
		})
	}
}
