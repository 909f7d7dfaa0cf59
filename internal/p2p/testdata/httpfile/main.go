// Command httpfile serves one file with net/http (http.ServeFile, plain
// HTTP) on a loopback port for BenchmarkTransferProcs, prints
// "listening: http://ADDR/" on standard output and serves until killed.
//
// Usage:
//
//	httpfile FILE
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: httpfile FILE")
		os.Exit(2)
	}
	path := os.Args[1]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpfile:", err)
		os.Exit(1)
	}
	fmt.Printf("listening: http://%s/\n", ln.Addr())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	fmt.Fprintln(os.Stderr, "httpfile:", http.Serve(ln, h))
	os.Exit(1)
}
