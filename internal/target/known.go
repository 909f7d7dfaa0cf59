package target

import (
	"slices"
	"strings"
)

// known lists the GOOS/GOARCH pairs Go builds for, as `go tool dist list`
// prints them (Go 1.26); TestKnownMatchesGo compares it with the go command
// at hand. Update it with:
//
//	go tool dist list | sed 's/.*/\t"&",/'
var known = []string{
	"aix/ppc64",
	"android/386",
	"android/amd64",
	"android/arm",
	"android/arm64",
	"darwin/amd64",
	"darwin/arm64",
	"dragonfly/amd64",
	"freebsd/386",
	"freebsd/amd64",
	"freebsd/arm",
	"freebsd/arm64",
	"illumos/amd64",
	"ios/amd64",
	"ios/arm64",
	"js/wasm",
	"linux/386",
	"linux/amd64",
	"linux/arm",
	"linux/arm64",
	"linux/loong64",
	"linux/mips",
	"linux/mips64",
	"linux/mips64le",
	"linux/mipsle",
	"linux/ppc64",
	"linux/ppc64le",
	"linux/riscv64",
	"linux/s390x",
	"netbsd/386",
	"netbsd/amd64",
	"netbsd/arm",
	"netbsd/arm64",
	"openbsd/386",
	"openbsd/amd64",
	"openbsd/arm",
	"openbsd/arm64",
	"openbsd/ppc64",
	"openbsd/riscv64",
	"plan9/386",
	"plan9/amd64",
	"plan9/arm",
	"solaris/amd64",
	"wasip1/wasm",
	"windows/386",
	"windows/amd64",
	"windows/arm64",
}

// Known reports whether t is a target Go can build for.
func Known(t Target) bool {
	_, ok := slices.BinarySearch(known, t.String())
	return ok
}

// KnownFor returns the known targets of the operating system goos (all
// known targets when there is none), for messages that suggest one.
func KnownFor(goos string) []string {
	var out []string
	for _, k := range known {
		if strings.HasPrefix(k, goos+"/") {
			out = append(out, k)
		}
	}
	if out == nil {
		out = slices.Clone(known)
	}
	return out
}
