// Command hellobare is hello without the update client: it links only the
// signed region, prints its version and idles until interrupted. The
// embedding-cost benchmark compares it with examples/hello.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/org/rustpatcher-go/region"
)

func main() {
	in, err := region.Current()
	v := in.Version
	if err != nil || !in.Signed() {
		v = "unsigned"
	}
	fmt.Printf("hello %s args=%s\n", v, strings.Join(os.Args[1:], " "))
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	<-c
}
