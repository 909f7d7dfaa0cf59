package client

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// benchSize is the size of the stand-in binaries of the 100 MB benchmarks.
const benchSize = 100 << 20

// benchPipeline returns the pipeline of a stand-in executable of size
// bytes signed as 1.0.0, with no sources and a self-test that passes, the
// stand-in's region and its owner key. The pipeline does not run:
// benchmarks call its steps.
func benchPipeline(b *testing.B, size int64) (*pipeline, region.Info, regiontest.Key) {
	b.Helper()
	k := regiontest.NewKey(b)
	dir := b.TempDir()
	exe := filepath.Join(dir, "app", "prog")
	running := regiontest.WriteBinary(b, exe, size, 1, k, "1.0.0")
	p := newPipeline(options{
		Config: Config{
			Mode:    OnRestart(),
			Network: NetworkConfig{Disabled: true},
			Logger:  slog.New(slog.DiscardHandler),
		},
		current:  func() (region.Info, error) { return running, nil },
		selfTest: func(context.Context, string, region.Info) error { return nil },
	}, k.Public, exe, newControl())
	return p, running, k
}

// BenchmarkSpawn measures how long Spawn takes to return: the work (self-
// verification, polling) runs in the background.
func BenchmarkSpawn(b *testing.B) {
	k := regiontest.NewKey(b)
	dir := b.TempDir()
	exe := filepath.Join(dir, "prog")
	running := regiontest.WriteBinary(b, exe, benchSize, 1, k, "1.0.0")
	cfg := options{
		Config: Config{
			PublicKey:  k.PublicText,
			Interval:   time.Hour,
			Sources:    []Source{DirSource(dir)},
			Network:    NetworkConfig{Disabled: true},
			Logger:     slog.New(slog.DiscardHandler),
			Executable: exe,
		},
		current: func() (region.Info, error) { return running, nil },
	}
	b.ReportAllocs()
	for b.Loop() {
		u, err := spawn(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		u.Close()
		b.StartTimer()
	}
}

// BenchmarkSelfVerify100MB measures the start-up self-verification of a
// 100 MB executable (one streaming pass). B/op shows that memory does not
// grow with the file.
func BenchmarkSelfVerify100MB(b *testing.B) {
	p, running, _ := benchPipeline(b, benchSize)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		in, _, err := verifySelf(context.Background(), p.exe, p.pub, p.cfg.current)
		if err != nil || in != running {
			b.Fatal(err)
		}
	}
}

// BenchmarkApply100MB measures applying a 100 MB release from a directory:
// streaming into a temporary file while hashing, verifying, fsync, keeping
// the backup, rename and directory sync (the self-test run is stubbed out
// here; e2e's BenchmarkSelfTest100MB measures it). Compare with
// BenchmarkCp100MB.
func BenchmarkApply100MB(b *testing.B) {
	p, _, k := benchPipeline(b, benchSize)
	dir := b.TempDir()
	relPath := filepath.Join(dir, "prog-2.0.0")
	in := regiontest.WriteBinary(b, relPath, benchSize, 2, k, "2.0.0")
	src := DirSource(dir)
	rels, err := src.Releases(context.Background())
	if err != nil || len(rels) != 1 {
		b.Fatal(rels, err)
	}
	c := candidate{src: src, rel: rels[0], in: in}
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.apply(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCp100MB copies the same 100 MB file with cp(1) (cp), then also
// fsyncs the copy with sync(1) (cp+sync), and hashes it with sha512sum(1):
// the baselines for BenchmarkApply100MB, which does all three in one pass.
func BenchmarkCp100MB(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	regiontest.WriteBinary(b, src, benchSize, 2, regiontest.NewKey(b), "2.0.0")
	dst := filepath.Join(dir, "dst")
	tests := []struct {
		name string
		cmds [][]string
	}{
		{"cp", [][]string{{"cp", src, dst}}},
		{"cp+sync", [][]string{{"cp", src, dst}, {"sync", dst}}},
		{"sha512sum", [][]string{{"sha512sum", src}}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			for _, c := range tt.cmds {
				if _, err := exec.LookPath(c[0]); err != nil {
					b.Skipf("no %s", c[0])
				}
			}
			b.SetBytes(benchSize)
			for b.Loop() {
				os.Remove(dst)
				for _, c := range tt.cmds {
					if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
						b.Fatal(err, string(out))
					}
				}
			}
		})
	}
}
