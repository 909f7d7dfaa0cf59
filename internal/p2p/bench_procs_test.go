package p2p

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/p2phost/hostquic"
	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/region"
)

// BenchmarkTransferProcs is BenchmarkTransfer with the serving side in
// another OS process, as in real use (an rpseed or app node serves, another
// node fetches): a plain net/http file server (testdata/httpfile,
// http.ServeFile on 127.0.0.1) and the real cmd/rpseed serving the same
// signed 200 MB release over the protocol, each built into a temporary
// directory and started once. This process only downloads, in 1 MiB reads:
// every iteration fetches the release once over HTTP and once over the
// protocol (a client node bootstrapped to rpseed), in alternating order,
// and reports each contender's throughput over the run and their ratio
// (p2p/http), and the CPU time per download of this process and the
// contender's server together (http-cpu-ms/op, p2p-cpu-ms/op; Linux only). Sub-benchmarks tcp and quic pick the protocol's transport:
// rpseed and the client node listen on that one only. Run with:
//
//	go test -run '^$' -bench 'TransferProcs/tcp$' -benchtime 5x -count 3 ./internal/p2p/
func BenchmarkTransferProcs(b *testing.B) {
	const size = 200 << 20
	pub, path, in := benchRelease(b, size)
	total := in.ContentLen()
	bins := b.TempDir()
	httpAddr, httpPid := startServer(b, b, buildProgram(b, bins, "./testdata/httpfile"), path)
	httpURL := httpAddr + filepath.Base(path)
	rpseed := buildProgram(b, bins, "github.com/org/rustpatcher-go/cmd/rpseed")
	dir := filepath.Dir(path)
	hc := &http.Client{}

	for _, tr := range []struct{ name, addr string }{
		{"tcp", "/ip4/127.0.0.1/tcp/0"},
		{"quic", "/ip4/127.0.0.1/udp/0/quic-v1"},
	} {
		// The sub-benchmark's function runs more than once (first with
		// b.N = 1); the seed and the client are set up on the first call
		// and kept (cleaned up) by the parent.
		parent := b
		var rel *Release
		var seedPid int
		b.Run(tr.name, func(b *testing.B) {
			if rel == nil {
				var seedAddr string
				seedAddr, seedPid = startServer(b, parent, rpseed, "--private", "--dir", dir,
					"--identity", filepath.Join(parent.TempDir(), "seed.key"),
					"--pub", testTarget+"="+region.EncodePublicKey(pub), "--listen", tr.addr)
				ctx := context.Background()
				client, err := New(ctx, Config{Private: true, DHTServer: true, ListenAddrs: []string{tr.addr}, Bootstrap: []string{seedAddr}, QUIC: hostquic.New})
				if err != nil {
					b.Fatal(err)
				}
				parent.Cleanup(func() { client.Close() })
				src := client.Source(pub, testTarget)
				deadline := time.Now().Add(30 * time.Second)
				for {
					rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					rels, err := src.Releases(rctx)
					cancel()
					if err == nil && len(rels) == 1 {
						rel = rels[0]
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("Releases from rpseed at %s: %d, %v", seedAddr, len(rels), err)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			fetchP2P := func() (int64, error) {
				rc, err := rel.Open(context.Background(), 0)
				if err != nil {
					return 0, err
				}
				defer rc.Close()
				return consume(rc)
			}
			fetchHTTP := func() (int64, error) {
				resp, err := hc.Get(httpURL)
				if err != nil {
					return 0, err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return 0, fmt.Errorf("GET %s: %s", httpURL, resp.Status)
				}
				return consume(resp.Body)
			}
			var httpT, p2pT time.Duration
			var httpR, p2pR []float64 // MB/s of each download
			// CPU time of this process and of the contender's server
			// (-1 where /proc cannot tell it).
			var httpCPU, p2pCPU time.Duration
			timed := func(f func() (int64, error), pid int, sum, cpu *time.Duration, rates *[]float64) {
				c0 := processCPU(b) + childCPU(pid)
				start := time.Now()
				n, err := f()
				d := time.Since(start)
				if err != nil || n != total {
					b.Fatalf("got %d bytes, %v", n, err)
				}
				*sum += d
				*cpu += processCPU(b) + childCPU(pid) - c0
				*rates = append(*rates, float64(total)/1e6/d.Seconds())
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%2 == 0 {
					timed(fetchHTTP, httpPid, &httpT, &httpCPU, &httpR)
					timed(fetchP2P, seedPid, &p2pT, &p2pCPU, &p2pR)
				} else {
					timed(fetchP2P, seedPid, &p2pT, &p2pCPU, &p2pR)
					timed(fetchHTTP, httpPid, &httpT, &httpCPU, &httpR)
				}
			}
			b.StopTimer()
			httpMBs := float64(total) * float64(b.N) / 1e6 / httpT.Seconds()
			p2pMBs := float64(total) * float64(b.N) / 1e6 / p2pT.Seconds()
			b.ReportMetric(httpMBs, "http-MB/s")
			b.ReportMetric(p2pMBs, "p2p-"+tr.name+"-MB/s")
			b.ReportMetric(p2pMBs/httpMBs, "p2p/http")
			if childCPU(seedPid) >= 0 {
				b.ReportMetric(float64(httpCPU.Milliseconds())/float64(b.N), "http-cpu-ms/op")
				b.ReportMetric(float64(p2pCPU.Milliseconds())/float64(b.N), "p2p-cpu-ms/op")
			}
			if b.N > 1 {
				b.Logf("per download, MB/s: http %.0f (median %.0f), p2p-%s %.0f (median %.0f)",
					httpR, median(httpR), tr.name, p2pR, median(p2pR))
			}
		})
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// buildProgram builds the Go package pkg into dir with the go command of
// the toolchain running the benchmark and returns the executable's path.
func buildProgram(b *testing.B, dir, pkg string) string {
	b.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if msg, err := exec.CommandContext(ctx, regiontest.GoTool(), "build", "-o", out, pkg).CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// startServer runs bin with args, waits (at most a minute) for its first
// "listening: ADDR" line on standard output and returns ADDR and the
// process ID, failing b otherwise. The process is killed when keep (b or a parent) ends; its
// standard error goes to a file shown when it fails to start.
func startServer(b, keep *testing.B, bin string, args ...string) (string, int) {
	b.Helper()
	errPath := filepath.Join(keep.TempDir(), "stderr")
	errFile, err := os.Create(errPath)
	if err != nil {
		b.Fatal(err)
	}
	defer errFile.Close()
	pr, pw := io.Pipe()
	cmd := exec.Command(bin, args...)
	cmd.Stdout = pw
	cmd.Stderr = errFile
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		pw.Close()
		close(exited)
	}()
	keep.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		found := false
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening: "); ok && !found {
				found = true
				addrs <- a
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case a := <-addrs:
		return a, cmd.Process.Pid
	case <-exited:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-exited
	}
	msg, _ := os.ReadFile(errPath)
	b.Fatalf("%s printed no listening address: %v\n%s", filepath.Base(bin), cmd.ProcessState, msg)
	return "", 0
}
