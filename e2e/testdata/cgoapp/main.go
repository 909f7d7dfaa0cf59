// Command cgoapp is a test program that links the region with cgo and the
// external linker.
package main

// int answer(void) { return 42; }
import "C"

import (
	"fmt"

	"github.com/org/rustpatcher-go/region"
)

func main() {
	in, _ := region.Current()
	fmt.Println(in.Version, int(C.answer()))
}
