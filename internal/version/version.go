// Package version tells which version of a rustpatcher-go command runs, for
// --version and logs.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/org/rustpatcher-go/region"
)

// Devel is the version of a build that is neither signed nor built from a
// module version (go build in a checkout).
const Devel = "(devel)"

// Current returns the running program's version: the version signed into
// its region when it is signed (rpsign sign), else the main module's version
// from the build info (go install module@v1.2.3), else Devel.
func Current() string {
	v, _ := current()
	return v
}

// current returns the version and where it comes from.
func current() (v, from string) {
	if in, err := region.Current(); err == nil && in.Signed() {
		return in.Version, "signed"
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != Devel {
		return bi.Main.Version, "unsigned, module version"
	}
	return Devel, "unsigned"
}

// Line returns the line that --version prints for the command name, such as
// "rpseed 1.2.3 (signed, go1.26.8, linux/amd64)".
func Line(name string) string {
	v, from := current()
	return fmt.Sprintf("%s %s (%s, %s, %s/%s)", name, v, from, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
