package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// TestPublish runs rpsign publish against ghreleasetest, a local server speaking
// the GitHub REST shapes used (release by tag, create, list, upload and
// delete assets), as GitHub cannot be reached from tests.
func TestPublish(t *testing.T) {
	srv := ghreleasetest.NewServer(t)
	keyA, pubA := testKey(t)
	_, pubB := randomKey(t)
	dir := t.TempDir()
	hello := copyHello(t, dir, "hello")
	key, err := region.ParseSecretKey(keyA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := region.SignFile(context.Background(), hello, key, "1.5.0", runtime.GOOS+"/"+runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	// A stand-in for a linux/arm64 build: its header names no target, so
	// --target says it.
	arm := filepath.Join(dir, "arm", "hello")
	regiontest.WriteBinaryFor(t, arm, 5000, 1, regiontest.VectorKey(t), "1.5.0", "linux/arm64")
	unsigned := copyHello(t, dir, "unsigned/hello")
	host := target.Current()
	pubAs, pubBs := region.EncodePublicKey(pubA), region.EncodePublicKey(pubB)

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		code    int
		stderr  string
		release string // tag whose assets are checked on success
		assets  []string
	}{
		{
			name:    "per-target key, detected target",
			args:    []string{"publish", hello, "--repo", "org/app", "--tag", "v1.5.0", "--pub", host.String() + "=" + pubAs, "--pub", "linux/mips=" + pubBs},
			release: "v1.5.0",
			assets:  []string{"hello_" + host.OS + "_" + host.Arch, "hello_" + host.OS + "_" + host.Arch + ".pieces", ghrelease.ManifestName(host)},
		},
		{
			name:    "tag and repo from the environment, fixed target, re-run",
			args:    []string{"publish", "--pub", pubAs, "--target", "linux/arm64", arm},
			env:     map[string]string{"GITHUB_REPOSITORY": "org/app", "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v1.5.0"},
			release: "v1.5.0",
			assets:  []string{"hello_" + host.OS + "_" + host.Arch, "hello_" + host.OS + "_" + host.Arch + ".pieces", ghrelease.ManifestName(host), "hello_linux_arm64", "hello_linux_arm64.pieces", "rustpatcher-linux-arm64.json"},
		},
		{
			name:   "wrong key",
			args:   []string{"publish", hello, "--repo", "org/app", "--tag", "v9.0.0", "--pub", pubBs},
			code:   1,
			stderr: "not publishing: " + hello + ": signature does not verify",
		},
		{
			name:   "unsigned",
			args:   []string{"publish", unsigned, "--repo", "org/app", "--tag", "v9.0.0", "--pub", pubAs},
			code:   1,
			stderr: "binary is not signed",
		},
		{
			name:   "no key for the target",
			args:   []string{"publish", hello, "--repo", "org/app", "--tag", "v9.0.0", "--pub", "windows/arm64=" + pubAs},
			code:   1,
			stderr: "--pub gives no key for " + host.String(),
		},
		{
			name:   "no token",
			args:   []string{"publish", hello, "--repo", "org/app", "--tag", "v9.0.0", "--pub", pubAs, "--token-env", "MY_TOKEN"},
			code:   1,
			stderr: "environment variable MY_TOKEN is empty or unset",
		},
		{name: "no tag", args: []string{"publish", hello, "--repo", "org/app", "--pub", pubAs}, code: 2, stderr: "--tag is required"},
		{name: "no binaries", args: []string{"publish", "--repo", "org/app", "--tag", "v1", "--pub", pubAs}, code: 2, stderr: "no binaries given"},
		{name: "bad repo", args: []string{"publish", hello, "--repo", "app", "--tag", "v1", "--pub", pubAs}, code: 2, stderr: `repository "app": want OWNER/REPO`},
		{name: "bad pub", args: []string{"publish", hello, "--repo", "org/app", "--tag", "v1", "--pub", "linux/amd64=xyz"}, code: 2, stderr: "key for linux/amd64: malformed key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"GITHUB_TOKEN": "tok", "GITHUB_API_URL": srv.URL}
			for k, v := range tt.env {
				vars[k] = v
			}
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr, func(k string) string { return vars[k] })
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, &stderr, tt.code, tt.stderr)
			}
			if strings.Contains(stdout.String()+stderr.String(), "tok\n") {
				t.Error("the token was printed")
			}
			if strings.ContainsAny(stderr.String(), "\r\x1b") || strings.Contains(stderr.String(), "uploading ") {
				t.Errorf("progress drawn on a stderr that is no terminal:\n%q", &stderr)
			}
			if tt.release == "" {
				if len(srv.Assets("org/app", "v9.0.0")) != 0 {
					t.Error("a failed publish uploaded assets")
				}
				return
			}
			assets := srv.Assets("org/app", tt.release)
			if len(assets) != len(tt.assets) {
				t.Errorf("release has %d assets, want %v", len(assets), tt.assets)
			}
			for _, name := range tt.assets {
				if _, ok := assets[name]; !ok {
					t.Errorf("release lacks %s", name)
				}
			}
		})
	}
	// The published binary is the signed file, byte for byte.
	b, _ := os.ReadFile(filepath.Join(dir, "arm/hello"))
	if got := srv.Assets("org/app", "v1.5.0")["hello_linux_arm64"]; !bytes.Equal(got, b) {
		t.Error("published arm64 binary differs from the file")
	}
}
