// Command hello is the smallest rustpatcher-go app: it prints the version
// that rpsign wrote into its own signed region.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/org/rustpatcher-go/region"
)

func main() {
	showVersion := flag.Bool("version", false, "print the signed version and exit")
	flag.Parse()
	in, err := region.Current()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	v := in.Version
	if !in.Signed() {
		v = "unsigned"
	}
	if *showVersion {
		fmt.Println(v)
		return
	}
	fmt.Println("hello", v)
}
